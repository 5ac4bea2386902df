"""The small HTTP server behind every component's monitoring address (Pilot, Citadel, Mixer).

Each component lists its routes (``/ready``, ``/metrics``, ``/debug/...``); this module listens, answers and stops.
Kept free of Pilot's xDS imports so Citadel and Mixer can use it without loading Pilot.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["Handler", "HttpEndpoints", "json_response", "metrics_response", "parse_address", "ready_response"]

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) -> (host, port); ValueError naming the address otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"monitor address must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(payload, indent=2, default=str) + "\n", status=status, content_type="application/json"
    )


def metrics_response(exposition: bytes) -> web.Response:
    """Prometheus text exposition, with Prometheus's content type."""
    return web.Response(body=exposition, headers={"Content-Type": CONTENT_TYPE_LATEST})


def ready_response(ready: bool, not_ready_reason: str) -> web.Response:
    if ready:
        return web.Response(text="ready\n")
    return web.Response(text=f"not ready: {not_ready_reason}\n", status=503)


class HttpEndpoints:
    """GET routes on ``address``; port 0 picks a free port (``port`` is the bound one after ``start``)."""

    def __init__(self, address: str, routes: Mapping[str, Handler], *, name: str) -> None:
        self.host, self.port = parse_address(address)
        self.name = name
        self._runner: web.AppRunner | None = None
        self._app = web.Application()
        for path, handler in routes.items():
            self._app.router.add_get(path, handler)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{self.name} already started")
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        for bound in runner.addresses:
            if isinstance(bound, tuple) and len(bound) >= 2:
                self.port = int(bound[1])
                break
        log.info("monitor listening", component=self.name, url=self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
