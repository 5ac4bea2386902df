"""Citadel's monitoring HTTP server (``--monitor-address``, Istio's 15014 sibling): readiness, metrics, debug.

- ``GET /ready``: 200 ``ready`` once the TLS gRPC server serves, else 503;
- ``GET /metrics``: Prometheus text exposition of Citadel's metrics (``citadel/metrics.py``);
- ``GET /debug/sdsz``: the CA in use (signer root, trust bundle, rotation phase, serving certificate) and every
  open SDS stream as JSON: identity, serial and expiry of the certificate sent, ACK state.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from citadel.metrics import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from citadel.server import CitadelServer

__all__ = ["CitadelMonitor", "parse_address"]

log = structlog.get_logger(__name__)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) -> (host, port); ValueError naming the address otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(payload, indent=2, default=str) + "\n", status=status, content_type="application/json"
    )


class CitadelMonitor:
    """The aiohttp app serving Citadel's /ready, /metrics and /debug/sdsz."""

    def __init__(self, address: str, *, server: CitadelServer) -> None:
        self.host, self.port = parse_address(address)
        self._server = server
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/ready", self._handle_ready)
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/debug/sdsz", self._handle_sdsz)
        self._app = app

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (port 0 picks a free port; ``self.port`` is the bound one afterwards)."""
        if self._runner is not None:
            raise RuntimeError("CitadelMonitor already started")
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
        log.info("monitor listening", url=self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle_ready(self, request: web.Request) -> web.Response:
        if self._server.ready:
            return web.Response(text="ready\n")
        return web.Response(text="not ready: the SDS/CSR server is not serving\n", status=503)

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._server.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _handle_sdsz(self, request: web.Request) -> web.Response:
        return _json(self._server.sdsz())
