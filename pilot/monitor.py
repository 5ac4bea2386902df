"""Pilot's monitoring HTTP server (Istio's :15014): readiness, Prometheus metrics and debug views.

- ``GET /ready``: 200 ``ready`` once the xDS server serves its first snapshot, else 503;
- ``GET /metrics``: Prometheus text exposition of Pilot's metrics;
- ``GET /debug/configz``: the accepted (and rejected) config, as the config layer describes it;
- ``GET /debug/syncz``: every connected proxy's xDS state (sent/ACKed versions, NACKs), and ``snapshot_error``:
  why the newest snapshot built is not served (dangling EDS/RDS references; null when it is);
- ``GET /debug/config_dump?proxy=<node id>``: what that proxy was sent, as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from pilot.metrics import CONTENT_TYPE_LATEST
from pilot.xds import DiscoveryServer

__all__ = ["MonitorServer", "parse_address"]

log = structlog.get_logger(__name__)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"monitor address must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n",
        status=status,
        content_type="application/json",
    )


class MonitorServer:
    """The aiohttp app serving Pilot's /ready, /metrics and /debug/* endpoints."""

    def __init__(
        self,
        address: str,
        *,
        ready: Callable[[], bool],
        configz: Callable[[], dict[str, Any]],
        server: DiscoveryServer,
    ) -> None:
        self.host, self.port = parse_address(address)
        self._ready = ready
        self._configz = configz
        self._server = server
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/ready", self._handle_ready)
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/debug/configz", self._handle_configz)
        app.router.add_get("/debug/syncz", self._handle_syncz)
        app.router.add_get("/debug/config_dump", self._handle_config_dump)
        self._app = app

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (port 0 picks a free port; ``self.port`` is the bound one afterwards)."""
        if self._runner is not None:
            raise RuntimeError("MonitorServer already started")
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
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
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(text="not ready: no snapshot served yet\n", status=503)

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        body = self._server.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _handle_configz(self, request: web.Request) -> web.Response:
        return _json(self._configz())

    async def _handle_syncz(self, request: web.Request) -> web.Response:
        return _json(self._server.syncz())

    async def _handle_config_dump(self, request: web.Request) -> web.Response:
        node_id = request.query.get("proxy", "")
        if not node_id:
            return _json({"error": "query parameter 'proxy' (an Envoy node id) is required"}, status=400)
        dump = self._server.config_dump(node_id)
        if dump is None:
            connected = [p["id"] for p in self._server.syncz()["proxies"]]
            return _json({"error": f"proxy {node_id!r} is not connected", "connected": connected}, status=404)
        return _json(dump)
