"""``meshplane demo --compose``: the demo's steps (``e2e.demo_steps``) against the mesh of ``docker-compose.yml``,
already up (``docker compose up -d`` or ``docker-compose up -d``).

The steps' files go into the compose mesh's config directory on the host (bind-mounted into Pilot and Mixer, who
watch it), the wait for the mesh reads Pilot's and Mixer's monitors on their published ports (127.0.0.1 only), and
the requests are made inside the containers with ``docker exec``: productpage's app (uid 1000, plain urllib, no
proxy settings) calls ``http://reviews:9080/`` through its sidecar and opens the TCP step's connections to
``tcp-echo:9000`` (plain sockets), and ``stranger`` (no sidecar) makes the mTLS step's plaintext call.
Containers are found by Compose's labels (project, service), which v1 and v2 both set. The files the steps applied
are removed at the end: the mesh is back as ``up`` left it.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.pod_network import PodNetwork
from e2e.config_sync import ConfigSync
from e2e.control_plane import MixerProcess, PilotProcess
from e2e.demo_steps import OUTSIDER, ExecClientMesh, Printer, run_demo_steps
from e2e.l4_apps import tcp_client_arguments, tcp_client_replies, tcp_client_timeout
from e2e.mesh_config import DEMO_POD_HOSTS, DEMO_TCP_WORKLOADS, DEMO_WORKLOADS, render_pod_demo
from e2e.pods import client_arguments, client_responses
from e2e.traffic import MeshResponse, app_body
from envoy_bootstrap.bootstrap import sidecar_node_id

__all__ = [
    "COMPOSE_CONFIG_DIR",
    "COMPOSE_FILE",
    "COMPOSE_NETWORK",
    "COMPOSE_WORKLOADS",
    "ComposeError",
    "ComposeMesh",
    "compose_addresses",
    "default_project_name",
    "run_compose_demo",
]

# the clone's (``meshplane demo --compose`` runs in it); from an installed package, the current directory's
_CLONE_COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
COMPOSE_FILE = _CLONE_COMPOSE_FILE if _CLONE_COMPOSE_FILE.exists() else Path.cwd() / "docker-compose.yml"
COMPOSE_CONFIG_DIR = COMPOSE_FILE.parent / "compose" / "config"
COMPOSE_NETWORK = PodNetwork(bridge="unused", cidr="10.91.0.0/24")  # docker-compose.yml's network `mesh`
COMPOSE_WORKLOADS = DEMO_WORKLOADS + DEMO_TCP_WORKLOADS  # each an app + init + sidecar in docker-compose.yml
APP_USER = "1000:1000"  # the image's app user: never the proxy's 1337, so its traffic is captured
CLIENT = "productpage"
_EXEC_TIMEOUT_SECONDS = 120.0


def default_project_name(directory: Path) -> str:
    """Compose's project name: ``COMPOSE_PROJECT_NAME``, else the directory's name as v1 and v2 normalize it."""
    name = os.environ.get("COMPOSE_PROJECT_NAME") or directory.resolve().name
    return re.sub(r"[^-_a-z0-9]", "", name.lower())


def compose_addresses() -> dict[str, str]:
    """Each workload's static address on the compose network (as in the WorkloadEntries of ``compose/config``)."""
    return {name: str(COMPOSE_NETWORK.network.network_address + host) for name, host in DEMO_POD_HOSTS.items()}


class _ComposePilot(PilotProcess):
    """Pilot in its container: not started here, read at its published monitor."""

    @property
    def running(self) -> bool:
        return True


class _ComposeMixer(MixerProcess):
    @property
    def running(self) -> bool:
        return True


class ComposeError(RuntimeError):
    """A ``docker`` command failed or timed out, or a service of the project is not running; the message says which."""


def _docker(*args: str, timeout: float = 30.0) -> str:
    try:
        done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ComposeError(f"docker {' '.join(args[:3])}... did not finish within {timeout:.0f}s") from None
    if done.returncode != 0:
        raise ComposeError(f"docker {' '.join(args[:3])}... failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


@dataclass
class ComposeMesh(ExecClientMesh):
    """A running compose mesh, as ``e2e.demo_steps.DemoMesh``."""

    project: str
    config_dir: Path
    pilot_monitor: str = "127.0.0.1:15014"
    mixer_monitor: str = "127.0.0.1:42422"
    addresses: Mapping[str, str] = field(default_factory=compose_addresses)
    applied: list[str] = field(default_factory=list)
    config: ConfigSync = field(init=False)

    def __post_init__(self) -> None:
        config, logs = self.config_dir, self.config_dir  # workdir: only names log files in errors
        pilot = _ComposePilot(config_dir=config, workdir=logs, xds_address="", monitor_address=self.pilot_monitor)
        mixer = _ComposeMixer(config_dir=config, workdir=logs, grpc_address="", monitor_address=self.mixer_monitor)
        self._mixer = mixer
        self.config = ConfigSync(config_dir=self.config_dir, pilot=pilot, mixer=mixer, proxies=self.node_ids)

    def node_ids(self) -> dict[str, str]:
        return {
            spec.name: sidecar_node_id(
                workload=spec.name,
                namespace=spec.namespace,
                address=self.addresses[spec.name],
                domain_suffix="cluster.local",
            )
            for spec in COMPOSE_WORKLOADS
        }

    @property
    def mixer_url(self) -> str:
        return self._mixer.monitor_url

    def container(self, service: str, *, exited_too: bool = False) -> str:
        """The running container of ``service`` in this project (``exited_too``: or the one that already ran to its
        end: a one-shot service such as ``mesh-ready`` may be done before it is looked for)."""
        labels = (f"label=com.docker.compose.project={self.project}", f"label=com.docker.compose.service={service}")
        every = ("-a",) if exited_too else ()
        found = _docker("ps", *every, "-q", "--filter", labels[0], "--filter", labels[1]).split()
        if len(found) != 1:
            state = "" if exited_too else "running "
            raise ComposeError(f"compose project {self.project!r}: expected one {state}{service}, found {len(found)}")
        return found[0]

    def _app_python(self, service: str, arguments: list[str], timeout: float) -> str:
        """``python3 ARGUMENTS`` as ``service``'s app (its uid, in its network namespace): the output."""
        return _docker("exec", "-u", APP_USER, self.container(service), "python3", *arguments, timeout=timeout)

    def client_responses(
        self, service: str, url: str, count: int, headers: Mapping[str, str] | None
    ) -> list[MeshResponse]:
        arguments = client_arguments(url, count, headers, 5.0)
        stdout = self._app_python(service, arguments, _EXEC_TIMEOUT_SECONDS + 5 * count)
        return [MeshResponse(status=c, headers=h, text=t, body=app_body(t)) for c, t, h in client_responses(stdout)]

    async def apply(self, name: str, path: Path) -> Mapping[str, Any]:
        await self.config.apply(name, render_pod_demo(path, COMPOSE_NETWORK))
        if name not in self.applied:
            self.applied.append(name)
        return await self.config.wait_synced(timeout=30.0)

    async def remove_applied(self) -> None:
        """Remove every file ``apply`` wrote and wait until the mesh took that in."""
        for name in self.applied:
            await self.config.remove(name)
        if self.applied:
            self.applied.clear()
            await self.config.wait_synced(timeout=30.0)

    async def tcp_replies(self, host: str, port: int, count: int) -> list[str]:
        arguments = tcp_client_arguments(host, port, count)
        stdout = await asyncio.to_thread(self._app_python, CLIENT, arguments, tcp_client_timeout(count))
        return tcp_client_replies(stdout)

    def resolved(self, service: str, name: str) -> list[str]:
        """The addresses ``getaddrinfo(name)`` gives ``service``'s app (its resolv.conf, its sidecar's DNS agent)."""
        code = "import socket,sys; print(*sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 80)}))"
        return self._app_python(service, ["-c", code, name], _EXEC_TIMEOUT_SECONDS).split()

    async def mixer_metrics(self) -> str:
        return await self._mixer.metrics_text()


async def run_compose_demo(mesh: ComposeMesh, *, requests: int = 200, out: Printer = print) -> int:
    """The demo's steps against ``mesh``; 0 when every measured result matched its rule, 1 otherwise."""
    out(f"meshplane demo --compose: compose project {mesh.project!r}, config in {mesh.config_dir}")
    out(f"  Pilot's monitor on {mesh.pilot_monitor}, Mixer's on {mesh.mixer_monitor}; requests by docker exec")
    for spec in COMPOSE_WORKLOADS:
        out(f"  {spec.name:<12} {mesh.addresses[spec.name]:<12} containers {spec.name} + {spec.name}-sidecar")
    out(f"  {OUTSIDER:<12} {mesh.addresses[OUTSIDER]:<12} no sidecar (outside the mesh)")
    try:
        ok = await run_demo_steps(mesh, requests, out)
    finally:
        await mesh.remove_applied()
    out("")
    out("Removed the files the steps applied: the mesh is as `up` left it.")
    out("All measured splits match their rules." if ok else "Some steps did NOT go as expected.")
    return 0 if ok else 1
