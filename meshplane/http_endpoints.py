"""The monitoring address of every component (Pilot, Citadel, Mixer): its routes, served over ``http_server``.

Each component lists its routes (``/ready``, ``/metrics``, ``/debug/...``); this module listens, answers and stops.
Kept free of Pilot's xDS imports so Citadel and Mixer can use it without loading Pilot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from meshplane.http_server import Handler, HttpRequest, HttpResponse, HttpServer

__all__ = [
    "Handler",
    "HttpEndpoints",
    "HttpRequest",
    "HttpResponse",
    "json_response",
    "metrics_response",
    "parse_address",
    "ready_response",
]

log = structlog.get_logger(__name__)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) -> (host, port); ValueError naming the address otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"monitor address must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


def json_response(payload: Any, status: int = 200) -> HttpResponse:
    body = json.dumps(payload, indent=2, default=str) + "\n"
    return HttpResponse(body=body.encode("utf-8"), status=status, content_type="application/json; charset=utf-8")


def metrics_response(exposition: bytes) -> HttpResponse:
    """Prometheus text exposition, with Prometheus's content type."""
    return HttpResponse(body=exposition, content_type=CONTENT_TYPE_LATEST)


def ready_response(ready: bool, not_ready_reason: str) -> HttpResponse:
    if ready:
        return HttpResponse(body=b"ready\n")
    return HttpResponse(body=f"not ready: {not_ready_reason}\n".encode(), status=503)


class HttpEndpoints:
    """GET routes on ``address``; port 0 picks a free port (``port`` is the bound one after ``start``)."""

    def __init__(self, address: str, routes: Mapping[str, Handler], *, name: str) -> None:
        self.host, self.port = parse_address(address)
        self.name = name
        self._routes = dict(routes)
        self._http: HttpServer | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self._http is not None:
            raise RuntimeError(f"{self.name} already started")
        server = HttpServer(self.host, self.port, self._routes)
        await server.start()
        self._http, self.port = server, server.port
        log.info("monitor listening", component=self.name, url=self.url)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.stop()
            self._http = None
