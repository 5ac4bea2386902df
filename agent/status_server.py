"""The agent's status port (Istio's pilot-agent ``:15020``), which the capture never redirects inbound (the
injector's ``-d 15090,15021,15020``), so the kubelet reaches it in plaintext whatever the pod's mutual TLS:

- ``/app-health/<container>/readyz|livez|startupz`` (and Istio's ``/app-lifecycle/...``): the app's original probe,
  performed by ``agent.app_health`` and answered with its outcome, for the probes the injector rewrote
  (``ISTIO_KUBE_APP_PROBERS``, ``agent.app_probers``); a path with no prober: 404;
- ``/healthz/ready``: 200 when Envoy's admin ``/ready`` answers 200 (Envoy initialized, its first config in force),
  else 503: the istio-proxy container's readiness probe, as Istio's.

Runs inside ``meshplane-agent sidecar`` and alone as ``meshplane-agent status`` (a pod without the container
sidecar, e.g. ``meshplane pod run``'s, with the agent in the pod's network namespace)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

import structlog

from agent.app_health import ProbeTarget, probe_app
from agent.app_probers import (
    APP_PROBERS_ENV,
    READY_PATH,
    STATUS_PORT,
    AppProber,
    AppProbersError,
    parse_app_probers,
)
from meshplane.http_server import Handler, HttpRequest, HttpResponse, HttpServer
from meshplane.names import ADMIN_PORT
from meshplane.serving import stop_on_signals

__all__ = ["READY_PATH", "StatusServer", "add_status_arguments", "probers_from_arguments", "run_status"]

log = structlog.get_logger(__name__)

_LOCAL = ProbeTarget(address="127.0.0.1", source=None)


class StatusServer:
    """Serves the status port on ``host:port`` (port 0: any free port, see ``port`` after ``start``)."""

    def __init__(
        self,
        probers: Mapping[str, AppProber],
        target: ProbeTarget,
        *,
        host: str = "0.0.0.0",
        port: int = STATUS_PORT,
        admin_port: int = ADMIN_PORT,
    ) -> None:
        self._target = target
        self._envoy_ready = AppProber(action="httpGet", port=admin_port, path="/ready", timeout_seconds=1)
        routes: dict[str, Handler] = {READY_PATH: self._ready}
        routes |= {path: self._app_health(path, prober) for path, prober in probers.items()}
        self._http = HttpServer(host, port, routes)

    @property
    def port(self) -> int:
        return self._http.port

    async def start(self) -> None:
        await self._http.start()
        log.info("status_port_listening", port=self._http.port)

    async def stop(self) -> None:
        await self._http.stop()

    async def _ready(self, _: HttpRequest) -> HttpResponse:
        answer = await probe_app(self._envoy_ready, _LOCAL, {})
        if answer.status == 200:
            return HttpResponse(body=b"")
        return HttpResponse(status=503, body=f"Envoy is not ready: {answer.problem or answer.status}\n".encode())

    def _app_health(self, path: str, prober: AppProber) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            answer = await probe_app(prober, self._target, request.headers)
            if answer.status >= 400:
                log.info("app_probe_failed", path=path, status=answer.status, problem=answer.problem)
            return HttpResponse(status=answer.status, body=answer.body, content_type="text/plain")

        return handle


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    """The status port's flags (``meshplane-agent sidecar`` and ``status``)."""
    parser.add_argument(
        "--status-port", type=int, default=STATUS_PORT, help="the status port (%(default)s; 0 turns it off)"
    )
    parser.add_argument(
        "--app-probers",
        default=os.environ.get(APP_PROBERS_ENV, ""),
        metavar="JSON",
        help=f"the app's rewritten probes (default: ${APP_PROBERS_ENV}, which the injector sets)",
    )


def probers_from_arguments(args: argparse.Namespace) -> dict[str, AppProber]:
    """The probers of ``--app-probers``; ``AppProbersError`` naming every bad entry."""
    probers = parse_app_probers(args.app_probers)
    if probers and not args.status_port:
        raise AppProbersError(f"--status-port 0: the app's probes ({', '.join(sorted(probers))}) need the port")
    return probers


async def run_status(args: argparse.Namespace) -> None:
    """``meshplane-agent status``: the status port alone, until SIGTERM."""
    stop = stop_on_signals()
    server = StatusServer(
        probers_from_arguments(args), ProbeTarget(address=args.ip), port=args.status_port, admin_port=args.admin_port
    )
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
