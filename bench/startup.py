"""Start-up benchmark: how long Pilot and Mixer take to serve a 1000-service mesh, against the stand-in.

    python -m bench.startup [--services 1000] [--proxies 1000] [--rounds 1] [--tools-dir ../shared/tools]

The mesh and the measurement are the reference tools' own (``../shared/tools``, beside the repository; see its
README): ``xds_load.py`` writes the mesh (M services: 2 files each, plus ``clients.yaml`` with N WorkloadEntries),
starts each control plane in its own session and reports "listening after" (from the start of the process until
its gRPC port accepts connections and, where the server has one, ``/ready`` answers 2xx) and the CPU-seconds of
its session until then. ``xds_standin.py`` is the limit: a minimal ADS server that reads the same files with
PyYAML's C loader and serves precomputed bytes. All three start from the same config directory in one run, one
after the other (``--rounds`` repeats the sequence; the median is reported), and the ratios are to the stand-in.

Pilot is ready once its first snapshot is served (``/ready``); Mixer once its config is loaded and its gRPC
server serves (``/ready``); the stand-in has no monitor: it listens once its resources are built.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bench._bytecode import compile_bytecode

__all__ = ["main"]

DEFAULT_TOOLS_DIR = Path(__file__).resolve().parents[2] / "shared" / "tools"
TARGET_RATIO = 1.5  # issue 8: Pilot's and Mixer's start within 1.5x of the stand-in's


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPlane:
    name: str
    command: str  # an xds_load --pilot-cmd template: {config_dir} {xds} {monitor}
    ready_path: str  # "" when the server has no readiness endpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class Startup:
    name: str
    seconds: float
    cpu_seconds: float


def control_planes(tools_dir: Path) -> tuple[ControlPlane, ...]:
    python = sys.executable
    return (
        ControlPlane(
            name="stand-in",
            command=f"{python} {tools_dir / 'xds_standin.py'} --config-dir {{config_dir}} --xds-address {{xds}} "
            "--monitor-address {monitor}",
            ready_path="",
        ),
        ControlPlane(
            name="pilot",
            command=f"{python} -m pilot --config-dir {{config_dir}} --xds-address {{xds}} "
            "--monitor-address {monitor} --debounce 100ms",
            ready_path="/ready",
        ),
        ControlPlane(
            name="mixer",
            command=f"{python} -m mixer --config-dir {{config_dir}} --grpc-address {{xds}} "
            "--monitor-address {monitor}",
            ready_path="/ready",
        ),
    )


def load_xds_load(tools_dir: Path) -> ModuleType:
    """The reference load tool, imported from the shared tools (never copied into this repository)."""
    missing = [name for name in ("xds_load.py", "xds_standin.py") if not (tools_dir / name).is_file()]
    if missing:
        raise SystemExit(
            f"bench.startup: {', '.join(missing)} not found in {tools_dir}: the reference tools live in shared/tools "
            "beside the repository checkout; pass --tools-dir DIR if they are elsewhere"
        )
    spec = importlib.util.spec_from_file_location("xds_load", tools_dir / "xds_load.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench.startup: cannot import {tools_dir / 'xds_load.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["xds_load"] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


async def measure(tool: ModuleType, plane: ControlPlane, config_dir: Path, work_dir: Path, timeout: float) -> Startup:
    """Start ``plane`` on ``config_dir`` and stop it as soon as it serves, as xds_load measures start-up."""
    work_dir.mkdir(parents=True, exist_ok=True)
    args = argparse.Namespace(pilot_cmd=plane.command, ready_path=plane.ready_path, timeout=timeout, json_only=True)
    report: dict[str, Any] = {}
    process = tool.launch_control_plane(args, str(work_dir), str(config_dir), report)
    failed = True
    try:
        await tool.wait_until_serving(args, process, report)
        failed = False
    except tool.LoadError as exc:
        raise SystemExit(f"bench.startup: {plane.name}: {exc} (its log: {work_dir / 'pilot.log'})") from exc
    finally:
        tool.stop_control_plane(process, report, failed)
    return Startup(
        name=plane.name, seconds=report["pilot"]["startup_s"], cpu_seconds=report["pilot"]["cpu_s"]["startup"]
    )


def median_startup(runs: Sequence[Startup]) -> Startup:
    return Startup(
        name=runs[0].name,
        seconds=statistics.median(r.seconds for r in runs),
        cpu_seconds=statistics.median(r.cpu_seconds for r in runs),
    )


def format_table(results: Sequence[Startup], files: int) -> str:
    limit = results[0]
    lines = [
        f"start-up on {files} config files (median of the rounds; ratios to the {limit.name}):",
        f"  {'server':<10} {'listening after':>16} {'CPU':>8} {'ratio':>7} {'CPU ratio':>10}",
    ]
    for result in results:
        ratio = result.seconds / limit.seconds
        cpu_ratio = result.cpu_seconds / limit.cpu_seconds if limit.cpu_seconds else float("nan")
        verdict = "" if result is limit else ("  ok" if ratio <= TARGET_RATIO else f"  over {TARGET_RATIO}x")
        lines.append(
            f"  {result.name:<10} {result.seconds:>14.2f} s {result.cpu_seconds:>6.2f} s {ratio:>6.2f}x "
            f"{cpu_ratio:>9.2f}x{verdict}"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[Startup]:
    tool = load_xds_load(args.tools_dir)
    compile_bytecode()
    planes = [p for p in control_planes(args.tools_dir) if p.name in args.only]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        config_dir = Path(scratch) / "config"
        files = tool.write_mesh_config(str(config_dir), args.services, args.proxies)
        runs: dict[str, list[Startup]] = {p.name: [] for p in planes}
        for round_ in range(args.rounds):
            for plane in planes:
                result = await measure(tool, plane, config_dir, Path(scratch) / f"{plane.name}-{round_}", args.timeout)
                print(
                    f"bench.startup: {plane.name}: listening after {result.seconds:.2f} s, "
                    f"CPU {result.cpu_seconds:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
                runs[plane.name].append(result)
    results = [median_startup(r) for r in runs.values()]
    print(format_table(results, files))
    print(json.dumps({"files": files, "startup": {r.name: {"s": r.seconds, "cpu_s": r.cpu_seconds} for r in results}}))
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000, help="services in the mesh (%(default)s)")
    parser.add_argument(
        "--proxies", type=int, default=1000, help="client WorkloadEntries in clients.yaml (%(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="start every server this many times (%(default)s)")
    parser.add_argument("--timeout", type=float, default=180.0, help="the limit for one start-up, s (%(default)s)")
    parser.add_argument("--tools-dir", type=Path, default=DEFAULT_TOOLS_DIR, help="the shared tools (%(default)s)")
    parser.add_argument(
        "--only",
        nargs="+",
        default=["stand-in", "pilot", "mixer"],
        choices=["stand-in", "pilot", "mixer"],
        help="the servers to start (the first listed is the reference of the ratios)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(run(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
