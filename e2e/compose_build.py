"""The meshplane image for the docker-compose mesh, built offline: a wheelhouse made on the host with ``pip wheel``
and ``docker build`` on a base image that needs no registry (``meshplane-base:bookworm``, made by
``.ci/docker-engine.sh`` with debootstrap).

The dependencies' wheels are cached in ``~/.cache/meshplane/wheels/<key>`` (``MESHPLANE_CACHE`` moves the cache),
keyed by ``pyproject.toml`` and the interpreter, so a warm run downloads nothing; meshplane's own wheel is built
from the working tree every time (seconds). Both are hard-linked into ``.wheelhouse/`` of the build context, which
the Dockerfile installs from with ``--build-arg WHEELHOUSE=.wheelhouse``.

    python -m e2e.compose_build [--tag meshplane:latest] [--base-image meshplane-base:bookworm]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "BASE_IMAGE",
    "DEFAULT_TAG",
    "ROOT",
    "BuildError",
    "build_image",
    "cache_dir",
    "dependency_wheels",
    "main",
    "prepare_wheelhouse",
]

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "meshplane-base:bookworm"
DEFAULT_TAG = "meshplane:latest"
WHEELHOUSE = ".wheelhouse"  # inside the build context (gitignored, .dockerignore keeps it)
_PIP_TIMEOUT_SECONDS = 900
_BUILD_TIMEOUT_SECONDS = 900


class BuildError(RuntimeError):
    """pip or docker failed; the message ends with the tail of its output."""


def cache_dir() -> Path:
    return Path(os.environ.get("MESHPLANE_CACHE", Path.home() / ".cache" / "meshplane"))


def _run(command: Sequence[str], *, timeout: float, what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise BuildError(f"{what} failed ({done.returncode}): {' '.join(command)}\n{tail}")


def _wheel_key() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{sys.implementation.cache_tag}-{sys.platform}".encode())
    return digest.hexdigest()[:16]


def dependency_wheels() -> Path:
    """The cached directory of every dependency's wheel (made by ``pip wheel`` when absent)."""
    target = cache_dir() / "wheels" / _wheel_key()
    if target.is_dir() and any(target.glob("*.whl")):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pip-wheel-") as work:
        _run(
            [sys.executable, "-m", "pip", "wheel", "-q", "-w", work, str(ROOT)],
            timeout=_PIP_TIMEOUT_SECONDS,
            what="pip wheel",
        )
        for own in Path(work).glob("meshplane-*.whl"):
            own.unlink()  # built from the working tree on every run instead
        shutil.rmtree(target, ignore_errors=True)
        Path(work).rename(target)
        Path(work).mkdir()  # for TemporaryDirectory's clean-up
    for stale in target.parent.iterdir():
        if stale.is_dir() and stale.name != target.name and not stale.name.startswith("."):
            shutil.rmtree(stale, ignore_errors=True)  # wheels of an older pyproject.toml
    return target


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def prepare_wheelhouse() -> Path:
    """``.wheelhouse/`` of the build context: the cached dependencies and meshplane's wheel of the working tree."""
    wheelhouse = ROOT / WHEELHOUSE
    shutil.rmtree(wheelhouse, ignore_errors=True)
    wheelhouse.mkdir()
    for wheel in dependency_wheels().glob("*.whl"):
        _link_or_copy(wheel, wheelhouse / wheel.name)
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheelhouse)]
    _run([*command, str(ROOT)], timeout=_PIP_TIMEOUT_SECONDS, what="pip wheel (meshplane)")
    return wheelhouse


def build_image(tag: str = DEFAULT_TAG, base_image: str = BASE_IMAGE) -> None:
    """``docker build`` of the Dockerfile at the root with the wheelhouse, on ``base_image``, without network."""
    prepare_wheelhouse()
    command = [
        *("docker", "build", "--network", "none", "-t", tag),
        *("--build-arg", f"BASE_IMAGE={base_image}", "--build-arg", f"WHEELHOUSE={WHEELHOUSE}", str(ROOT)),
    ]
    _run(command, timeout=_BUILD_TIMEOUT_SECONDS, what="docker build")
    # the build stage and the image this tag replaced, both untagged now (the classic builder keeps them)
    for label in ("io.meshplane.stage=build", "io.meshplane.image"):
        _run(["docker", "image", "prune", "-f", "--filter", f"label={label}"], timeout=120, what="docker image prune")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.compose_build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=DEFAULT_TAG, help="the image's tag (%(default)s)")
    parser.add_argument("--base-image", default=BASE_IMAGE, help="the base image (%(default)s)")
    args = parser.parse_args(argv)
    try:
        build_image(args.tag, args.base_image)
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"built {args.tag} on {args.base_image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
