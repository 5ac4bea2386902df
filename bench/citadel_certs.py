"""Citadel benchmark: certificates per second through the CSR API and over SDS, and the time to hand N workloads
their first certificate over SDS (N streams opened at once).

    python -m bench.citadel_certs [--workloads 1000] [--csr 1000] [--concurrency 50] [--key-type ecdsa|rsa]
    python -m bench.citadel_certs --reference [REV] [--rounds 5]    # beside an earlier revision's Citadel
    python -m bench.citadel_certs --workloads 100 --csr 100          # a quick run

Citadel runs as ``python -m citadel`` in a subprocess (its CPU time is read from /proc), over TLS on loopback,
with a fresh CA directory. The clients run in this process on one event loop:

- CSR: ``--csr`` CreateCertificate calls, ``--concurrency`` in flight, with CSRs made beforehand (the workloads'
  key generation is not counted; Citadel's signing is);
- SDS: ``--workloads`` SotW streams, each with its own token and identity, all opened at once and each
  subscribing to ``default`` and ``ROOTCA``; measured until every stream has its first certificate (Citadel makes
  the key and signs). Throughput is workloads / that time.

``--reference REV`` (``make bench`` gives the code before issue 13, ``REFERENCE_REVISION``) also runs that revision's
Citadel (``bench._reference_tree``: ``git archive`` of this checkout's history into a temporary directory, its
protobuf code built there) under the same clients, alternating with this checkout's for ``--rounds`` rounds (the
order flips every round), and prints both with the medians' ratio beside issue 13's targets: at least 1.5x the
reference's ECDSA certificates per CPU-second over the CSR API, and every first certificate within 1 s of
connecting when 1000 workloads connect at once. Single runs on the shared 2-core machine vary by up to 2x: read
the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import CertificateSigningRequestBuilder, Name, SubjectAlternativeName, UniformResourceIdentifier
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from envoy.service.secret.v3 import sds_pb2_grpc

from bench._bytecode import compile_bytecode
from bench._measure import cpu_seconds, free_port
from bench._reference_tree import ReferenceTree, ReferenceTreeError
from citadel.ca_dir import TRUST_BUNDLE, load_or_create_token_key
from citadel.profiling import PROFILE_ENV
from citadel.sds_resources import SECRET_TYPE
from citadel.tokens import issue_token
from citadel.v1 import ca_pb2, ca_pb2_grpc
from e2e.control_plane import CitadelProcess
from meshplane.identity import CITADEL_SERVER_NAME, spiffe_id

__all__ = ["main"]

TRUST_DOMAIN = "cluster.local"
REFERENCE_REVISION = "a2e69333e707c7c8a69ef21998aa7921ef6bec28"  # the last commit before issue 13 changed Citadel
CERTIFICATES_PER_CPU_TARGET = 1.5  # issue 13: x the reference's ECDSA certificates per CPU-second (CSR API)
FIRST_CERTIFICATES_TARGET_SECONDS = 1.0  # issue 13: every workload's first certificate, 1000 connecting at once


class ReferenceCitadelProcess(CitadelProcess):
    """Citadel of an earlier revision (``bench._reference_tree``), with the same arguments."""

    def __init__(self, tree: ReferenceTree, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tree = tree

    def command(self) -> list[str]:
        return self.tree.command(self.name, self.arguments)


class Citadel:
    """The Citadel subprocess: the harness's ``CitadelProcess`` on free loopback ports, plus client channels."""

    def __init__(self, ca_dir: Path, key_type: str, reference: ReferenceTree | None = None) -> None:
        self.ca_dir = ca_dir
        self.profile_path = ca_dir.parent / "citadel.prof"
        settings: dict[str, Any] = {
            "ca_dir": ca_dir,
            "workdir": ca_dir.parent,
            "sds_address": f"127.0.0.1:{free_port()}",
            "monitor_address": f"127.0.0.1:{free_port()}",
            "extra_arguments": ("--key-type", key_type),
            "log_level": "warning",
        }
        self.process = (
            CitadelProcess(**settings) if reference is None else ReferenceCitadelProcess(reference, **settings)
        )

    async def start(self, timeout: float = 30.0, *, profile: bool = False) -> None:
        if profile:
            os.environ[PROFILE_ENV] = str(self.profile_path)  # inherited by the Citadel process only
        try:
            await self.process.start(ready_timeout=timeout)
        finally:
            os.environ.pop(PROFILE_ENV, None)

    @property
    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def thread_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds by thread kind: the event loop (the main thread), gRPC's C threads (named by gRPC), the
        other Python threads (asyncio.to_thread workers: RSA keys and an RSA signer's certificates; ECDSA certificates
        are issued on the event loop)."""
        pid = self.process.pid
        split = {"event loop": 0.0, "grpc threads": 0.0, "worker threads": 0.0}
        if pid is None:
            return split
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                name = (task / "comm").read_text().strip()
            except OSError:
                continue
            seconds = _task_cpu(task)  # /proc/<pid>/stat would be the whole process
            kind = "event loop" if task.name == str(pid) else "worker threads" if name == "python" else "grpc threads"
            split[kind] += seconds
        return split

    def channel(self) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(root_certificates=(self.ca_dir / TRUST_BUNDLE).read_bytes())
        options = (("grpc.ssl_target_name_override", CITADEL_SERVER_NAME), ("grpc.use_local_subchannel_pool", 1))
        return grpc.aio.secure_channel(self.process.sds_address, credentials, options=options)

    async def stop(self) -> None:
        await self.process.stop(timeout=10.0)


def _task_cpu(task: Path) -> float:
    try:
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tokens(ca_dir: Path, count: int) -> list[tuple[str, str]]:
    """(SPIFFE ID, token) for ``count`` workloads, one service account each."""
    key = load_or_create_token_key(ca_dir)
    return [
        (
            spiffe_id(TRUST_DOMAIN, "bench", f"w{i}"),
            issue_token(
                key, trust_domain=TRUST_DOMAIN, namespace="bench", service_account=f"w{i}", ttl=timedelta(hours=1)
            ),
        )
        for i in range(count)
    ]


def _csr(identity: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = CertificateSigningRequestBuilder().subject_name(Name([]))
    builder = builder.add_extension(SubjectAlternativeName([UniformResourceIdentifier(identity)]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def bench_csr(citadel: Citadel, count: int, concurrency: int, channels: int) -> dict[str, Any]:
    workloads = _tokens(citadel.ca_dir, count)
    requests = [(token, _csr(identity)) for identity, token in workloads]
    pool = [citadel.channel() for _ in range(channels)]
    stubs = [ca_pb2_grpc.CertificateServiceStub(channel) for channel in pool]
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def create(index: int, token: str, csr: str) -> None:
        async with gate:
            started = time.perf_counter()
            response = await stubs[index % len(stubs)].CreateCertificate(
                ca_pb2.CreateCertificateRequest(csr_pem=csr),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=60,
            )
            latencies.append(time.perf_counter() - started)
            assert len(response.cert_chain) == 2

    cpu_before = citadel.cpu_seconds
    started = time.perf_counter()
    await asyncio.gather(*(create(i, token, csr) for i, (token, csr) in enumerate(requests)))
    elapsed = time.perf_counter() - started
    cpu = citadel.cpu_seconds - cpu_before
    for channel in pool:
        await channel.close()
    return {
        "certificates": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "citadel_cpu_s": cpu,
        **_summary(latencies),
    }


async def bench_sds(citadel: Citadel, count: int, channels: int) -> dict[str, Any]:
    workloads = _tokens(citadel.ca_dir, count)
    pool = [citadel.channel() for _ in range(channels)]
    for channel in pool:
        await channel.channel_ready()
    stubs = [sds_pb2_grpc.SecretDiscoveryServiceStub(channel) for channel in pool]
    first: list[float] = []
    release = asyncio.Event()
    calls: list[Any] = []

    async def workload(index: int, token: str) -> None:
        request = DiscoveryRequest(type_url=SECRET_TYPE, resource_names=["default", "ROOTCA"])

        async def requests() -> Any:
            yield request
            await release.wait()

        call = stubs[index % len(stubs)].StreamSecrets(requests(), metadata=(("authorization", f"Bearer {token}"),))
        calls.append(call)
        response = await call.read()
        assert response is not grpc.aio.EOF and len(response.resources) == 2, response
        first.append(time.perf_counter() - started)

    cpu_before, client_before = citadel.cpu_seconds, time.process_time()
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(workload(i, token) for i, (_, token) in enumerate(workloads))), 600)
    elapsed = time.perf_counter() - started
    cpu, client_cpu = citadel.cpu_seconds - cpu_before, time.process_time() - client_before
    release.set()
    for call in calls:
        call.cancel()
    for channel in pool:
        await channel.close()
    return {
        "workloads": count,
        "seconds_to_all_first_certificates": elapsed,
        "per_second": count / elapsed,
        "citadel_cpu_s": cpu,
        "client_cpu_s": client_cpu,  # this process's: is Citadel the one that bounds the time?
        **_summary(first),
    }


async def run(args: argparse.Namespace, reference: ReferenceTree | None = None) -> dict[str, Any]:
    """One round: a fresh Citadel (``reference``'s, or this checkout's), the CSR API, then SDS."""
    workdir = Path(tempfile.mkdtemp(prefix="citadel-bench-"))
    citadel = Citadel(workdir / "ca", args.key_type, reference)
    try:
        await citadel.start(profile=args.profile and reference is None)
        result: dict[str, Any] = {"key_type": args.key_type, "cpus": os.cpu_count()}
        if args.csr:
            result["csr"] = await bench_csr(citadel, args.csr, args.concurrency, args.channels)
        if args.workloads:
            result["sds"] = await bench_sds(citadel, args.workloads, args.channels)
        result["threads_cpu_s"] = citadel.thread_cpu_seconds()
        await citadel.stop()
        if args.profile and citadel.profile_path.exists():
            result["event_loop_profile"] = _loop_split(citadel.profile_path)
        return result
    finally:
        await citadel.stop()
        shutil.rmtree(workdir, ignore_errors=True)


_LOOP_PHASES = {  # phase -> the (file suffix, function) pairs whose cumulative time is it in the loop's profile
    "token check": (("citadel/authn.py", "identity"),),
    "SDS stream (xDS core, resources)": (("citadel/sds_streams.py", "serve"),),
    "issuing (inline)": (("citadel/authority.py", "issue_workload"), ("citadel/authority.py", "sign_csr")),
    "metrics": (("opentelemetry/sdk/metrics/_internal/instrument.py", "add"), ("citadel/metrics.py", "issued")),
    "logging": (("structlog/_native.py", "meth"),),
}


def _loop_split(path: Path) -> dict[str, float]:
    """Seconds of the event loop's profile in each phase (cumulative, so nested phases are not additive), with
    the whole loop and epoll's wait beside them."""
    stats: Any = pstats.Stats(str(path)).stats  # {(file, line, function): (cc, nc, tottime, cumtime, callers)}
    split = {name: 0.0 for name in _LOOP_PHASES} | {"epoll wait (idle)": 0.0, "event loop total": 0.0}
    for (file, _line, function), (_cc, _nc, tottime, cumtime, _callers) in stats.items():
        for name, functions in _LOOP_PHASES.items():
            if any(file.endswith(suffix) and function == wanted for suffix, wanted in functions):
                split[name] += cumtime
        if function == "<method 'poll' of 'select.epoll' objects>":
            split["epoll wait (idle)"] += tottime
        if function == "_run_once":
            split["event loop total"] += cumtime
    return split


def report(result: dict[str, Any]) -> str:
    lines = [f"Citadel ({result['key_type']} workload keys, {result['cpus']} CPUs), TLS over loopback"]
    if "csr" in result:
        csr = result["csr"]
        lines.append(
            f"  CSR API   {csr['certificates']:>5} certificates in {csr['seconds']:6.2f}s = {csr['per_second']:7.1f}/s"
            f"   latency p50 {csr['p50_ms']:.1f}ms p99 {csr['p99_ms']:.1f}ms   Citadel CPU {csr['citadel_cpu_s']:.2f}s"
        )
    if "sds" in result:
        sds = result["sds"]
        lines.append(
            f"  SDS       {sds['workloads']:>5} workloads' first certificates in "
            f"{sds['seconds_to_all_first_certificates']:6.2f}s = {sds['per_second']:7.1f}/s"
            f"   per stream p50 {sds['p50_ms']:.0f}ms p99 {sds['p99_ms']:.0f}ms"
            f"   Citadel CPU {sds['citadel_cpu_s']:.2f}s (clients {sds['client_cpu_s']:.2f}s)"
        )
    threads = result.get("threads_cpu_s", {})
    lines.append("  Citadel CPU by thread: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in threads.items()))
    if "event_loop_profile" in result:
        lines.append(
            "  event loop profile (cProfile, wall s): "
            + ", ".join(f"{name} {seconds:.2f}" for name, seconds in result["event_loop_profile"].items())
        )
    return "\n".join(lines)


def certificates_per_cpu_second(result: dict[str, Any]) -> float | None:
    """The CSR API's certificates per second of Citadel's CPU in one round (None without the CSR part)."""
    csr = result.get("csr")
    if not csr or csr["citadel_cpu_s"] <= 0:
        return None
    return float(csr["certificates"]) / float(csr["citadel_cpu_s"])


def first_certificates_seconds(result: dict[str, Any]) -> float | None:
    """Seconds until every SDS workload of one round had its first certificate (None without the SDS part)."""
    sds = result.get("sds")
    return None if not sds else float(sds["seconds_to_all_first_certificates"])


async def compare(args: argparse.Namespace, tree: ReferenceTree) -> dict[str, Any]:
    """``args.rounds`` rounds of the reference's Citadel and this checkout's, the order flipped every round."""
    rounds: list[dict[str, Any]] = []
    for index in range(args.rounds):
        order = ("reference", "current") if index % 2 == 0 else ("current", "reference")
        results = {side: await run(args, tree if side == "reference" else None) for side in order}
        rounds.append(results)
    return {
        "key_type": args.key_type,
        "reference": {"revision": tree.revision, "commit": tree.commit},
        "rounds": rounds,
    }


def _median(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _spread(values: Sequence[float | None], digits: int) -> str:
    """The median and the range of the rounds that have the number ("-" when none has)."""
    median = _median(values)
    if median is None:
        return "-"
    known = [value for value in values if value is not None]
    return f"{median:.{digits}f} ({min(known):.{digits}f}-{max(known):.{digits}f})"


def comparison_report(comparison: dict[str, Any]) -> str:
    """Both sides' medians (and ranges) over the rounds, the ratio, and issue 13's two targets."""
    rounds = comparison["rounds"]
    reference = comparison["reference"]
    sides = {"reference": f"reference {reference['commit'][:10]}", "current": "this checkout"}
    per_cpu = {side: [certificates_per_cpu_second(r[side]) for r in rounds] for side in sides}
    first = {side: [first_certificates_seconds(r[side]) for r in rounds] for side in sides}
    per_second = {side: [r[side]["csr"]["per_second"] if "csr" in r[side] else None for r in rounds] for side in sides}
    lines = [
        f"Citadel ({comparison['key_type']} workload keys), {len(rounds)} alternating rounds of the reference "
        f"({reference['revision']}) and this checkout",
        "",
        "| | CSR API certificates per CPU-second | CSR API certificates/s | SDS: all first certificates (s) |",
        "| --- | --- | --- | --- |",
    ]
    for side, label in sides.items():
        lines.append(
            f"| {label} | {_spread(per_cpu[side], 0)} | {_spread(per_second[side], 0)} | {_spread(first[side], 2)} |"
        )
    mine, theirs = _median(per_cpu["current"]), _median(per_cpu["reference"])
    if mine is not None and theirs:
        ratio = mine / theirs
        verdict = "met" if ratio >= CERTIFICATES_PER_CPU_TARGET else "not met"
        lines.append(
            f"certificates per CPU-second, medians: {ratio:.2f}x the reference "
            f"(issue 13: at least {CERTIFICATES_PER_CPU_TARGET}x): {verdict}"
        )
    within = [seconds for seconds in first["current"] if seconds is not None]
    if within:
        inside = sum(seconds <= FIRST_CERTIFICATES_TARGET_SECONDS for seconds in within)
        lines.append(
            f"every first certificate within {FIRST_CERTIFICATES_TARGET_SECONDS:g} s of connecting: "
            f"{inside} of {len(within)} rounds (issue 13: every round)"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.citadel_certs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", type=int, default=1000, help="SDS streams opened at once (0: skip SDS)")
    parser.add_argument("--csr", type=int, default=1000, help="CreateCertificate calls (0: skip the CSR API)")
    parser.add_argument("--concurrency", type=int, default=50, help="CSR calls in flight")
    parser.add_argument("--channels", type=int, default=8, help="gRPC channels (TLS connections) the clients share")
    parser.add_argument("--key-type", choices=("ecdsa", "rsa"), default="ecdsa", help="keys Citadel makes over SDS")
    parser.add_argument(
        "--profile", action="store_true", help="run Citadel's event loop under cProfile (CITADEL_PROFILE) and split it"
    )
    parser.add_argument(
        "--reference",
        metavar="REV",
        nargs="?",
        const=REFERENCE_REVISION,
        help=f"also run REV's Citadel, alternating (no REV: {REFERENCE_REVISION[:10]}, the code before issue 13)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds with --reference (5)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    compile_bytecode()
    if args.workloads < 0 or args.csr < 0 or args.concurrency < 1 or args.channels < 1 or args.rounds < 1:
        build_parser().error("--workloads/--csr must be >= 0, --concurrency/--channels/--rounds >= 1")
    if args.reference is None:
        result = asyncio.run(run(args))
        print(json.dumps(result, indent=2) if args.json else report(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="citadel-reference-") as directory:
        try:
            tree = ReferenceTree.extract(args.reference, Path(directory))
            tree.check_imports("citadel")
        except ReferenceTreeError as exc:  # e.g. a shallow clone: this checkout is measured alone, saying why
            print(f"bench.citadel_certs: no reference run ({exc}); this checkout alone:", file=sys.stderr)
            result = asyncio.run(run(args))
            print(json.dumps(result, indent=2) if args.json else report(result))
            return 0
        comparison = asyncio.run(compare(args, tree))
    print(json.dumps(comparison, indent=2) if args.json else comparison_report(comparison))
    return 0


if __name__ == "__main__":
    sys.exit(main())
