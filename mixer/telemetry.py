"""Istio's standard HTTP request metrics, recorded from ``RequestRecord``s on Mixer's MeterProvider.

The four metrics of https://istio.io/latest/docs/reference/config/metrics/ (HTTP, HTTP/2 and gRPC traffic), each
with every label of a ``RequestRecord`` (``mixer.log_entries.LABEL_NAMES``):

- ``istio_requests_total`` (counter; the Prometheus exporter appends ``_total`` to the counter ``istio_requests``);
- ``istio_request_duration_milliseconds`` (histogram) with Istio's default buckets, 0.5 ms to one hour;
- ``istio_request_bytes`` and ``istio_response_bytes`` (histograms) with the buckets of Istio Mixer's Prometheus
  handler: ``exponentialBuckets {numFiniteBuckets: 8, scale: 1, growthFactor: 10}``, i.e. 1 byte to 100 MB.

Telemetry ``metrics`` overrides (``mixer.metric_overrides``) turn metrics off per side and change their labels;
without any, a record's own label tuple is used as it is.

No instrument has a unit: the OpenTelemetry Prometheus exporter would append it to the exported name.

Recording is on the ingestion hot path (thousands of entries a second), so the attribute dict of each distinct
label tuple is built once and reused, and ``record_all`` adds a batch's requests to the counter once per series
(the SDK validates and hashes the 23 attributes of every measurement: that, not Mixer, is most of the cost).
The cache is bounded (cleared when it reaches ``max_cached_series``): a flood of distinct values (an attacker's
Host headers) must not grow memory beyond what the SDK itself keeps. The SDK's own default cardinality limit
(2000 series per metric, the rest aggregated into one ``otel_metric_overflow`` series) applies unless Mixer's
MeterProvider configures a View with a higher ``aggregation_cardinality_limit``.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import Meter

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
    "DURATION_MS_BUCKETS",
    "REQUESTS_TOTAL",
    "REQUEST_BYTES",
    "REQUEST_DURATION_MS",
    "RESPONSE_BYTES",
    "IstioTelemetry",
]

REQUESTS_TOTAL = "istio_requests_total"  # the exported name (the instrument is the counter "istio_requests")
REQUEST_DURATION_MS = "istio_request_duration_milliseconds"
REQUEST_BYTES = "istio_request_bytes"
RESPONSE_BYTES = "istio_response_bytes"

DURATION_MS_BUCKETS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip
BYTES_BUCKETS: tuple[float, ...] = tuple(10**exponent for exponent in range(9))  # 1 .. 100,000,000

_DEFAULT_MAX_CACHED_SERIES = 10_000

Attributes = dict[str, str]


class IstioTelemetry:
    """Istio's four request metrics on ``meter``; ``record`` adds one request to all four."""

    def __init__(self, meter: Meter, *, max_cached_series: int = _DEFAULT_MAX_CACHED_SERIES) -> None:
        self._requests = meter.create_counter(
            REQUESTS_TOTAL.removesuffix("_total"), description="Requests handled by an Istio proxy."
        )
        self._duration = meter.create_histogram(
            REQUEST_DURATION_MS,
            description="Duration of requests, in milliseconds.",
            explicit_bucket_boundaries_advisory=DURATION_MS_BUCKETS,
        )
        self._request_bytes = meter.create_histogram(
            REQUEST_BYTES,
            description="HTTP request sizes (headers and body), in bytes.",
            explicit_bucket_boundaries_advisory=BYTES_BUCKETS,
        )
        self._response_bytes = meter.create_histogram(
            RESPONSE_BYTES,
            description="HTTP response sizes (headers and body), in bytes.",
            explicit_bucket_boundaries_advisory=BYTES_BUCKETS,
        )
        self._attributes: dict[tuple[str, ...], Attributes] = {}
        self._overridden: dict[tuple[tuple[str, ...], tuple[str, ...]], Attributes] = {}
        self._max_cached_series = max_cached_series

    def record(self, record: RequestRecord) -> None:
        """Count ``record`` and add its duration and sizes to the distributions of its series."""
        self.record_all((record,))

    def record_all(self, records: Iterable[RequestRecord], plan: CompiledPlan = DEFAULT_PLAN) -> None:
        """``record`` each of ``records``, with one counter addition per distinct series (cheaper in a batch);
        ``plan``: the Telemetry metrics overrides of the workload that reported them (``mixer.metric_overrides``)."""
        if not plan.default:
            self._record_overridden(records, plan)
            return
        counts: dict[tuple[str, ...], int] = {}
        for record in records:
            values = record.label_values
            attributes = self._attributes_of(values)
            counts[values] = counts.get(values, 0) + 1
            self._duration.record(record.duration_ms, attributes)
            self._request_bytes.record(record.request_bytes, attributes)
            self._response_bytes.record(record.response_bytes, attributes)
        for values, count in counts.items():
            self._requests.add(count, self._attributes_of(values))

    def _record_overridden(self, records: Iterable[RequestRecord], plan: CompiledPlan) -> None:
        """Each metric that is on, with its own labels (a metric disabled for the record's side is skipped)."""
        counts: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {}
        for record in records:
            metrics = record_side(plan, record).metrics
            if (labels := metrics.get(REQUESTS)) is not None:
                key = (labels.names, labels.values(record))
                counts[key] = counts.get(key, 0) + 1
            if (labels := metrics.get(DURATION)) is not None:
                self._duration.record(record.duration_ms, self._labelled(labels.names, labels.values(record)))
            if (labels := metrics.get(REQUEST_SIZE)) is not None:
                self._request_bytes.record(record.request_bytes, self._labelled(labels.names, labels.values(record)))
            if (labels := metrics.get(RESPONSE_SIZE)) is not None:
                self._response_bytes.record(record.response_bytes, self._labelled(labels.names, labels.values(record)))
        for (names, values), count in counts.items():
            self._requests.add(count, self._labelled(names, values))

    def _labelled(self, names: tuple[str, ...], values: tuple[str, ...]) -> Attributes:
        key = (names, values)
        attributes = self._overridden.get(key)
        if attributes is None:
            if len(self._overridden) >= self._max_cached_series:
                self._overridden.clear()
            attributes = self._overridden[key] = dict(zip(names, values, strict=True))
        return attributes

    def _attributes_of(self, values: tuple[str, ...]) -> Attributes:
        attributes = self._attributes.get(values)
        if attributes is None:
            if len(self._attributes) >= self._max_cached_series:
                self._attributes.clear()
            attributes = dict(zip(LABEL_NAMES, values, strict=True))
            self._attributes[values] = attributes
        return attributes
