"""Pods for the L4 scenarios (``tcp``/``tls`` routes, TLS passthrough) and the demo's TCP step, on top of
``e2e.pod_mesh``: their addresses, WorkloadEntries and ServiceEntries, Istio's ``tcp-echo`` v1 and v2, writing their
config, and waiting until a probe says it reached the sidecars."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from e2e.l4_apps import TCP_ECHO_PORT, TCP_ECHO_WORDS, tcp_echo_server_command
from e2e.mesh_config import DEMO_POD_HOSTS
from e2e.pod_mesh import NAMESPACE, PodMesh

__all__ = [
    "TCP_ECHO_PODS",
    "TLS_APP_PORT",
    "TLS_PORT",
    "apply",
    "settle",
    "start_pods",
    "start_tcp_echo",
    "tls_services",
    "workload_entry",
]

TLS_PORT = 443
TLS_APP_PORT = 8443  # the app's uid cannot bind 443; the ServiceEntry's targetPort maps it, as a Service would
TCP_ECHO_PODS = tuple(f"tcp-echo-{version}" for version in TCP_ECHO_WORDS)
# tcp-echo where the WorkloadEntries of e2e/demo_config/00-tcp-echo-services.yaml put it (host N of the network)
_HOST_NUMBERS = {**{name: DEMO_POD_HOSTS[name] for name in TCP_ECHO_PODS}, "login": 41, "shop": 42, "my-nginx": 43}
_SETTLE_SECONDS = 40.0
T = TypeVar("T")


def workload_entry(name: str, address: str, labels: str, service_account: str) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: {name}
  namespace: {NAMESPACE}
spec:
  serviceAccount: {service_account}
  address: {address}
  labels: {{{labels.replace("=", ": ")}}}
"""


def tls_services(hosts: Sequence[str]) -> str:
    entries = [
        f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {host.split(".")[0]}
  namespace: {NAMESPACE}
spec:
  hosts:
  - {host}
  location: MESH_INTERNAL
  ports:
  - number: {TLS_PORT}
    name: tls
    protocol: TLS
    targetPort: {TLS_APP_PORT}
  resolution: STATIC
  workloadSelector:
    labels:
      app: {host.split(".")[0]}
"""
        for host in hosts
    ]
    return "---\n".join(entries)


def apply(mesh: PodMesh, name: str, text: str) -> None:
    """Write one more config file into Pilot's watched directory (replacing one of that name)."""
    (mesh.workdir / "config" / f"20-{name}.yaml").write_text(text)


async def start_pods(mesh: PodMesh, pods: dict[str, tuple[list[str], str, str]]) -> str:
    """Start pods of these scenarios (name -> (app, labels, service account)) on the mesh's network; their
    WorkloadEntries' YAML."""
    hosts = list(mesh.network.network.hosts())
    entries = []
    for name, (app, labels, service_account) in pods.items():
        mesh.addresses[name] = str(hosts[_HOST_NUMBERS[name] - 1])
        entries.append(workload_entry(name, mesh.addresses[name], labels, service_account))
        await mesh.run_pod(name, app, service_account=service_account, labels=labels)
    return "---\n".join(entries)


async def start_tcp_echo(mesh: PodMesh) -> None:
    """Istio's ``tcp-echo`` v1 and v2 as pods (labels ``app=tcp-echo,version=vN``, service account ``tcp-echo``,
    replies prefixed ``one`` / ``two``) at the addresses of ``00-tcp-echo-services.yaml``'s WorkloadEntries."""
    pods = {
        f"tcp-echo-{version}": (
            tcp_echo_server_command(word, TCP_ECHO_PORT),
            f"app=tcp-echo,version={version}",
            "tcp-echo",
        )
        for version, word in TCP_ECHO_WORDS.items()
    }
    await start_pods(mesh, pods)


async def settle(probe: Callable[[], T], done: Callable[[T], bool], mesh: PodMesh, what: str) -> T:
    """Probe until ``done`` (config reached the sidecars), else fail with the last result and the logs."""
    deadline = asyncio.get_running_loop().time() + _SETTLE_SECONDS
    last = await asyncio.to_thread(probe)
    while not done(last):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: {last}\n{mesh.log_tails()}")
        await asyncio.sleep(0.5)
        last = await asyncio.to_thread(probe)
    return last
