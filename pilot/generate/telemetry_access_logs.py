"""Telemetry ``accessLogging`` -> Envoy file access loggers on a proxy's HTTP connection managers (Istio
``buildAccessLogFromTelemetry`` / ``fileAccessLogFromTelemetry``).

These are the access logs a user reads (``/dev/stdout``: the proxy's output; or a file): for each provider
``pilot.model.telemetry.access_logs`` leaves enabled on the HCM's side (CLIENT: the outbound HCMs and gateways,
SERVER: the inbound ones), an ``envoy.access_loggers.file`` to the provider's ``path`` with its format (Istio's
default text format, ``logFormat.text`` or ``logFormat.labels`` as Envoy's ``json_format``), and the entry's
``filter`` as Envoy's CEL access-log filter (``envoy.access_loggers.extension_filters.cel``, as Istio configures it;
validation accepted only ``response.code <op> <code>``). No Telemetry access logging: MeshConfig
``accessLogFile`` (with ``accessLogFormat``, else the default format) on every HCM, as in Istio.

They are separate from the gRPC access-log stream to Mixer (``access_logs.py``), which is meshplane's telemetry
transport (Istio's metrics, the service graph): Telemetry never turns that stream off, as Istio's Prometheus
metrics do not depend on its access logs either. Metrics are turned off by Telemetry ``metrics`` overrides, which
Mixer applies.
"""

from __future__ import annotations

import json

from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog, AccessLogFilter, ExtensionFilter
from envoy.config.core.v3.base_pb2 import DataSource
from envoy.config.core.v3.substitution_format_string_pb2 import SubstitutionFormatString
from envoy.extensions.access_loggers.file.v3.file_pb2 import FileAccessLog
from envoy.extensions.access_loggers.filters.cel.v3.cel_pb2 import ExpressionFilter
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.struct_pb2 import Struct

from pilot.config.mesh_telemetry_providers import ISTIO_TEXT_LOG_FORMAT, FileAccessLogProvider
from pilot.config.types import StatusCodeFilter, WorkloadMode
from pilot.model.gateways import gateway_labels, is_router
from pilot.model.telemetry import access_logs
from pilot.model.types import MeshSnapshot, Proxy

__all__ = [
    "CEL_FILTER",
    "FILE_ACCESS_LOGGER",
    "build_file_access_log",
    "build_telemetry_access_logs",
    "proxy_telemetry_labels",
]

FILE_ACCESS_LOGGER = "envoy.access_loggers.file"
CEL_FILTER = "envoy.access_loggers.extension_filters.cel"


def typed_config(message: object) -> AnyProto:
    """``message`` packed in an Any (protobufs are untyped to mypy here)."""
    packed = AnyProto()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def proxy_telemetry_labels(proxy: Proxy) -> dict[str, str]:
    """The labels Telemetry selectors match: the workload's (a gateway's node LABELS when it has no workload)."""
    return dict(gateway_labels(proxy) if is_router(proxy) else proxy.labels)


def build_file_access_log(
    path: str,
    *,
    text_format: str = ISTIO_TEXT_LOG_FORMAT,
    json_labels: str = "",
    log_filter: StatusCodeFilter | None = None,
) -> AccessLog:
    """One file logger (see the module doc)."""
    if json_labels:
        labels = Struct()
        labels.update(json.loads(json_labels))
        log_format = SubstitutionFormatString(json_format=labels)
    else:
        log_format = SubstitutionFormatString(text_format_source=DataSource(inline_string=text_format))
    logger = AccessLog(
        name=FILE_ACCESS_LOGGER, typed_config=typed_config(FileAccessLog(path=path, log_format=log_format))
    )
    if log_filter is not None:
        cel = ExtensionFilter(
            name=CEL_FILTER, typed_config=typed_config(ExpressionFilter(expression=log_filter.expression))
        )
        logger.filter.CopyFrom(AccessLogFilter(extension_filter=cel))
    return logger


def _provider_log(provider: FileAccessLogProvider, log_filter: StatusCodeFilter | None) -> AccessLog:
    return build_file_access_log(
        provider.path, text_format=provider.text_format, json_labels=provider.json_labels, log_filter=log_filter
    )


def build_telemetry_access_logs(proxy: Proxy, snapshot: MeshSnapshot, side: WorkloadMode) -> tuple[AccessLog, ...]:
    """The file loggers of one side of ``proxy`` (see the module doc)."""
    choices = access_logs(snapshot, proxy.namespace, proxy_telemetry_labels(proxy), side)
    if choices is None:
        mesh = snapshot.mesh
        if not mesh.access_log_file:
            return ()
        text = mesh.access_log_format or ISTIO_TEXT_LOG_FORMAT
        return (build_file_access_log(mesh.access_log_file, text_format=text if text.endswith("\n") else text + "\n"),)
    return tuple(_provider_log(choice.provider, choice.filter) for choice in choices)
