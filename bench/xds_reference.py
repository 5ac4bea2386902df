"""Pilot against the reference stand-in, under the reference load tool, in one run.

    python -m bench.xds_reference [--streams 1000] [--services 1000] [--mode sotw|delta|both] [--tools-dir DIR]
                                  [--profile FILE [--profile-phase change|initial]]

Runs ``../shared/tools/xds_load.py`` (beside the repository; see its README) once against ``xds_standin.py`` (the
practical limit of a Python gRPC server: precomputed bytes) and once against Pilot, and prints each number with
the stand-in's beside it and the ratio Pilot/stand-in. The stand-in has no ``/ready``; Pilot is waited for until
``/ready`` answers.

``--profile FILE`` samples Pilot with py-spy during the change push (``bench._profiled``: from the moment xds_load
rewrites the VirtualService until Pilot exits; the sampler's CPU is not counted) and writes py-spy's raw collapsed
stacks to FILE (FILE.sotw and FILE.delta with ``--mode both``); ``--profile-phase initial`` samples from Pilot's
start until that change instead (the start and the initial sync). Sampling slows Pilot: read the numbers of a run
without it.

Delta runs give Pilot ``--no-vhds``: xds_load's simulated Envoy does not implement VHDS (it subscribes to the route
tables its listeners name and counts a new RDS version as the change), so it is measured on whole tables, as the
stand-in serves them. What VHDS sends for the same change is measured by ``bench.ads_push --mode delta``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench._bytecode import compile_bytecode
from bench.startup import DEFAULT_TOOLS_DIR

__all__ = ["main"]

CHANGED_FILE = "svc0-vs.yaml"  # the VirtualService xds_load rewrites for the change
ROWS = (  # (label, path into xds_load's JSON line, scale)
    ("listening after (s)", ("pilot", "startup_s"), 1.0),
    ("initial sync p99 (s)", ("initial", "since_start_s", "p99"), 1.0),
    ("MB sent for the initial sync", ("initial", "mbytes"), 1.0),
    ("control plane CPU, sync (s)", ("initial", "pilot_cpu_s"), 1.0),
    ("change p50 (ms)", ("change", "latency_s", "p50"), 1000.0),
    ("change p99 (ms)", ("change", "latency_s", "p99"), 1000.0),
    ("MB sent for the change", ("change", "mbytes"), 1.0),
    ("control plane CPU, change (s)", ("change", "pilot_cpu_s"), 1.0),
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
    if number is None:
        return "-"
    return f"{number:.2f}" if abs(number) < 10 else f"{number:.1f}"  # CPU-seconds of a change are tenths


def profiled_command(python: str, command: str, output: Path, phase: str = "change") -> str:
    """``command`` (an xds_load ``--pilot-cmd``) sampled by py-spy into ``output``: once the change is written
    (``phase`` "change"), or from the start until then ("initial": the start and the initial sync)."""
    watch = f"{{config_dir}}/{CHANGED_FILE}"
    return f"{python} -m bench._profiled --output {output.resolve()} --watch {watch} --phase {phase} -- {command}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.xds_reference", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--mode", choices=("sotw", "delta", "both"), default="sotw")
    parser.add_argument("--timeout", type=float, default=300.0, help="xds_load's limit for every wait (s)")
    parser.add_argument("--tools-dir", type=Path, default=DEFAULT_TOOLS_DIR, help="the shared tools (%(default)s)")
    parser.add_argument("--profile", type=Path, help="py-spy's raw stacks of Pilot during the change, to this file")
    parser.add_argument(
        "--profile-phase",
        choices=("change", "initial"),
        default="change",
        help="what --profile samples: the change push (default) or the start and the initial sync",
    )
    parser.add_argument(
        "--pilot-args",
        default="",
        help="more flags for Pilot, e.g. '--max-new-streams-per-second 0' (the stand-in admits streams unlimited)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    compile_bytecode()
    python, tools = sys.executable, args.tools_dir
    standin = f"{python} {tools / 'xds_standin.py'} --config-dir {{config_dir}} --xds-address {{xds}} "
    standin += "--monitor-address {monitor}"
    pilot = f"{python} -m pilot --config-dir {{config_dir}} --xds-address {{xds}} --monitor-address {{monitor}} "
    pilot += "--debounce 100ms" + (f" {args.pilot_args}" if args.pilot_args else "")
    modes = ("sotw", "delta") if args.mode == "both" else (args.mode,)
    for mode in modes:
        reference = run_load(tools, standin, args, mode, ready=False)
        command = pilot + (" --no-vhds" if mode == "delta" else "")
        if args.profile is not None:
            output = args.profile.with_name(f"{args.profile.name}.{mode}") if len(modes) > 1 else args.profile
            command = profiled_command(python, command, output, args.profile_phase)
        mine = run_load(tools, command, args, mode, ready=True)
        print(format_table(mode, mine, reference), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
