"""Pilot's monitoring HTTP server (Istio's :15014): readiness, Prometheus metrics and debug views.

- ``GET /ready``: 200 ``ready`` once the xDS server serves its first snapshot, else 503;
- ``GET /metrics``: Prometheus text exposition of Pilot's metrics;
- ``GET /debug/configz``: the accepted (and rejected) config, as the config layer describes it;
- ``GET /debug/mesh``: the mesh config in force (Istio's field names), its file, and why the newest edit of the
  file is not in force (``rejected``: file:line, field path, message; empty when it is);
- ``GET /debug/syncz``: every connected proxy's xDS state (sent/ACKed versions, NACKs), and ``snapshot_error``:
  why the newest snapshot built is not served (dangling EDS/RDS references; null when it is);
- ``GET /debug/config_dump?proxy=<node id>``: what that proxy was sent, as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshplane.http_endpoints import (
    HttpEndpoints,
    HttpRequest,
    HttpResponse,
    json_response,
    metrics_response,
    parse_address,
    ready_response,
)
from pilot.xds import DiscoveryServer

__all__ = ["MonitorServer", "parse_address"]


class MonitorServer(HttpEndpoints):
    """Pilot's /ready, /metrics and /debug/* endpoints."""

    def __init__(
        self,
        address: str,
        *,
        ready: Callable[[], bool],
        configz: Callable[[], dict[str, Any]],
        server: DiscoveryServer,
        meshz: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._ready = ready
        self._configz = configz
        self._meshz = meshz or (lambda: {"file": None, "in_force": None})
        self._server = server
        routes = {
            "/ready": self._handle_ready,
            "/metrics": self._handle_metrics,
            "/debug/configz": self._handle_configz,
            "/debug/mesh": self._handle_mesh,
            "/debug/syncz": self._handle_syncz,
            "/debug/config_dump": self._handle_config_dump,
        }
        super().__init__(address, routes, name="pilot")

    async def _handle_ready(self, request: HttpRequest) -> HttpResponse:
        return ready_response(self._ready(), "no snapshot served yet")

    async def _handle_metrics(self, request: HttpRequest) -> HttpResponse:
        return metrics_response(self._server.metrics.exposition())

    async def _handle_configz(self, request: HttpRequest) -> HttpResponse:
        return json_response(self._configz())

    async def _handle_mesh(self, request: HttpRequest) -> HttpResponse:
        return json_response(self._meshz())

    async def _handle_syncz(self, request: HttpRequest) -> HttpResponse:
        return json_response(self._server.syncz())

    async def _handle_config_dump(self, request: HttpRequest) -> HttpResponse:
        node_id = request.query.get("proxy", "")
        if not node_id:
            return json_response({"error": "query parameter 'proxy' (an Envoy node id) is required"}, status=400)
        dump = self._server.config_dump(node_id)
        if dump is None:
            connected = [p["id"] for p in self._server.syncz()["proxies"]]
            return json_response({"error": f"proxy {node_id!r} is not connected", "connected": connected}, status=404)
        return json_response(dump)
