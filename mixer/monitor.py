"""Mixer's monitoring HTTP server (``--monitor-address``, default ``127.0.0.1:42422``, Istio Mixer's Prometheus
port): readiness, metrics, the service graph and the config Mixer is enforcing.

- ``GET /ready``: 200 ``ready`` once the gRPC server (ext_authz and access logs) serves, else 503;
- ``GET /metrics``: Prometheus text: Istio's request metrics (``istio_requests_total``, ...) and Mixer's own;
- ``GET /graph``: the live service graph as JSON (``mixer.graph``), over the sliding window;
- ``GET /debug/configz``: the config store as Mixer reads it (same shape as Pilot's /debug/configz).
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
    ready_response,
)

__all__ = ["MixerMonitor"]


class MixerMonitor(HttpEndpoints):
    def __init__(
        self,
        address: str,
        *,
        ready: Callable[[], bool],
        exposition: Callable[[], bytes],
        graph: Callable[[], dict[str, Any]],
        configz: Callable[[], dict[str, Any]],
    ) -> None:
        self._ready = ready
        self._exposition = exposition
        self._graph = graph
        self._configz = configz
        routes = {
            "/ready": self._handle_ready,
            "/metrics": self._handle_metrics,
            "/graph": self._handle_graph,
            "/debug/configz": self._handle_configz,
        }
        super().__init__(address, routes, name="mixer")

    async def _handle_ready(self, request: HttpRequest) -> HttpResponse:
        return ready_response(self._ready(), "the gRPC server is not serving")

    async def _handle_metrics(self, request: HttpRequest) -> HttpResponse:
        return metrics_response(self._exposition())

    async def _handle_graph(self, request: HttpRequest) -> HttpResponse:
        return json_response(self._graph())

    async def _handle_configz(self, request: HttpRequest) -> HttpResponse:
        return json_response(self._configz())
