"""Careful file I/O for the CA directory: owner-only key files, atomic writes, no-clobber creation.

Every write goes to a temporary file in the same directory that is fsynced, then renamed (or hard-linked, to never
overwrite) onto its name, and the directory is fsynced after, so a crash leaves either the old or the new file.
OS errors become CAError naming the path.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from citadel.errors import CAError

__all__ = [
    "CERT_MODE",
    "DIR_MODE",
    "KEY_MODE",
    "check_key_mode",
    "create_file",
    "ensure_private_dir",
    "remove_file",
    "replace_file",
]

DIR_MODE = 0o700
KEY_MODE = 0o600
CERT_MODE = 0o644


def check_key_mode(path: Path) -> None:
    """CAError unless ``path`` is a regular file readable by its owner only; FileNotFoundError when absent."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise CAError(f"{path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise CAError(
            f"{path} has mode {mode:04o}, looser than 0600: a private key must be readable by its owner only; "
            f"run: chmod 600 {path}"
        )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    """``data`` in a new fsynced file with ``mode`` next to ``path``, ready to be renamed or linked."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=False) as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(name)
        raise
    finally:
        os.close(fd)
    return Path(name)


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """Atomically make ``path`` hold ``data`` with ``mode``: temp file, fsync, rename, fsync the directory."""
    try:
        temp = _write_temp(path, data, mode)
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise CAError(f"cannot write {path}: {exc.strerror}") from exc


def create_file(path: Path, data: bytes, mode: int) -> bool:
    """Like ``replace_file`` but never overwrites: False when ``path`` already exists (another process won)."""
    try:
        temp = _write_temp(path, data, mode)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(temp)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise CAError(f"cannot write {path}: {exc.strerror}") from exc
    return True


def remove_file(path: Path) -> None:
    try:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _fsync_dir(path.parent)
    except OSError as exc:
        raise CAError(f"cannot remove {path}: {exc.strerror}") from exc


def ensure_private_dir(ca_dir: Path) -> None:
    if ca_dir.is_dir():
        return
    if ca_dir.exists():
        raise CAError(f"{ca_dir} is not a directory")
    try:
        ca_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        ca_dir.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise CAError(f"cannot create CA directory {ca_dir}: {exc.strerror}") from exc
