"""``meshplane demo``: Istio's reviews traffic-shifting walkthrough, on loopback, with real Envoy sidecars.

Pilot on 127.0.0.1:15010 (monitor :15014), Citadel on :15012, Mixer on :9091 (monitor :42422), three versions of
``reviews`` and a ``productpage`` client, each with its own sidecar. Three VirtualServices from
``e2e/demo_config/`` are applied in turn (all to v1; 90/10 v1/v2; ``end-user: jason`` to v2, others to v3) and
after each one the split is MEASURED: real requests from productpage through its sidecar, counted by the version
that answered. Then STRICT mutual TLS, then policy (a DENY rule answered 403, a rate limit answered 429), and at
the end the request counts Mixer recorded per edge.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from e2e.harness import (
    CITADEL_MONITOR_PORT,
    CITADEL_SDS_PORT,
    MIXER_GRPC_PORT,
    MIXER_MONITOR_PORT,
    MONITOR_PORT,
    PILOT_HOST,
    XDS_PORT,
    LocalMesh,
    port_free,
)
from e2e.mesh_config import (
    DEMO_CLIENT,
    DEMO_MESH_FILE,
    DEMO_MTLS_FILE,
    DEMO_POLICY_FILE,
    DEMO_ROUTE_FILES,
    DEMO_SUBNET,
    DEMO_URL,
    DEMO_WORKLOADS,
    REVIEWS_PORT,
    demo_config_text,
)
from e2e.mtls import caller_identity, plaintext_get
from e2e.telemetry import istio_request_counts
from e2e.traffic import count_by
from envoy_bootstrap.runner import DRAIN_TIME_SECONDS
from meshplane.identity import DEFAULT_TRUST_DOMAIN, spiffe_id
from meshplane.names import ADMIN_PORT, HTTP_PROXY_PORT

__all__ = ["DEMO_STEPS", "DemoStep", "Traffic", "run_demo"]

Printer = Callable[[str], None]
ROUTE_CONFIG_NAME = "reviews-virtualservice"  # every step replaces the same file: one VirtualService at a time
MTLS_CONFIG_NAME = "mesh-peer-authentication"
POLICY_CONFIG_NAME = "reviews-policy"
GUEST_REQUESTS = 8  # against a limit of 5 per 30s in 05-reviews-policy.yaml
GUEST_LIMIT = 5
STEP_COUNT = 5  # the three routing steps, mutual TLS, policy
OUTSIDER_HOST = 99  # an address with no sidecar, for the plaintext caller of the mTLS step
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


def _print_split(out: Printer, counts: Mapping[str, int], total: int) -> None:
    out(f"      {'version':<12}{'requests':>9}{'share':>9}")
    for version, n in sorted(counts.items()):
        out(f"      {version:<12}{n:>9}{n / total:>9.1%}")


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


def _ports_in_use(subnet: str) -> list[str]:
    control_plane = f"{subnet}.{PILOT_HOST}"
    control_ports = (
        *(XDS_PORT, MONITOR_PORT),
        *(CITADEL_SDS_PORT, CITADEL_MONITOR_PORT),
        *(MIXER_GRPC_PORT, MIXER_MONITOR_PORT),
    )
    wanted = [(control_plane, port) for port in control_ports]
    for spec in DEMO_WORKLOADS:
        wanted += [(f"{subnet}.{spec.host}", port) for port in (ADMIN_PORT, HTTP_PROXY_PORT, REVIEWS_PORT)]
        if spec.service is not None:
            wanted.append((f"{subnet}.{spec.host}", spec.app_port))
    return [f"{address}:{port}" for address, port in wanted if not port_free(address, port)]


async def _run_step(mesh: LocalMesh, number: int, step: DemoStep, requests: int, out: Printer) -> bool:
    out("")
    out(f"Step {number}/{STEP_COUNT}: {step.title}")
    out(f"  applying {step.config.relative_to(step.config.parents[2])}")
    _print_rule(out, step.config)
    await mesh.apply(ROUTE_CONFIG_NAME, demo_config_text(step.config, mesh.subnet))
    configz = await mesh.wait_synced()
    if configz.get("rejected"):
        for rejected in configz["rejected"]:
            out(f"  REJECTED {rejected.get('kind')}/{rejected.get('name')}: {'; '.join(rejected.get('errors', ()))}")
        return False
    out("  Pilot pushed it and every sidecar ACKed.")
    ok = True
    for traffic in step.traffic:
        responses = await mesh.send_many(DEMO_CLIENT.name, DEMO_URL, requests, headers=traffic.headers)
        counts = count_by(responses)
        matches = _split_matches(counts, traffic.expected, requests)
        ok = ok and matches
        promised = ", ".join(f"{v} {share:.0%}" for v, share in traffic.expected.items())
        headers = " ".join(f"-H '{k}: {v}'" for k, v in traffic.headers.items())
        out(f"    {traffic.label}: {requests} requests from {DEMO_CLIENT.name} {headers}".rstrip())
        _print_split(out, counts, requests)
        out(f"      rule says {promised}: {'measured split matches' if matches else 'MEASURED SPLIT DOES NOT MATCH'}")
    return ok


async def _run_mtls_step(mesh: LocalMesh, number: int, out: Printer) -> bool:
    """STRICT mesh-wide: a caller without a sidecar is refused, a sidecar's call carries its SPIFFE identity."""
    out("")
    out(f"Step {number}/{STEP_COUNT}: {DemoStep(config=DEMO_MTLS_FILE, traffic=()).title}")
    out(f"  applying {DEMO_MTLS_FILE.relative_to(DEMO_MTLS_FILE.parents[2])}")
    _print_rule(out, DEMO_MTLS_FILE)
    await mesh.apply(MTLS_CONFIG_NAME, DEMO_MTLS_FILE.read_text())
    await mesh.wait_synced()
    out("  Pilot pushed it and every sidecar ACKed.")
    inbound = f"http://{mesh.workloads['reviews-v1'].address}:{REVIEWS_PORT}/"
    outsider = mesh.address(OUTSIDER_HOST)
    plaintext = await plaintext_get(inbound, source=outsider)
    refused = plaintext != 200
    out(f"    plaintext from {outsider} (no sidecar) straight to {inbound}:")
    out(f"      {'refused' if refused else 'ANSWERED'} ({plaintext})")
    response = await mesh.request(DEMO_CLIENT.name, DEMO_URL)
    identity = caller_identity(response)
    out(f"    {DEMO_CLIENT.name} through its sidecar: {response.status} from {response.workload}")
    out(f"      the reviews app saw the caller as {identity} (x-forwarded-client-cert)")
    ok = refused and response.status == 200 and identity == DEMO_CLIENT_IDENTITY
    out(f"      {'mutual TLS enforced' if ok else 'MUTUAL TLS NOT AS EXPECTED'}")
    return ok


async def _run_policy_step(mesh: LocalMesh, number: int, out: Printer) -> bool:
    """A DENY AuthorizationPolicy (RBAC in the sidecar: 403) and a RateLimit (Mixer through ext_authz: 429)."""
    out("")
    out(f"Step {number}/{STEP_COUNT}: {DemoStep(config=DEMO_POLICY_FILE, traffic=()).title}")
    out(f"  applying {DEMO_POLICY_FILE.relative_to(DEMO_POLICY_FILE.parents[2])}")
    _print_rule(out, DEMO_POLICY_FILE)
    await mesh.apply(POLICY_CONFIG_NAME, DEMO_POLICY_FILE.read_text())
    configz = await mesh.wait_synced()
    if configz.get("rejected"):
        for rejected in configz["rejected"]:
            out(f"  REJECTED {rejected.get('kind')}/{rejected.get('name')}: {'; '.join(rejected.get('errors', ()))}")
        return False
    out("  Pilot pushed it, every sidecar ACKed, and Mixer loaded it.")
    out(f"  (connections opened before the change drain within {DRAIN_TIME_SECONDS}s: Envoy applies a listener change")
    out("   to new connections, and the sidecars ask the old ones to reconnect; waiting for that)")
    await asyncio.sleep(DRAIN_TIME_SECONDS + 0.5)
    mallory = await mesh.request(DEMO_CLIENT.name, DEMO_URL, headers={"end-user": "mallory"})
    out(f"    end-user: mallory -> {mallory.status} {mallory.text.strip()[:60]!r} (the reviews sidecar's RBAC filter)")
    guests = [
        await mesh.request(DEMO_CLIENT.name, DEMO_URL, headers={"end-user": "guest"}) for _ in range(GUEST_REQUESTS)
    ]
    statuses = [response.status for response in guests]
    out(f"    end-user: guest x{GUEST_REQUESTS} -> {' '.join(str(code) for code in statuses)}")
    limited = next((response for response in guests if response.status == 429), None)
    if limited is not None:
        out(f"      429 says: retry-after {limited.headers.get('retry-after')}s, x-mixer-reason:")
        out(f"        {limited.headers.get('x-mixer-reason')}")
    jason = await mesh.request(DEMO_CLIENT.name, DEMO_URL, headers={"end-user": "jason"})
    out(f"    end-user: jason -> {jason.status} from {jason.workload} (neither rule applies)")
    expected = [200] * GUEST_LIMIT + [429] * (GUEST_REQUESTS - GUEST_LIMIT)
    ok = mallory.status == 403 and statuses == expected and jason.status == 200
    out(f"      {'policy enforced' if ok else 'POLICY NOT AS EXPECTED'}")
    return ok


async def _print_edge_counts(mesh: LocalMesh, out: Printer) -> None:
    """What Mixer recorded from the sidecars' access logs: ``istio_requests_total`` as reported by the
    destination sidecars (the ones a request reached), per edge and response code."""
    assert mesh.mixer is not None
    await asyncio.sleep(0.6)  # sidecars flush their access logs to Mixer every 250ms
    counts = istio_request_counts(await mesh.mixer.metrics_text())
    out("")
    out(f"Requests Mixer recorded per edge (istio_requests_total, reporter=destination; {mesh.mixer.monitor_url}):")
    out(f"  {'source':<14}{'destination':<14}{'code':>6}{'requests':>10}")
    for key, count in sorted(counts.items()):
        if key.reporter == "destination":
            out(f"  {key.source_workload:<14}{key.destination_workload:<14}{key.response_code:>6}{count:>10}")
    out(f"  (the whole graph, with rates and latencies: curl {mesh.mixer.monitor_url}/graph)")


async def _wait_for_interrupt() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _print_how_to_use(out: Printer, mesh: LocalMesh) -> None:
    client = mesh.workloads[DEMO_CLIENT.name].address
    pilot = mesh.address(PILOT_HOST)
    out("")
    out("The mesh keeps running. Send requests as productpage does, through its sidecar as HTTP proxy:")
    out(f"  curl -x http://{client}:{HTTP_PROXY_PORT} http://reviews:{REVIEWS_PORT}/")
    out(f"  curl -x http://{client}:{HTTP_PROXY_PORT} -H 'end-user: jason' {DEMO_URL}")
    out(f"Change routing: edit or add Istio YAML in {mesh.config_dir} (Pilot watches it).")
    out(f"Pilot: curl http://{pilot}:{MONITOR_PORT}/debug/syncz   /debug/configz")
    out(f"Mixer: curl http://{pilot}:{MIXER_MONITOR_PORT}/metrics   /graph")
    out(f"Envoy admin: curl http://{client}:{ADMIN_PORT}/config_dump   (each workload's address, port {ADMIN_PORT})")
    out(f"Logs: {mesh.workdir}")
    out("Press Ctrl-C to stop.")


async def run_demo(
    *, requests: int = 200, keep_running: bool = False, workdir: Path | None = None, out: Printer = print
) -> int:
    """Run the demo; 0 when every measured split matched its rule, 1 otherwise (also on startup failure)."""
    if requests < 1:
        raise ValueError(f"requests: must be >= 1, got {requests}")
    busy = _ports_in_use(DEMO_SUBNET)
    if busy:
        out(f"meshplane demo: addresses already in use: {', '.join(busy)}")
        out("Is another demo (or an Istio/Envoy) running on this machine? Stop it and try again.")
        return 1
    own_workdir = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="meshplane-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ok = False
    interrupted = True  # until the walkthrough returns or raises an error of its own
    try:
        ok = await _walkthrough(workdir, requests, keep_running, out, temporary=own_workdir)
        interrupted = False
    except Exception:
        interrupted = False
        out(f"meshplane demo failed; logs kept in {workdir}")
        raise
    finally:
        if own_workdir and (ok or interrupted):
            shutil.rmtree(workdir, ignore_errors=True)
    out("")
    out("All measured splits match their rules." if ok else f"Some measured splits did NOT match; logs in {workdir}")
    out("Stopped Pilot, Citadel, Mixer and all sidecars.")
    return 0 if ok else 1


async def _walkthrough(workdir: Path, requests: int, keep_running: bool, out: Printer, *, temporary: bool) -> bool:
    mesh = LocalMesh(workdir=workdir, subnet=DEMO_SUBNET, debounce="100ms", citadel=True, mixer=True)
    assert mesh.citadel is not None and mesh.mixer is not None
    out(f"meshplane demo: Pilot on {mesh.pilot.xds_address} (monitor {mesh.pilot.monitor_url})")
    out(f"  Citadel on {mesh.citadel.sds_address} (monitor {mesh.citadel.monitor_url}), CA in {mesh.citadel.ca_dir}")
    out(f"  Mixer on {mesh.mixer.grpc_address} (monitor {mesh.mixer.monitor_url})")
    out(f"  config and logs in {workdir}" + (" (removed when the demo ends cleanly)" if temporary else ""))
    async with mesh:
        await mesh.apply("reviews-mesh", demo_config_text(DEMO_MESH_FILE, mesh.subnet))
        out(f"  applied {DEMO_MESH_FILE.name}: ServiceEntry reviews (port {REVIEWS_PORT}, STATIC, app=reviews),")
        out("    WorkloadEntries reviews-v1/v2/v3 and productpage, DestinationRule reviews (subsets v1 v2 v3)")
        await mesh.start_workloads(DEMO_WORKLOADS)
        await mesh.wait_synced()
        for spec in DEMO_WORKLOADS:
            workload = mesh.workloads[spec.name]
            role = f"app :{spec.app_port}, sidecar inbound :{REVIEWS_PORT}" if spec.service else "client"
            out(f"  {spec.name:<12} {workload.address:<11} {role}; outbound proxy :{HTTP_PROXY_PORT}")
        ok = True
        for number, step in enumerate(DEMO_STEPS, start=1):
            ok = await _run_step(mesh, number, step, requests, out) and ok
        ok = await _run_mtls_step(mesh, len(DEMO_STEPS) + 1, out) and ok
        ok = await _run_policy_step(mesh, len(DEMO_STEPS) + 2, out) and ok
        await _print_edge_counts(mesh, out)
        if keep_running:
            _print_how_to_use(out, mesh)
            await _wait_for_interrupt()
            out("Stopping the mesh...")
    return ok
