"""An earlier revision of this repository, checked out beside the run, to measure the code before a change in the
same run as the code after it (issue 13's "today's" numbers are those of the code before the issue).

``ReferenceTree.extract(revision, into)`` writes ``git archive <revision>`` of this checkout into ``into``, builds
that revision's generated protobuf code there (its own ``citadel/proto/generate.py``, as ``make`` would) and its
bytecode (``bench._bytecode``), and checks
that a process started with ``command()`` imports the reference's packages, not this checkout's. ``command`` runs
``python -P -m <module>`` (``-P``: the working directory is not put first on ``sys.path``) with ``PYTHONPATH`` set
to the tree, so the editable install of this checkout is not what runs. ReferenceTreeError says why a revision
cannot be used (no git, not a git checkout, an unknown revision, a failed build)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._bytecode import compile_bytecode

__all__ = ["REPOSITORY", "ReferenceTree", "ReferenceTreeError"]

REPOSITORY = Path(__file__).resolve().parents[1]
_BUILD_TIMEOUT_SECONDS = 300.0


class ReferenceTreeError(RuntimeError):
    """The reference revision cannot be checked out, built or imported."""


@dataclass(frozen=True, slots=True)
class ReferenceTree:
    revision: str  # as given
    commit: str  # the full hash it names
    root: Path

    @classmethod
    def extract(cls, revision: str, into: Path, *, repository: Path = REPOSITORY) -> ReferenceTree:
        commit = _git(repository, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").strip()
        into.mkdir(parents=True, exist_ok=True)
        archive = subprocess.Popen(
            ["git", "-C", str(repository), "archive", "--format=tar", commit], stdout=subprocess.PIPE
        )
        unpacked = subprocess.run(
            ["tar", "-x", "-C", str(into)], stdin=archive.stdout, capture_output=True, check=False
        )
        if archive.stdout is not None:
            archive.stdout.close()
        if archive.wait() != 0 or unpacked.returncode != 0:
            raise ReferenceTreeError(f"git archive {commit} | tar -x failed: {unpacked.stderr.decode()[-500:]}")
        tree = cls(revision=revision, commit=commit, root=into)
        generator = into / "citadel" / "proto" / "generate.py"
        if generator.exists():
            tree._run([sys.executable, str(generator)], "building its protobuf code")
        try:
            compile_bytecode(into)  # its starts are timed as this checkout's are
        except RuntimeError as error:
            raise ReferenceTreeError(f"revision {revision}: {error}") from error
        return tree

    def environment(self) -> dict[str, str]:
        """What ``command`` sets: the tree first on the import path."""
        return {"PYTHONPATH": str(self.root)}

    def command(self, module: str, arguments: Sequence[str] = ()) -> list[str]:
        """``module`` of the reference run as ``python -m``; ``env`` execs Python, so the pid is Python's."""
        return [*self._python(), "-m", module, *arguments]

    def check_imports(self, package: str) -> Path:
        """Where a process of ``command`` imports ``package`` from; ReferenceTreeError unless it is the tree."""
        probe = f"import {package}, sys; sys.stdout.write({package}.__file__)"
        found = Path(self._run([*self._python(), "-c", probe], f"importing {package}"))
        if not found.resolve().is_relative_to(self.root.resolve()):
            raise ReferenceTreeError(f"the reference imports {package} from {found}, not from {self.root}")
        return found

    def _python(self) -> list[str]:
        """Python with the tree first on its import path and not the working directory (``-P``)."""
        return ["env", *(f"{name}={value}" for name, value in self.environment().items()), sys.executable, "-P"]

    def _run(self, command: list[str], doing: str) -> str:
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, check=False, timeout=_BUILD_TIMEOUT_SECONDS
        )
        if done.returncode != 0:
            raise ReferenceTreeError(f"revision {self.revision}: {doing} failed: {done.stderr[-800:]}")
        return done.stdout


def _git(repository: Path, *arguments: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repository), *arguments], capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError as exc:
        raise ReferenceTreeError("git is not installed: the reference revision cannot be checked out") from exc
    if done.returncode != 0:
        raise ReferenceTreeError(
            f"git {' '.join(arguments)} failed in {repository} (not a git checkout, or the revision is unknown): "
            f"{done.stderr.strip()[-300:]}"
        )
    return done.stdout
