"""Mixer's check metrics, ``mixer_checks_total{result}`` and ``mixer_check_duration_seconds``, counted in plain
Python and handed to the readers at collection.

Every ext_authz check is counted, and the OpenTelemetry SDK's synchronous instruments cost about 7 us a check
(a counter's attributes validated and hashed, a histogram's measurement object): as much as the rest of an
allowed check once decisions are cached (``mixer.referenced``). So a check adds 1 to its result's count and its
seconds to one distribution (explicit buckets as the SDK's aggregation has them: a value equal to a bound falls in
that bound's bucket; sum, min, max), and ``metrics()`` turns both into the SDK's cumulative data points when a
reader collects; ``mixer.metrics`` adds them to what the SDK collected (``add_producer``), so Prometheus and OTLP
export them under the same names as before. A lock guards the numbers: the OTLP reader collects from its own
thread.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)

__all__ = ["CHECK_SECONDS_BUCKETS", "CheckMetrics"]

CHECK_SECONDS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
_CHECKS = ("mixer_checks", "ext_authz checks answered, by result.")  # exported as mixer_checks_total
_DURATION = ("mixer_check_duration_seconds", "Seconds Mixer took to evaluate one check.")


class CheckMetrics:
    """Checks answered by result and the distribution of their evaluation time, read by ``metrics()``."""

    def __init__(self, bounds: tuple[float, ...] = CHECK_SECONDS_BUCKETS) -> None:
        self.bounds = bounds
        self._lock = threading.Lock()
        self._started_ns = time.time_ns()
        self._by_result: dict[str, int] = {}
        self._bucket_counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self._total = 0.0
        self._minimum = float("inf")
        self._maximum = float("-inf")

    def answered(self, result: str, seconds: float) -> None:
        """One check answered with ``result`` after ``seconds``."""
        with self._lock:
            self._by_result[result] = self._by_result.get(result, 0) + 1
            self._bucket_counts[bisect_left(self.bounds, seconds)] += 1
            self._total += seconds
            if seconds < self._minimum:
                self._minimum = seconds
            if seconds > self._maximum:
                self._maximum = seconds

    def metrics(self) -> list[Metric]:
        """Both metrics as cumulative SDK data points; none before the first check (as the SDK's instruments)."""
        now = time.time_ns()
        with self._lock:
            by_result = list(self._by_result.items())
            bucket_counts = list(self._bucket_counts)
            total, minimum, maximum = self._total, self._minimum, self._maximum
        if not by_result:
            return []
        start = self._started_ns
        counts = [NumberDataPoint({"result": result}, start, now, count) for result, count in by_result]
        duration = HistogramDataPoint(
            {},
            start,
            now,
            count=sum(bucket_counts),
            sum=total,
            bucket_counts=bucket_counts,
            explicit_bounds=self.bounds,
            min=minimum,
            max=maximum,
        )
        return [
            Metric(*_CHECKS, "", Sum(counts, AggregationTemporality.CUMULATIVE, is_monotonic=True)),
            Metric(*_DURATION, "", Histogram([duration], AggregationTemporality.CUMULATIVE)),
        ]
