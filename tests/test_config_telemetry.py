"""Telemetry (telemetry.istio.io): every section lands in the dataclasses (Istio's docs' resources and every field
meshplane reads), and each unsupported field or expression is rejected at its line and path with the reason."""

from __future__ import annotations

import pytest

from pilot.config.telemetry_expressions import TagValue, parse_log_filter, parse_tag_value
from pilot.config.types import (
    MetricsOverride,
    MetricTagOverride,
    StatusCodeFilter,
    Telemetry,
    TelemetryAccessLogging,
    TelemetryMetrics,
    TelemetryTracing,
    TracingCustomTag,
    WorkloadMode,
    frozen_labels,
)
from tests.conftest import ApiGroupDocs, assert_rejected_with

KIND = "Telemetry"


@pytest.fixture(params=["telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"])
def docs(request: pytest.FixtureRequest) -> ApiGroupDocs:
    return ApiGroupDocs(request.param)


def accepted(docs: ApiGroupDocs, body: str) -> Telemetry:
    resource = docs.accepted(KIND, body)
    assert isinstance(resource, Telemetry)
    return resource


def test_every_section_lands_in_the_dataclass(docs: ApiGroupDocs) -> None:
    body = (
        "selector:\n  matchLabels:\n    app: details\n"
        "accessLogging:\n- providers:\n  - name: envoy\n  match:\n    mode: SERVER\n  disabled: true\n"
        "  filter:\n    expression: response.code >= 400\n"
        "metrics:\n- providers:\n  - name: prometheus\n  overrides:\n  - match:\n      metric: REQUEST_COUNT\n"
        "      mode: CLIENT\n    disabled: false\n    tagOverrides:\n"
        "      request_protocol:\n        operation: REMOVE\n"
        "      destination_x:\n        value: upstream_peer.labels['app'].value\n"
        "  - match:\n      customMetric: request_bytes\n    disabled: true\n"
        "tracing:\n- providers:\n  - name: otel\n  match:\n    mode: CLIENT_AND_SERVER\n"
        "  randomSamplingPercentage: 100.00\n  disableSpanReporting: false\n  customTags:\n"
        "    provider:\n      literal:\n        value: zipkin\n"
        "    cluster_id:\n      environment:\n        name: ISTIO_META_CLUSTER_ID\n        defaultValue: Kubernetes\n"
        "    my_tag_header:\n      header:\n        name: x-user\n        defaultValue: anonymous\n"
    )
    telemetry = accepted(docs, body)
    assert telemetry == Telemetry(
        meta=telemetry.meta,
        selector=frozen_labels({"app": "details"}),
        access_logging=(
            TelemetryAccessLogging(
                mode=WorkloadMode.SERVER,
                providers=("envoy",),
                disabled=True,
                filter=StatusCodeFilter(expression="response.code >= 400", op=">=", code=400),
            ),
        ),
        metrics=(
            TelemetryMetrics(
                providers=("prometheus",),
                overrides=(
                    MetricsOverride(
                        metric="REQUEST_COUNT",
                        mode=WorkloadMode.CLIENT,
                        disabled=False,
                        tag_overrides=(
                            MetricTagOverride(tag="destination_x", value="upstream_peer.labels['app'].value"),
                            MetricTagOverride(tag="request_protocol", operation="REMOVE"),
                        ),
                    ),
                    MetricsOverride(metric="REQUEST_SIZE", disabled=True),
                ),
            ),
        ),
        tracing=(
            TelemetryTracing(
                providers=("otel",),
                random_sampling_percentage=100.0,
                disable_span_reporting=False,
                custom_tags=(
                    TracingCustomTag(
                        tag="cluster_id", kind="environment", name="ISTIO_META_CLUSTER_ID", default_value="Kubernetes"
                    ),
                    TracingCustomTag(tag="my_tag_header", kind="header", name="x-user", default_value="anonymous"),
                    TracingCustomTag(tag="provider", kind="literal", value="zipkin"),
                ),
            ),
        ),
    )


def test_an_empty_telemetry_is_namespace_wide_and_configures_nothing(docs: ApiGroupDocs) -> None:
    telemetry = accepted(docs, "{}")
    assert telemetry == Telemetry(meta=telemetry.meta)


REJECTIONS = [
    (
        "target-ref",
        "targetRef:\n  kind: Gateway\n  name: g",
        [(1, "spec.targetRef", "not supported by meshplane yet: it attaches a policy to Gateway API")],
    ),
    (
        "target-refs",
        "targetRefs:\n- kind: Service\n  name: w",
        [(1, "spec.targetRefs", "not supported by meshplane yet")],
    ),
    (
        "log-filter-cel-beyond-the-subset",
        "accessLogging:\n- filter:\n    expression: response.code >= 400 || request.path == '/x'",
        [(3, "spec.accessLogging[0].filter.expression", "not supported by meshplane yet (supported: response.code")],
    ),
    (
        "log-filter-not-a-status",
        "accessLogging:\n- filter:\n    expression: response.code >= 4000",
        [(3, "spec.accessLogging[0].filter.expression", "not supported by meshplane yet")],
    ),
    (
        "log-provider-without-name",
        "accessLogging:\n- providers:\n  - {}",
        [(3, "spec.accessLogging[0].providers[0].name", "required field is missing")],
    ),
    ("log-mode", "accessLogging:\n- match:\n    mode: BOTH", [(3, "spec.accessLogging[0].match.mode", "BOTH")]),
    (
        "metrics-provider-not-prometheus",
        "metrics:\n- providers:\n  - name: stackdriver",
        [(3, "spec.metrics[0].providers[0].name", "not supported by meshplane yet: meshplane's one metrics provider")],
    ),
    (
        "tcp-metric",
        "metrics:\n- overrides:\n  - match:\n      metric: TCP_SENT_BYTES\n    disabled: true",
        [(4, "spec.metrics[0].overrides[0].match.metric", "Mixer produces Istio's HTTP request metrics only")],
    ),
    (
        "custom-metric",
        "metrics:\n- overrides:\n  - match:\n      customMetric: my_metric",
        [(4, "spec.metrics[0].overrides[0].match.customMetric", "custom metric 'my_metric': not supported")],
    ),
    (
        "metric-and-custom",
        "metrics:\n- overrides:\n  - match:\n      metric: REQUEST_COUNT\n      customMetric: requests_total",
        [(3, "spec.metrics[0].overrides[0].match", "only one of metric, customMetric may be set")],
    ),
    (
        "reporting-interval",
        "metrics:\n- reportingInterval: 10s",
        [(2, "spec.metrics[0].reportingInterval", "not supported by meshplane yet")],
    ),
    (
        "tag-value-cel-beyond-the-subset",
        "metrics:\n- overrides:\n  - tagOverrides:\n      x:\n        value: request.headers['x-a']",
        [(5, "spec.metrics[0].overrides[0].tagOverrides.x.value", "not supported by meshplane yet (supported: a")],
    ),
    (
        "upsert-without-value",
        "metrics:\n- overrides:\n  - tagOverrides:\n      x:\n        operation: UPSERT",
        [(4, "spec.metrics[0].overrides[0].tagOverrides.x.value", "must be set when operation is UPSERT")],
    ),
    (
        "remove-with-value",
        "metrics:\n- overrides:\n  - tagOverrides:\n      x:\n        operation: REMOVE\n        value: \"'a'\"",
        [(6, "spec.metrics[0].overrides[0].tagOverrides.x.value", "must not be set when operation is REMOVE")],
    ),
    (
        "sampling-over-100",
        "tracing:\n- randomSamplingPercentage: 101",
        [(2, "spec.tracing[0].randomSamplingPercentage", "must be between 0 and 100")],
    ),
    (
        "custom-tag-without-type",
        "tracing:\n- customTags:\n    t: {}",
        [(3, "spec.tracing[0].customTags.t", "one of literal, environment, header is required")],
    ),
    (
        "custom-tag-bad-header",
        "tracing:\n- customTags:\n    t:\n      header:\n        name: 'a b'",
        [(5, "spec.tracing[0].customTags.t.header.name", "")],
    ),
    (
        "request-id-sampling",
        "tracing:\n- useRequestIdForTraceSampling: false",
        [(2, "spec.tracing[0].useRequestIdForTraceSampling", "not supported by meshplane yet")],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS])
def test_rejected_with_the_reason(docs: ApiGroupDocs, body: str, expected: list[tuple[int, str, str]]) -> None:
    assert_rejected_with(docs, KIND, body, expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'v1'", TagValue(kind="literal", text="v1")),
        ('"v1"', TagValue(kind="literal", text="v1")),
        ("request.host", TagValue(kind="attribute", name="request.host")),
        ("string(destination.port)", TagValue(kind="attribute", name="destination.port")),
        ("upstream_peer.labels['app'].value", TagValue(kind="peer_label", name="app", peer="upstream")),
        ('downstream_peer.labels["version"].value', TagValue(kind="peer_label", name="version", peer="downstream")),
    ],
    ids=["single-quoted", "double-quoted", "attribute", "string-call", "upstream-peer", "downstream-peer"],
)
def test_tag_values_meshplane_evaluates(source: str, expected: TagValue) -> None:
    assert parse_tag_value(source) == expected


@pytest.mark.parametrize(
    "source",
    ["has(request.host) ? request.host : 'unknown'", "request.headers['x'] | 'none'", "request.pth", "'a' + 'b'"],
    ids=["conditional", "pipe", "typo", "concatenation"],
)
def test_other_tag_values_are_rejected(source: str) -> None:
    assert isinstance(parse_tag_value(source), str)


@pytest.mark.parametrize(
    ("source", "op", "code"),
    [("response.code >= 400", ">=", 400), ("response.code<500", "<", 500), (" response.code == 200 ", "==", 200)],
)
def test_log_filters_meshplane_translates(source: str, op: str, code: int) -> None:
    parsed = parse_log_filter(source)
    assert not isinstance(parsed, str)
    assert (parsed.op, parsed.code) == (op, code)
