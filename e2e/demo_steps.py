"""The demo's steps, on any mesh that runs the demo's workloads: the three routing steps of Istio's reviews traffic
shifting, each split MEASURED (requests from productpage's app, counted by the version that answered), STRICT mutual
TLS (a caller without a sidecar refused, productpage's identity seen by the app), policy (403 from the sidecars'
RBAC, 429 from Mixer's rate limit), Istio's TCP traffic shifting (a ``tcp`` route all to tcp-echo v1, then 80/20,
each split MEASURED over fresh TCP connections of productpage's app) and the request counts Mixer recorded per edge.

``run_demo_steps`` drives a ``DemoMesh``: ``meshplane demo`` gives it the pods it started on this machine
(``e2e.demo``), ``meshplane demo --compose`` the containers of a running docker-compose mesh (``e2e.compose_mesh``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from e2e.l4_apps import TCP_ECHO_PORT, tcp_echo_counts
from e2e.mesh_config import (
    DEMO_CLIENT,
    DEMO_MTLS_FILE,
    DEMO_POLICY_FILE,
    DEMO_ROUTE_FILES,
    DEMO_TCP_ROUTE_FILES,
    REVIEWS_PORT,
)
from e2e.mtls import caller_identity
from e2e.pod_mesh import REVIEWS_URL
from e2e.telemetry import istio_request_counts
from e2e.traffic import MeshResponse, count_by
from envoy_bootstrap.runner import DRAIN_TIME_SECONDS
from meshplane.identity import DEFAULT_TRUST_DOMAIN, spiffe_id

__all__ = [
    "DEMO_STEPS",
    "DEMO_TCP_STEPS",
    "OUTSIDER",
    "STEP_COUNT",
    "TCP_ECHO_HOST",
    "TCP_SPLIT_HEADING",
    "DemoMesh",
    "DemoStep",
    "ExecClientMesh",
    "Printer",
    "Traffic",
    "measured_splits",
    "run_demo_steps",
]

Printer = Callable[[str], None]
ROUTE_CONFIG_NAME = "reviews-virtualservice"  # every step replaces the same file: one VirtualService at a time
MTLS_CONFIG_NAME = "mesh-peer-authentication"
POLICY_CONFIG_NAME = "reviews-policy"
TCP_CONFIG_NAME = "tcp-echo-virtualservice"  # the TCP step's two rules replace each other too
TCP_ECHO_HOST = "tcp-echo"
TCP_SPLIT_HEADING = f"TCP connections from {DEMO_CLIENT.name} to {TCP_ECHO_HOST}:{TCP_ECHO_PORT}"
TCP_SETTLE_SECONDS = 40.0  # until productpage's sidecar answers a changed tcp route with the rule's versions
GUEST_REQUESTS = 8  # against a limit of 5 per 30s in 05-reviews-policy.yaml
GUEST_LIMIT = 5
STEP_COUNT = 6  # the three routing steps, mutual TLS, policy, TCP traffic shifting
OUTSIDER = "stranger"  # a network namespace on the mesh's network without a sidecar: the mTLS step's plaintext caller
DEMO_CLIENT_IDENTITY = spiffe_id(DEFAULT_TRUST_DOMAIN, DEMO_CLIENT.namespace, DEMO_CLIENT.service_account)


@dataclass(frozen=True, slots=True, kw_only=True)
class Traffic:
    """One kind of request sent after a step, and the share of each version the rule promises."""

    label: str
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    expected: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoStep:
    config: Path
    traffic: tuple[Traffic, ...]

    @property
    def title(self) -> str:
        """The file's first comment line without its ``# Step N:`` prefix."""
        first = self.config.read_text().splitlines()[0].lstrip("# ")
        return first.split(":", 1)[1].strip() if first.lower().startswith("step") else first


DEMO_STEPS: tuple[DemoStep, ...] = (
    DemoStep(config=DEMO_ROUTE_FILES[0], traffic=(Traffic(label="all requests", expected={"v1": 1.0}),)),
    DemoStep(config=DEMO_ROUTE_FILES[1], traffic=(Traffic(label="all requests", expected={"v1": 0.9, "v2": 0.1}),)),
    DemoStep(
        config=DEMO_ROUTE_FILES[2],
        traffic=(
            Traffic(label="end-user: jason", headers={"end-user": "jason"}, expected={"v2": 1.0}),
            Traffic(label="other users", headers={"end-user": "alice"}, expected={"v3": 1.0}),
        ),
    ),
)


# Step 6, Istio's TCP traffic shifting: each rule's traffic is fresh TCP connections to tcp-echo:9000
DEMO_TCP_STEPS: tuple[DemoStep, ...] = (
    DemoStep(config=DEMO_TCP_ROUTE_FILES[0], traffic=(Traffic(label="all connections", expected={"v1": 1.0}),)),
    DemoStep(
        config=DEMO_TCP_ROUTE_FILES[1], traffic=(Traffic(label="all connections", expected={"v1": 0.8, "v2": 0.2}),)
    ),
)


class DemoMesh(Protocol):
    """What the steps need of a running demo mesh (its workloads named as in ``e2e.mesh_config.DEMO_WORKLOADS``)."""

    @property
    def addresses(self) -> Mapping[str, str]:
        """Each workload's address (and ``OUTSIDER``'s)."""
        ...

    @property
    def mixer_url(self) -> str:
        """Mixer's monitor (``/metrics``, ``/graph``) as the user reaches it."""
        ...

    async def apply(self, name: str, path: Path) -> Mapping[str, Any]:
        """Put the demo file ``path`` in the mesh's config directory as ``<name>.yaml`` and wait until Pilot, every
        sidecar and Mixer took it in; Pilot's ``/debug/configz``."""
        ...

    async def responses(
        self, url: str, count: int = 1, *, headers: Mapping[str, str] | None = None
    ) -> list[MeshResponse]:
        """``count`` requests by productpage's app (plain urllib, no proxy settings), as the app saw them."""
        ...

    async def request(self, url: str, *, headers: Mapping[str, str] | None = None) -> MeshResponse: ...

    async def plaintext_request(self, caller: str, url: str) -> tuple[int, str]:
        """A GET from ``caller``, a namespace without a sidecar: (status, error); status 0 when refused."""
        ...

    async def tcp_replies(self, host: str, port: int, count: int) -> list[str]:
        """``count`` fresh TCP connections by productpage's app to ``host:port`` (by name), one line each way: the
        reply lines (``e2e.l4_apps.tcp_echo_replies``)."""
        ...

    async def mixer_metrics(self) -> str:
        """Mixer's ``/metrics`` (Prometheus text)."""
        ...


class ExecClientMesh:
    """A ``DemoMesh``'s requests made by running the standard-library client in a workload's app (``docker exec``,
    ``kubectl exec``): the subclass says how (``client_responses``, blocking: run in a thread)."""

    def client_responses(
        self, workload: str, url: str, count: int, headers: Mapping[str, str] | None
    ) -> list[MeshResponse]:
        raise NotImplementedError

    async def responses(
        self, url: str, count: int = 1, *, headers: Mapping[str, str] | None = None
    ) -> list[MeshResponse]:
        return await asyncio.to_thread(self.client_responses, DEMO_CLIENT.name, url, count, headers)

    async def request(self, url: str, *, headers: Mapping[str, str] | None = None) -> MeshResponse:
        [response] = await self.responses(url, 1, headers=headers)
        return response

    async def plaintext_request(self, caller: str, url: str) -> tuple[int, str]:
        [response] = await asyncio.to_thread(self.client_responses, caller, url, 1, None)
        return response.status, response.text


def _split_matches(counts: Mapping[str, int], expected: Mapping[str, float], total: int) -> bool:
    """Every answer came from an expected version, and each share is within sampling noise of the rule
    (4 standard deviations, at least 10 points) for weighted routes; exact for 0% / 100%."""
    if total == 0 or any(version not in expected for version in counts):
        return False
    for version, share in expected.items():
        measured = counts.get(version, 0) / total
        if share in (0.0, 1.0):
            if measured != share:
                return False
        elif abs(measured - share) > max(0.1, 4 * math.sqrt(share * (1 - share) / total)):
            return False
    return True


def _print_measured(
    out: Printer, what: str, unit: str, counts: Mapping[str, int], expected: Mapping[str, float], total: int
) -> bool:
    """What was sent (``what``), the split measured over ``total`` ``unit`` (requests, connections) and whether it
    matches the rule's ``expected`` shares."""
    matches = _split_matches(counts, expected, total)
    out(what)
    out(f"      {'version':<12}{unit:>12}{'share':>9}")
    for version, n in sorted(counts.items()):
        out(f"      {version:<12}{n:>12}{n / total:>9.1%}")
    promised = ", ".join(f"{v} {share:.0%}" for v, share in expected.items())
    out(f"      rule says {promised}: {'measured split matches' if matches else 'MEASURED SPLIT DOES NOT MATCH'}")
    return matches


def measured_splits(lines: list[str], heading: str) -> list[dict[str, int]]:
    """Each split table printed (``_print_measured``) under a line ending in ``heading``: version -> count."""
    splits: list[dict[str, int]] = []
    for index, line in enumerate(lines):
        if line.endswith(heading):
            rows = [row.split() for row in lines[index + 2 :]]  # after the table's header
            table = rows[: next(n for n, row in enumerate(rows) if row[:2] == ["rule", "says"])]
            splits.append({version: int(count) for version, count, _ in table})
    return splits


def _print_rule(out: Printer, path: Path) -> None:
    """Each resource of the file as ``Kind name:`` and its spec, as written (comments and metadata left out)."""
    for document in path.read_text().split("\n---\n"):
        lines = [line for line in document.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        kind = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("kind:")), "resource")
        name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("  name:")), "")
        out(f"    {kind} {name}:")
        start = lines.index("spec:") + 1 if "spec:" in lines else 0
        for line in lines[start:]:
            out(f"    {line}")


def _answered_by(response: MeshResponse) -> str:
    return f"reviews-{response.version}" if response.version else f"HTTP {response.status}"


async def _apply(mesh: DemoMesh, name: str, path: Path, out: Printer, *, mixer: bool = False) -> bool:
    configz = await mesh.apply(name, path)
    if configz.get("rejected"):
        for rejected in configz["rejected"]:
            out(f"  REJECTED {rejected.get('kind')}/{rejected.get('name')}: {'; '.join(rejected.get('errors', ()))}")
        return False
    out(f"  Pilot pushed it{', every sidecar ACKed, and Mixer loaded it.' if mixer else ' and every sidecar ACKed.'}")
    return True


def _print_step(out: Printer, number: int, path: Path) -> None:
    out("")
    out(f"Step {number}/{STEP_COUNT}: {DemoStep(config=path, traffic=()).title}")
    _print_applying(out, path)


def _print_applying(out: Printer, path: Path) -> None:
    out(f"  applying {path.relative_to(path.parents[2])}")
    _print_rule(out, path)


async def _run_step(mesh: DemoMesh, number: int, step: DemoStep, requests: int, out: Printer) -> bool:
    _print_step(out, number, step.config)
    if not await _apply(mesh, ROUTE_CONFIG_NAME, step.config, out):
        return False
    ok = True
    for traffic in step.traffic:
        responses = await mesh.responses(REVIEWS_URL, requests, headers=traffic.headers)
        headers = " ".join(f"-H '{k}: {v}'" for k, v in traffic.headers.items())
        what = f"    {traffic.label}: {requests} requests from {DEMO_CLIENT.name} {headers}".rstrip()
        ok = _print_measured(out, what, "requests", count_by(responses), traffic.expected, requests) and ok
    return ok


async def _run_tcp_step(mesh: DemoMesh, number: int, connections: int, out: Printer) -> bool:
    """Istio's TCP traffic shifting: all connections to tcp-echo v1, then 80/20 (``DEMO_TCP_STEPS``)."""
    ok = True
    for index, step in enumerate(DEMO_TCP_STEPS):
        if index == 0:
            _print_step(out, number, step.config)
        else:
            out(f"  then: {step.title}")
            _print_applying(out, step.config)
        if not await _apply(mesh, TCP_CONFIG_NAME, step.config, out):
            return False
        ok = await _measure_tcp_split(mesh, step.traffic[0], connections, out) and ok
    return ok


async def _tcp_rule_taken(mesh: DemoMesh, versions: set[str]) -> bool:
    """Whether a few connections are answered by exactly ``versions`` within ``TCP_SETTLE_SECONDS`` (Envoy hands
    new connections to a changed listener once it is in place)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TCP_SETTLE_SECONDS
    while set(tcp_echo_counts(await mesh.tcp_replies(TCP_ECHO_HOST, TCP_ECHO_PORT, 10))) != versions:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.5)
    return True


async def _measure_tcp_split(mesh: DemoMesh, traffic: Traffic, connections: int, out: Printer) -> bool:
    """The split counted over fresh TCP connections (one line each way) of productpage's app, by the version that
    echoed the line, once a few connections show its sidecar's listener has the rule."""
    versions = set(traffic.expected)
    if not await _tcp_rule_taken(mesh, versions):
        out(f"    the productpage sidecar did not take the rule: {TCP_ECHO_HOST} is not answered by {sorted(versions)}")
        return False
    counts = tcp_echo_counts(await mesh.tcp_replies(TCP_ECHO_HOST, TCP_ECHO_PORT, connections))
    what = f"    {traffic.label}: {connections} {TCP_SPLIT_HEADING}"
    return _print_measured(out, what, "connections", counts, traffic.expected, connections)


async def _run_mtls_step(mesh: DemoMesh, number: int, out: Printer) -> bool:
    """STRICT mesh-wide: a caller without a sidecar is refused, a sidecar's call carries its SPIFFE identity."""
    _print_step(out, number, DEMO_MTLS_FILE)
    if not await _apply(mesh, MTLS_CONFIG_NAME, DEMO_MTLS_FILE, out):
        return False
    inbound = f"http://{mesh.addresses['reviews-v1']}:{REVIEWS_PORT}/"
    plaintext, error = await mesh.plaintext_request(OUTSIDER, inbound)
    refused = plaintext != 200
    out(f"    plaintext from {mesh.addresses[OUTSIDER]} ({OUTSIDER}: no sidecar) to {inbound}:")
    out(f"      {'refused' if refused else 'ANSWERED'} ({plaintext or error[:70]})")
    response = await mesh.request(REVIEWS_URL)
    identity = caller_identity(response)
    out(f"    {DEMO_CLIENT.name} calling {REVIEWS_URL}: {response.status} from {_answered_by(response)}")
    out(f"      the reviews app saw the caller as {identity} (x-forwarded-client-cert)")
    ok = refused and response.status == 200 and identity == DEMO_CLIENT_IDENTITY
    out(f"      {'mutual TLS enforced' if ok else 'MUTUAL TLS NOT AS EXPECTED'}")
    return ok


async def _run_policy_step(mesh: DemoMesh, number: int, out: Printer) -> bool:
    """A DENY AuthorizationPolicy (RBAC in the sidecar: 403) and a RateLimit (Mixer through ext_authz: 429)."""
    _print_step(out, number, DEMO_POLICY_FILE)
    if not await _apply(mesh, POLICY_CONFIG_NAME, DEMO_POLICY_FILE, out, mixer=True):
        return False
    out(f"  (connections opened before the change drain within {DRAIN_TIME_SECONDS}s: Envoy applies a listener change")
    out("   to new connections, and the sidecars ask the old ones to reconnect; waiting for that)")
    await asyncio.sleep(DRAIN_TIME_SECONDS + 0.5)
    mallory = await mesh.request(REVIEWS_URL, headers={"end-user": "mallory"})
    out(f"    end-user: mallory -> {mallory.status} {mallory.text.strip()[:60]!r} (the reviews sidecar's RBAC filter)")
    guests = await mesh.responses(REVIEWS_URL, GUEST_REQUESTS, headers={"end-user": "guest"})
    statuses = [response.status for response in guests]
    out(f"    end-user: guest x{GUEST_REQUESTS} -> {' '.join(str(code) for code in statuses)}")
    limited = next((response for response in guests if response.status == 429), None)
    if limited is not None:
        out(f"      429 says: retry-after {limited.headers.get('retry-after')}s, x-mixer-reason:")
        out(f"        {limited.headers.get('x-mixer-reason')}")
    jason = await mesh.request(REVIEWS_URL, headers={"end-user": "jason"})
    out(f"    end-user: jason -> {jason.status} from {_answered_by(jason)} (neither rule applies)")
    expected = [200] * GUEST_LIMIT + [429] * (GUEST_REQUESTS - GUEST_LIMIT)
    ok = mallory.status == 403 and statuses == expected and jason.status == 200
    out(f"      {'policy enforced' if ok else 'POLICY NOT AS EXPECTED'}")
    return ok


async def _print_edge_counts(mesh: DemoMesh, out: Printer) -> None:
    """What Mixer recorded from the sidecars' access logs: ``istio_requests_total`` as reported by the
    destination sidecars (the ones a request reached), per edge and response code."""
    await asyncio.sleep(0.6)  # sidecars flush their access logs to Mixer every 250ms
    counts = istio_request_counts(await mesh.mixer_metrics())
    out("")
    out(f"Requests Mixer recorded per edge (istio_requests_total, reporter=destination; {mesh.mixer_url}):")
    edges = sorted((key, count) for key, count in counts.items() if key.reporter == "destination")
    source = max([len("source"), *(len(key.source_workload) for key, _ in edges)]) + 2
    destination = max([len("destination"), *(len(key.destination_workload) for key, _ in edges)]) + 2
    out(f"  {'source':<{source}}{'destination':<{destination}}{'code':>6}{'requests':>10}")
    for key, count in edges:
        edge = f"{key.source_workload:<{source}}{key.destination_workload:<{destination}}"
        out(f"  {edge}{key.response_code:>6}{count:>10}")
    out(f"  (the whole graph, with rates and latencies: curl {mesh.mixer_url}/graph)")


async def run_demo_steps(mesh: DemoMesh, requests: int, out: Printer) -> bool:
    """Every step in turn, printed to ``out``; True when every measured result matched its rule."""
    ok = True
    for number, step in enumerate(DEMO_STEPS, start=1):
        ok = await _run_step(mesh, number, step, requests, out) and ok
    ok = await _run_mtls_step(mesh, len(DEMO_STEPS) + 1, out) and ok
    ok = await _run_policy_step(mesh, len(DEMO_STEPS) + 2, out) and ok
    ok = await _run_tcp_step(mesh, len(DEMO_STEPS) + 3, requests, out) and ok
    await _print_edge_counts(mesh, out)
    return ok
