"""Validate a Telemetry spec (``telemetry.istio.io`` v1 / v1alpha1) into ``types.Telemetry`` (Istio's
``ValidateTelemetry``), each problem at its field.

- ``selector.matchLabels``: Kubernetes labels; empty is no selector (namespace-wide; mesh-wide in the root
  namespace). ``targetRef`` / ``targetRefs`` attach a Telemetry to Gateway API gateways and waypoints, which
  meshplane does not have: rejected (use ``selector``).
- ``accessLogging[]``: ``match.mode`` (CLIENT, SERVER, CLIENT_AND_SERVER), ``providers[].name``, ``disabled``,
  ``filter.expression`` (``response.code <op> <code>`` only, ``pilot.config.telemetry_expressions``).
- ``metrics[]``: ``providers[].name`` (``prometheus``: Mixer's exposition is meshplane's one metrics provider),
  ``overrides[]`` with ``match.metric`` (ALL_METRICS and Istio's four HTTP metrics; ``match.customMetric`` naming
  one of them by its standard name, e.g. ``requests_total``), ``match.mode``, ``disabled`` and ``tagOverrides``
  (REMOVE, or UPSERT with a ``value`` of the subset Mixer evaluates). TCP and gRPC-message metrics are rejected:
  Mixer produces only the HTTP request metrics. ``reportingInterval`` (the TCP metrics' interval) is rejected too.
- ``tracing[]``: ``match.mode``, ``providers[].name``, ``randomSamplingPercentage`` (0-100),
  ``disableSpanReporting``, ``customTags`` (exactly one of ``literal.value``, ``environment.name`` /
  ``defaultValue``, ``header.name`` / ``defaultValue``). ``useRequestIdForTraceSampling`` and ``enableIstioTags``
  are rejected (not supported yet).

Every Istio field not read is rejected with its reason from ``istio_api`` (the messages ``Telemetry``, ``Tracing``,
``Metrics``, ``AccessLogging`` and theirs).

Provider names are resolved against MeshConfig's ``extensionProviders`` when a proxy's config is built
(``pilot.model.telemetry``): which names exist is not known to a resource alone.
"""

from __future__ import annotations

from pilot.config.istio_api import fields_except
from pilot.config.telemetry_expressions import StatusCodeComparison, parse_log_filter, parse_tag_value
from pilot.config.types import (
    ConfigMeta,
    MetricsOverride,
    MetricTagOverride,
    StatusCodeFilter,
    Telemetry,
    TelemetryAccessLogging,
    TelemetryMetrics,
    TelemetryTracing,
    TracingCustomTag,
    WorkloadMode,
)
from pilot.config.validate_common import Fields, selector_labels
from pilot.config.validate_envoy_strings import header_name_error

__all__ = [
    "HTTP_METRICS",
    "METRICS_PROVIDER",
    "TELEMETRY_API_VERSIONS",
    "TELEMETRY_FIELDS",
    "TELEMETRY_UNSUPPORTED",
    "validate_telemetry",
]

TELEMETRY_API_VERSIONS = ("telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1")
TELEMETRY_FIELDS = ("selector", "accessLogging", "metrics", "tracing")  # targetRef(s): istio_api's reason
TELEMETRY_UNSUPPORTED: tuple[str, ...] = ()
METRICS_PROVIDER = "prometheus"  # Istio's built-in Prometheus provider: meshplane's is Mixer's /metrics
# Istio's MetricSelector.IstioMetric -> the standard (Prometheus) name without ``istio_``, for those Mixer produces
HTTP_METRICS = {
    "REQUEST_COUNT": "requests_total",
    "REQUEST_DURATION": "request_duration_milliseconds",
    "REQUEST_SIZE": "request_bytes",
    "RESPONSE_SIZE": "response_bytes",
}
_OTHER_METRICS = (
    "TCP_OPENED_CONNECTIONS", "TCP_CLOSED_CONNECTIONS", "TCP_SENT_BYTES", "TCP_RECEIVED_BYTES",
    "GRPC_REQUEST_MESSAGES", "GRPC_RESPONSE_MESSAGES",
)  # fmt: skip
_MODES = tuple(mode.value for mode in WorkloadMode)
_NOT_YET = "not supported by meshplane yet"
_ACCESS_LOGGING_FIELDS = fields_except("AccessLogging")
_METRICS_FIELDS = fields_except("Metrics", "reportingInterval")
_OVERRIDE_FIELDS = fields_except("MetricsOverrides")
_METRIC_SELECTOR_FIELDS = fields_except("MetricSelector")
_TAG_OVERRIDE_FIELDS = fields_except("MetricsOverrides.TagOverride")
_TRACING_FIELDS = fields_except("Tracing", "useRequestIdForTraceSampling", "enableIstioTags")
_CUSTOM_TAG_TYPES = fields_except("Tracing.CustomTag")
_TAG = "Tracing.CustomTag"


def validate_telemetry(spec: Fields, meta: ConfigMeta) -> Telemetry:
    """Check a Telemetry spec (opened with ``TELEMETRY_FIELDS``); problems go to ``spec.problems``."""
    logging = spec.mappings("accessLogging", known=_ACCESS_LOGGING_FIELDS, message="AccessLogging")
    return Telemetry(
        meta=meta,
        selector=selector_labels(spec),
        access_logging=tuple(_access_logging(entry) for entry in logging),
        metrics=tuple(_metrics(entry) for entry in spec.mappings("metrics", known=_METRICS_FIELDS, message="Metrics")),
        tracing=tuple(_tracing(entry) for entry in spec.mappings("tracing", known=_TRACING_FIELDS, message="Tracing")),
    )


def _providers(fields: Fields) -> tuple[str, ...]:
    names: list[str] = []
    for provider in fields.mappings("providers", known=("name",), message="ProviderRef"):
        name = provider.string("name", required=True)
        if name:
            names.append(name)
    return tuple(names)


def _mode(fields: Fields, message: str) -> WorkloadMode:
    match = fields.mapping("match", known=("mode",), message=message)
    mode = match.enum("mode", _MODES) if match is not None else None
    return WorkloadMode(mode) if mode is not None else WorkloadMode.CLIENT_AND_SERVER


def _access_logging(entry: Fields) -> TelemetryAccessLogging:
    log_filter: StatusCodeFilter | None = None
    filter_fields = entry.mapping("filter", known=("expression",), message="AccessLogging.Filter")
    if filter_fields is not None:
        expression = filter_fields.string("expression", required=True)
        if expression:
            parsed = parse_log_filter(expression)
            if isinstance(parsed, StatusCodeComparison):
                log_filter = StatusCodeFilter(expression=expression.strip(), op=parsed.op, code=parsed.code)
            else:
                filter_fields.report("expression", parsed)
    return TelemetryAccessLogging(
        mode=_mode(entry, "AccessLogging.LogSelector"),
        providers=_providers(entry),
        disabled=entry.boolean("disabled"),
        filter=log_filter,
    )


def _metrics(entry: Fields) -> TelemetryMetrics:
    providers = _providers(entry)
    for index, name in enumerate(providers):
        if name != METRICS_PROVIDER:
            entry.problems.add(
                entry.at("providers", index, "name"),
                f"metrics provider {name!r}: {_NOT_YET}: meshplane's one metrics provider is {METRICS_PROVIDER!r} "
                "(Mixer's Prometheus exposition)",
            )
    overrides = tuple(
        _override(o) for o in entry.mappings("overrides", known=_OVERRIDE_FIELDS, message="MetricsOverrides")
    )
    return TelemetryMetrics(providers=providers, overrides=overrides)


def _metric(match: Fields) -> str:
    kind = match.exclusive(("metric", "customMetric"))
    if kind == "metric":
        metric = match.enum("metric", ("ALL_METRICS", *HTTP_METRICS, *_OTHER_METRICS))
        if metric in _OTHER_METRICS:
            match.report(
                "metric",
                f"{metric}: {_NOT_YET}: Mixer produces Istio's HTTP request metrics only ({', '.join(HTTP_METRICS)})",
            )
        return metric or "ALL_METRICS"
    if kind == "customMetric":
        custom = match.string("customMetric", required=True) or ""
        standard = {name: metric for metric, name in HTTP_METRICS.items()}
        if custom and custom not in standard:
            match.report(
                "customMetric",
                f"custom metric {custom!r}: {_NOT_YET}: Mixer produces only Istio's standard metrics "
                f"({', '.join(standard)})",
            )
        return standard.get(custom, "ALL_METRICS")
    return "ALL_METRICS"


def _override(override: Fields) -> MetricsOverride:
    match = override.mapping("match", known=_METRIC_SELECTOR_FIELDS, message="MetricSelector")
    metric = _metric(match) if match is not None else "ALL_METRICS"
    mode = match.enum("mode", _MODES) if match is not None else None
    tags: list[MetricTagOverride] = []
    for tag, value, path in override.entries("tagOverrides"):
        fields = Fields.open(
            value if value is not None else {},
            path,
            override.problems,
            known=_TAG_OVERRIDE_FIELDS,
            message="MetricsOverrides.TagOverride",
        )
        if fields is None:
            continue
        if not tag:
            fields.report(None, "tag name must not be empty")
        tags.append(_tag_override(tag, fields))
    return MetricsOverride(
        metric=metric,
        mode=WorkloadMode(mode) if mode is not None else WorkloadMode.CLIENT_AND_SERVER,
        disabled=override.boolean("disabled"),
        tag_overrides=tuple(sorted(tags, key=lambda t: t.tag)),
    )


def _tag_override(tag: str, fields: Fields) -> MetricTagOverride:
    operation = fields.enum("operation", ("UPSERT", "REMOVE")) or "UPSERT"
    value = fields.string("value") or ""
    if operation == "REMOVE":
        if value:
            fields.report("value", "must not be set when operation is REMOVE")
        return MetricTagOverride(tag=tag, operation="REMOVE")
    if not value:
        fields.report("value", "must be set when operation is UPSERT")
    else:
        parsed = parse_tag_value(value)
        if isinstance(parsed, str):
            fields.report("value", parsed)
    return MetricTagOverride(tag=tag, operation="UPSERT", value=value)


def _tracing(entry: Fields) -> TelemetryTracing:
    percentage = entry.number("randomSamplingPercentage", minimum=0.0, maximum=100.0)
    tags: list[TracingCustomTag] = []
    for name, value, path in entry.entries("customTags"):
        tag = _custom_tag(name, Fields.open(value, path, entry.problems, known=_CUSTOM_TAG_TYPES, message=_TAG))
        if tag is not None:
            tags.append(tag)
    return TelemetryTracing(
        mode=_mode(entry, "Tracing.TracingSelector"),
        providers=_providers(entry),
        random_sampling_percentage=percentage,
        disable_span_reporting=entry.boolean("disableSpanReporting"),
        custom_tags=tuple(sorted(tags, key=lambda t: t.tag)),
    )


def _custom_tag(tag: str, fields: Fields | None) -> TracingCustomTag | None:
    if fields is None:
        return None
    if not tag:
        fields.report(None, "tag name must not be empty")
    kind = fields.exclusive(_CUSTOM_TAG_TYPES, required=True)
    if kind == "literal":
        literal = fields.mapping("literal", known=("value",), message="Tracing.Literal")
        value = literal.string("value") if literal is not None else None
        return TracingCustomTag(tag=tag, kind="literal", value=value or "")
    if kind in ("environment", "header"):
        message = "Tracing.Environment" if kind == "environment" else "Tracing.RequestHeader"
        source = fields.mapping(kind, known=("name", "defaultValue"), message=message)
        if source is None:
            return None
        name = source.string("name", required=True) or ""
        if kind == "header" and name:
            source.problems.add_if(source.at("name"), header_name_error(name))
        default = source.string("defaultValue") or ""
        return TracingCustomTag(tag=tag, kind=kind, name=name, default_value=default)  # type: ignore[arg-type]
    return None
