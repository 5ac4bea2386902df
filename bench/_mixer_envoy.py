"""The latency a policy adds to a request through real Envoy sidecars, for the Mixer benchmark
(``bench.mixer_policy``): no policy, a native RBAC policy and a Mixer check, measured in one run.

One ``LocalMesh`` with Pilot and Mixer (each in its own process) and the demo topology: productpage (the client)
and reviews-v1, -v2, -v3 with a real Envoy sidecar each; the reviews apps are ``python -m e2e.sample_app``
processes, so that serving them does not share the measuring event loop. The three reviews workloads differ only
in their policy:

- ``none``   -> reviews-v1: no policy (the sidecar has no authorization filter);
- ``rbac``   -> reviews-v2: AuthorizationPolicies compiled into Envoy's RBAC filter: a DENY (``end-user: mallory``)
  and an ALLOW (GET on ``/*`` with ``x-bench: rbac``), so every request goes through both rule sets;
- ``custom`` -> reviews-v3: a Mixer check (Envoy's ext_authz filter calling Mixer over gRPC): by default an
  AccessList denying ``end-user`` mallory (``--custom-kind accesslist``: ext_authz on every request), or an
  AuthorizationPolicy ``action: CUSTOM, provider: mixer`` on paths ``/*`` (``--custom-kind authorizationpolicy``:
  Istio's shadow-RBAC gate, then ext_authz).

A VirtualService routes by the ``x-bench`` header (none|rbac|custom) to subsets v1|v2|v3. Before measuring, each
variant is checked to reach its workload, and ``end-user: mallory`` to be refused where a policy says so (proof
that the policy is in force). Then requests leave productpage's address through its sidecar's HTTP proxy
(``:15001``) open-loop: request ``i`` is sent at ``start + i / rate`` whether or not earlier ones were answered,
the three variants interleaved (a shuffled order in every round of three), one keep-alive aiohttp session per
variant. Latency is client-side, from send to the last byte of the body; the time each send started late is
reported as schedule lag (the client's own health).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench._measure import Latencies, cpu_seconds, sample_sum
from e2e.harness import LocalMesh, find_free_subnet
from e2e.mesh_config import DEMO_CLIENT, DEMO_HOST, DEMO_WORKLOADS, REVIEWS_PORT, render_demo_mesh
from e2e.rules import reviews_virtual_service
from envoy_bootstrap.processes import kill_process, start_logged_process, stop_process
from meshplane.mixer_names import REASON_HEADER
from meshplane.names import HTTP_PROXY_PORT

__all__ = ["CUSTOM_KINDS", "VARIANTS", "EnvoyRun", "VariantResult", "run_envoy"]

VARIANTS = ("none", "rbac", "custom")
CUSTOM_KINDS = ("accesslist", "authorizationpolicy")
_SUBSETS = {"none": "v1", "rbac": "v2", "custom": "v3"}
_WORKLOADS = {variant: f"reviews-{subset}" for variant, subset in _SUBSETS.items()}
_URL = f"http://{DEMO_HOST}:{REVIEWS_PORT}/reviews/bench"
_USER = "alice"
_REFUSED_USER = "mallory"
_REQUEST_TIMEOUT_SECONDS = 5.0


def _policy(kind: str, name: str, version: str, spec: str) -> str:
    api_version = "security.istio.io/v1" if kind == "AuthorizationPolicy" else "mixer.meshplane.io/v1"
    return (
        f"apiVersion: {api_version}\nkind: {kind}\n"
        f"metadata:\n  name: {name}\n  namespace: default\n"
        f"spec:\n  selector:\n    matchLabels:\n      app: reviews\n      version: {version}\n{spec}"
    )


def policies_yaml(custom_kind: str) -> str:
    """The policies of reviews-v2 (RBAC) and reviews-v3 (a Mixer check); reviews-v1 has none."""
    rbac_deny = _policy(
        "AuthorizationPolicy",
        "bench-rbac-deny",
        "v2",
        "  action: DENY\n  rules:\n  - when:\n    - key: request.headers[end-user]\n      values: [mallory]\n",
    )
    rbac_allow = _policy(
        "AuthorizationPolicy",
        "bench-rbac-allow",
        "v2",
        "  action: ALLOW\n  rules:\n  - to:\n    - operation:\n        methods: [GET]\n        paths: ['/*']\n"
        "    when:\n    - key: request.headers[x-bench]\n      values: [rbac]\n",
    )
    if custom_kind == "accesslist":
        custom = _policy(
            "AccessList",
            "bench-blocked-users",
            "v3",
            '  value: request.headers["end-user"]\n  entries: [mallory]\n  entryType: STRINGS\n  mode: deny\n',
        )
    else:
        custom = _policy(
            "AuthorizationPolicy",
            "bench-custom",
            "v3",
            "  action: CUSTOM\n  provider:\n    name: mixer\n  rules:\n  - to:\n    - operation:\n"
            "        paths: ['/*']\n",
        )
    return "---\n".join((rbac_deny, rbac_allow, custom))


def routes_yaml() -> str:
    """x-bench: rbac -> v2, custom -> v3, anything else -> v1."""
    routes = "".join(
        f"- match:\n  - headers:\n      x-bench:\n        exact: {variant}\n"
        f"  route:\n  - destination:\n      host: reviews\n      subset: {_SUBSETS[variant]}\n"
        for variant in ("rbac", "custom")
    )
    return reviews_virtual_service(routes + "- route:\n  - destination:\n      host: reviews\n      subset: v1\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantResult:
    variant: str
    workload: str
    statuses: Mapping[str, int]  # HTTP status or client error name -> count
    latencies: Latencies  # of every request sent, whatever its status
    sidecar_cpu: float  # CPU seconds of the destination sidecar over the measured window

    @property
    def non_200(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "200")


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyRun:
    rate: float
    seconds: float  # the measured window (sends scheduled over it; answers may land later)
    custom_kind: str
    variants: tuple[VariantResult, ...]
    schedule_lag: Latencies
    verification: tuple[str, ...]
    client_sidecar_cpu: float
    mixer_cpu: float
    client_cpu: float
    mixer_checks: Mapping[str, int]  # mixer_checks_total by result over the measured window
    mixer_log_entries: int
    envoy_authz_stats: Mapping[str, int]  # reviews-v2 RBAC and reviews-v3 ext_authz counters over the window

    def variant(self, name: str) -> VariantResult:
        return next(result for result in self.variants if result.variant == name)


class _Apps:
    """The reviews sample apps, one process each."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self, mesh: LocalMesh) -> None:
        reviews = [spec for spec in DEMO_WORKLOADS if spec.service is not None]
        for spec in reviews:
            command = [
                sys.executable,
                *("-m", "e2e.sample_app", "--service", str(spec.service), "--version", spec.version),
                *("--workload", spec.name, "--address", mesh.address(spec.host), "--port", str(spec.app_port)),
            ]
            self.processes.append(await start_logged_process(command, self.workdir / f"app-{spec.name}.log"))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
            for spec in reviews:
                await _wait_serving(session, f"http://{mesh.address(spec.host)}:{spec.app_port}/", self.workdir)

    async def stop(self) -> None:
        for process in self.processes:
            try:
                await stop_process(process, name="sample_app")
            finally:
                kill_process(process)
        self.processes.clear()


async def _wait_serving(session: aiohttp.ClientSession, url: str, workdir: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url) as response:
                if response.status == 200:
                    return
        if time.monotonic() > deadline:
            raise RuntimeError(f"sample app at {url} not serving after {timeout:g}s; logs in {workdir}")
        await asyncio.sleep(0.1)


async def _start_mesh(mesh: LocalMesh, custom_kind: str) -> None:
    await mesh.apply("00-reviews-mesh", render_demo_mesh(mesh.subnet))
    await mesh.apply("10-reviews-routes", routes_yaml())
    await mesh.apply("20-bench-policies", policies_yaml(custom_kind))
    await mesh.start_workloads(DEMO_WORKLOADS, sample_apps=False)
    configz = await mesh.wait_synced(timeout=30.0)
    if configz.get("rejected"):
        raise RuntimeError(f"the benchmark config was rejected: {configz['rejected']}")


async def _verify(mesh: LocalMesh, custom_kind: str) -> tuple[str, ...]:
    """Every variant reaches its workload; mallory is refused by the policies that refuse her (a policy in force)."""
    lines: list[str] = []
    for variant in VARIANTS:
        expected = _WORKLOADS[variant]
        deadline = time.monotonic() + 10.0
        while True:  # the first requests may race the inbound listeners' warm-up
            response = await mesh.request(DEMO_CLIENT.name, _URL, headers={"x-bench": variant, "end-user": _USER})
            if response.status == 200 and response.workload == expected:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"x-bench: {variant}: expected 200 from {expected}, got {response}")
            await asyncio.sleep(0.2)
        refused = await mesh.request(DEMO_CLIENT.name, _URL, headers={"x-bench": variant, "end-user": _REFUSED_USER})
        if variant == "none" or (variant == "custom" and custom_kind == "authorizationpolicy"):
            wanted, by = 200, "no policy refuses her"
            ok = refused.status == 200
        elif variant == "rbac":
            wanted, by = 403, "Envoy RBAC"
            ok = refused.status == 403 and refused.text.strip() == "RBAC: access denied"
        else:
            wanted, by = 403, f"Mixer ({REASON_HEADER}: {refused.headers.get(REASON_HEADER, '-')})"
            ok = refused.status == 403 and REASON_HEADER in refused.headers
        if not ok:
            raise RuntimeError(f"x-bench: {variant}, end-user {_REFUSED_USER}: expected {wanted}, got {refused}")
        lines.append(f"{variant}: 200 from {expected}; end-user {_REFUSED_USER} -> {refused.status} ({by})")
    return tuple(lines)


async def _envoy_counters(mesh: LocalMesh) -> dict[str, int]:
    """reviews-v2's RBAC allowed/denied and reviews-v3's ext_authz ok/denied/error counters of the HTTP filters
    (``http.<stat prefix>.``, summed over listeners). Every RBAC filter counts: a request through the DENY and the
    ALLOW filter counts twice in ``rbac.allowed``."""
    counters: dict[str, int] = {}
    wanted = (
        ("reviews-v2", "rbac", ("rbac.allowed", "rbac.denied")),
        ("reviews-v3", "ext_authz", ("ext_authz.ok", "ext_authz.denied", "ext_authz.error")),
    )
    for workload, stat_filter, suffixes in wanted:
        response = await mesh.workloads[workload].envoy.admin_get(f"/stats?filter={stat_filter}")
        for line in response.body.splitlines():
            name, _, value = line.partition(": ")
            suffix = next((s for s in suffixes if name.startswith("http.") and name.endswith("." + s)), None)
            if suffix is not None and value.strip().isdigit():
                key = f"{workload} {suffix}"
                counters[key] = counters.get(key, 0) + int(value)
    return counters


async def _send(session: aiohttp.ClientSession, proxy: str, variant: str) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        async with session.get(_URL, headers={"x-bench": variant, "end-user": _USER}, proxy=proxy) as response:
            await response.read()
            status = str(response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        status = type(exc).__name__
    return status, time.perf_counter() - started


async def _open_loop(
    sessions: Mapping[str, aiohttp.ClientSession], proxy: str, *, rate: float, seconds: float, seed: int
) -> tuple[list[tuple[str, str, float]], list[float]]:
    """``rate * seconds`` requests sent at fixed intervals, variants interleaved; (variant, status, latency) per
    request and the lag of every send behind its schedule."""
    rng = random.Random(seed)
    total = max(len(VARIANTS), round(rate * seconds))
    order: list[str] = []
    while len(order) < total:
        round_ = list(VARIANTS)
        rng.shuffle(round_)
        order += round_
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    lags: list[float] = []
    tasks: list[asyncio.Task[tuple[str, float]]] = []
    for i, variant in enumerate(order[:total]):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, loop.time() - due))
        tasks.append(asyncio.create_task(_send(sessions[variant], proxy, variant)))
    answers = await asyncio.gather(*tasks)
    return [(variant, status, latency) for variant, (status, latency) in zip(order, answers, strict=False)], lags


def _sessions(client_address: str) -> dict[str, aiohttp.ClientSession]:
    return {
        variant: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(client_address, 0), limit=0),
            timeout=aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_SECONDS),
        )
        for variant in VARIANTS
    }


async def _measure(mesh: LocalMesh, *, rate: float, seconds: float, warmup: float, custom_kind: str) -> EnvoyRun:
    assert mesh.mixer is not None
    verification = await _verify(mesh, custom_kind)
    client = mesh.workloads[DEMO_CLIENT.name]
    proxy = f"http://{client.address}:{HTTP_PROXY_PORT}"
    mixer_pid = mesh.mixer.pid
    sessions = _sessions(client.address)
    try:
        if warmup > 0:
            await _open_loop(sessions, proxy, rate=rate, seconds=warmup, seed=1)
        await asyncio.sleep(1.2)  # let the sidecars flush the warm-up's access logs to Mixer
        metrics_before = await mesh.mixer.metrics_text()
        counters_before = await _envoy_counters(mesh)
        pids = {name: workload.envoy.pid for name, workload in mesh.workloads.items()}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        mixer_cpu_before, client_cpu_before = cpu_seconds(mixer_pid), time.process_time()
        answers, lags = await _open_loop(sessions, proxy, rate=rate, seconds=seconds, seed=2)
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        mixer_cpu, client_cpu = cpu_seconds(mixer_pid) - mixer_cpu_before, time.process_time() - client_cpu_before
        await asyncio.sleep(1.2)  # access logs of the last requests
        metrics_after = await mesh.mixer.metrics_text()
        counters_after = await _envoy_counters(mesh)
    finally:
        for session in sessions.values():
            await session.close()
    variants = []
    for variant in VARIANTS:
        mine = [(status, latency) for name, status, latency in answers if name == variant]
        variants.append(
            VariantResult(
                variant=variant,
                workload=_WORKLOADS[variant],
                statuses=dict(Counter(status for status, _ in mine)),
                latencies=Latencies.of([latency for _, latency in mine]),
                sidecar_cpu=cpu[_WORKLOADS[variant]],
            )
        )
    checks = {
        result: round(
            sample_sum(metrics_after, "mixer_checks_total", result=result)
            - sample_sum(metrics_before, "mixer_checks_total", result=result)
        )
        for result in ("allowed", "denied", "rate_limited", "error")
    }
    return EnvoyRun(
        rate=rate,
        seconds=seconds,
        custom_kind=custom_kind,
        variants=tuple(variants),
        schedule_lag=Latencies.of(lags),
        verification=verification,
        client_sidecar_cpu=cpu[DEMO_CLIENT.name],
        mixer_cpu=mixer_cpu,
        client_cpu=client_cpu,
        mixer_checks={result: count for result, count in checks.items() if count},
        mixer_log_entries=round(
            sample_sum(metrics_after, "mixer_log_entries_total") - sample_sum(metrics_before, "mixer_log_entries_total")
        ),
        envoy_authz_stats={
            name: counters_after.get(name, 0) - counters_before.get(name, 0) for name in sorted(counters_after)
        },
    )


async def run_envoy(
    *, rate: float, seconds: float, warmup: float, custom_kind: str, workdir: Path | None = None
) -> EnvoyRun:
    """Start the mesh (Pilot, Mixer, four sidecars, three apps) in ``workdir`` (default: a temporary directory,
    removed afterwards), measure, stop everything."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="bench-mixer-") as temporary:
            return await _run_in(Path(temporary), rate=rate, seconds=seconds, warmup=warmup, custom_kind=custom_kind)
    return await _run_in(workdir, rate=rate, seconds=seconds, warmup=warmup, custom_kind=custom_kind)


async def _run_in(workdir: Path, *, rate: float, seconds: float, warmup: float, custom_kind: str) -> EnvoyRun:
    mesh = LocalMesh(
        workdir=workdir / "mesh",
        subnet=find_free_subnet(),
        mixer=True,
        envoy_log_level="warning",
        pilot_log_level="warning",
    )
    apps = _Apps(workdir)
    async with mesh:
        try:
            await apps.start(mesh)
            await _start_mesh(mesh, custom_kind)
            return await _measure(mesh, rate=rate, seconds=seconds, warmup=warmup, custom_kind=custom_kind)
        finally:
            await apps.stop()
