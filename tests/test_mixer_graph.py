"""The service graph: edges, rates, error rates, percentiles, mTLS, the sliding window and the rule that counts
each request once although both sidecars report it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mixer.graph import ServiceGraph
from tests.mixer_builders import REVIEWS, REVIEWS_REPORT, SOURCE_REPORT, FakeClock

SOURCE = "workload:default/productpage-v1"
SERVICE = f"service:{REVIEWS}"
DESTINATION = "workload:default/reviews-v1"


def edge(snapshot: dict[str, object], source: str, target: str) -> dict[str, object]:
    edges = snapshot["edges"]
    assert isinstance(edges, list)
    matching = [e for e in edges if e["source"] == source and e["target"] == target]
    assert len(matching) == 1, edges
    found = matching[0]
    assert isinstance(found, dict)
    return found


def test_a_request_reported_by_both_sidecars_is_counted_once() -> None:
    clock = FakeClock()
    graph = ServiceGraph(window_seconds=60, clock=clock)
    clock.now += 10

    assert graph.observe(SOURCE_REPORT) is False  # reached reviews-v1: its own report counts
    assert graph.observe(REVIEWS_REPORT) is True

    snapshot = graph.snapshot()
    assert [(e["source"], e["target"], e["requests"]) for e in snapshot["edges"]] == [
        (SERVICE, DESTINATION, 1),
        (SOURCE, SERVICE, 1),
    ]
    assert snapshot["nodes"] == [
        {"id": SERVICE, "kind": "service", "name": "reviews", "namespace": "default", "app": "", "version": ""},
        {
            "id": SOURCE,
            "kind": "workload",
            "name": "productpage-v1",
            "namespace": "default",
            "app": "productpage",
            "version": "v1",
        },
        {
            "id": DESTINATION,
            "kind": "workload",
            "name": "reviews-v1",
            "namespace": "default",
            "app": "reviews",
            "version": "v1",
        },
    ]
    json.dumps(snapshot)  # JSON-ready


def test_a_source_report_that_reached_no_workload_is_counted_on_the_service_edge_only() -> None:
    clock = FakeClock()
    graph = ServiceGraph(window_seconds=60, clock=clock)
    clock.now += 10
    unreachable = replace(
        SOURCE_REPORT,
        destination_workload="unknown",
        destination_workload_namespace="unknown",
        response_code="503",
        response_flags="UH",
    )

    assert graph.observe(unreachable) is True

    snapshot = graph.snapshot()
    assert len(snapshot["edges"]) == 1
    only = edge(snapshot, SOURCE, SERVICE)
    assert (only["requests"], only["error_rate"], only["mtls"], only["mtls_ratio"]) == (1, 1.0, False, 0.0)
    assert [n["id"] for n in snapshot["nodes"]] == [SERVICE, SOURCE]


def test_rates_error_rates_and_percentiles_over_the_window() -> None:
    clock = FakeClock()
    graph = ServiceGraph(window_seconds=60, clock=clock)
    for ms in range(1, 101):  # 100 requests over 10 seconds, 1..100 ms; every 20th fails
        clock.now = 1000.0 + (ms - 1) / 10
        code = "503" if ms % 20 == 0 else "200"
        graph.observe(replace(REVIEWS_REPORT, duration_ms=float(ms), response_code=code, mtls=ms % 4 != 0))
    clock.now = 1010.0

    snapshot = graph.snapshot()
    for source, target in ((SOURCE, SERVICE), (SERVICE, DESTINATION)):
        e = edge(snapshot, source, target)
        assert e["requests"] == 100
        assert e["requests_per_second"] == 10.0  # 100 requests in the 10 s since the graph started
        assert e["error_rate"] == 0.05
        assert e["p50_ms"] == pytest.approx(50.0, rel=0.06)
        assert e["p99_ms"] == pytest.approx(99.0, rel=0.06)
        assert (e["mtls"], e["mtls_ratio"]) == (False, 0.75)

    clock.now = 1050.0  # 50 s after the start: the same 100 requests, over 50 s
    assert edge(graph.snapshot(), SOURCE, SERVICE)["requests_per_second"] == 2.0


def test_rates_of_an_old_graph_are_over_the_whole_window() -> None:
    clock = FakeClock()
    graph = ServiceGraph(window_seconds=60, clock=clock)
    clock.now = 5000.0
    for _ in range(30):
        graph.observe(REVIEWS_REPORT)

    e = edge(graph.snapshot(), SOURCE, SERVICE)
    assert (e["requests"], e["requests_per_second"], e["mtls"], e["mtls_ratio"]) == (30, 0.5, True, 1.0)
    assert e["p50_ms"] == pytest.approx(12.0, rel=0.06)
    assert e["error_rate"] == 0.0


def test_samples_leave_the_window_as_it_slides_and_empty_edges_disappear() -> None:
    clock = FakeClock(1000.0)
    graph = ServiceGraph(window_seconds=60, clock=clock)
    graph.observe(replace(REVIEWS_REPORT, duration_ms=1000.0, response_code="500"))
    clock.now = 1030.5
    graph.observe(REVIEWS_REPORT)
    graph.observe(REVIEWS_REPORT)

    clock.now = 1059.9  # the second 1000 is still inside (1000..1059)
    e = edge(graph.snapshot(), SOURCE, SERVICE)
    assert (e["requests"], e["error_rate"]) == (3, round(1 / 3, 4))
    assert e["p99_ms"] == pytest.approx(1000.0, rel=0.06)

    clock.now = 1060.0  # second 1000 slid out
    e = edge(graph.snapshot(), SOURCE, SERVICE)
    assert (e["requests"], e["error_rate"], e["requests_per_second"]) == (2, 0.0, round(2 / 60, 3))
    assert e["p99_ms"] == pytest.approx(12.0, rel=0.06)

    clock.now = 1091.0  # everything slid out
    assert graph.snapshot() == {"window_seconds": 60, "nodes": [], "edges": []}
    assert graph._edges == {}


def test_an_edge_keeps_one_bucket_per_second_of_the_window_at_most() -> None:
    clock = FakeClock()
    graph = ServiceGraph(window_seconds=5, clock=clock)
    for step in range(100):
        clock.now = 1000.0 + step * 0.5
        graph.observe(REVIEWS_REPORT)

    stored = graph._edges[(SOURCE, SERVICE)]
    assert len(stored.seconds) <= 5
    assert edge(graph.snapshot(), SOURCE, SERVICE)["requests"] == 10  # 2 a second over the last 5 seconds


def test_unknown_callers_are_one_node() -> None:
    clock = FakeClock()
    graph = ServiceGraph(clock=clock)
    clock.now += 60
    anonymous = replace(
        REVIEWS_REPORT, source_workload="unknown", source_workload_namespace="unknown", source_app="unknown"
    )
    graph.observe(anonymous)

    snapshot = graph.snapshot()
    assert {"id": "workload:unknown", "kind": "workload", "name": "unknown", "namespace": "unknown", "app": "",
            "version": ""} in snapshot["nodes"]  # fmt: skip
    assert edge(snapshot, "workload:unknown", SERVICE)["requests"] == 1


def test_new_edges_beyond_max_edges_are_ignored() -> None:
    clock = FakeClock()
    graph = ServiceGraph(clock=clock, max_edges=2)
    graph.observe(REVIEWS_REPORT)  # two edges
    graph.observe(replace(REVIEWS_REPORT, destination_service="other.default.svc.cluster.local"))

    assert len(graph.snapshot()["edges"]) == 2

    clock.now += 61  # once the old edges slid out, there is room again
    graph.observe(replace(REVIEWS_REPORT, destination_service="other.default.svc.cluster.local"))
    assert {e["target"] for e in graph.snapshot()["edges"]} == {"service:other.default.svc.cluster.local", DESTINATION}


def test_the_window_must_be_at_least_a_second() -> None:
    with pytest.raises(ValueError, match="window_seconds"):
        ServiceGraph(window_seconds=0)
