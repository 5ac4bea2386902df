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
Mixer recorded per edge, and a teardown that leaves nothing on the machine. The steps themselves are
``e2e.demo_steps`` (shared with ``meshplane demo --compose``).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.pod_network import DEFAULT_PODS_DIR, PodNetwork, read_pod
from e2e.control_plane import CitadelProcess, MixerProcess, PilotProcess
from e2e.demo_steps import (
    DEMO_STEPS,
    DEMO_TCP_STEPS,
    OUTSIDER,
    TCP_ECHO_HOST,
    DemoStep,
    Printer,
    Traffic,
    run_demo_steps,
)
from e2e.harness import (
    CITADEL_MONITOR_PORT,
    CITADEL_SDS_PORT,
    MIXER_GRPC_PORT,
    MIXER_MONITOR_PORT,
    MONITOR_PORT,
    XDS_PORT,
    port_free,
)
from e2e.l4_apps import TCP_ECHO_PORT, TCP_ECHO_WORDS, tcp_echo_replies
from e2e.l4_mesh import start_tcp_echo
from e2e.mesh_config import (
    DEMO_CLIENT,
    DEMO_MESH_FILE,
    DEMO_POD_HOSTS,
    DEMO_POD_NETWORK,
    DEMO_TCP_SERVICES_FILE,
    DEMO_WORKLOADS,
    REVIEWS_PORT,
    demo_pod_addresses,
    render_pod_demo,
)
from e2e.pod_mesh import NAMESPACE, REVIEWS_URL, PodMesh
from e2e.pods import APP_UID, app_server_command, pod_requests, why_pods_cannot_run
from e2e.traffic import MeshResponse
from meshplane.names import PROXY_UID

__all__ = ["DEMO_STEPS", "DEMO_TCP_STEPS", "DemoStep", "Traffic", "run_demo"]

CONTROL_PLANE_HOST = "127.0.0.1"  # Pilot, Citadel and Mixer on the host; `pod run` relays them into each pod


_PORT_CHECKS, _PORT_CHECK_SECONDS = 6, 0.5  # a port held for up to ~2.5 s is not taken for another demo


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


async def _ports_still_in_use(state_dir: Path) -> list[str]:
    """``_ports_in_use``, looked at again for a few seconds while something is: Mixer's monitor port (Istio's
    42422) is in Linux's ephemeral range, so a short-lived client connection can hold it for a moment."""
    for _ in range(_PORT_CHECKS - 1):
        busy = _ports_in_use(state_dir)
        if not busy:
            return busy
        await asyncio.sleep(_PORT_CHECK_SECONDS)
    return _ports_in_use(state_dir)


@dataclass(frozen=True, slots=True)
class _PodDemoMesh:
    """The demo's steps' view (``e2e.demo_steps.DemoMesh``) of the pods this demo started."""

    mesh: PodMesh

    @property
    def addresses(self) -> Mapping[str, str]:
        return self.mesh.addresses

    @property
    def mixer_url(self) -> str:
        assert self.mesh.mixer is not None
        return self.mesh.mixer.monitor_url

    async def apply(self, name: str, path: Path) -> Mapping[str, Any]:
        await self.mesh.config.apply(name, render_pod_demo(path, self.mesh.network))
        return await self.mesh.config.wait_synced()

    async def responses(
        self, url: str, count: int = 1, *, headers: Mapping[str, str] | None = None
    ) -> list[MeshResponse]:
        return await self.mesh.responses(url, count, headers=headers)

    async def request(self, url: str, *, headers: Mapping[str, str] | None = None) -> MeshResponse:
        return await self.mesh.request(url, headers=headers)

    async def plaintext_request(self, caller: str, url: str) -> tuple[int, str]:
        [(status, error, _)] = await asyncio.to_thread(pod_requests, self.mesh.pod(caller), url)
        return status, error

    async def tcp_replies(self, host: str, port: int, count: int) -> list[str]:
        return await asyncio.to_thread(tcp_echo_replies, self.mesh.client, host, port, count)

    async def mixer_metrics(self) -> str:
        assert self.mesh.mixer is not None
        return await self.mesh.mixer.metrics_text()


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
    busy = await _ports_still_in_use(state_dir)
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
        ok = await run_demo_steps(_PodDemoMesh(mesh), requests, out)
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
