"""Measurement helpers of the benchmarks: latency percentiles, a process's CPU time from /proc, sums over a
Prometheus exposition, free loopback ports.

Percentiles are nearest-rank (the value at rank ceil(q * n)), so p99 of 1000 samples is the 990th smallest: a
real observation, never an interpolation.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Latencies", "cpu_seconds", "free_port", "metric_samples", "percentile", "sample_sum"]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (sorted or not); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Latencies:
    """A latency distribution in seconds."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Latencies:
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 0.50),
            p90=percentile(ordered, 0.90),
            p99=percentile(ordered, 0.99),
            max=ordered[-1] if ordered else float("nan"),
        )


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (Linux /proc/<pid>/stat fields 14 and 15); NaN when unknown."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_samples(exposition: str) -> list[tuple[str, Mapping[str, str], float]]:
    """Every sample of a Prometheus text exposition as ``(sample name, labels, value)``."""
    return [
        (sample.name, sample.labels, float(sample.value))
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    ]


def sample_sum(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` (e.g. ``istio_requests_total``) whose labels include ``labels``."""
    return sum(
        value
        for sample, sample_labels, value in metric_samples(exposition)
        if sample == name and all(sample_labels.get(key) == wanted for key, wanted in labels.items())
    )


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``address`` now."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])
