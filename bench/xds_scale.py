"""Pilot at scale: memory per connected proxy, a reconnect storm, and two Pilots behind one address.

    python -m bench.xds_scale                                   # 1000 services; 1000 then 2000 streams
    python -m bench.xds_scale --steps 500,1000 --services 500   # smaller
    python -m bench.xds_scale --new-streams-per-second 0        # Pilot's admission limit off

Pilot (``bench.ads_push``'s subprocess: a DiscoveryServer with the real generators over the benchmark mesh, no
file parsing) runs in its own process, so its memory and CPU are its own; the simulated sidecars
(``bench._ads_clients``: ADS streams as Envoy opens them, every response ACKed) run in this one. Three parts:

1. **Memory per proxy**: Pilot's resident memory (``/proc/<pid>/statm``) with no stream, then after each step of
   ``--steps`` (streams opened at once, synced, one second to settle): RSS and what each stream added.
2. **Reconnect storm**: with the last step's streams connected and settled (the steady state), every stream is
   cancelled and reopened at once with the same node ids, as sidecars do when a Pilot behind a load balancer goes
   away; RSS sampled every 50 ms until all are synced again. A client stream that fails (gRPC's client refuses some
   calls opened while the cancelled ones are torn down) is opened again after a backoff, as Envoy does. Issue 13's
   target: the storm's peak at most 1.5x the steady RSS, new streams admitted at a bounded rate
   (``--new-streams-per-second``; Pilot's default is 100/s).
3. **Two Pilots behind one address**: the last step's streams opened at once against one fresh Pilot, then against
   two fresh Pilots listening on the same port (gRPC sets SO_REUSEPORT: the kernel spreads the ``--channels``
   connections between them); time until every stream synced and until every stream ACKed one VirtualService
   change (made in both Pilots at once, as both watch the same config). Each Pilot admits new streams at its own
   rate, so two admit twice as fast: with ``--new-streams-per-second 0`` the comparison is of the work alone.

The machine's two cores are shared by the Pilots and this process's clients: read the ratios of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench._ads_clients import ClientStream, open_channels
from bench._ads_mesh import node_ids
from bench._bytecode import compile_bytecode
from bench.ads_push import Pilot, percentile
from pilot.generate.registry import ROUTE_TYPE

__all__ = ["build_parser", "main", "pilot_args"]

_PAGE_MIB = resource.getpagesize() / 2**20
_SETTLE_SECONDS = 1.0
_SAMPLE_SECONDS = 0.05


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid`` now, in MiB."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_MIB


class RssSampler:
    """The highest RSS of some processes (summed) seen while running, sampled every 50 ms."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = pids
        self.peak = 0.0
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sample()

    def sample(self) -> None:
        self.peak = max(self.peak, sum(rss_mib(pid) for pid in self.pids))

    async def _sample(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(_SAMPLE_SECONDS)


@dataclass(frozen=True, slots=True)
class MemoryStep:
    streams: int
    sync_seconds: float  # from opening this step's new streams until every stream is synced
    rss_mib: float  # settled


@dataclass(frozen=True, slots=True)
class StormResult:
    streams: int
    steady_rss_mib: float
    peak_rss_mib: float
    resync_seconds: float  # from the reopening until every stream is synced again
    retries: int  # client streams that failed to open (gRPC refused the new call) and were opened again

    @property
    def peak_ratio(self) -> float:
        return self.peak_rss_mib / self.steady_rss_mib


@dataclass(frozen=True, slots=True)
class ShareResult:
    pilots: int
    streams: int
    sync_p50: float
    sync_p99: float
    sync_seconds: float  # until the last stream synced
    change_p50: float
    change_p99: float
    pilot_cpu: tuple[float, ...]  # each Pilot's CPU seconds over the sync and the change
    peak_rss_mib: float  # every Pilot together
    client_cpu: float = 0.0  # this process's (the simulated sidecars') CPU seconds over the same span
    span_seconds: float = 0.0  # that span: from opening the streams until every stream ACKed the change

    @property
    def cores_busy(self) -> float:
        """CPU of the Pilots and the clients together per second of the span: on a machine of N cores, N means
        that nothing could have gone faster there."""
        return (sum(self.pilot_cpu) + self.client_cpu) / self.span_seconds if self.span_seconds else 0.0


def pilot_args(args: argparse.Namespace, *, port: int = 0) -> argparse.Namespace:
    """What ``bench.ads_push.Pilot.start`` reads."""
    return argparse.Namespace(
        streams=max(args.steps),
        services=args.services,
        namespaces=args.namespaces,
        debounce=args.debounce,
        change="virtualservice",
        profile=None,
        timeout=args.timeout,
        port=port,
        new_streams_per_second=args.new_streams_per_second,
        vhds=args.vhds,
    )


def progress(text: str) -> None:
    print(f"xds_scale: {text}", file=sys.stderr, flush=True)


async def _synced(streams: Sequence[ClientStream], timeout: float, what: str) -> None:
    started = time.monotonic()
    waiting = asyncio.gather(*(stream.synced.wait() for stream in streams))
    try:
        while not waiting.done():
            if time.monotonic() - started > timeout:
                raise TimeoutError
            await asyncio.wait([waiting], timeout=10.0)
            if not waiting.done():
                done = sum(stream.synced.is_set() for stream in streams)
                progress(f"{what}: {done}/{len(streams)} streams synced after {time.monotonic() - started:.0f} s")
        progress(f"{what}: {len(streams)} streams synced after {time.monotonic() - started:.1f} s")
    except TimeoutError:
        waiting.cancel()
        stuck = [stream for stream in streams if not stream.synced.is_set()]
        for stream in stuck[:3]:
            progress(f"not synced: {stream.node_id}: {stream.responses} responses, ACKed {sorted(stream.acked)}")
        done = sum(stream.synced.is_set() for stream in streams)
        raise SystemExit(f"xds_scale: {what}: only {done}/{len(streams)} streams synced within {timeout:g}s") from None


def _open(channels: Sequence[Any], nodes: Sequence[str], *, delta: bool, first: int = 0) -> list[ClientStream]:
    streams = [ClientStream(channels[(first + i) % len(channels)], node, delta=delta) for i, node in enumerate(nodes)]
    for stream in streams:
        stream.start()
    return streams


async def _stop(streams: Sequence[ClientStream]) -> None:
    await asyncio.gather(*(stream.stop() for stream in streams))


async def memory_and_storm(args: argparse.Namespace) -> tuple[float, list[MemoryStep], StormResult | None]:
    """Parts 1 and 2 on one Pilot: (RSS with no stream, the steps, the storm)."""
    nodes = node_ids(services=args.services, namespaces=args.namespaces, streams=max(args.steps))
    delta = args.mode == "delta"
    pilot, started = await Pilot.start(pilot_args(args))
    pid = pilot.process.pid
    channels = open_channels(started["port"], args.channels)
    streams: list[ClientStream] = []
    try:
        await asyncio.sleep(_SETTLE_SECONDS)
        idle = rss_mib(pid)
        steps: list[MemoryStep] = []
        for count in args.steps:
            opened = time.monotonic()
            streams += _open(channels, nodes[len(streams) : count], delta=delta, first=len(streams))
            await _synced(streams, args.timeout, f"step {count}")
            synced = time.monotonic() - opened
            await asyncio.sleep(_SETTLE_SECONDS)
            steps.append(MemoryStep(count, synced, rss_mib(pid)))
        storm = None
        if not args.skip_storm:
            steady = rss_mib(pid)
            with RssSampler([pid]) as sampler:
                await _stop(streams)
                opened = time.monotonic()
                streams = _open(channels, nodes[: len(streams)], delta=delta)
                await _synced(streams, args.timeout, "reconnect storm")
                resynced = time.monotonic() - opened
                await asyncio.sleep(_SETTLE_SECONDS)
            storm = StormResult(len(streams), steady, sampler.peak, resynced, sum(s.retries for s in streams))
        return idle, steps, storm
    finally:
        await _stop(streams)
        for channel in channels:
            await channel.close()
        await pilot.quit()


async def shared_address(args: argparse.Namespace, pilots: int) -> ShareResult:
    """Part 3: the last step's streams at once against ``pilots`` fresh Pilots on one port; then one change."""
    count = max(args.steps)
    nodes = node_ids(services=args.services, namespaces=args.namespaces, streams=count)
    first, started = await Pilot.start(pilot_args(args))
    running = [first]
    streams: list[ClientStream] = []
    channels: list[Any] = []
    try:
        for _ in range(pilots - 1):
            running.append((await Pilot.start(pilot_args(args, port=started["port"])))[0])
        channels = open_channels(started["port"], args.channels)
        pids = [pilot.process.pid for pilot in running]
        before = [await pilot.command("usage") for pilot in running]
        client_before = time.process_time()
        with RssSampler(pids) as sampler:
            opened = time.monotonic()
            streams = _open(channels, nodes, delta=args.mode == "delta")
            await _synced(streams, args.timeout, f"{pilots} Pilot(s)")
            sync = [stream.synced_at - opened for stream in streams]
            await asyncio.sleep(_SETTLE_SECONDS)
            for stream in streams:
                stream.expect_change(ROUTE_TYPE)
            changed_at = time.monotonic()
            await asyncio.gather(*(pilot.command("change") for pilot in running))
            await asyncio.wait_for(asyncio.gather(*(stream.changed.wait() for stream in streams)), args.timeout)
            change = [stream.changed_at - changed_at for stream in streams]
            span, client_cpu = time.monotonic() - opened, time.process_time() - client_before
        after = [await pilot.command("usage") for pilot in running]
    finally:
        await _stop(streams)
        for channel in channels:
            await channel.close()
        for pilot in running:
            await pilot.quit()
    return ShareResult(
        pilots=pilots,
        streams=count,
        sync_p50=percentile(sync, 0.5),
        sync_p99=percentile(sync, 0.99),
        sync_seconds=max(sync),
        change_p50=percentile(change, 0.5),
        change_p99=percentile(change, 0.99),
        pilot_cpu=tuple(end["cpu"] - start["cpu"] for start, end in zip(before, after, strict=True)),
        peak_rss_mib=sampler.peak,
        client_cpu=client_cpu,
        span_seconds=span,
    )


def report(
    idle: float, steps: Sequence[MemoryStep], storm: StormResult | None, shares: Sequence[ShareResult], args: Any
) -> str:
    admission = "Pilot's default" if args.new_streams_per_second is None else f"{args.new_streams_per_second:g}/s"
    lines = [
        f"Pilot at scale: {args.services} services, {args.mode}, {args.channels} channels, admission {admission}",
        "",
        "1. Memory per connected proxy (RSS settled after every stream synced)",
        "",
        "| streams | RSS | per stream over no stream | all synced after |",
        "| --- | --- | --- | --- |",
        f"| 0 | {idle:.0f} MiB | - | - |",
    ]
    for step in steps:
        per_stream_kib = (step.rss_mib - idle) * 1024 / step.streams
        lines.append(
            f"| {step.streams} | {step.rss_mib:.0f} MiB | {per_stream_kib:.0f} KiB | {step.sync_seconds:.1f} s |"
        )
    if storm is not None:
        verdict = "within" if storm.peak_ratio <= 1.5 else "OVER"
        lines += [
            "",
            f"2. Reconnect storm: {storm.streams} streams cancelled and reopened at once",
            "",
            f"steady RSS {storm.steady_rss_mib:.0f} MiB, peak during the storm {storm.peak_rss_mib:.0f} MiB = "
            f"{storm.peak_ratio:.2f}x ({verdict} the 1.5x target); every stream synced again after "
            f"{storm.resync_seconds:.1f} s ({storm.retries} client streams failed to open and were retried, "
            "as Envoy retries its ADS stream)",
        ]
    if shares:
        lines += [
            "",
            f"3. {shares[0].streams} streams opened at once against one Pilot and against two on one port",
            "",
            "| | all synced | sync p50 / p99 | one VirtualService change p50 / p99 | Pilot CPU | peak RSS "
            f"| clients' CPU | cores busy (of {os.cpu_count()}) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for share in shares:
            cpu = " + ".join(f"{seconds:.1f}" for seconds in share.pilot_cpu)
            lines.append(
                f"| {share.pilots} Pilot{'s' if share.pilots > 1 else ''} | {share.sync_seconds:.1f} s | "
                f"{share.sync_p50:.1f} / {share.sync_p99:.1f} s | {share.change_p50 * 1000:.0f} / "
                f"{share.change_p99 * 1000:.0f} ms | {cpu} s | {share.peak_rss_mib:.0f} MiB | "
                f"{share.client_cpu:.1f} s | {share.cores_busy:.2f} |"
            )
        if len(shares) == 2:
            one, two = shares
            lines.append(
                f"\ntwo Pilots: all synced {one.sync_seconds / two.sync_seconds:.2f}x as fast, the change (p99) "
                f"{one.change_p99 / two.change_p99:.2f}x as fast as one"
            )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    idle, steps, storm = await memory_and_storm(args)
    shares = [] if args.skip_share else [await shared_address(args, 1), await shared_address(args, 2)]
    return {"idle_rss_mib": idle, "steps": steps, "storm": storm, "shares": shares}


def _counts(text: str) -> list[int]:
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"expected stream counts >= 1 separated by commas, got {text!r}")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.xds_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=_counts, default=[1000, 2000], help="stream counts, comma-separated (1000,2000)"
    )
    parser.add_argument("--services", type=int, default=1000, help="services in the mesh (1000)")
    parser.add_argument("--namespaces", type=int, default=5, help="namespaces the services spread over (5)")
    parser.add_argument("--mode", choices=("sotw", "delta"), default="sotw", help="xDS variant (sotw)")
    parser.add_argument(
        "--vhds",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Pilot's --vhds: delta streams' route tables over VHDS (default on; the clients follow either way)",
    )
    parser.add_argument("--channels", type=int, default=50, help="gRPC connections the streams share (50)")
    parser.add_argument("--debounce", type=float, default=0.1, help="Pilot's debounce in seconds (0.1)")
    parser.add_argument(
        "--new-streams-per-second", type=float, help="Pilot's admission rate (default: Pilot's, 100; 0: off)"
    )
    parser.add_argument("--skip-storm", action="store_true", help="skip part 2")
    parser.add_argument("--skip-share", action="store_true", help="skip part 3")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a phase after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    compile_bytecode()
    if args.services < 1 or args.namespaces < 1 or args.channels < 1:
        parser.error("--services, --namespaces and --channels must be at least 1")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps({key: _plain(value) for key, value in result.items()}, indent=2))
    else:
        print(report(result["idle_rss_mib"], result["steps"], result["storm"], result["shares"], args))
    return 0


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
