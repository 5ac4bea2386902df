"""meshplane.prometheus_metrics: plain accumulators with the exposition OpenTelemetry's Prometheus exporter gave."""

from __future__ import annotations

import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshplane.prometheus_metrics import MetricSet


def _lines(metrics: MetricSet) -> list[str]:
    return [line for line in metrics.exposition().decode().splitlines() if not line.startswith("#")]


def test_a_metric_appears_with_its_first_measurement_and_a_label_set_with_its_own() -> None:
    metrics = MetricSet()
    pushes = metrics.counter("pilot_xds_pushes", "Pushes.", labels=("type",))
    connections = metrics.gauge("pilot_xds", "Streams.")
    assert metrics.exposition() == b""
    pushes.add(1, "cds")
    pushes.add(2, "cds")
    pushes.add(1, "eds")
    connections.add(1)
    connections.add(-1)
    assert _lines(metrics) == [
        'pilot_xds_pushes_total{type="cds"} 3.0',
        'pilot_xds_pushes_total{type="eds"} 1.0',
        "pilot_xds 0.0",
    ]
    text = metrics.exposition().decode()
    assert "# HELP pilot_xds_pushes_total Pushes.\n# TYPE pilot_xds_pushes_total counter" in text
    assert "# TYPE pilot_xds gauge" in text


def test_a_histogram_counts_a_value_in_the_first_bucket_whose_bound_it_does_not_exceed() -> None:
    metrics = MetricSet()
    latency = metrics.histogram("push_time", "Seconds.", (0.001, 0.5, 1.0), labels=("type",))
    for value in (0.0005, 0.5, 0.7, 3.0):
        latency.record(value, "rds")
    assert _lines(metrics) == [
        'push_time_bucket{le="0.001",type="rds"} 1.0',
        'push_time_bucket{le="0.5",type="rds"} 2.0',  # 0.5 <= 0.5
        'push_time_bucket{le="1.0",type="rds"} 3.0',
        'push_time_bucket{le="+Inf",type="rds"} 4.0',
        'push_time_count{type="rds"} 4.0',
        'push_time_sum{type="rds"} 4.2005',
    ]
    [family] = text_string_to_metric_families(metrics.exposition().decode())
    assert family.type == "histogram"


def test_what_cannot_be_a_metric_is_refused() -> None:
    metrics = MetricSet()
    counter = metrics.counter("things", "Things.")
    with pytest.raises(ValueError, match="a counter only goes up"):
        counter.add(-1)
    with pytest.raises(ValueError, match="declared twice"):
        metrics.gauge("things", "Again.")
    with pytest.raises(ValueError, match="buckets must be increasing"):
        metrics.histogram("latency", "Seconds.", (1.0, 0.5))


def test_counts_from_several_threads_are_not_lost() -> None:
    metrics = MetricSet()
    counter = metrics.counter("hits", "Hits.", labels=("kind",))

    def count() -> None:
        for _ in range(20_000):
            counter.add(1, "a")

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _lines(metrics) == ['hits_total{kind="a"} 80000.0']


def test_two_sets_in_one_process_are_independent() -> None:
    first, second = MetricSet(), MetricSet()
    first.counter("same_name", "One.").add(1)
    second.counter("same_name", "Two.").add(5)
    assert _lines(first) == ["same_name_total 1.0"] and _lines(second) == ["same_name_total 5.0"]
