"""What a container's proxy agent does besides writing its bootstrap (``agent.container_sidecar`` for a sidecar,
``agent.container_gateway`` for a gateway): start its children (Envoy, the sidecar's DNS agent) with the
container's stdout and stderr, keep the copy of the trust bundle and the token's SDS document in step with
``--root-cert`` and ``--token-file``, and run until SIGTERM or until a child exits (then stop the rest)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from agent.pod import follow_root_cert
from agent.sidecar_files import ROOT_CERT_COPY
from agent.status_server import StatusServer
from agent.token_follower import follow_token
from envoy_bootstrap.processes import stop_process
from meshplane.serving import stop_on_signals

__all__ = ["supervise_proxy"]

log = structlog.get_logger(__name__)

Child = tuple[str, list[str]]  # a name for logs, its argv


async def _start(
    name: str, argv: list[str], env: Mapping[str, str] | None = None
) -> tuple[str, asyncio.subprocess.Process]:
    """A child with the container's stdout and stderr (``docker logs``), in a session of its own; ``env``: its
    whole environment (None: this process's)."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, start_new_session=True, env=None if env is None else dict(env)
    )
    log.info("proxy_process_started", process=name, pid=process.pid)
    return name, process


def _followers(bootstrap: Path, root_cert: Path | None, token_file: Path | None) -> list[asyncio.Task[None]]:
    followers = []
    if root_cert is not None:
        followers.append(asyncio.create_task(follow_root_cert(root_cert, bootstrap.parent / ROOT_CERT_COPY)))
    if token_file is not None:
        followers.append(asyncio.create_task(follow_token(token_file, bootstrap.parent)))
    return followers


async def supervise_proxy(
    bootstrap: Path,
    children: Sequence[Child],
    *,
    status: StatusServer | None,
    root_cert: Path | None,
    token_file: Path | None,
    environments: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Serve ``status``, follow the files, start ``children`` in order (``environments``: the whole environment of
    the children it names, e.g. Envoy's with its ProxyConfig's variables); until SIGTERM (returns []) or until one
    exits (returns ``"<name> exited with code N"`` for each that did). ``bootstrap``'s directory holds the copies
    the followers keep (written by ``agent.sidecar_files.write_sidecar_bootstrap``)."""
    stop = stop_on_signals()
    started: list[tuple[str, asyncio.subprocess.Process]] = []
    followers = _followers(bootstrap, root_cert, token_file)
    try:
        if status is not None:
            await status.start()
        for name, argv in children:
            started.append(await _start(name, argv, (environments or {}).get(name)))
        waits = {asyncio.ensure_future(process.wait()): name for name, process in started}
        stopped = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([*waits, stopped], return_when=asyncio.FIRST_COMPLETED)
        for wait in [*waits, stopped]:
            wait.cancel()
        exited = [f"{waits[wait]} exited with code {wait.result()}" for wait in done if wait in waits]
        return [] if stop.is_set() else exited
    finally:
        for follower in followers:
            follower.cancel()
        for name, process in reversed(started):
            await stop_process(process, name=name)
        if status is not None:
            await status.stop()
