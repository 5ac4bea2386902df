"""MeshConfig ``extensionProviders`` the Telemetry API uses, and Istio's built-in ones.

Types read (added to ``mesh_extension_providers.PROVIDER_READERS``):

- ``envoyFileAccessLog``: ``path`` (required; ``/dev/stdout`` is the proxy's standard output) and ``logFormat``:
  ``text`` (an Envoy format string; a newline is appended when it has none, as Istio does) or ``labels`` (a JSON
  object of Envoy format strings: Envoy's ``json_format``). Without ``logFormat``: Istio's default text format
  (:data:`ISTIO_TEXT_LOG_FORMAT`). ``omitEmptyValues`` is not supported yet.
- ``opentelemetry`` (tracing): ``service`` (``<host>`` or ``<namespace>/<host>``), ``port``, ``maxTagLength``;
  spans go over OTLP/gRPC to the collector's outbound cluster (``http``, ``resourceDetectors``,
  ``dynatraceSampler`` are not supported yet).
- ``zipkin`` (tracing): ``service``, ``port``, ``maxTagLength``, ``enable64bitTraceId``, ``path`` (default
  ``/api/v2/spans``); spans go as Zipkin v2 JSON over HTTP (``traceContextOption``, ``timeout``, ``headers`` are
  not supported yet).
- ``prometheus``: no fields; meshplane's one metrics provider is Mixer's Prometheus exposition, known as
  ``prometheus`` (Telemetry names it so; another name for it is rejected).

Istio's default MeshConfig has the providers ``prometheus`` (Prometheus) and ``envoy`` (a file access log to
``/dev/stdout``), which exist whatever the file lists (Istio adds its defaults to the user's list unless a name is
taken): :data:`BUILTIN_PROVIDERS`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from pilot.config.mesh_extension_providers import (
    PROVIDER_READERS,
    PROVIDER_UNSUPPORTED,
    ExtensionProvider,
    provider_port,
    provider_service,
)
from pilot.config.validate_common import Fields

__all__ = [
    "BUILTIN_PROVIDERS",
    "DEFAULT_MAX_TAG_LENGTH",
    "ENVOY_FILE_ACCESS_LOG",
    "ISTIO_TEXT_LOG_FORMAT",
    "OPENTELEMETRY",
    "PROMETHEUS",
    "TELEMETRY_PROVIDER_READERS",
    "ZIPKIN",
    "FileAccessLogProvider",
    "OpenTelemetryTracingProvider",
    "PrometheusProvider",
    "ZipkinTracingProvider",
]

ENVOY_FILE_ACCESS_LOG = "envoyFileAccessLog"
OPENTELEMETRY = "opentelemetry"
ZIPKIN = "zipkin"
PROMETHEUS = "prometheus"
DEFAULT_MAX_TAG_LENGTH = 256  # Istio's default maximum length of the request path in the http.url span tag
DEFAULT_ZIPKIN_PATH = "/api/v2/spans"
# Istio's default access log format (https://istio.io/latest/docs/tasks/observability/logs/access-log/)
ISTIO_TEXT_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    "%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" '
    '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% '
    "%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileAccessLogProvider(ExtensionProvider):
    kind: ClassVar[str] = ENVOY_FILE_ACCESS_LOG
    path: str
    text_format: str = ISTIO_TEXT_LOG_FORMAT  # used unless json_labels is set
    json_labels: str = ""  # logFormat.labels as canonical JSON (hashable): Envoy's json_format


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenTelemetryTracingProvider(ExtensionProvider):
    kind: ClassVar[str] = OPENTELEMETRY
    service: str  # "<host>" or "<namespace>/<host>"
    port: int
    max_tag_length: int = DEFAULT_MAX_TAG_LENGTH


@dataclass(frozen=True, slots=True, kw_only=True)
class ZipkinTracingProvider(ExtensionProvider):
    kind: ClassVar[str] = ZIPKIN
    service: str
    port: int
    max_tag_length: int = DEFAULT_MAX_TAG_LENGTH
    trace_id_128bit: bool = True  # not enable64bitTraceId
    path: str = DEFAULT_ZIPKIN_PATH


@dataclass(frozen=True, slots=True, kw_only=True)
class PrometheusProvider(ExtensionProvider):
    kind: ClassVar[str] = PROMETHEUS


BUILTIN_PROVIDERS: tuple[ExtensionProvider, ...] = (
    PrometheusProvider(name="prometheus"),
    FileAccessLogProvider(name="envoy", path="/dev/stdout"),
)

_FILE_FIELDS = ("path", "logFormat")
_LOG_FORMAT_FIELDS = ("text", "labels")
_OTEL_FIELDS = ("service", "port", "maxTagLength")
_OTEL_UNSUPPORTED = ("http", "resourceDetectors", "dynatraceSampler", "timeout", "headers")
_ZIPKIN_FIELDS = ("service", "port", "maxTagLength", "enable64bitTraceId", "path")
_ZIPKIN_UNSUPPORTED = ("traceContextOption", "timeout", "headers")


def _read_file_access_log(name: str, fields: Fields) -> ExtensionProvider | None:
    path = fields.string("path", required=True)
    log_format = fields.mapping("logFormat", known=_LOG_FORMAT_FIELDS, unsupported=("omitEmptyValues",))
    text, labels = ISTIO_TEXT_LOG_FORMAT, ""
    if log_format is not None:
        kind = log_format.exclusive(_LOG_FORMAT_FIELDS)
        if kind == "text":
            text = log_format.string("text", required=True) or ISTIO_TEXT_LOG_FORMAT
            text = text if text.endswith("\n") else text + "\n"
        elif kind == "labels":
            value = log_format.node.get("labels")
            if not isinstance(value, dict) or not value:
                log_format.report("labels", "expected a non-empty mapping of log field names to format strings")
            else:
                labels = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if not path:
        return None
    return FileAccessLogProvider(name=name, path=path, text_format=text, json_labels=labels)


def _tracer_target(fields: Fields) -> tuple[str, int, int] | None:
    service = provider_service(fields)
    port = provider_port(fields)
    max_tag = fields.integer("maxTagLength", minimum=1, maximum=2**31 - 1)
    if service is None or port is None:
        return None
    return service, port, max_tag or DEFAULT_MAX_TAG_LENGTH


def _read_opentelemetry(name: str, fields: Fields) -> ExtensionProvider | None:
    target = _tracer_target(fields)
    if target is None:
        return None
    service, port, max_tag = target
    return OpenTelemetryTracingProvider(name=name, service=service, port=port, max_tag_length=max_tag)


def _read_zipkin(name: str, fields: Fields) -> ExtensionProvider | None:
    target = _tracer_target(fields)
    path = fields.string("path") or DEFAULT_ZIPKIN_PATH
    if not path.startswith("/"):
        fields.report("path", f"path must begin with `/`, found: {path!r}")
    short_ids = fields.boolean("enable64bitTraceId") or False
    if target is None:
        return None
    service, port, max_tag = target
    return ZipkinTracingProvider(
        name=name, service=service, port=port, max_tag_length=max_tag, trace_id_128bit=not short_ids, path=path
    )


def _read_prometheus(name: str, fields: Fields) -> ExtensionProvider | None:
    if name != "prometheus":
        fields.report(
            None,
            f"prometheus provider {name!r}: not supported by meshplane yet: meshplane's Prometheus metrics are "
            "Mixer's exposition, the provider named 'prometheus'",
        )
        return None
    return PrometheusProvider(name=name)


# type field -> (known fields, unsupported fields, reader)
TELEMETRY_PROVIDER_READERS = {
    ENVOY_FILE_ACCESS_LOG: (_FILE_FIELDS, (), _read_file_access_log),
    OPENTELEMETRY: (_OTEL_FIELDS, _OTEL_UNSUPPORTED, _read_opentelemetry),
    ZIPKIN: (_ZIPKIN_FIELDS, _ZIPKIN_UNSUPPORTED, _read_zipkin),
    PROMETHEUS: ((), (), _read_prometheus),
}
for _kind, (_known, _unsupported, _reader) in TELEMETRY_PROVIDER_READERS.items():
    PROVIDER_READERS[_kind] = (_known, _reader)
    PROVIDER_UNSUPPORTED[_kind] = _unsupported
