"""ADS push benchmark: how fast does one VirtualService (or WorkloadEntry) change reach N sidecars?

    python -m bench.ads_push [--streams 1000] [--services 1000] [--mode sotw|delta] [--change virtualservice|workload]
    python -m bench.ads_push --streams 100 --services 100          # a quick run

Pilot (a DiscoveryServer with the real generators) runs in a subprocess so that its CPU time and memory are
measured apart from the simulated sidecars, which run in this process on one event loop, multiplexed over a few
gRPC channels. Steps: build the mesh and the first snapshot; open N streams and wait until every stream has ACKed
CDS, EDS, LDS and RDS (initial sync); then change ONE VirtualService (``--change virtualservice``, the default) or
ONE WorkloadEntry's weight (``--change workload``) and measure, per stream, the time from the change until the
stream ACKed the new RDS (or EDS) response. That time includes Pilot's debounce (``--debounce``, 100ms by
default as in Pilot), so the minimum is about the debounce.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import math
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench._ads_clients import ClientStream, open_channels
from bench._ads_mesh import CHANGES, node_ids, serve_pilot
from bench._bytecode import compile_bytecode
from pilot.generate.registry import ENDPOINT_TYPE, ROUTE_TYPE

__all__ = ["main"]


class Pilot:
    """The Pilot subprocess, driven by one JSON line per command."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @staticmethod
    def command_line(args: argparse.Namespace) -> list[str]:
        """The subprocess's command line, from this benchmark's arguments (or another's with the same names)."""
        return [
            sys.executable,
            "-m",
            "bench.ads_push",
            "--serve",
            f"--streams={args.streams}",
            f"--services={args.services}",
            f"--namespaces={args.namespaces}",
            f"--debounce={args.debounce}",
            f"--change={args.change}",
            "--vhds" if args.vhds else "--no-vhds",
            *([f"--profile={args.profile}"] if args.profile else []),
            *([f"--port={port}"] if (port := getattr(args, "port", 0)) else []),
            *(
                [f"--new-streams-per-second={rate}"]
                if (rate := getattr(args, "new_streams_per_second", None)) is not None
                else []
            ),
        ]

    @classmethod
    async def start(cls, args: argparse.Namespace) -> tuple[Pilot, dict[str, Any]]:
        process = await asyncio.create_subprocess_exec(
            *cls.command_line(args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**20,
        )
        pilot = cls(process)
        return pilot, await pilot._reply(args.timeout)

    async def _reply(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"pilot exited (code {await self.process.wait()}); see its stderr above")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def command(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return await self._reply(timeout)

    async def quit(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.write(b"quit\n")
            await self.process.stdin.drain()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (sorted or not)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def _wait_all(events: Sequence[asyncio.Event], timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), timeout)
    except TimeoutError:
        done = sum(e.is_set() for e in events)
        raise SystemExit(f"ads_push: only {done}/{len(events)} streams {what} within {timeout:g}s") from None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pilot, started = await Pilot.start(args)
    channels = open_channels(started["port"], args.channels)
    streams = [
        ClientStream(channels[i % len(channels)], node, delta=args.mode == "delta")
        for i, node in enumerate(node_ids(services=args.services, namespaces=args.namespaces, streams=args.streams))
    ]
    client_cpu_start = _cpu()
    try:
        before_sync = await pilot.command("usage")
        opened = time.monotonic()
        for stream in streams:
            stream.start()
        await _wait_all([s.synced for s in streams], args.timeout, "synced")
        synced = max(s.synced_at for s in streams) - opened
        await asyncio.sleep(1.0)  # let the last ACKs land before the baseline
        before_push = await pilot.command("usage")
        for stream in streams:
            stream.expect_change(ENDPOINT_TYPE if args.change == "workload" else ROUTE_TYPE)
        changed_at = time.monotonic()
        await pilot.command("change")
        await _wait_all([s.changed for s in streams], args.timeout, f"got the new {CHANGES[args.change]}")
        await asyncio.sleep(0.5)
        after_push = await pilot.command("usage")
        convergence = await pilot.command("convergence")
        written, builds = convergence["seconds"], convergence["builds"]
        latencies = [s.changed_at - changed_at for s in streams]
        change_bytes = sum(s.change_bytes for s in streams)
    finally:
        for stream in streams:
            await stream.stop()
        for channel in channels:
            await channel.close()
        await pilot.quit()
    return {
        "args": vars(args),
        "configs": started["configs"],
        "startup_seconds": started["startup_seconds"],
        "pilot_cpu_startup": started["cpu"],
        "initial_sync_seconds": synced,
        "pilot_cpu_initial_sync": before_push["cpu"] - before_sync["cpu"],
        "push_p50": percentile(latencies, 0.50),
        "push_p99": percentile(latencies, 0.99),
        "push_max": max(latencies),
        "push_min": min(latencies),
        "pilot_cpu_push": after_push["cpu"] - before_push["cpu"],
        "push_mbytes": change_bytes / 1e6,
        "written_p50": percentile(written, 0.50) if written else float("nan"),
        "written_p99": percentile(written, 0.99) if written else float("nan"),
        "written_max": max(written, default=float("nan")),
        "written_streams": len(written),
        "push_build_seconds": builds[-1],
        "pilot_peak_rss_mib": after_push["peak_rss_mib"],
        "pilot_rss_after_sync_mib": before_push["rss_mib"],
        "pilot_rss_before_streams_mib": before_sync["rss_mib"],
        "client_cpu": _cpu() - client_cpu_start,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def report(result: dict[str, Any]) -> str:
    args = result["args"]
    rows = [
        (
            "mesh",
            f"{args['services']} services in {args['namespaces']} namespaces, {result['configs']} config resources",
        ),
        ("streams", f"{args['streams']} ({args['mode']}) over {args['channels']} gRPC channels"),
        (
            "Pilot start: mesh + snapshot",
            f"{result['startup_seconds']:.2f} s (Pilot CPU {result['pilot_cpu_startup']:.2f} s with imports)",
        ),
        ("initial sync", f"{result['initial_sync_seconds']:.2f} s (all streams ACKed CDS/EDS/LDS/RDS)"),
        ("Pilot CPU, initial sync", f"{result['pilot_cpu_initial_sync']:.2f} s"),
        (
            f"push: 1 {'WorkloadEntry' if args['change'] == 'workload' else 'VirtualService'} -> "
            f"{CHANGES[args['change']]} ACK",
            f"debounce {args['debounce'] * 1000:.0f} ms included",
        ),
        ("  p50", f"{result['push_p50'] * 1000:.0f} ms"),
        ("  p99", f"{result['push_p99'] * 1000:.0f} ms"),
        ("  max", f"{result['push_max'] * 1000:.0f} ms (min {result['push_min'] * 1000:.0f} ms)"),
        ("  bytes received, all streams", f"{result['push_mbytes']:.2f} MB (every response until 0.5 s after)"),
        ("Pilot CPU, push", f"{result['pilot_cpu_push']:.2f} s"),
        ("Pilot: snapshot + generation", f"{result['push_build_seconds'] * 1000:.0f} ms (worker thread)"),
        (
            "Pilot: change -> push written",
            f"p50 {result['written_p50'] * 1000:.0f} ms, p99 {result['written_p99'] * 1000:.0f} ms, "
            f"max {result['written_max'] * 1000:.0f} ms ({result['written_streams']} streams)",
        ),
        (
            "Pilot memory",
            f"peak RSS {result['pilot_peak_rss_mib']:.0f} MiB; RSS {result['pilot_rss_before_streams_mib']:.0f} MiB "
            f"before streams, {result['pilot_rss_after_sync_mib']:.0f} MiB after sync",
        ),
        ("client CPU (this process)", f"{result['client_cpu']:.2f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = ["ADS push benchmark", "-" * (width + 40)]
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.ads_push", description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="simulated sidecars (ADS streams), default 1000")
    parser.add_argument("--services", type=int, default=1000, help="services in the mesh, default 1000")
    parser.add_argument("--namespaces", type=int, default=5, help="namespaces the services spread over, default 5")
    parser.add_argument("--mode", choices=("sotw", "delta"), default="sotw", help="xDS variant, default sotw")
    parser.add_argument(
        "--vhds",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Pilot's --vhds: delta streams' route tables over VHDS (default on; the clients follow either way)",
    )
    parser.add_argument("--channels", type=int, default=8, help="gRPC channels the streams share, default 8")
    parser.add_argument("--debounce", type=float, default=0.1, help="Pilot's debounce in seconds, default 0.1")
    parser.add_argument(
        "--change",
        choices=tuple(CHANGES),
        default="virtualservice",
        help="the change measured: a VirtualService (RDS) or a WorkloadEntry's weight (EDS); default virtualservice",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a phase after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--profile", metavar="PATH", help="write a cProfile of Pilot's event loop thread to PATH")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # internal: the Pilot subprocess
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)  # internal: the Pilot's port
    parser.add_argument("--new-streams-per-second", type=float, help=argparse.SUPPRESS)  # internal: admission
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("streams", "services", "namespaces", "channels"):
        if getattr(args, name) < 1:
            raise SystemExit(f"ads_push: --{name} must be >= 1")
    if args.serve:
        serve = serve_pilot(
            services=args.services,
            namespaces=args.namespaces,
            streams=args.streams,
            debounce=args.debounce,
            change=args.change,
            port=args.port,
            new_streams_per_second=args.new_streams_per_second,
            vhds=args.vhds,
        )
        if args.profile:
            with cProfile.Profile() as profile:
                asyncio.run(serve)
            profile.dump_stats(args.profile)
        else:
            asyncio.run(serve)
        return 0
    compile_bytecode()  # the driver, before the Pilot it starts (--serve) is timed reading the bytecode
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
