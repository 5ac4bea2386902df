"""Reading what Mixer recorded: Istio's request counts from its Prometheus text, and the edges of its /graph."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["RequestKey", "counter_total", "graph_edge", "istio_request_counts", "requests_where"]


class RequestKey(NamedTuple):
    """The labels of ``istio_requests_total`` the scenarios and the demo count by."""

    reporter: str
    source_workload: str
    destination_workload: str
    destination_version: str
    response_code: str


def istio_request_counts(metrics_text: str) -> Counter[RequestKey]:
    """``istio_requests_total`` summed by :class:`RequestKey` (other labels are summed over)."""
    counts: Counter[RequestKey] = Counter()
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "istio_requests":  # the parser strips the counter's _total suffix
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            key = RequestKey(
                reporter=labels.get("reporter", ""),
                source_workload=labels.get("source_workload", ""),
                destination_workload=labels.get("destination_workload", ""),
                destination_version=labels.get("destination_version", ""),
                response_code=labels.get("response_code", ""),
            )
            counts[key] += int(sample.value)
    return counts


def requests_where(metrics_text: str, **labels: str) -> int:
    """``istio_requests_total`` summed over the series whose labels have the given values (a label a series does
    not have counts as ``""``, as in Prometheus)."""
    total = 0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "istio_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and all(sample.labels.get(k, "") == v for k, v in labels.items()):
                total += int(sample.value)
    return total


def counter_total(metrics_text: str, name: str) -> float:
    """The sum of every series of the counter ``name`` (its Prometheus name without ``_total``)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_total"
    )


def graph_edge(graph: Mapping[str, Any], source: str, target: str) -> Mapping[str, Any] | None:
    """The edge of ``/graph`` from node ``source`` to node ``target`` (node ids as Mixer gives them)."""
    edges: Iterable[Mapping[str, Any]] = graph.get("edges", ())
    return next((edge for edge in edges if edge.get("source") == source and edge.get("target") == target), None)
