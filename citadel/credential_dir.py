"""Gateway credentials from a directory (``citadel --credentials-dir DIR``), for pods and docker-compose.

``DIR/<namespace>/<name>/`` holds one credential, its files named as the Secret's keys (``credentials.py``:
``tls.crt``, ``tls.key``, ``ca.crt``, or ``cert``, ``key``, ``cacert``), so a Secret mounted as a volume is one too
(its hidden ``..data`` entries are skipped). The directory is read again every ``poll`` seconds and the store gets
what changed: a credential written, replaced (a rotation) or removed reaches the gateways using it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from citadel.credential_store import CredentialStore, SecretKey
from citadel.credentials import SecretData

__all__ = ["CredentialDir", "read_credentials_dir"]

log = structlog.get_logger(__name__)

_MAX_FILE_BYTES = 1 << 20  # a certificate file larger than this is not one


def read_credentials_dir(root: Path) -> dict[SecretKey, SecretData]:
    """Every ``<namespace>/<name>/`` credential under ``root`` (missing root: none)."""
    found: dict[SecretKey, SecretData] = {}
    for namespace in _entries(root):
        for secret in _entries(namespace):
            if secret.is_dir():
                found[(namespace.name, secret.name)] = _files(secret)
    return found


def _entries(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if not p.name.startswith(".") and p.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _files(directory: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            if path.stat().st_size <= _MAX_FILE_BYTES:
                files[path.name] = path.read_bytes()
        except OSError as exc:  # removed while read: the next poll sees the directory as it then is
            log.debug("credential file unreadable", path=str(path), error=str(exc))
    return files


class CredentialDir:
    """Keeps ``store`` equal to the credentials under ``root``; ``run`` until cancelled."""

    def __init__(self, root: Path, store: CredentialStore, *, poll: float = 1.0) -> None:
        self.root = root
        self._store = store
        self._poll = poll

    def read_once(self) -> None:
        """Read the directory now and give the store its whole content (changes reach the listeners)."""
        self._store.replace(read_credentials_dir(self.root))

    async def run(self) -> None:
        if not self.root.is_dir():
            log.warning(
                "the credentials directory does not exist (yet): gateways get no credentials", path=str(self.root)
            )
        log.info("serving gateway credentials from a directory", path=str(self.root), poll=self._poll)
        while True:
            secrets = await asyncio.to_thread(read_credentials_dir, self.root)
            before = len(self._store)
            self._store.replace(secrets)
            if len(secrets) != before:
                log.info("gateway credentials read", path=str(self.root), credentials=len(secrets))
            await asyncio.sleep(self._poll)
