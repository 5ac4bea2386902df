"""Counters, gauges and histograms as plain accumulators, exposed in the Prometheus text format when read.

A measurement is a dict update under a lock (about 1 us); nothing else runs until ``/metrics`` is read, when
``MetricSet`` builds prometheus_client's metric families from the accumulators. The OpenTelemetry SDK, which Pilot
used before, validated and hashed the attributes of every measurement (17 us per push, counter and histogram) and
took 0.1 s to import, a tenth of Pilot's start.

The exposition is the one the OpenTelemetry Prometheus exporter gave: counters named ``<name>_total``, histograms
with ``_bucket{le}``, ``_count`` and ``_sum``, buckets written as Go does (``1.0``, ``+Inf``), a metric absent until
its first measurement and a label set from its first measurement on. Each ``MetricSet`` has its own
``prometheus_client`` registry (never the global one), so several servers can live in one process.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

__all__ = ["Counter", "Gauge", "Histogram", "MetricSet"]

LabelValues = tuple[str, ...]


class _Instrument:
    def __init__(self, lock: threading.Lock, name: str, description: str, labels: Sequence[str]) -> None:
        self._lock = lock
        self.name = name
        self.description = description
        self.labels = tuple(labels)

    def families(self) -> Iterator[Metric]:
        raise NotImplementedError

    def _check(self, values: LabelValues) -> None:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.labels)} label values ({', '.join(self.labels)}), got {values}")


class _Sum(_Instrument):
    """A sum per label set, exposed as ``family`` (a counter's or a gauge's)."""

    family: type[CounterMetricFamily] | type[GaugeMetricFamily]

    def __init__(self, lock: threading.Lock, name: str, description: str, labels: Sequence[str]) -> None:
        super().__init__(lock, name, description, labels)
        self._values: dict[LabelValues, float] = {}

    def add(self, amount: float, *values: str) -> None:
        """``values``: one per label, in the order the instrument was declared with."""
        self._check(values)
        with self._lock:
            self._values[values] = self._values.get(values, 0.0) + amount

    def families(self) -> Iterator[Metric]:
        with self._lock:
            values = dict(self._values)
        if values:
            family = self.family(self.name, self.description, labels=self.labels)
            for labels, value in values.items():
                family.add_metric(labels, value)
            yield family


class Counter(_Sum):
    """A monotonic sum per label set (``<name>_total``)."""

    family = CounterMetricFamily

    def add(self, amount: float = 1.0, *values: str) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up, got {amount}")
        super().add(amount, *values)


class Gauge(_Sum):
    """A sum that goes up and down per label set (OpenTelemetry's up-down counter)."""

    family = GaugeMetricFamily


class Histogram(_Instrument):
    """Counts per bucket (``value <= bound``, then +Inf), a count and a sum, per label set."""

    def __init__(
        self, lock: threading.Lock, name: str, description: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(lock, name, description, labels)
        if list(buckets) != sorted(set(buckets)):
            raise ValueError(f"{name}: buckets must be increasing, got {list(buckets)}")
        self._bounds = tuple(buckets)
        self._values: dict[LabelValues, tuple[list[int], list[float]]] = {}  # (bucket counts and +Inf, [sum])

    def record(self, value: float, *values: str) -> None:
        self._check(values)
        index = bisect.bisect_left(self._bounds, value)  # the first bound >= value; len(bounds): +Inf
        with self._lock:
            found = self._values.get(values)
            if found is None:
                found = self._values[values] = ([0] * (len(self._bounds) + 1), [0.0])
            found[0][index] += 1
            found[1][0] += value

    def families(self) -> Iterator[Metric]:
        with self._lock:
            values = {labels: (list(counts), total[0]) for labels, (counts, total) in self._values.items()}
        if not values:
            return
        family = HistogramMetricFamily(self.name, self.description, labels=self.labels)
        bounds = [*(repr(float(bound)) for bound in self._bounds), "+Inf"]  # Go's form: 1.0, 0.001
        for labels, (counts, total) in values.items():
            cumulative, running = [], 0
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            family.add_metric(labels, cumulative, total)
        yield family


InstrumentT = TypeVar("InstrumentT", bound=_Instrument)


class MetricSet:
    """The instruments of one server, in declaration order, and the registry that exposes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # measurements come from the event loop and from worker threads
        self._instruments: list[_Instrument] = []
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)  # a Collector: collect()

    def counter(self, name: str, description: str, labels: Sequence[str] = ()) -> Counter:
        return self._add(Counter(self._lock, name, description, labels))

    def gauge(self, name: str, description: str, labels: Sequence[str] = ()) -> Gauge:
        return self._add(Gauge(self._lock, name, description, labels))

    def histogram(self, name: str, description: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> Histogram:
        return self._add(Histogram(self._lock, name, description, labels, buckets))

    def collect(self) -> Iterator[Metric]:
        for instrument in self._instruments:
            yield from instrument.families()

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every instrument measured so far."""
        return generate_latest(self.registry)

    def _add(self, instrument: InstrumentT) -> InstrumentT:
        if any(known.name == instrument.name for known in self._instruments):
            raise ValueError(f"metric {instrument.name!r} declared twice")
        self._instruments.append(instrument)
        return instrument
