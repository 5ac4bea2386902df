"""Files the sidecar's uid (1337) must read: a checkout in a 0700 directory (``/root``, CI's clone) is not readable
by it, so the Envoy binary is copied once to ``/var/lib/meshplane/envoy/<sha256>/envoy`` (0755, keyed by content,
so concurrent pods share one copy and a new Envoy gets a new one), and each pod's bootstrap and certificates go to
a directory of its own owned by that uid (0700)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

__all__ = ["SHARED_DIR", "private_dir", "shared_envoy_binary", "write_private"]

SHARED_DIR = Path("/var/lib/meshplane")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shared_envoy_binary(binary: Path) -> Path:
    """A world-readable, root-owned copy of ``binary`` (made once per content)."""
    target = SHARED_DIR / "envoy" / _sha256(binary) / "envoy"
    if target.exists():
        return target
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    for directory in (SHARED_DIR, SHARED_DIR / "envoy", target.parent):
        directory.chmod(0o755)
    temporary = target.with_name(f".envoy.{os.getpid()}")
    shutil.copyfile(binary, temporary)
    temporary.chmod(0o755)
    temporary.replace(target)
    return target


def private_dir(path: Path, uid: int) -> Path:
    """``path`` as a 0700 directory owned by ``uid`` (its parents 0755)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(path, uid, uid)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes, uid: int) -> Path:
    """``data`` at ``path``, 0600, owned by ``uid``."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chown(path, uid, uid)
    return path
