"""A sidecar follows its ``--token-file``: the projected service-account token the kubelet refreshes (at 80% of its
lifetime, by swapping the mounted file), or a ``citadel token`` file an operator replaces.

Citadel refuses a token after its ``exp``: a stream whose token expired is ended at its next certificate renewal,
and the sidecar reconnects. So the token Envoy sends must be the file's current one. Envoy reads it from a
file-based SDS secret (``agent.sidecar_files.TOKEN_DOCUMENT``, injected into every request to Citadel by the
credential_injector filter, see ``envoy_bootstrap.bootstrap``); ``follow_token`` polls the token file and replaces
that document when the token changes. Envoy reloads the document on the rename: no new bootstrap, no restart, no
connection dropped (a hot restart would keep listeners but open a new SDS stream and double the memory for its
drain; istio-agent instead serves SDS itself and reads the token on every CSR).

A token file that is missing, unreadable or empty for a moment (while it is swapped) leaves the last token in force;
the token itself is never logged, only when it expires.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import structlog

from agent.sidecar_files import SidecarFilesError, read_token, write_token_document

__all__ = ["TOKEN_POLL_SECONDS", "follow_token", "token_expiry"]

log = structlog.get_logger(__name__)

TOKEN_POLL_SECONDS = 1.0  # the kubelet refreshes minutes before the old token expires: a second is plenty


def token_expiry(token: str) -> datetime | None:
    """The ``exp`` of a JWT (unverified: for logs only), or None when ``token`` is not a JWT with one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _expires(token: str) -> str | None:
    expiry = token_expiry(token)
    return expiry.isoformat() if expiry is not None else None


async def follow_token(token_file: Path, directory: Path, *, interval: float = TOKEN_POLL_SECONDS) -> None:
    """Keep ``<directory>/bootstrap.citadel-token.json`` holding the token in ``token_file`` (written first by
    ``write_sidecar_bootstrap(..., follow_token=True)``). Runs until cancelled."""
    try:
        current: str | None = read_token(token_file)
    except SidecarFilesError:
        current = None  # swapped right now: the first token read is written (the same one, most likely)
    problem = ""
    while True:
        await asyncio.sleep(interval)
        try:
            token = read_token(token_file)
        except SidecarFilesError as exc:
            if str(exc) != problem:
                log.warning("workload_token_unreadable", token_file=str(token_file), reason=str(exc))
            problem = str(exc)
            continue
        problem = ""
        if token == current:
            continue
        try:
            write_token_document(directory, token)
        except (SidecarFilesError, OSError) as exc:
            log.warning("workload_token_not_updated", token_file=str(token_file), reason=str(exc))
            continue
        log.info("workload_token_refreshed", token_file=str(token_file), expires_at=_expires(token))
        current = token
