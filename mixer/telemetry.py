"""Istio's standard HTTP request metrics, accumulated per series from ``RequestRecord``s and exported through
Mixer's MeterProvider readers (Prometheus ``/metrics`` and, when configured, OTLP).

The four metrics of https://istio.io/latest/docs/reference/config/metrics/ (HTTP, HTTP/2 and gRPC traffic), each
with every label of a ``RequestRecord`` (``mixer.log_entries.LABEL_NAMES``):

- ``istio_requests_total`` (counter; the Prometheus exporter appends ``_total`` to the counter ``istio_requests``);
- ``istio_request_duration_milliseconds`` (histogram) with Istio's default buckets, 0.5 ms to one hour;
- ``istio_request_bytes`` and ``istio_response_bytes`` (histograms) with the buckets of Istio Mixer's Prometheus
  handler: ``exponentialBuckets {numFiniteBuckets: 8, scale: 1, growthFactor: 10}``, i.e. 1 byte to 100 MB.

Telemetry ``metrics`` overrides (``mixer.metric_overrides``) turn metrics off per side and change their labels;
without any, a record's own label tuple is used as it is.

Recording is on the ingestion hot path (tens of thousands of entries a second), and the OpenTelemetry SDK costs
about 50 us per measurement (it validates and hashes the 23 attributes of each one). So no measurement reaches the
SDK: a batch is grouped by series (label names and values, a tuple key) and added to plain per-series accumulators
(a count; bucket counts, sum, min and max per histogram, bucketed as the SDK's explicit-bucket aggregation does:
a value equal to a bound falls in that bound's bucket). ``metrics()`` turns the accumulators into the SDK's own
cumulative data points when a reader collects (a scrape, an OTLP export), and ``mixer.metrics`` adds them to what
the SDK collected, so Prometheus and OTLP export them exactly as they would the SDK's own instruments. A lock
guards the accumulators: the OTLP reader collects from its own thread.

Each metric keeps at most ``series_limit`` series (the SDK's default cardinality limit, 2000): past it, requests
of a new series are added to one ``otel.metric.overflow=true`` series, as the SDK does, so a flood of distinct
values (an attacker's Host headers) cannot grow memory without bound.

No metric has a unit: the OpenTelemetry Prometheus exporter would append it to the exported name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from opentelemetry.sdk.metrics.export import Metric
from opentelemetry.util.types import Attributes

from mixer.accumulators import Distribution, histogram_metric, sum_metric
from mixer.log_entries import LABEL_NAMES, RequestRecord
from mixer.metric_overrides import (
    DEFAULT_PLAN,
    DURATION,
    REQUEST_SIZE,
    REQUESTS,
    RESPONSE_SIZE,
    CompiledPlan,
    record_side,
)

__all__ = [
    "BYTES_BUCKETS",
    "DEFAULT_SERIES_LIMIT",
    "DURATION_MS_BUCKETS",
    "OVERFLOW_ATTRIBUTES",
    "REQUESTS_TOTAL",
    "REQUEST_BYTES",
    "REQUEST_DURATION_MS",
    "RESPONSE_BYTES",
    "IstioTelemetry",
]

REQUESTS_TOTAL = "istio_requests_total"  # the exported name (the counter is "istio_requests")
REQUEST_DURATION_MS = "istio_request_duration_milliseconds"
REQUEST_BYTES = "istio_request_bytes"
RESPONSE_BYTES = "istio_response_bytes"

DURATION_MS_BUCKETS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip
BYTES_BUCKETS: tuple[float, ...] = tuple(10**exponent for exponent in range(9))  # 1 .. 100,000,000

DEFAULT_SERIES_LIMIT = 2000  # the OpenTelemetry SDK's default aggregation cardinality limit
OVERFLOW_ATTRIBUTES: dict[str, bool] = {"otel.metric.overflow": True}

SeriesKey = tuple[tuple[str, ...], tuple[str, ...]]  # (label names, label values)
_Value = TypeVar("_Value")
_OVERFLOW: SeriesKey = (("otel.metric.overflow",), ("true",))  # compared by identity: see _attributes


@dataclass(slots=True)
class _CounterSeries:
    """A monotonic counter's series: at most ``limit`` of them, then one overflow series (as the SDK keeps them)."""

    limit: int
    values: dict[SeriesKey, int] = field(default_factory=dict)

    def add(self, key: SeriesKey, count: int) -> None:
        values = self.values
        if key in values:
            values[key] += count
        elif len(values) < self.limit:
            values[key] = count
        else:
            values[_OVERFLOW] = values.get(_OVERFLOW, 0) + count


@dataclass(slots=True)
class _HistogramSeries:
    """A histogram's series: at most ``limit`` of them, then one overflow series (as the SDK keeps them)."""

    bounds: tuple[float, ...]
    limit: int
    distributions: dict[SeriesKey, Distribution] = field(default_factory=dict)

    def series(self, key: SeriesKey) -> Distribution:
        """The distribution of ``key``'s series (created if there is room, else the overflow series)."""
        distributions = self.distributions
        distribution = distributions.get(key)
        if distribution is None:
            if len(distributions) >= self.limit:
                key = _OVERFLOW
                distribution = distributions.get(key)
            if distribution is None:
                distribution = distributions[key] = Distribution.over(self.bounds)
        return distribution

    def add(self, key: SeriesKey, value: float) -> None:
        self.series(key).add(self.bounds, value)


def _attributes(key: SeriesKey) -> Attributes:
    if key is _OVERFLOW:
        return OVERFLOW_ATTRIBUTES
    names, values = key
    return dict(zip(names, values, strict=True))


class IstioTelemetry:
    """Istio's four request metrics: ``record_all`` adds requests, ``metrics`` reads them as SDK data points."""

    def __init__(self, *, series_limit: int = DEFAULT_SERIES_LIMIT) -> None:
        if series_limit < 1:
            raise ValueError(f"series_limit must be at least 1, got {series_limit}")
        self._lock = threading.Lock()
        self._started_ns = time.time_ns()
        self._requests = _CounterSeries(series_limit)
        self._duration = _HistogramSeries(DURATION_MS_BUCKETS, series_limit)
        self._request_bytes = _HistogramSeries(BYTES_BUCKETS, series_limit)
        self._response_bytes = _HistogramSeries(BYTES_BUCKETS, series_limit)

    def record(self, record: RequestRecord) -> None:
        """Count ``record`` and add its duration and sizes to the distributions of its series."""
        self.record_all((record,))

    def record_all(self, records: Iterable[RequestRecord], plan: CompiledPlan = DEFAULT_PLAN) -> None:
        """``record`` each of ``records``; ``plan``: the Telemetry metrics overrides of the workload that reported
        them (``mixer.metric_overrides``)."""
        with self._lock:
            if plan.default:
                self._record_default(records)
            else:
                self._record_overridden(records, plan)

    def _record_default(self, records: Iterable[RequestRecord]) -> None:
        """Every metric with the record's own labels: grouped by series, each series looked up once a batch."""
        by_series: dict[tuple[str, ...], list[RequestRecord]] = {}
        for record in records:
            values = record.label_values
            if (group := by_series.get(values)) is None:
                by_series[values] = [record]
            else:
                group.append(record)
        for values, group in by_series.items():
            key = (LABEL_NAMES, values)
            self._requests.add(key, len(group))
            duration = self._duration.series(key)
            request_bytes = self._request_bytes.series(key)
            response_bytes = self._response_bytes.series(key)
            for record in group:
                duration.add(DURATION_MS_BUCKETS, record.duration_ms)
                request_bytes.add(BYTES_BUCKETS, record.request_bytes)
                response_bytes.add(BYTES_BUCKETS, record.response_bytes)

    def _record_overridden(self, records: Iterable[RequestRecord], plan: CompiledPlan) -> None:
        """Each metric that is on, with its own labels (a metric disabled for the record's side is skipped)."""
        for record in records:
            metrics = record_side(plan, record).metrics
            if (labels := metrics.get(REQUESTS)) is not None:
                self._requests.add((labels.names, labels.values(record)), 1)
            if (labels := metrics.get(DURATION)) is not None:
                self._duration.add((labels.names, labels.values(record)), record.duration_ms)
            if (labels := metrics.get(REQUEST_SIZE)) is not None:
                self._request_bytes.add((labels.names, labels.values(record)), record.request_bytes)
            if (labels := metrics.get(RESPONSE_SIZE)) is not None:
                self._response_bytes.add((labels.names, labels.values(record)), record.response_bytes)

    def metrics(self) -> list[Metric]:
        """The four metrics' cumulative series as the SDK's data points (empty metrics are left out)."""
        now = time.time_ns()
        start = self._started_ns
        with self._lock:
            requests = list(self._requests.values.items())
            histograms = [
                (series, [(key, distribution.copy()) for key, distribution in series.distributions.items()])
                for series in (self._duration, self._request_bytes, self._response_bytes)
            ]
        metrics: list[Metric] = []
        if requests:
            counts = _merged(requests, _added)
            metrics.append(sum_metric(REQUESTS_TOTAL.removesuffix("_total"), _REQUESTS_DESCRIPTION, counts, start, now))
        for (series, distributions), (name, description) in zip(histograms, _HISTOGRAMS, strict=True):
            if distributions:
                points = [
                    d.point(attributes, series.bounds, start, now)
                    for attributes, d in _merged(distributions, _combined)
                ]
                metrics.append(histogram_metric(name, description, points))
        return metrics

    def series_count(self) -> int:
        """Series of ``istio_requests_total`` (the overflow one included)."""
        with self._lock:
            return len(self._requests.values)


def _merged(
    series: Iterable[tuple[SeriesKey, _Value]], add: Callable[[_Value, _Value], _Value]
) -> list[tuple[Attributes, _Value]]:
    """Each label set's value: series whose labels are the same set in another order (two workloads' Telemetry
    overrides naming them differently) are one series, as the SDK keyed them; ``add`` combines two values."""
    merged: dict[frozenset[tuple[str, object]], tuple[Attributes, _Value]] = {}
    for key, value in series:
        attributes = _attributes(key)
        identity = frozenset((attributes or {}).items())
        found = merged.get(identity)
        merged[identity] = (attributes, value if found is None else add(found[1], value))
    return list(merged.values())


def _added(count: int, more: int) -> int:
    return count + more


def _combined(distribution: Distribution, more: Distribution) -> Distribution:
    distribution.merge(more)  # the caller's copy
    return distribution


_REQUESTS_DESCRIPTION = "Requests handled by an Istio proxy."
_HISTOGRAMS = (
    (REQUEST_DURATION_MS, "Duration of requests, in milliseconds."),
    (REQUEST_BYTES, "HTTP request sizes (headers and body), in bytes."),
    (RESPONSE_BYTES, "HTTP response sizes (headers and body), in bytes."),
)
