"""A mesh of pods for the end-to-end scenarios, on a pod network of the test's own: a real Pilot (and Citadel when
asked) on the host, ``reviews`` v1 and v2 pods (``meshplane pod run``, a stdlib HTTP server as the app on :9080), a
``productpage`` client pod whose app is plain ``urllib``, and network namespaces on the pod network outside the mesh
(no sidecar, not in the registry): the pods' upstream DNS server (``e2e.dns_world`` on :53), a plain HTTP server
on :9080 (``outside``) and a plaintext client (``stranger``).

Addresses are hosts of the network's /24: productpage .10, reviews-v1 .21, reviews-v2 .22, DNS .53, outside .60,
stranger .70. The registry is ServiceEntry ``reviews`` (STATIC, workloadSelector app=reviews), WorkloadEntries
whose addresses are the pod IPs, and a DestinationRule with subsets v1 and v2; the upstream DNS knows
``outside.example`` (the outside server's IP), so a name outside the mesh is forwarded by the pod's agent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from agent.netns import in_netns_command
from agent.pod_network import (
    DEFAULT_PODS_DIR,
    PodAddress,
    PodNetwork,
    create_pod,
    delete_pod,
    network_lock,
    pods_left,
    read_pod,
    setup_network,
    teardown_network,
)
from citadel.ca_dir import load_or_create_token_key
from citadel.tokens import issue_token
from e2e.config_sync import ConfigSync
from e2e.control_plane import CitadelProcess, MixerProcess, PilotProcess
from e2e.harness import find_free_subnet
from e2e.pods import (
    APP_UID,
    app_server_command,
    envoy_stat,
    leftovers,
    new_state_dir,
    pod_get,
    pod_requests,
    random_pod_network,
)
from e2e.traffic import MeshResponse, app_body
from envoy_bootstrap.bootstrap import XdsMode, sidecar_node_id
from envoy_bootstrap.processes import start_logged_process, stop_process
from envoy_bootstrap.runner import DRAIN_TIME_SECONDS
from meshplane.identity import DEFAULT_TRUST_DOMAIN

__all__ = ["NAMESPACE", "OUTSIDE_NAME", "REVIEWS_PORT", "REVIEWS_SEE_NOTHING", "REVIEWS_URL", "PodMesh", "pod_mesh"]

NAMESPACE = "default"
# A Sidecar hiding every service from the reviews pods (egress ``~/*``): what the proxy's own filters call (an
# ext_authz provider, a JWKS server) must stay reachable under it
REVIEWS_SEE_NOTHING = f"""\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: reviews
  namespace: {NAMESPACE}
spec:
  workloadSelector:
    labels: {{app: reviews}}
  egress:
  - hosts: ["~/*"]
"""
REVIEWS_PORT = 9080
REVIEWS_URL = f"http://reviews:{REVIEWS_PORT}/"
OUTSIDE_NAME = "outside.example"
_HOSTS = {
    "productpage": 10,
    "reviews-v1": 21,
    "reviews-v2": 22,
    "reviews-v3": 23,
    "reviews-v4": 24,  # bench.mixer_policy --mixer-path both: a second Mixer-checked workload, relayed
    "ratings": 30,
    "details": 40,  # no WorkloadEntry: for a scenario's own workload (auto-registered from a WorkloadGroup)
    "dns": 53,
    "outside": 60,
    "stranger": 70,
    "ingressgateway": 80,  # e2e.pod_gateway: gateways, plain namespaces running `envoy-bootstrap run gateway`
    "egressgateway": 81,
    "eastwestgateway": 83,  # AUTO_PASSTHROUGH (e2e/test_pod_gateway_auto_passthrough.py)
    "external": 82,  # a server outside the mesh a scenario starts itself (``run_plain("external", ...)``)
}
MIXER_GRPC_PORT = 9091  # as e2e.harness: Istio Mixer's gRPC port (checks and access logs), its Prometheus port
MIXER_MONITOR_PORT = 42422
_READY_SECONDS = 40.0
REVIEWS_VERSIONS = ("v1", "v2")
REGISTRY_FILE = "00-registry.yaml"


def _workload_entry(name: str, address: str, labels: dict[str, str], service_account: str, locality: str = "") -> str:
    label_lines = "".join(f"    {key}: {value}\n" for key, value in labels.items())
    return (
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        f"metadata:\n  name: {name}\n  namespace: {NAMESPACE}\n"
        f"spec:\n  serviceAccount: {service_account}\n  address: {address}\n"
        + (f"  locality: {locality}\n" if locality else "")
        + f"  labels:\n{label_lines}"
    )


def registry_yaml(
    addresses: dict[str, str], versions: Sequence[str] = REVIEWS_VERSIONS, localities: Mapping[str, str] | None = None
) -> str:
    """The registry; ``localities``: workload name -> ``region/zone[/subzone]`` of its WorkloadEntry."""
    localities = localities or {}
    service_entry = f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: {NAMESPACE}
spec:
  hosts: [reviews.{NAMESPACE}.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: {REVIEWS_PORT}, name: http, protocol: HTTP}}]
  resolution: STATIC
  workloadSelector:
    labels: {{app: reviews}}
"""
    destination_rule = f"""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: {NAMESPACE}
spec:
  host: reviews
  subsets:
""" + "".join(f"  - {{name: {v}, labels: {{version: {v}}}}}\n" for v in versions)
    entries = [
        _workload_entry(
            f"reviews-{v}",
            addresses[f"reviews-{v}"],
            {"app": "reviews", "version": v},
            "bookinfo-reviews",
            localities.get(f"reviews-{v}", ""),
        )
        for v in versions
    ]
    for client in ("productpage", "ratings"):  # ratings: a second client pod, started by the scenarios needing it
        entries.append(
            _workload_entry(
                client, addresses[client], {"app": client}, f"bookinfo-{client}", localities.get(client, "")
            )
        )
    return "---\n".join([service_entry, destination_rule, *entries])


@dataclass
class _Pod:
    """One ``meshplane pod run`` process."""

    name: str
    argv: list[str]
    log: Path
    state_dir: Path
    process: asyncio.subprocess.Process | None = None
    address: PodAddress | None = None

    async def start(self) -> None:
        self.process = await start_logged_process(self.argv, self.log)
        for _ in range(100):
            self.address = read_pod(NAMESPACE, self.name, self.state_dir)
            if self.address is not None:
                return
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.1)
        raise AssertionError(f"pod {self.name} did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    async def stop(self) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 30)


@dataclass
class PodMesh:
    workdir: Path
    network: PodNetwork
    pilot: PilotProcess
    citadel: CitadelProcess | None
    addresses: dict[str, str]
    mixer: MixerProcess | None = None
    mixer_direct: bool = False  # every pod's ``--mixer-direct``: Mixer listens on the pod network's gateway
    mixer_relayed: frozenset[str] = frozenset()  # pods relaying Mixer even so (they relay its gateway address)
    state_dir: Path = DEFAULT_PODS_DIR  # the pods' (``pod run --state-dir``); tests use one of their own
    xds_mode: XdsMode = "sotw"
    pods: dict[str, _Pod] = field(default_factory=dict)
    plain: dict[str, PodAddress] = field(default_factory=dict)
    plain_processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    config: ConfigSync = field(init=False)
    initial_files: frozenset[str] = frozenset({REGISTRY_FILE})

    def __post_init__(self) -> None:
        self.config = ConfigSync(
            config_dir=self.pilot.config_dir, pilot=self.pilot, mixer=self.mixer, proxies=self.node_ids
        )

    def node_ids(self) -> dict[str, str]:
        """The node id of every pod's sidecar (Pilot matches it to the WorkloadEntry of the same name)."""
        return {
            name: sidecar_node_id(
                workload=name, namespace=NAMESPACE, address=self.addresses[name], domain_suffix="cluster.local"
            )
            for name in self.pods
        }

    @property
    def client(self) -> PodAddress:
        address = self.pods["productpage"].address
        assert address is not None
        return address

    def pod(self, name: str) -> PodAddress:
        address = self.pods[name].address if name in self.pods else self.plain.get(name)
        assert address is not None
        return address

    def get(self, url: str, count: int = 1, *, headers: dict[str, str] | None = None) -> list[tuple[int, str]]:
        return pod_get(self.client, url, count, headers=headers)

    async def responses(
        self,
        url: str,
        count: int = 1,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        client: str = "productpage",
        concurrency: int = 1,
    ) -> list[MeshResponse]:
        """``count`` requests by plain ``urllib`` in ``client``'s pod (no proxy settings), as the app saw them;
        ``concurrency`` of them in flight."""
        found = await asyncio.to_thread(
            pod_requests,
            self.pod(client),
            url,
            count,
            headers=headers,
            method=method,
            follow_redirects=follow_redirects,
            concurrency=concurrency,
        )
        return [MeshResponse(status=code, headers=h, text=text, body=app_body(text)) for code, text, h in found]

    async def until_drained(self, *names: str, seconds: float = DRAIN_TIME_SECONDS + 5) -> None:
        """Until the sidecars of ``names`` drain nothing (Envoy's ``listener_manager.total_filter_chains_draining``
        and ``total_listeners_draining`` at 0): a connection opened before a listener change is served by the old
        filter chain until it is drained, so a request on it may still get the previous policy."""
        deadline = time.monotonic() + seconds
        stats = ("listener_manager.total_filter_chains_draining", "listener_manager.total_listeners_draining")
        for name in names:
            while draining := {
                stat: n for stat in stats if (n := await asyncio.to_thread(envoy_stat, self.pod(name), stat))
            }:
                assert time.monotonic() < deadline, f"{name}'s sidecar still drains: {draining}"
                await asyncio.sleep(0.1)

    async def request(self, url: str, **options: Any) -> MeshResponse:  # ``responses``' keywords
        [response] = await self.responses(url, 1, **options)
        return response

    async def app_requests(self, pod: str, path: str) -> int:
        """How many requests for ``path`` the app of ``pod`` (``e2e.pod_app``) got, asked inside the pod on
        127.0.0.1 (not captured: no sidecar, no rule between)."""
        url = f"http://127.0.0.1:{REVIEWS_PORT}/count{path}"
        [(status, body)] = await asyncio.to_thread(pod_get, self.pod(pod), url)
        assert status == 200, (status, body)
        count = json.loads(body)["count"]
        assert isinstance(count, int)
        return count

    async def reset(self) -> None:
        """Back to the world as started (only the registry and the rules ``pod_mesh`` was given): every other
        file of the config directory removed (rules first, then the files they read, e.g. an AccessList's
        ``entriesFile``), Pilot and Mixer running (a test may have stopped them), and the mesh synced."""
        if not self.pilot.running:
            await self.pilot.start()
            self.config.forget()
        if self.mixer is not None and not self.mixer.running:
            await self.mixer.start()
        extra = [p for p in self.pilot.config_dir.iterdir() if p.is_file() and p.name not in self.initial_files]
        rules = [p.stem for p in extra if p.suffix == ".yaml"]
        for name in rules:
            await self.config.remove(name)
        if rules:
            await self.config.wait_synced()
        for path in extra:
            path.unlink(missing_ok=True)

    def workload_token(self, service_account: str) -> str:
        """A genuine token for ``service_account`` in the mesh's namespace, signed by Citadel's key."""
        assert self.citadel is not None
        key = load_or_create_token_key(self.citadel.ca_dir)
        return issue_token(
            key,
            trust_domain=DEFAULT_TRUST_DOMAIN,
            namespace=NAMESPACE,
            service_account=service_account,
            ttl=timedelta(hours=1),
        )

    def _token_args(self, name: str, service_account: str, token: str | None) -> list[str]:
        if self.citadel is None:
            return []
        token = token if token is not None else self.workload_token(service_account)
        token_file = self.workdir / f"{name}.token"
        token_file.write_text(token)
        root = self.citadel.ca_dir / "trust-bundle.pem"
        return ["--citadel", self.citadel.sds_address, "--token-file", str(token_file), "--root-cert", str(root)]

    async def run_pod(
        self,
        name: str,
        app: Sequence[str],
        *,
        service_account: str,
        labels: str,
        token: str | None = None,
        node_metadata: Mapping[str, str] | None = None,
    ) -> None:
        """``meshplane pod run`` for ``name`` (its token: a genuine one for ``service_account`` unless given;
        ``node_metadata``: more sidecar node metadata, ``--node-metadata``)."""
        argv = [
            *(sys.executable, "-m", "e2e.cli", "pod", "run", name, "--namespace", NAMESPACE),
            *("--ip", self.addresses[name], "--pilot", self.pilot.xds_address, "--app-uid", str(APP_UID)),
            *("--xds-mode", self.xds_mode),
            *("--service-account", service_account, "--labels", labels),
            *(("--dns-upstream", self.addresses["dns"]) if "dns" in self.addresses else ()),
            *("--pod-cidr", self.network.cidr, "--bridge", self.network.bridge, "--state-dir", str(self.state_dir)),
            *(("--mixer", self.mixer.grpc_address) if self.mixer is not None else ()),
            *(("--mixer-direct",) if self.mixer is not None and self._mixer_direct(name) else ()),
            *self._token_args(name, service_account, token),
            *(f"--node-metadata={key}={value}" for key, value in (node_metadata or {}).items()),
            "--",
            *app,
        ]
        pod = _Pod(name=name, argv=argv, log=self.workdir / f"pod-{name}.log", state_dir=self.state_dir)
        self.pods[name] = pod
        await pod.start()

    def _mixer_direct(self, pod: str) -> bool:
        return self.mixer_direct and pod not in self.mixer_relayed

    async def run_client(self, name: str, *, token: str | None = None) -> None:
        """A client pod (``productpage`` or ``ratings``: its WorkloadEntry is in the registry) whose app only sleeps:
        its requests are made by ``responses``/``pod_get`` inside it; identity ``bookinfo-<name>``, label
        ``app=<name>``."""
        await self.run_pod(
            name, ["/bin/sleep", "3600"], service_account=f"bookinfo-{name}", labels=f"app={name}", token=token
        )

    async def run_plain(self, name: str, argv: Sequence[str] | None = None, *, uid: int | None = APP_UID) -> PodAddress:
        """A network namespace on the pod network with no sidecar and no capture (outside the mesh), running
        ``argv`` as ``uid`` when given."""
        with network_lock():
            setup_network(self.network)
            delete_pod(NAMESPACE, name, self.state_dir)
            address = create_pod(
                self.network,
                name=name,
                namespace=NAMESPACE,
                pod_ip=self.addresses[name],
                app_uid=APP_UID,
                app_gid=APP_UID,
                runner_pid=0,
                state_dir=self.state_dir,
            )
        self.plain[name] = address
        if argv is not None:
            command = in_netns_command(address.netns, argv, uid=uid)
            self.plain_processes.append(await start_logged_process(command, self.workdir / f"plain-{name}.log"))
        return address

    async def wait_reviews(self, status: int = 200, client: str = "productpage") -> None:
        """Until ``client`` reaches reviews through DNS, both sidecars and Pilot's config (answered ``status``: a
        policy may deny the client)."""
        deadline = asyncio.get_running_loop().time() + _READY_SECONDS
        last: list[tuple[int, str]] = []
        while asyncio.get_running_loop().time() < deadline:
            last = await asyncio.to_thread(pod_get, self.pod(client), REVIEWS_URL, 4)
            if all(code == status for code, _ in last):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"reviews not reachable from {client}: {last}\n{self.log_tails()}")

    def log_tails(self) -> str:
        parts = [f"--- pilot\n{self.pilot.log_tail(20)}"]
        if self.mixer is not None:
            parts.append(f"--- mixer\n{self.mixer.log_tail(20)}")
        for pod in self.pods.values():
            parts.append(f"--- {pod.name}\n{pod.log.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    async def stop(self) -> list[str]:
        """Stop everything; what is left on the machine (empty: nothing)."""
        codes = await asyncio.gather(*(pod.stop() for pod in self.pods.values()), return_exceptions=True)
        for process in self.plain_processes:
            await stop_process(process, name="plain", timeout=5)
        with network_lock():
            for name in self.plain:
                delete_pod(NAMESPACE, name, self.state_dir)
            if not pods_left(self.network):
                teardown_network(self.network)
        await self.pilot.stop()
        for component in (self.citadel, self.mixer):
            if component is not None:
                await component.stop()
        found = leftovers(self.network, [*self.plain.values(), *(p.address for p in self.pods.values() if p.address)])
        return found + [f"pod exited with {c!r}" for c in codes if c not in (None, 128 + signal.SIGTERM)]


@contextlib.asynccontextmanager
async def pod_mesh(
    workdir: Path,
    config: str = "",
    *,
    citadel: bool = False,
    citadel_arguments: tuple[str, ...] = (),
    mixer: bool = False,
    mixer_direct: bool = False,
    mixer_relayed: Sequence[str] = (),
    xds_mode: XdsMode = "sotw",
    mesh_config: str | None = None,
    ready_status: int = 200,
    versions: Sequence[str] = REVIEWS_VERSIONS,
    clients: Sequence[str] = ("productpage",),
    localities: Mapping[str, str] | None = None,
    dns_names: Mapping[str, str] | None = None,
    pilot_arguments: Sequence[str] = (),
) -> AsyncIterator[PodMesh]:
    """The whole world above, ready (every client reaches reviews, answered ``ready_status``); ``config`` is more
    Istio YAML (routes, policy), ``mesh_config`` a MeshConfig file's text for ``pilot --mesh-config``; with
    ``mixer``, Mixer runs on the host (reading the same config directory) and every pod gets ``--mixer``: with
    ``mixer_direct`` Mixer listens on the pod network's gateway and the sidecars connect to it there
    (``pod run --mixer-direct``; the pods named in ``mixer_relayed`` relay that address all the same, so that a
    benchmark compares both paths in one mesh), without it (the default) on the host's loopback, relayed into each pod;
    ``citadel_arguments`` are more ``citadel serve`` flags (``--cert-ttl 20s``); ``versions`` are the reviews pods
    (and the DestinationRule's subsets); ``clients`` the client pods (``run_client``: productpage, and ratings
    for a second caller with an identity of its own), each ready; ``xds_mode`` every sidecar's ADS flavour;
    ``localities`` the WorkloadEntries' (workload name -> ``region/zone``);
    ``dns_names`` more names the upstream DNS knows (name -> which of the mesh's hosts, e.g. ``"external"``).
    ``pilot_arguments``: more ``pilot`` flags (``--workload-entry-grace-period 2s``).
    Teardown asserts nothing is left."""
    subnet = find_free_subnet()
    network = random_pod_network()
    hosts = list(network.network.hosts())
    addresses = {name: str(hosts[number - 1]) for name, number in _HOSTS.items()}
    config_dir = workdir / "config"
    config_dir.mkdir(parents=True)
    (config_dir / REGISTRY_FILE).write_text(registry_yaml(addresses, versions, localities))
    if config:
        (config_dir / "10-rules.yaml").write_text(config)
    initial = frozenset(path.name for path in config_dir.glob("*.yaml"))
    pilot = PilotProcess(
        config_dir=config_dir, workdir=workdir, xds_address=f"{subnet}.2:15010", monitor_address=f"{subnet}.2:15014"
    )
    if mesh_config is not None:
        (workdir / "mesh.yaml").write_text(mesh_config)
        pilot.arguments += ["--mesh-config", str(workdir / "mesh.yaml")]
    pilot.arguments += pilot_arguments
    identity = None
    if citadel:
        identity = CitadelProcess(
            ca_dir=workdir / "ca",
            workdir=workdir,
            sds_address=f"{subnet}.2:15012",
            monitor_address=f"{subnet}.2:15016",
            extra_arguments=citadel_arguments,
        )
    policy = None
    if mixer:
        grpc_host = network.gateway if mixer_direct else f"{subnet}.2"
        policy = MixerProcess(
            config_dir=config_dir,
            workdir=workdir,
            grpc_address=f"{grpc_host}:{MIXER_GRPC_PORT}",
            monitor_address=f"{subnet}.2:{MIXER_MONITOR_PORT}",
        )
    mesh = PodMesh(
        workdir=workdir,
        network=network,
        pilot=pilot,
        citadel=identity,
        addresses=addresses,
        mixer=policy,
        mixer_direct=mixer_direct,
        mixer_relayed=frozenset(mixer_relayed),
        state_dir=new_state_dir(),
        xds_mode=xds_mode,
        initial_files=initial,
    )
    found: list[str] = []
    try:
        await pilot.start()
        if identity is not None:
            await identity.start()
        if policy is not None:
            if mixer_direct:  # the gateway's address exists once the bridge does
                with network_lock():
                    setup_network(network)
            await policy.start()
        dns_world = [sys.executable, "-m", "e2e.dns_world", "--address", "0.0.0.0", "--port", "53"]
        records = {OUTSIDE_NAME: "outside", **(dns_names or {})}
        for name, host in records.items():
            dns_world += ["--record", f"{name}={addresses[host]}"]
        await mesh.run_plain("dns", dns_world, uid=None)
        await mesh.run_plain("outside", app_server_command("outside", "none", REVIEWS_PORT))
        await mesh.run_plain("stranger")
        for version in versions:
            app = app_server_command("reviews", version, REVIEWS_PORT)
            labels = f"app=reviews,version={version}"
            await mesh.run_pod(f"reviews-{version}", app, service_account="bookinfo-reviews", labels=labels)
        for client in clients:
            await mesh.run_client(client)
        for client in clients:
            await mesh.wait_reviews(ready_status, client=client)
        yield mesh
    finally:
        found = await mesh.stop()
    assert found == [], f"left on the machine: {found}"
