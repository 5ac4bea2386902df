"""What Telemetry adds to one side's HTTP connection managers of a proxy: its file access loggers
(``telemetry_access_logs``) and its tracing (``tracing``), computed once per proxy and side."""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)

from pilot.config.types import WorkloadMode
from pilot.generate.telemetry_access_logs import build_telemetry_access_logs
from pilot.generate.tracing import build_tracing
from pilot.model.types import MeshSnapshot, Proxy

__all__ = ["NO_HCM_TELEMETRY", "HcmTelemetry", "build_hcm_telemetry"]


@dataclass(frozen=True, slots=True)
class HcmTelemetry:
    access_logs: tuple[AccessLog, ...] = ()
    tracing: HttpConnectionManager.Tracing | None = None


NO_HCM_TELEMETRY = HcmTelemetry()


def build_hcm_telemetry(proxy: Proxy, snapshot: MeshSnapshot, side: WorkloadMode) -> HcmTelemetry:
    """The loggers and tracing of ``proxy``'s ``side`` (CLIENT: outbound and gateway HCMs, SERVER: inbound)."""
    return HcmTelemetry(
        access_logs=build_telemetry_access_logs(proxy, snapshot, side), tracing=build_tracing(proxy, snapshot, side)
    )
