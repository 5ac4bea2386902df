"""The latency a policy adds to a request through real Envoy sidecars, for the Mixer benchmark
(``bench.mixer_policy``): no policy, a native RBAC policy and a Mixer check, measured in one run.

One pod world (``e2e.pod_mesh``, needs root): Pilot and Mixer on the host, each in its own process (Mixer on the pod
network's gateway, where the sidecars connect to it directly: ``pod run --mixer-direct``; or with ``mixer_path``
``relay`` on the host's loopback, relayed into each pod by its ``pod run``), and pods on a pod network of the run's own,
each a network namespace with the capture rules and a real Envoy sidecar (uid 1337): productpage (the client) and
reviews-v1, -v2, -v3, whose apps are ``e2e.pod_app`` (a stdlib HTTP server). The three reviews workloads differ only in
their policy:

- ``none``   -> reviews-v1: no policy (the sidecar has no authorization filter);
- ``rbac``   -> reviews-v2: AuthorizationPolicies compiled into Envoy's RBAC filter: a DENY (``end-user: mallory``)
  and an ALLOW (GET on ``/*`` with ``x-bench: rbac``), so every request goes through both rule sets;
- ``custom`` -> reviews-v3: a Mixer check (Envoy's ext_authz filter calling Mixer over gRPC): by default an
  AccessList denying ``end-user`` mallory (``--custom-kind accesslist``: ext_authz on every request), or an
  AuthorizationPolicy ``action: CUSTOM, provider: mixer`` on paths ``/*`` (``--custom-kind authorizationpolicy``:
  Istio's shadow-RBAC gate, then ext_authz).

A VirtualService routes by the ``x-bench`` header (none|rbac|custom) to subsets v1|v2|v3. Before measuring, each
variant is checked to reach its workload, and ``end-user: mallory`` to be refused where a policy says so (proof
that the policy is in force). Then the load generator (``bench._pod_load``), started in the productpage pod by
``meshplane pod exec`` as an unmodified app (no proxy settings), calls ``http://reviews:9080/...`` open-loop:
request ``i`` is sent at ``start + i / rate`` whether or not earlier ones were answered, the three variants
interleaved (a shuffled order in every round of three), keep-alive connections per variant. Its connections are
captured by the pod's iptables rules into productpage's sidecar (virtualOutbound 15001 -> ``0.0.0.0_9080``) and
arrive at the reviews pod's virtualInbound (15006), where the policy is enforced. Latency is client-side, from send
to the last byte of the body; the time each send started late is reported as schedule lag (the client's own
health)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench._measure import Latencies, cpu_seconds, free_port, sample_sum
from bench._mixer_process import MixerStandinProcess
from bench._pod_client import LoadAnswers, LoadGenerator, admin_counters, sidecar_pid
from e2e.pod_mesh import NAMESPACE, REVIEWS_URL, PodMesh, pod_mesh
from e2e.rules import reviews_virtual_service
from meshplane.mixer_names import REASON_HEADER

__all__ = [
    "CUSTOM_KINDS",
    "MIXER_PATHS",
    "VARIANTS",
    "CheckRound",
    "EnvoyRun",
    "StandinRun",
    "VariantResult",
    "run_envoy",
    "variants_of",
]

VARIANTS = ("none", "rbac", "custom")
CHECK_VARIANTS = frozenset({"custom", "relay"})  # the variants whose destination asks Mixer
CUSTOM_KINDS = ("accesslist", "authorizationpolicy")
# how the sidecars reach Mixer: ``pod run --mixer-direct``, its relay, or both side by side (reviews-v3 directly,
# reviews-v4 through its pod's relay: variant ``relay``, interleaved with the others in the same window)
MIXER_PATHS = ("direct", "relay", "both")
_SUBSETS = {"none": "v1", "rbac": "v2", "custom": "v3", "relay": "v4"}
_WORKLOADS = {variant: f"reviews-{subset}" for variant, subset in _SUBSETS.items()}
_CLIENT = "productpage"
_URL = f"{REVIEWS_URL}reviews/bench"
_USER = "alice"
_REFUSED_USER = "mallory"
_REQUEST_TIMEOUT_SECONDS = 5.0
_LOG_FLUSH_SECONDS = 1.2  # the sidecars flush access logs to Mixer every 250 ms; a little more than that, twice


def _policy(kind: str, name: str, version: str, spec: str) -> str:
    api_version = "security.istio.io/v1" if kind == "AuthorizationPolicy" else "mixer.meshplane.io/v1"
    return (
        f"apiVersion: {api_version}\nkind: {kind}\n"
        f"metadata:\n  name: {name}\n  namespace: default\n"
        f"spec:\n  selector:\n    matchLabels:\n      app: reviews\n      version: {version}\n{spec}"
    )


def variants_of(mixer_path: str) -> tuple[str, ...]:
    """The variants measured on ``mixer_path``: ``VARIANTS``, and ``relay`` with ``both``."""
    return (*VARIANTS, "relay") if mixer_path == "both" else VARIANTS


def policies_yaml(custom_kind: str, variants: tuple[str, ...] = VARIANTS) -> str:
    """The policies of reviews-v2 (RBAC) and reviews-v3 (a Mixer check; reviews-v4 the same one, named
    ``...-v4``, when ``relay`` is a variant); reviews-v1 has none."""
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
    checked = [_SUBSETS[variant] for variant in variants if variant in CHECK_VARIANTS]
    customs = [_custom_policy(custom_kind, version) for version in checked]
    return "---\n".join((rbac_deny, rbac_allow, *customs))


def _custom_policy(custom_kind: str, version: str) -> str:
    suffix = "" if version == _SUBSETS["custom"] else f"-{version}"
    if custom_kind == "accesslist":
        return _policy(
            "AccessList",
            f"bench-blocked-users{suffix}",
            version,
            '  value: request.headers["end-user"]\n  entries: [mallory]\n  entryType: STRINGS\n  mode: deny\n',
        )
    return _policy(
        "AuthorizationPolicy",
        f"bench-custom{suffix}",
        version,
        "  action: CUSTOM\n  provider:\n    name: mixer\n  rules:\n  - to:\n    - operation:\n        paths: ['/*']\n",
    )


def routes_yaml(variants: tuple[str, ...] = VARIANTS) -> str:
    """x-bench: rbac -> v2, custom -> v3, relay -> v4 (when a variant), anything else -> v1."""
    routes = "".join(
        f"- match:\n  - headers:\n      x-bench:\n        exact: {variant}\n"
        f"  route:\n  - destination:\n      host: reviews\n      subset: {_SUBSETS[variant]}\n"
        for variant in variants
        if variant != "none"
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
class StandinRun:
    """The same load once more, in the same pods, with the shared tools' ``mixer_standin.py`` serving Mixer's
    address instead (it parses each CheckRequest and answers OK; its access-log service only counts): what the
    check costs on this path with nothing but a Python grpc.aio server behind it, the reference of Mixer's."""

    variants: tuple[VariantResult, ...]
    schedule_lag: Latencies

    def variant(self, name: str) -> VariantResult:
        return next(result for result in self.variants if result.variant == name)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRound:
    """One more pair of windows after the first (``envoy_rounds``): Mixer's and the stand-in's, in the order run
    (``standin_first`` on every second round), so that what the machine does meanwhile weighs on both alike."""

    mixer: tuple[VariantResult, ...]
    standin: tuple[VariantResult, ...]
    standin_first: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyRun:
    rate: float
    seconds: float  # the measured window (sends scheduled over it; answers may land later)
    custom_kind: str
    mixer_path: str  # one of MIXER_PATHS
    variants: tuple[VariantResult, ...]
    schedule_lag: Latencies
    verification: tuple[str, ...]
    reviews_address: str  # what ``reviews`` resolved to in the client pod (its VIP, from the pod's DNS agent)
    client_sidecar_cpu: float
    mixer_cpu: float
    client_cpu: float  # the load generator's, in the client pod
    mixer_checks: Mapping[str, int]  # mixer_checks_total by result over the measured window
    mixer_log_entries: int
    envoy_authz_stats: Mapping[str, int]  # reviews-v2 RBAC and reviews-v3 ext_authz counters over the window
    standin: StandinRun | None = None  # the same load with the stand-in in Mixer's place (unless not asked)
    rounds: tuple[CheckRound, ...] = ()  # the pairs of windows after the first (with a stand-in only)

    def variant(self, name: str) -> VariantResult:
        return next(result for result in self.variants if result.variant == name)

    def over_rbac(self, variant: str = "custom") -> tuple[tuple[float, float], ...]:
        """What ``variant``'s check adds over RBAC, (p50, p99) in seconds, in Mixer's windows: the first, then
        every later round's."""
        return tuple(_over_rbac(results, variant) for results in (self.variants, *(r.mixer for r in self.rounds)))

    def standin_over_rbac(self) -> tuple[tuple[float, float], ...]:
        """The same for the stand-in's windows (none without a stand-in)."""
        if self.standin is None:
            return ()
        return tuple(
            _over_rbac(results, "custom") for results in (self.standin.variants, *(r.standin for r in self.rounds))
        )


def _over_rbac(results: tuple[VariantResult, ...], variant: str) -> tuple[float, float]:
    by_name = {result.variant: result.latencies for result in results}
    custom, rbac = by_name[variant], by_name["rbac"]
    return custom.p50 - rbac.p50, custom.p99 - rbac.p99


async def _verify(mesh: PodMesh, custom_kind: str, variants: tuple[str, ...]) -> tuple[str, ...]:
    """Every variant reaches its workload; mallory is refused by the policies that refuse her (a policy in force)."""
    lines: list[str] = []
    for variant in variants:
        expected = _WORKLOADS[variant]
        deadline = time.monotonic() + 10.0
        while True:  # the first requests may race the inbound listeners' warm-up
            response = await mesh.request(_URL, headers={"x-bench": variant, "end-user": _USER})
            if response.status == 200 and response.workload == expected:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"x-bench: {variant}: expected 200 from {expected}, got {response}")
            await asyncio.sleep(0.2)
        refused = await mesh.request(_URL, headers={"x-bench": variant, "end-user": _REFUSED_USER})
        if variant == "none" or (variant in CHECK_VARIANTS and custom_kind == "authorizationpolicy"):
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


async def _envoy_counters(mesh: PodMesh) -> dict[str, int]:
    """reviews-v2's RBAC allowed/denied and reviews-v3's ext_authz ok/denied/error counters of the HTTP filters
    (``http.<stat prefix>.``, summed over listeners). Every RBAC filter counts: a request through the DENY and the
    ALLOW filter counts twice in ``rbac.allowed``."""
    wanted = (
        ("reviews-v2", "rbac", ("rbac.allowed", "rbac.denied")),
        ("reviews-v3", "ext_authz", ("ext_authz.ok", "ext_authz.denied", "ext_authz.error")),
    )
    counters: dict[str, int] = {}
    for workload, stat_filter, suffixes in wanted:
        found = await admin_counters(mesh.pod(workload), stat_filter, suffixes)
        counters.update({f"{workload} {suffix}": count for suffix, count in found.items()})
    return counters


def _sidecar_cpu(pids: Mapping[str, int | None]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def _plan(*, rate: float, seconds: float, warmup: float, variants: tuple[str, ...]) -> dict[str, object]:
    return {
        "url": _URL,
        "rate": rate,
        "seconds": seconds,
        "warmup": warmup,
        "variants": list(variants),
        "headers": {"end-user": _USER},
        "timeout": _REQUEST_TIMEOUT_SECONDS,
    }


def _load_generator(mesh: PodMesh, plan: Mapping[str, object]) -> LoadGenerator:
    return LoadGenerator(
        name=_CLIENT, namespace=NAMESPACE, state_dir=mesh.state_dir, plan=plan, log=mesh.workdir / "load.log"
    )


async def _measure_window(
    mesh: PodMesh, plan: Mapping[str, object], variants: tuple[str, ...]
) -> tuple[tuple[VariantResult, ...], LoadAnswers]:
    """The load once more (warm-up and window) against whatever serves Mixer's address now."""
    pids = {_WORKLOADS[variant]: sidecar_pid(mesh.pod(_WORKLOADS[variant])) for variant in variants}
    load = _load_generator(mesh, plan)
    try:
        await load.warm()
        cpu_before = _sidecar_cpu(pids)
        measured = await load.measure()
        cpu_after = _sidecar_cpu(pids)
    finally:
        await load.stop()
    cpu = {name: cpu_after[name] - cpu_before[name] for name in pids}
    return _variant_results(measured, cpu, variants), measured


async def _measure_standin(
    mesh: PodMesh, plan: Mapping[str, object], script: Path, variants: tuple[str, ...], custom_kind: str
) -> StandinRun:
    """Mixer stopped, the stand-in on its gRPC address (the sidecars reconnect to it), the same load (warm-up and
    window), Mixer started again and verified as at first (its policies refuse mallory again), so that a window
    after this one measures Mixer, not a sidecar still failing over."""
    assert mesh.mixer is not None
    await mesh.mixer.stop()
    standin = MixerStandinProcess(
        script=script,
        workdir=mesh.workdir / "stand-in",
        grpc_address=mesh.mixer.grpc_address,
        monitor_address=f"127.0.0.1:{free_port()}",
    )
    try:
        await standin.start(ready_timeout=30.0)
        results, measured = await _measure_window(mesh, plan, variants)
    finally:
        await standin.stop()
        await mesh.mixer.start()
    await _verify(mesh, custom_kind, variants)
    return StandinRun(variants=results, schedule_lag=Latencies.of(measured.lags))


async def _measure_rounds(
    mesh: PodMesh, plan: Mapping[str, object], script: Path, variants: tuple[str, ...], custom_kind: str, count: int
) -> tuple[CheckRound, ...]:
    """``count`` more pairs of windows, Mixer's and the stand-in's, the stand-in first on every other round."""
    rounds = []
    for index in range(count):
        standin_first = index % 2 == 0  # the first pair ran Mixer first
        if standin_first:
            standin = await _measure_standin(mesh, plan, script, variants, custom_kind)
            mixer, _ = await _measure_window(mesh, plan, variants)
        else:
            mixer, _ = await _measure_window(mesh, plan, variants)
            standin = await _measure_standin(mesh, plan, script, variants, custom_kind)
        rounds.append(CheckRound(mixer=mixer, standin=standin.variants, standin_first=standin_first))
    return tuple(rounds)


async def _measure(
    mesh: PodMesh,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    custom_kind: str,
    mixer_path: str,
    standin_script: Path | None,
    rounds: int = 1,
) -> EnvoyRun:
    assert mesh.mixer is not None
    variants = variants_of(mixer_path)
    verification = await _verify(mesh, custom_kind, variants)
    plan = _plan(rate=rate, seconds=seconds, warmup=warmup, variants=variants)
    load = _load_generator(mesh, plan)
    pids = {name: sidecar_pid(mesh.pod(name)) for name in (_CLIENT, *(_WORKLOADS[v] for v in variants))}
    mixer_pid = mesh.mixer.pid
    try:
        reviews_address = await load.warm()
        await asyncio.sleep(_LOG_FLUSH_SECONDS)  # let the sidecars flush the warm-up's access logs to Mixer
        metrics_before = await mesh.mixer.metrics_text()
        counters_before = await _envoy_counters(mesh)
        cpu_before, mixer_cpu_before = _sidecar_cpu(pids), cpu_seconds(mixer_pid)
        measured = await load.measure()
        cpu_after, mixer_cpu = _sidecar_cpu(pids), cpu_seconds(mixer_pid) - mixer_cpu_before
        await asyncio.sleep(_LOG_FLUSH_SECONDS)  # access logs of the last requests
        metrics_after = await mesh.mixer.metrics_text()
        counters_after = await _envoy_counters(mesh)
    finally:
        await load.stop()
    cpu = {name: cpu_after[name] - cpu_before[name] for name in pids}
    standin = (
        None if standin_script is None else await _measure_standin(mesh, plan, standin_script, variants, custom_kind)
    )
    later = (
        ()
        if standin_script is None
        else await _measure_rounds(mesh, plan, standin_script, variants, custom_kind, rounds - 1)
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
        mixer_path=mixer_path,
        variants=_variant_results(measured, cpu, variants),
        schedule_lag=Latencies.of(measured.lags),
        verification=verification,
        reviews_address=reviews_address,
        client_sidecar_cpu=cpu[_CLIENT],
        mixer_cpu=mixer_cpu,
        client_cpu=measured.cpu,
        mixer_checks={result: count for result, count in checks.items() if count},
        mixer_log_entries=round(
            sample_sum(metrics_after, "mixer_log_entries_total") - sample_sum(metrics_before, "mixer_log_entries_total")
        ),
        envoy_authz_stats={
            name: counters_after.get(name, 0) - counters_before.get(name, 0) for name in sorted(counters_after)
        },
        standin=standin,
        rounds=later,
    )


def _variant_results(
    measured: LoadAnswers, cpu: Mapping[str, float], variants: tuple[str, ...]
) -> tuple[VariantResult, ...]:
    results = []
    for variant in variants:
        mine = [(status, latency) for name, status, latency in measured.answers if name == variant]
        results.append(
            VariantResult(
                variant=variant,
                workload=_WORKLOADS[variant],
                statuses=dict(Counter(status for status, _ in mine)),
                latencies=Latencies.of([latency for _, latency in mine]),
                sidecar_cpu=cpu[_WORKLOADS[variant]],
            )
        )
    return tuple(results)


async def run_envoy(
    *,
    rate: float,
    seconds: float,
    warmup: float,
    custom_kind: str,
    mixer_path: str = "direct",
    standin_script: Path | None = None,
    workdir: Path | None = None,
    rounds: int = 1,
) -> EnvoyRun:
    """Start the pod world (Pilot, Mixer, four pods with their sidecars) in ``workdir`` (default: a temporary
    directory, removed afterwards), measure, stop everything (``pod_mesh`` checks nothing is left). With
    ``standin_script`` (the shared tools' ``mixer_standin.py``), measure once more with it in Mixer's place
    (``StandinRun``), and with ``rounds`` above 1 that many pairs of windows in all, Mixer's and the stand-in's, their
    order alternating (``CheckRound``). Needs root (``e2e.pods.why_pods_cannot_run``)."""
    kept = contextlib.nullcontext(str(workdir)) if workdir is not None else None
    with kept or tempfile.TemporaryDirectory(prefix="bench-mixer-") as directory:
        return await _run_in(
            Path(directory),
            rate=rate,
            seconds=seconds,
            warmup=warmup,
            custom_kind=custom_kind,
            mixer_path=mixer_path,
            standin_script=standin_script,
            rounds=rounds,
        )


async def _run_in(
    workdir: Path,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    custom_kind: str,
    mixer_path: str,
    standin_script: Path | None,
    rounds: int,
) -> EnvoyRun:
    if mixer_path not in MIXER_PATHS:
        raise ValueError(f"mixer_path: one of {', '.join(MIXER_PATHS)}, got {mixer_path!r}")
    variants = variants_of(mixer_path)
    config = "---\n".join((routes_yaml(variants), policies_yaml(custom_kind, variants)))
    state_dir: Path | None = None
    versions = tuple(_SUBSETS[variant] for variant in variants)
    relayed = (_WORKLOADS["relay"],) if "relay" in variants else ()
    try:
        async with pod_mesh(
            workdir / "mesh",
            config,
            mixer=True,
            mixer_direct=mixer_path != "relay",
            mixer_relayed=relayed,
            versions=versions,
        ) as mesh:
            state_dir = mesh.state_dir
            assert mesh.mixer is not None
            for component, configz in (("pilot", await mesh.pilot.configz()), ("mixer", await mesh.mixer.configz())):
                if configz.get("rejected"):
                    raise RuntimeError(f"{component} rejected the benchmark config: {configz['rejected']}")
            return await _measure(
                mesh,
                rate=rate,
                seconds=seconds,
                warmup=warmup,
                custom_kind=custom_kind,
                mixer_path=mixer_path,
                standin_script=standin_script,
                rounds=rounds,
            )
    finally:
        if state_dir is not None and not any(state_dir.glob("*/*/pod.json")):  # kept as evidence otherwise
            shutil.rmtree(state_dir, ignore_errors=True)
