"""Mixer's check metrics counted in plain Python (mixer/check_metrics.py), exposed as the SDK's instruments were."""

from __future__ import annotations

from mixer.check_metrics import CheckMetrics
from mixer.metrics import MixerMetrics


def test_nothing_before_the_first_check() -> None:
    assert CheckMetrics().metrics() == []
    assert "mixer_check" not in MixerMetrics().exposition().decode()


def test_counts_by_result_and_buckets_as_the_sdk() -> None:
    metrics = MixerMetrics()
    for result, seconds in (("allowed", 0.0001), ("allowed", 0.0003), ("denied", 0.3), ("rate_limited", 0.001)):
        metrics.check_answered(result, seconds)
    exposition = metrics.exposition().decode()
    assert 'mixer_checks_total{result="allowed"} 2.0' in exposition
    assert 'mixer_checks_total{result="denied"} 1.0' in exposition
    assert 'mixer_checks_total{result="rate_limited"} 1.0' in exposition
    assert 'mixer_check_duration_seconds_bucket{le="0.0001"} 1.0' in exposition  # a value on a bound: that bucket
    assert 'mixer_check_duration_seconds_bucket{le="0.001"} 3.0' in exposition
    assert 'mixer_check_duration_seconds_bucket{le="0.25"} 3.0' in exposition
    assert 'mixer_check_duration_seconds_bucket{le="+Inf"} 4.0' in exposition
    assert "mixer_check_duration_seconds_count 4.0" in exposition
    assert "mixer_check_duration_seconds_sum 0.3014" in exposition
