"""bench.xds_reference reads xds_load's JSON line and sets Pilot's numbers beside the stand-in's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import _profiled
from bench.xds_reference import format_table, profiled_command, value

PILOT = {
    "proxies": 10,
    "services": 5,
    "status": "ok",
    "pilot": {"startup_s": 3.0, "peak_rss_mb": 300.0, "cpu_s": {"total": 9.0}},
    "initial": {
        "streams": 10,
        "converged": 10,
        "failed": 0,
        "since_start_s": {"p99": 2.0},
        "mbytes": {"CDS": 8.0, "EDS": 4.0},
        "pilot_cpu_s": 5.0,
    },
    "change": {"latency_s": {"p50": 0.5, "p99": 0.6}, "mbytes": {"RDS": 4.0, "EDS": 2.0}, "pilot_cpu_s": 0.36},
}
STANDIN = {
    "pilot": {"startup_s": 1.5},
    "change": {"mbytes": {"RDS": 3.0}, "pilot_cpu_s": 0.12},
    "initial": {"mbytes": {"CDS": 3.0, "EDS": 1.0}, "pilot_cpu_s": 2.5},
}


def test_values_are_read_scaled_and_summed_by_type() -> None:
    assert value(PILOT, ("change", "latency_s", "p50"), 1000.0) == 500.0
    assert value(PILOT, ("change", "mbytes"), 1.0) == 6.0
    assert value(STANDIN, ("change", "latency_s", "p50"), 1000.0) is None


def test_the_table_gives_each_number_beside_the_reference_with_the_ratio() -> None:
    table = format_table("sotw", PILOT, STANDIN)
    assert "| listening after (s)            |       3.00 |       1.50 |   2.00x |" in table
    assert "| MB sent for the change         |       6.00 |       3.00 |   2.00x |" in table
    assert "| control plane CPU, change (s)  |       0.36 |       0.12 |   3.00x |" in table
    assert "| MB sent for the initial sync   |       12.0 |       4.00 |   3.00x |" in table
    assert "| control plane CPU, sync (s)    |       5.00 |       2.50 |   2.00x |" in table
    assert "| change p50 (ms)                |      500.0 |          - |       - |" in table
    assert "Pilot: status ok, 10/10 streams converged, 0 failed" in table


def test_a_profiled_command_wraps_pilot_and_watches_the_changed_virtual_service(tmp_path: Path) -> None:
    command = profiled_command("python", "python -m pilot --config-dir {config_dir}", tmp_path / "out.txt")
    assert command == (
        f"python -m bench._profiled --output {tmp_path / 'out.txt'} --watch {{config_dir}}/svc0-vs.yaml "
        "--phase change -- python -m pilot --config-dir {config_dir}"
    )
    initial = profiled_command("python", "python -m pilot", tmp_path / "out.txt", "initial")
    assert " --phase initial -- python -m pilot" in initial


def test_the_profiling_wrapper_returns_the_command_status_and_samples_nothing_without_a_change(tmp_path: Path) -> None:
    output = tmp_path / "stacks.txt"
    argv = ["--output", str(output), "--watch", str(tmp_path / "never.yaml"), "--"]
    assert _profiled.main([*argv, sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert not output.exists()


@pytest.mark.skipif(_profiled._py_spy() is None, reason="py-spy is not installed (pip install py-spy)")
def test_the_initial_phase_samples_from_the_start_until_the_watched_file_changes(tmp_path: Path) -> None:
    output, watched = tmp_path / "stacks.txt", tmp_path / "svc0-vs.yaml"
    watched.write_text("before")
    busy = (  # works in a function of its own until it has changed the watched file, then idles until stopped
        "import time, pathlib\n"
        "def initial_sync(deadline):\n"
        "    while time.monotonic() < deadline: pass\n"
        "initial_sync(time.monotonic() + 1.5)\n"
        f"pathlib.Path({str(watched)!r}).write_text('after')\n"
        "time.sleep(1.0)\n"
    )
    argv = ["--output", str(output), "--watch", str(watched), "--phase", "initial", "--"]
    assert _profiled.main([*argv, sys.executable, "-c", busy]) == 0
    stacks = output.read_text()
    assert "initial_sync" in stacks
