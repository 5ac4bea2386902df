"""``kubectl`` for the scenarios on Kubernetes: the same commands a user types, against the cluster of a kubeconfig.

The local cluster brings its own kubectl (1.20, built with it: ``~/.cache/meshplane/k8s/bin/kubectl``); on kind, the
user's ``kubectl`` on PATH. Commands run as subprocesses (``run`` blocks its thread: scenarios call it through
``asyncio.to_thread`` or ``arun``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Kubectl", "KubectlError", "find_kubectl"]

LOCAL_KUBECTL = Path(os.environ.get("K8S_HOME", Path.home() / ".cache/meshplane/k8s")) / "bin/kubectl"


class KubectlError(RuntimeError):
    """A kubectl command failed: the message has the command and its stderr."""


def find_kubectl() -> str:
    """The local cluster's kubectl when it is built, else ``kubectl`` on PATH."""
    if LOCAL_KUBECTL.is_file():
        return str(LOCAL_KUBECTL)
    found = shutil.which("kubectl")
    if found is None:
        raise KubectlError(f"no kubectl: neither {LOCAL_KUBECTL} (e2e/k8s/cluster.sh build) nor one on PATH")
    return found


@dataclass(frozen=True)
class Kubectl:
    kubeconfig: Path
    binary: str = ""

    def command(self, *arguments: str) -> list[str]:
        return [self.binary or find_kubectl(), "--kubeconfig", str(self.kubeconfig), *arguments]

    def run(self, *arguments: str, stdin: str | None = None, timeout: float = 60.0, check: bool = True) -> str:
        """The command's stdout; KubectlError with its stderr when it fails (``check``)."""
        command = self.command(*arguments)
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise KubectlError(f"{' '.join(command)}: timed out after {timeout:g}s") from exc
        if check and done.returncode != 0:
            raise KubectlError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    async def arun(self, *arguments: str, stdin: str | None = None, timeout: float = 60.0) -> str:
        return await asyncio.to_thread(self.run, *arguments, stdin=stdin, timeout=timeout)

    def json(self, *arguments: str, timeout: float = 60.0) -> Any:
        return json.loads(self.run(*arguments, "-o", "json", timeout=timeout))

    def exec_python(
        self, namespace: str, pod: str, container: str, arguments: Sequence[str], *, timeout: float = 60.0
    ) -> str:
        """``python ARGUMENTS`` in ``container`` of ``pod`` (its uid, its network namespace): the output."""
        return self.run("exec", "-n", namespace, pod, "-c", container, "--", "python", *arguments, timeout=timeout)
