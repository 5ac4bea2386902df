"""Pilot against the reference stand-in, under the reference load tool, in one run.

    python -m bench.xds_reference [--streams 1000] [--services 1000] [--mode sotw|delta|both] [--tools-dir DIR]

Runs ``../shared/tools/xds_load.py`` (beside the repository; see its README) once against ``xds_standin.py`` (the
practical limit of a Python gRPC server: precomputed bytes) and once against Pilot, and prints each number with
the stand-in's beside it and the ratio Pilot/stand-in. The stand-in has no ``/ready``; Pilot is waited for until
``/ready`` answers."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.startup import DEFAULT_TOOLS_DIR

__all__ = ["main"]

ROWS = (  # (label, path into xds_load's JSON line, scale)
    ("listening after (s)", ("pilot", "startup_s"), 1.0),
    ("initial sync p99 (s)", ("initial", "since_start_s", "p99"), 1.0),
    ("change p50 (ms)", ("change", "latency_s", "p50"), 1000.0),
    ("change p99 (ms)", ("change", "latency_s", "p99"), 1000.0),
    ("MB sent for the change", ("change", "mbytes"), 1.0),
    ("peak RSS (MB)", ("pilot", "peak_rss_mb"), 1.0),
    ("control plane CPU, total (s)", ("pilot", "cpu_s", "total"), 1.0),
)


def run_load(tools_dir: Path, command: str, args: argparse.Namespace, mode: str, ready: bool) -> dict[str, Any]:
    """One xds_load run; its JSON line (the last line of its output)."""
    argv = [sys.executable, str(tools_dir / "xds_load.py"), "-n", str(args.streams), "-m", str(args.services)]
    argv += ["--json-only", "--timeout", str(args.timeout), "--pilot-cmd", command]
    argv += ["--delta"] if mode == "delta" else []
    argv += ["--ready-path", "/ready"] if ready else []
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(
            f"bench.xds_reference: xds_load printed no JSON (exit {done.returncode}): {done.stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def value(report: Mapping[str, Any], path: Sequence[str], scale: float) -> float | None:
    node: Any = report
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    if isinstance(node, Mapping):  # MB by type: their sum
        node = sum(float(v) for v in node.values())
    return float(node) * scale if isinstance(node, int | float) else None


def format_table(mode: str, pilot: Mapping[str, Any], standin: Mapping[str, Any]) -> str:
    lines = [f"{mode}: {pilot.get('proxies')} streams x {pilot.get('services')} services", ""]
    lines.append(f"| {'':30} | {'Pilot':>10} | {'stand-in':>10} | {'ratio':>7} |")
    lines.append(f"| {'-' * 30} | {'-' * 10} | {'-' * 10} | {'-' * 7} |")
    for label, path, scale in ROWS:
        mine, reference = value(pilot, path, scale), value(standin, path, scale)
        ratio = f"{mine / reference:.2f}x" if mine is not None and reference else "-"
        lines.append(f"| {label:30} | {_number(mine):>10} | {_number(reference):>10} | {ratio:>7} |")
    for name, report in (("Pilot", pilot), ("stand-in", standin)):
        initial = report.get("initial", {})
        lines.append(
            f"{name}: status {report.get('status')}, {initial.get('converged')}/{initial.get('streams')} streams "
            f"converged, {initial.get('failed')} failed"
        )
    return "\n".join(lines)


def _number(number: float | None) -> str:
    return "-" if number is None else f"{number:.1f}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.xds_reference", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--mode", choices=("sotw", "delta", "both"), default="sotw")
    parser.add_argument("--timeout", type=float, default=300.0, help="xds_load's limit for every wait (s)")
    parser.add_argument("--tools-dir", type=Path, default=DEFAULT_TOOLS_DIR, help="the shared tools (%(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    python, tools = sys.executable, args.tools_dir
    standin = f"{python} {tools / 'xds_standin.py'} --config-dir {{config_dir}} --xds-address {{xds}} "
    standin += "--monitor-address {monitor}"
    pilot = f"{python} -m pilot --config-dir {{config_dir}} --xds-address {{xds}} --monitor-address {{monitor}} "
    pilot += "--debounce 100ms"
    for mode in ("sotw", "delta") if args.mode == "both" else (args.mode,):
        reference = run_load(tools, standin, args, mode, ready=False)
        mine = run_load(tools, pilot, args, mode, ready=True)
        print(format_table(mode, mine, reference), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
