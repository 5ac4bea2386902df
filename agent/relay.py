"""Makes host-side control-plane addresses reachable from inside a pod: a TCP relay whose listening sockets are
created inside the pod's network namespace (``listen_in_netns``) and whose upstream connections are made from the
host namespace, where Pilot, Citadel and Mixer listen (127.0.0.1:15010 by default)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from agent.netns import listen_in_netns

__all__ = ["Relay"]

log = structlog.get_logger(__name__)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class Relay:
    """``listen`` (in the pod, host:port) -> ``upstream`` (in the host namespace, host:port), one per pair."""

    def __init__(self, netns: str, routes: list[tuple[tuple[str, int], tuple[str, int]]]) -> None:
        self.netns = netns
        self.routes = routes
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        sockets = listen_in_netns(self.netns, [listen for listen, _ in self.routes])
        for sock, (_, upstream) in zip(sockets, self.routes, strict=True):
            self._servers.append(await asyncio.start_server(self._handler(upstream), sock=sock))

    def _handler(
        self, upstream: tuple[str, int]
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(*upstream)
            except OSError as exc:
                log.warning("relay_upstream_failed", upstream=f"{upstream[0]}:{upstream[1]}", error=str(exc))
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        return handle

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
