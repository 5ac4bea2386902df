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

from opentelemetry.sdk.metrics.export import Metric

from mixer.accumulators import Distribution, histogram_metric, sum_metric

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
        self._duration = Distribution.over(bounds)

    def answered(self, result: str, seconds: float) -> None:
        """One check answered with ``result`` after ``seconds``."""
        with self._lock:
            self._by_result[result] = self._by_result.get(result, 0) + 1
            self._duration.add(self.bounds, seconds)

    def metrics(self) -> list[Metric]:
        """Both metrics as cumulative SDK data points; none before the first check (as the SDK's instruments)."""
        now = time.time_ns()
        with self._lock:
            by_result = list(self._by_result.items())
            duration = self._duration.copy()
        if not by_result:
            return []
        start = self._started_ns
        counts = [({"result": result}, count) for result, count in by_result]
        return [
            sum_metric(*_CHECKS, counts, start, now),
            histogram_metric(*_DURATION, [duration.point({}, self.bounds, start, now)]),
        ]
