"""Istio's request metrics as Mixer's /metrics exposes them: exact names, every label, Istio's buckets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mixer.log_entries import LABEL_NAMES
from mixer.metrics import MixerMetrics
from mixer.telemetry import BYTES_BUCKETS, DURATION_MS_BUCKETS, IstioTelemetry
from tests.mixer_builders import REVIEWS_REPORT


@pytest.fixture
def metrics() -> Iterator[MixerMetrics]:
    metrics = MixerMetrics()
    yield metrics
    metrics.shutdown()


def exported(metrics: MixerMetrics, **options: int) -> IstioTelemetry:
    """A new IstioTelemetry whose metrics ``metrics`` exports."""
    telemetry = IstioTelemetry(**options)
    metrics.add_producer(telemetry.metrics)
    return telemetry


def samples(metrics: MixerMetrics, family: str) -> list[Sample]:
    text = metrics.exposition().decode()
    for metric in text_string_to_metric_families(text):
        if metric.name == family:
            return list(metric.samples)
    raise AssertionError(f"no metric family {family!r} in:\n{text}")


DURATION_LE = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000", "60000",
    "300000", "600000", "1800000", "3600000", "+Inf",
]  # fmt: skip
BYTES_LE = ["1", "10", "100", "1000", "10000", "100000", "1000000", "10000000", "100000000", "+Inf"]


def test_requests_are_counted_in_istio_requests_total_with_every_istio_label(metrics: MixerMetrics) -> None:
    telemetry = exported(metrics)
    telemetry.record(REVIEWS_REPORT)
    telemetry.record(REVIEWS_REPORT)
    telemetry.record(replace(REVIEWS_REPORT, response_code="503", response_flags="UF,URX"))

    counted = samples(metrics, "istio_requests")  # the parser strips _total from the family name
    assert {sample.name for sample in counted} == {"istio_requests_total"}
    expected = dict(zip(LABEL_NAMES, REVIEWS_REPORT.label_values, strict=True))
    assert expected["source_workload"] == "productpage-v1"
    by_code = {sample.labels["response_code"]: sample for sample in counted}
    assert by_code["200"].labels == expected
    assert by_code["200"].value == 2.0
    assert by_code["503"].labels == {**expected, "response_code": "503", "response_flags": "UF,URX"}
    assert by_code["503"].value == 1.0
    assert "# TYPE istio_requests_total counter" in metrics.exposition().decode()


def test_duration_histogram_has_istios_millisecond_buckets(metrics: MixerMetrics) -> None:
    telemetry = exported(metrics)
    telemetry.record(replace(REVIEWS_REPORT, duration_ms=7.5))
    telemetry.record(replace(REVIEWS_REPORT, duration_ms=240.0))

    histogram = samples(metrics, "istio_request_duration_milliseconds")
    buckets = {s.labels["le"]: s.value for s in histogram if s.name == "istio_request_duration_milliseconds_bucket"}
    assert list(buckets) == DURATION_LE
    assert len(DURATION_MS_BUCKETS) == len(DURATION_LE) - 1
    assert buckets["5"] == 0.0
    assert buckets["10"] == 1.0
    assert buckets["100"] == 1.0
    assert buckets["250"] == 2.0
    assert buckets["+Inf"] == 2.0
    (total,) = [s.value for s in histogram if s.name == "istio_request_duration_milliseconds_sum"]
    assert total == 247.5
    (bucket,) = [s for s in histogram if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"]
    assert {k: v for k, v in bucket.labels.items() if k != "le"} == dict(
        zip(LABEL_NAMES, REVIEWS_REPORT.label_values, strict=True)
    )


def test_size_histograms_count_headers_and_body_in_powers_of_ten(metrics: MixerMetrics) -> None:
    telemetry = exported(metrics)
    telemetry.record(REVIEWS_REPORT)  # 120 bytes in, 380 out

    for family, size in (("istio_request_bytes", 120.0), ("istio_response_bytes", 380.0)):
        histogram = samples(metrics, family)
        buckets = {s.labels["le"]: s.value for s in histogram if s.name == f"{family}_bucket"}
        assert list(buckets) == BYTES_LE
        assert len(BYTES_BUCKETS) == len(BYTES_LE) - 1
        assert buckets["100"] == 0.0
        assert buckets["1000"] == 1.0
        (total,) = [s.value for s in histogram if s.name == f"{family}_sum"]
        assert total == size


def test_exported_names_are_exactly_istios(metrics: MixerMetrics) -> None:
    exported(metrics).record(REVIEWS_REPORT)

    text = metrics.exposition().decode()
    types = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE istio_")}
    assert types == {
        "istio_requests_total": "counter",
        "istio_request_duration_milliseconds": "histogram",
        "istio_request_bytes": "histogram",
        "istio_response_bytes": "histogram",
    }


def test_series_past_the_limit_are_added_to_one_overflow_series(metrics: MixerMetrics) -> None:
    telemetry = exported(metrics, series_limit=3)  # three series, then the overflow one, as the SDK keeps them
    for code in ("200", "201", "202", "200", "203", "201", "204"):
        telemetry.record(replace(REVIEWS_REPORT, response_code=code, duration_ms=float(code) - 199))

    def series(sample: Sample) -> str:  # the exporter gives a family's samples every label, empty if unset
        return "overflow" if sample.labels["otel_metric_overflow"] == "true" else sample.labels["response_code"]

    counted = {series(s): s.value for s in samples(metrics, "istio_requests")}
    assert counted == {"200": 2.0, "201": 2.0, "202": 1.0, "overflow": 2.0}
    (overflow,) = [s for s in samples(metrics, "istio_requests") if series(s) == "overflow"]
    assert {name for name, value in overflow.labels.items() if value} == {"otel_metric_overflow"}
    sums = {
        series(s): s.value for s in samples(metrics, "istio_request_duration_milliseconds") if s.name.endswith("_sum")
    }
    assert sums == {"200": 2.0, "201": 4.0, "202": 3.0, "overflow": 9.0}
    assert telemetry.series_count() == 4


def test_a_batch_counts_each_record_of_a_series(metrics: MixerMetrics) -> None:
    telemetry = exported(metrics)
    batch = [replace(REVIEWS_REPORT, duration_ms=float(ms)) for ms in (0.5, 1, 3, 700)]
    telemetry.record_all([*batch, replace(REVIEWS_REPORT, response_code="503")])

    counted = {s.labels["response_code"]: s.value for s in samples(metrics, "istio_requests")}
    assert counted == {"200": 4.0, "503": 1.0}
    buckets = {
        s.labels["le"]: s.value
        for s in samples(metrics, "istio_request_duration_milliseconds")
        if s.name.endswith("_bucket") and s.labels["response_code"] == "200"
    }
    assert (buckets["0.5"], buckets["1"], buckets["5"], buckets["500"], buckets["1000"]) == (1, 2, 3, 3, 4)


def test_series_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="series_limit"):
        IstioTelemetry(series_limit=0)


def test_one_label_set_in_two_orders_is_one_series(metrics: MixerMetrics) -> None:
    # two workloads' Telemetry overrides can name the same labels in another order: the SDK keyed series by the
    # set, and so does the collection
    telemetry = exported(metrics)
    telemetry._requests.add((("a", "b"), ("1", "2")), 1)
    telemetry._requests.add((("b", "a"), ("2", "1")), 2)
    telemetry._duration.add((("a", "b"), ("1", "2")), 3.0)
    telemetry._duration.add((("b", "a"), ("2", "1")), 700.0)

    assert [(s.labels, s.value) for s in samples(metrics, "istio_requests")] == [({"a": "1", "b": "2"}, 3.0)]
    histogram = samples(metrics, "istio_request_duration_milliseconds")
    assert [s.value for s in histogram if s.name.endswith("_count")] == [2.0]
    assert [s.value for s in histogram if s.name.endswith("_sum")] == [703.0]
