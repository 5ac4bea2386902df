"""``meshplane demo``: Istio's reviews traffic-shifting walkthrough, with every workload a pod.

Pilot on 127.0.0.1:15010 (monitor :15014), Citadel on :15012, Mixer on :9091 (monitor :42422) on the host; three
versions of ``reviews`` and a ``productpage`` client as pods on the pod network (``meshplane pod run``: a network
namespace each, the app and its sidecar Envoy inside, iptables capture, the DNS agent), registered as
WorkloadEntries with their pod IPs. productpage's app is plain ``urllib`` calling ``http://reviews:9080/`` with no
proxy settings. Three VirtualServices from ``e2e/demo_config/`` are applied in turn (all to v1; 90/10 v1/v2;
``end-user: jason`` to v2, others to v3) and after each one the split is MEASURED: real requests from the
productpage pod, counted by the version that answered. Then STRICT mutual TLS (a plaintext caller from a network
namespace without a sidecar is refused), then policy (a DENY rule answered 403, a rate limit answered 429 by
Mixer), then Istio's TCP traffic-shifting task (``tcp-echo`` v1 and v2 as pods, a ``tcp`` route all to v1, then 80/20:
each split MEASURED over fresh TCP connections of an unmodified app in the productpage pod), the request counts
Mixer recorded per edge, and a teardown that leaves nothing on the machine.
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

from agent.pod_network import DEFAULT_PODS_DIR, PodNetwork, read_pod
from e2e.control_plane import CitadelProcess, MixerProcess, PilotProcess
from e2e.harness import (
    CITADEL_MONITOR_PORT,
    CITADEL_SDS_PORT,
    MIXER_GRPC_PORT,
    MIXER_MONITOR_PORT,
    MONITOR_PORT,
    XDS_PORT,
    port_free,
)
from e2e.l4_apps import TCP_ECHO_PORT, TCP_ECHO_WORDS, tcp_echo_counts, tcp_echo_replies
from e2e.l4_mesh import settle, start_tcp_echo
from e2e.mesh_config import (
    DEMO_CLIENT,
    DEMO_MESH_FILE,
    DEMO_MTLS_FILE,
    DEMO_POD_HOSTS,
    DEMO_POD_NETWORK,
    DEMO_POLICY_FILE,
    DEMO_ROUTE_FILES,
    DEMO_TCP_ROUTE_FILES,
    DEMO_TCP_SERVICES_FILE,
    DEMO_WORKLOADS,
    REVIEWS_PORT,
    demo_pod_addresses,
    render_pod_demo,
)
from e2e.mtls import caller_identity
from e2e.pod_mesh import NAMESPACE, REVIEWS_URL, PodMesh
from e2e.pods import APP_UID, app_server_command, pod_requests, why_pods_cannot_run
from e2e.telemetry import istio_request_counts
from e2e.traffic import MeshResponse, count_by
from envoy_bootstrap.runner import DRAIN_TIME_SECONDS
from meshplane.identity import DEFAULT_TRUST_DOMAIN, spiffe_id
from meshplane.names import PROXY_UID

__all__ = ["DEMO_STEPS", "DEMO_TCP_STEPS", "DemoStep", "Traffic", "run_demo"]

Printer = Callable[[str], None]
ROUTE_CONFIG_NAME = "reviews-virtualservice"  # every step replaces the same file: one VirtualService at a time
MTLS_CONFIG_NAME = "mesh-peer-authentication"
POLICY_CONFIG_NAME = "reviews-policy"
TCP_CONFIG_NAME = "tcp-echo-virtualservice"  # the TCP step's two rules replace each other too
TCP_ECHO_HOST = "tcp-echo"
GUEST_REQUESTS = 8  # against a limit of 5 per 30s in 05-reviews-policy.yaml
GUEST_LIMIT = 5
STEP_COUNT = 6  # the three routing steps, mutual TLS, policy, TCP traffic shifting
CONTROL_PLANE_HOST = "127.0.0.1"  # Pilot, Citadel and Mixer on the host; `pod run` relays them into each pod
OUTSIDER = "stranger"  # a network namespace on the pod network without a sidecar: the mTLS step's plaintext caller
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


def _ports_in_use(state_dir: Path) -> list[str]:
    control_ports = (
        XDS_PORT,
        MONITOR_PORT,
        CITADEL_SDS_PORT,
        CITADEL_MONITOR_PORT,
        MIXER_GRPC_PORT,
        MIXER_MONITOR_PORT,
    )
    busy = [f"{CONTROL_PLANE_HOST}:{port}" for port in control_ports if not port_free(CONTROL_PLANE_HOST, port)]
    return busy + [f"pod {name}.{NAMESPACE}" for name in DEMO_POD_HOSTS if read_pod(NAMESPACE, name, state_dir)]


def _answered_by(response: MeshResponse) -> str:
    return f"reviews-{response.version}" if response.version else f"HTTP {response.status}"


async def _apply(mesh: PodMesh, name: str, path: Path, out: Printer, *, mixer: bool = False) -> bool:
    await mesh.config.apply(name, render_pod_demo(path, mesh.network))
    configz = await mesh.config.wait_synced()
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


async def _run_step(mesh: PodMesh, number: int, step: DemoStep, requests: int, out: Printer) -> bool:
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


async def _run_tcp_step(mesh: PodMesh, number: int, connections: int, out: Printer) -> bool:
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


def _echo_replies(mesh: PodMesh, count: int) -> list[str]:
    return tcp_echo_replies(mesh.client, TCP_ECHO_HOST, TCP_ECHO_PORT, count)


async def _measure_tcp_split(mesh: PodMesh, traffic: Traffic, connections: int, out: Printer) -> bool:
    """The split counted over fresh TCP connections (one line each way) of an app in the productpage pod, by the
    version that echoed the line. Before counting, a few connections show the sidecar's listener has the rule
    (Envoy hands new connections to a changed listener once it is in place)."""
    versions = set(traffic.expected)
    try:
        await settle(lambda: _echo_replies(mesh, 10), lambda r: set(tcp_echo_counts(r)) == versions, mesh, "tcp")
    except AssertionError:
        out(f"    the productpage sidecar did not take the rule: {TCP_ECHO_HOST} is not answered by {sorted(versions)}")
        return False
    counts = tcp_echo_counts(await asyncio.to_thread(_echo_replies, mesh, connections))
    target = f"{TCP_ECHO_HOST}:{TCP_ECHO_PORT}"
    what = f"    {traffic.label}: {connections} TCP connections from {DEMO_CLIENT.name} to {target}"
    return _print_measured(out, what, "connections", counts, traffic.expected, connections)


async def _run_mtls_step(mesh: PodMesh, number: int, out: Printer) -> bool:
    """STRICT mesh-wide: a caller without a sidecar is refused, a sidecar's call carries its SPIFFE identity."""
    _print_step(out, number, DEMO_MTLS_FILE)
    if not await _apply(mesh, MTLS_CONFIG_NAME, DEMO_MTLS_FILE, out):
        return False
    inbound = f"http://{mesh.addresses['reviews-v1']}:{REVIEWS_PORT}/"
    [(plaintext, error, _)] = await asyncio.to_thread(pod_requests, mesh.pod(OUTSIDER), inbound)
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


async def _run_policy_step(mesh: PodMesh, number: int, out: Printer) -> bool:
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


async def _print_edge_counts(mesh: PodMesh, out: Printer) -> None:
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


def _print_how_to_use(out: Printer, mesh: PodMesh) -> None:
    pilot = mesh.pilot.monitor_url
    state = "" if mesh.state_dir == DEFAULT_PODS_DIR else f" --state-dir {mesh.state_dir}"
    exec_ = f"sudo .venv/bin/meshplane pod exec {DEMO_CLIENT.name}{state} --"
    out("")
    out("The mesh keeps running. Call reviews as productpage's app does, from inside its pod (no proxy settings):")
    out(f"  {exec_} curl -s {REVIEWS_URL}")
    out(f"  {exec_} curl -s -H 'end-user: jason' {REVIEWS_URL}")
    tcp = f"exec 3<>/dev/tcp/{TCP_ECHO_HOST}/{TCP_ECHO_PORT}; echo hello >&3; head -1 <&3"
    out(f"  {exec_} bash -c '{tcp}'   # a TCP connection to tcp-echo")
    out(f"Change routing: edit or add Istio YAML in {mesh.config.config_dir} (Pilot watches it).")
    out(f"Pilot: curl {pilot}/debug/syncz   /debug/configz")
    assert mesh.mixer is not None
    out(f"Mixer: curl {mesh.mixer.monitor_url}/metrics   /graph")
    out(f"Envoy admin, inside a pod: {exec_} curl -s 127.0.0.1:15000/")
    out(f"Logs: {mesh.workdir} and each pod's directory (envoy.log, agent.log, app.log)")
    out("Press Ctrl-C to stop.")


async def run_demo(
    *,
    requests: int = 200,
    keep_running: bool = False,
    workdir: Path | None = None,
    network: PodNetwork = DEMO_POD_NETWORK,
    state_dir: Path = DEFAULT_PODS_DIR,
    out: Printer = print,
) -> int:
    """Run the demo; 0 when every measured split matched its rule and nothing was left behind, 1 otherwise (also
    on startup failure), 2 when pods cannot run here (not root, or a tool missing)."""
    if requests < 1:
        raise ValueError(f"requests: must be >= 1, got {requests}")
    missing = why_pods_cannot_run()
    if missing is not None:
        out(f"meshplane demo: the demo runs its workloads as pods, and {missing}.")
        out("  Run it as root: sudo make demo   (or: sudo .venv/bin/meshplane demo)")
        return 2
    busy = _ports_in_use(state_dir)
    if busy:
        out(f"meshplane demo: already in use: {', '.join(busy)}")
        out("Is another demo (or an Istio/Envoy) running on this machine? Stop it and try again.")
        return 1
    own_workdir = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="meshplane-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ok = False
    interrupted = True  # until the walkthrough returns or raises an error of its own
    try:
        ok = await _walkthrough(workdir, network, state_dir, requests, keep_running, out, temporary=own_workdir)
        interrupted = False
    except Exception:
        interrupted = False
        out(f"meshplane demo failed; logs kept in {workdir}")
        raise
    finally:
        if own_workdir and (ok or interrupted):
            shutil.rmtree(workdir, ignore_errors=True)
    out("")
    out("All measured splits match their rules." if ok else f"Some steps did NOT go as expected; logs in {workdir}")
    return 0 if ok else 1


def _demo_mesh(workdir: Path, network: PodNetwork, state_dir: Path) -> PodMesh:
    config_dir = workdir / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    pilot = PilotProcess(
        config_dir=config_dir,
        workdir=workdir,
        xds_address=f"{CONTROL_PLANE_HOST}:{XDS_PORT}",
        monitor_address=f"{CONTROL_PLANE_HOST}:{MONITOR_PORT}",
    )
    citadel = CitadelProcess(
        ca_dir=workdir / "ca",
        workdir=workdir,
        sds_address=f"{CONTROL_PLANE_HOST}:{CITADEL_SDS_PORT}",
        monitor_address=f"{CONTROL_PLANE_HOST}:{CITADEL_MONITOR_PORT}",
    )
    mixer = MixerProcess(
        config_dir=config_dir,
        workdir=workdir,
        grpc_address=f"{CONTROL_PLANE_HOST}:{MIXER_GRPC_PORT}",
        monitor_address=f"{CONTROL_PLANE_HOST}:{MIXER_MONITOR_PORT}",
    )
    addresses = demo_pod_addresses(network)
    return PodMesh(
        workdir=workdir,
        network=network,
        pilot=pilot,
        citadel=citadel,
        mixer=mixer,
        addresses=addresses,
        state_dir=state_dir,
    )


async def _start_pods(mesh: PodMesh, out: Printer) -> None:
    await mesh.run_plain(OUTSIDER)
    for spec in DEMO_WORKLOADS:
        labels = f"app={spec.service or spec.name},version={spec.version}"
        app = (
            app_server_command(spec.service, spec.version, REVIEWS_PORT)
            if spec.service is not None
            else ["/bin/sleep", "infinity"]
        )
        await mesh.run_pod(spec.name, app, service_account=spec.service_account, labels=labels)
    await start_tcp_echo(mesh)
    await mesh.wait_reviews()
    await mesh.config.wait_synced()
    out(
        f"  pods on {mesh.network.cidr} (bridge {mesh.network.bridge}), each: netns + iptables capture + DNS agent"
        f" + Envoy (uid {PROXY_UID}) + app (uid {APP_UID}):"
    )
    for spec in DEMO_WORKLOADS:
        role = f"app: reviews {spec.version} on :{REVIEWS_PORT}" if spec.service else f"app: urllib -> {REVIEWS_URL}"
        out(f"  {spec.name:<12} {mesh.addresses[spec.name]:<12} {role}")
    for version in TCP_ECHO_WORDS:
        name = f"tcp-echo-{version}"
        out(f"  {name:<12} {mesh.addresses[name]:<12} app: tcp-echo-server {version} on :{TCP_ECHO_PORT} (TCP)")
    out(f"  {OUTSIDER:<12} {mesh.addresses[OUTSIDER]:<12} no sidecar (outside the mesh)")


async def _walkthrough(
    workdir: Path,
    network: PodNetwork,
    state_dir: Path,
    requests: int,
    keep_running: bool,
    out: Printer,
    *,
    temporary: bool,
) -> bool:
    mesh = _demo_mesh(workdir, network, state_dir)
    assert mesh.citadel is not None and mesh.mixer is not None
    out(f"meshplane demo: Pilot on {mesh.pilot.xds_address} (monitor {mesh.pilot.monitor_url})")
    out(f"  Citadel on {mesh.citadel.sds_address} (monitor {mesh.citadel.monitor_url}), CA in {mesh.citadel.ca_dir}")
    out(f"  Mixer on {mesh.mixer.grpc_address} (monitor {mesh.mixer.monitor_url})")
    out(f"  config and logs in {workdir}" + (" (removed when the demo ends cleanly)" if temporary else ""))
    ok = False
    left: list[str] = []
    try:
        for component in (mesh.pilot, mesh.citadel, mesh.mixer):
            await component.start()
        await mesh.config.apply("reviews-mesh", render_pod_demo(DEMO_MESH_FILE, network))
        out(f"  applied {DEMO_MESH_FILE.name}: ServiceEntry reviews (port {REVIEWS_PORT}, STATIC, app=reviews),")
        out("    WorkloadEntries reviews-v1/v2/v3 and productpage (pod IPs), DestinationRule reviews (v1 v2 v3)")
        await mesh.config.apply("tcp-echo-services", render_pod_demo(DEMO_TCP_SERVICES_FILE, network))
        out(f"  applied {DEMO_TCP_SERVICES_FILE.name}: ServiceEntry tcp-echo (port {TCP_ECHO_PORT}, TCP),")
        out("    WorkloadEntries tcp-echo-v1/v2 (pod IPs), DestinationRule tcp-echo-destination (v1 v2)")
        await _start_pods(mesh, out)
        ok = True
        for number, step in enumerate(DEMO_STEPS, start=1):
            ok = await _run_step(mesh, number, step, requests, out) and ok
        ok = await _run_mtls_step(mesh, len(DEMO_STEPS) + 1, out) and ok
        ok = await _run_policy_step(mesh, len(DEMO_STEPS) + 2, out) and ok
        ok = await _run_tcp_step(mesh, len(DEMO_STEPS) + 3, requests, out) and ok
        await _print_edge_counts(mesh, out)
        if keep_running:
            _print_how_to_use(out, mesh)
            await _wait_for_interrupt()
            out("Stopping the mesh...")
    finally:
        left = await mesh.stop()
    out("")
    out("Stopped Pilot, Citadel, Mixer and all pods; " + ("nothing left on the machine." if not left else "LEFT:"))
    for thing in left:
        out(f"  {thing}")
    return ok and not left
