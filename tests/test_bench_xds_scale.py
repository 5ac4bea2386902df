"""bench.xds_scale: stream counts parse, and the report gives memory per proxy, the storm against the 1.5x target and
one Pilot beside two."""

from __future__ import annotations

import argparse

import pytest

from bench.ads_push import Pilot
from bench.xds_scale import MemoryStep, ShareResult, StormResult, _counts, build_parser, pilot_args, report


def test_steps_are_sorted_distinct_counts_of_at_least_one() -> None:
    assert _counts("2000,1000,1000") == [1000, 2000]
    with pytest.raises(argparse.ArgumentTypeError):
        _counts("0,10")
    assert build_parser().parse_args([]).steps == [1000, 2000]


def share(pilots: int, sync: float, change_p99: float) -> ShareResult:
    return ShareResult(
        pilots=pilots,
        streams=2000,
        sync_p50=sync / 2,
        sync_p99=sync,
        sync_seconds=sync,
        change_p50=change_p99 / 2,
        change_p99=change_p99,
        pilot_cpu=(10.0,) * pilots,
        peak_rss_mib=500.0 * pilots,
        client_cpu=4.0,
        span_seconds=sync + change_p99,
    )


def test_the_report_states_memory_per_proxy_the_storm_and_the_two_pilots_ratio() -> None:
    args = build_parser().parse_args(["--new-streams-per-second", "0"])
    steps = [MemoryStep(1000, 10.0, 300.0), MemoryStep(2000, 12.0, 400.0)]
    storm = StormResult(2000, 400.0, 640.0, 20.0, 3)
    text = report(100.0, steps, storm, [share(1, 20.0, 2.0), share(2, 10.0, 1.0)], args)

    assert "admission 0/s" in text
    assert "| 1000 | 300 MiB | 205 KiB | 10.0 s |" in text  # (300 - 100) MiB over 1000 streams
    assert "| 2000 | 400 MiB | 154 KiB | 12.0 s |" in text
    assert "peak during the storm 640 MiB = 1.60x (OVER the 1.5x target)" in text
    assert "3 client streams failed to open and were retried" in text
    assert "| 2 Pilots | 10.0 s | 5.0 / 10.0 s | 500 / 1000 ms | 10.0 + 10.0 s | 1000 MiB | 4.0 s | 2.18 |" in text
    assert "all synced 2.00x as fast, the change (p99) 2.00x as fast as one" in text


def test_pilot_is_started_with_every_argument_its_benchmark_reads() -> None:
    command = Pilot.command_line(pilot_args(build_parser().parse_args(["--steps", "10,20"]), port=4321))
    assert command[1:4] == ["-m", "bench.ads_push", "--serve"]
    assert "--streams=20" in command and "--port=4321" in command and "--vhds" in command
    assert not any(part.startswith("--new-streams-per-second") for part in command)  # Pilot's default
    unlimited = ["--mode", "delta", "--no-vhds", "--new-streams-per-second", "0"]
    delta = Pilot.command_line(pilot_args(build_parser().parse_args(unlimited)))
    assert "--no-vhds" in delta and "--new-streams-per-second=0.0" in delta
