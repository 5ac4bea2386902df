"""Citadel's monitoring HTTP server (``--monitor-address``, Istio's 15014 sibling): readiness, metrics, debug.

- ``GET /ready``: 200 ``ready`` once the TLS gRPC server serves, else 503;
- ``GET /metrics``: Prometheus text exposition of Citadel's metrics (``citadel/metrics.py``);
- ``GET /debug/sdsz``: the CA in use (signer root, trust bundle, rotation phase, serving certificate) and every
  open SDS stream as JSON: identity, serial and expiry of the certificate sent, ACK state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshplane.http_endpoints import (
    HttpEndpoints,
    HttpRequest,
    HttpResponse,
    json_response,
    metrics_response,
    parse_address,
    ready_response,
)

if TYPE_CHECKING:
    from citadel.server import CitadelServer

__all__ = ["CitadelMonitor", "parse_address"]


class CitadelMonitor(HttpEndpoints):
    """Citadel's /ready, /metrics and /debug/sdsz endpoints."""

    def __init__(self, address: str, *, server: CitadelServer) -> None:
        self._server = server
        routes = {"/ready": self._handle_ready, "/metrics": self._handle_metrics, "/debug/sdsz": self._handle_sdsz}
        super().__init__(address, routes, name="citadel")

    async def _handle_ready(self, request: HttpRequest) -> HttpResponse:
        return ready_response(self._server.ready, "the SDS/CSR server is not serving")

    async def _handle_metrics(self, request: HttpRequest) -> HttpResponse:
        return metrics_response(self._server.metrics.exposition())

    async def _handle_sdsz(self, request: HttpRequest) -> HttpResponse:
        return json_response(self._server.sdsz())
