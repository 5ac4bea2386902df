"""Telemetry metrics overrides as Mixer's /metrics shows them: Istio's docs' REMOVE and peer-label UPSERT, request
attributes and literals, a metric disabled per side, ALL_METRICS off, and the plan compiled once per workload and
snapshot (none at all without overrides)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from types import MappingProxyType

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mixer.log_entries import LABEL_NAMES
from mixer.metric_overrides import DEFAULT_PLAN, MetricOverrides, compile_plan
from mixer.metrics import MixerMetrics
from mixer.registry import WorkloadInfo
from mixer.telemetry import IstioTelemetry
from pilot.config.parse import parse_config_text
from pilot.model import build_snapshot
from pilot.model.telemetry import metrics_plan
from pilot.model.types import MeshSnapshot
from tests.mixer_builders import REVIEWS_REPORT, SOURCE_REPORT

RECORD = replace(
    REVIEWS_REPORT,
    request_method="GET",
    request_host="reviews:9080",
    destination_port="9080",
    source_labels=MappingProxyType({"app": "productpage", "version": "v1"}),
    destination_labels=MappingProxyType({"app": "reviews", "version": "v1"}),
)
CLIENT_RECORD = replace(SOURCE_REPORT, source_labels=RECORD.source_labels, destination_labels=RECORD.destination_labels)
PRODUCTPAGE = WorkloadInfo(name="productpage-v1", namespace="default", address="10.0.0.1", labels=RECORD.source_labels)


@pytest.fixture
def metrics() -> Iterator[MixerMetrics]:
    metrics = MixerMetrics()
    yield metrics
    metrics.shutdown()


def families(metrics: MixerMetrics) -> dict[str, list[Sample]]:
    text = metrics.exposition().decode()
    return {m.name: list(m.samples) for m in text_string_to_metric_families(text) if m.name.startswith("istio_")}


def snapshot(spec: str) -> MeshSnapshot:
    metadata = "metadata: {name: t, namespace: istio-system}"
    text = f"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n{metadata}\nspec:\n{spec}"
    parsed = parse_config_text(text, "t.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    return build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)


def record(metrics: MixerMetrics, spec: str, *records: object) -> dict[str, list[Sample]]:
    plan = MetricOverrides(snapshot(spec)).plan(PRODUCTPAGE)
    telemetry = IstioTelemetry()
    metrics.add_producer(telemetry.metrics)
    telemetry.record_all(records, plan)  # type: ignore[arg-type]
    return families(metrics)


def test_the_docs_remove_tags_drops_grpc_response_status_from_requests_total_only(metrics: MixerMetrics) -> None:
    spec = (
        "  metrics:\n    - providers:\n        - name: prometheus\n      overrides:\n        - match:\n"
        "            mode: CLIENT_AND_SERVER\n            metric: REQUEST_COUNT\n          tagOverrides:\n"
        "            grpc_response_status:\n              operation: REMOVE\n"
    )
    found = record(metrics, spec, RECORD)
    [count] = found["istio_requests"]
    assert set(count.labels) == set(LABEL_NAMES) - {"grpc_response_status"}
    assert all("grpc_response_status" in s.labels for s in found["istio_request_duration_milliseconds"])


def test_the_docs_custom_tags_read_the_peer_each_side_knows(metrics: MixerMetrics) -> None:
    spec = (
        "  metrics:\n    - overrides:\n        - match:\n            metric: ALL_METRICS\n            mode: CLIENT\n"
        "          tagOverrides:\n            destination_x:\n              value: upstream_peer.labels['app'].value\n"
        "        - match:\n            metric: ALL_METRICS\n            mode: SERVER\n          tagOverrides:\n"
        "            source_x:\n              value: downstream_peer.labels['app'].value\n"
        "      providers:\n        - name: prometheus\n"
    )
    found = record(metrics, spec, RECORD, CLIENT_RECORD)
    by_reporter = {s.labels["reporter"]: s.labels for s in found["istio_requests"]}
    # the exporter writes a label another series of the metric has as empty: in Prometheus, the same as absent
    assert by_reporter["source"]["destination_x"] == "reviews" and not by_reporter["source"].get("source_x")
    assert by_reporter["destination"]["source_x"] == "productpage"
    assert not by_reporter["destination"].get("destination_x")


def test_upserts_of_attributes_literals_and_an_existing_label(metrics: MixerMetrics) -> None:
    spec = (
        "  metrics:\n  - overrides:\n    - match: {metric: REQUEST_COUNT}\n      tagOverrides:\n"
        "        request_method: {value: request.method}\n        request_host: {value: request.host}\n"
        "        destination_port: {value: string(destination.port)}\n        team: {value: \"'mesh'\"}\n"
        "        request_protocol: {value: \"'h'\"}\n        referer: {value: request.useragent}\n"
    )
    [count] = record(metrics, spec, RECORD)["istio_requests"]
    assert {k: count.labels[k] for k in ("request_method", "request_host", "destination_port", "team")} == {
        "request_method": "GET",
        "request_host": "reviews:9080",
        "destination_port": "9080",
        "team": "mesh",
    }
    assert count.labels["request_protocol"] == "h" and count.labels["referer"] == "unknown"


def test_a_metric_disabled_for_the_client_side_only(metrics: MixerMetrics) -> None:
    spec = "  metrics:\n  - overrides:\n    - disabled: true\n      match: {mode: CLIENT, metric: REQUEST_COUNT}\n"
    found = record(metrics, spec, RECORD, CLIENT_RECORD)
    assert [s.labels["reporter"] for s in found["istio_requests"]] == ["destination"]
    assert {s.labels["reporter"] for s in found["istio_request_bytes"]} == {"source", "destination"}


def test_all_metrics_disabled(metrics: MixerMetrics) -> None:
    spec = (
        "  metrics:\n  - overrides:\n    - disabled: true\n      match: {mode: CLIENT_AND_SERVER, metric: ALL_METRICS}"
    )
    assert record(metrics, spec, RECORD, CLIENT_RECORD) == {}


def test_no_overrides_no_plan_and_plans_are_compiled_once_per_workload() -> None:
    assert MetricOverrides(build_snapshot({}, version=1)).plan(PRODUCTPAGE) is DEFAULT_PLAN
    overrides = MetricOverrides(snapshot("  metrics:\n  - overrides:\n    - tagOverrides: {x: {value: \"'y'\"}}\n"))
    first = overrides.plan(PRODUCTPAGE)
    assert overrides.plan(replace(PRODUCTPAGE, name="productpage-v2")) is first
    assert not first.default
    assert compile_plan(metrics_plan(build_snapshot({}, version=1), "d", MappingProxyType({}))).default


def test_a_custom_metric_names_a_standard_one(metrics: MixerMetrics) -> None:
    spec = "  metrics:\n  - overrides:\n    - disabled: true\n      match: {customMetric: requests_total}"
    found = record(metrics, spec, RECORD, CLIENT_RECORD)
    assert "istio_requests" not in found
    assert len(found["istio_request_bytes"]) > 0
