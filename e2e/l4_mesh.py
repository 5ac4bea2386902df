"""Pods for the L4 scenarios (``tcp``/``tls`` routes, TLS passthrough) on top of ``e2e.pod_mesh``: their addresses,
WorkloadEntries and ServiceEntries, writing their config, and waiting until a probe says it reached the sidecars."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from e2e.pod_mesh import NAMESPACE, PodMesh

__all__ = ["TLS_APP_PORT", "TLS_PORT", "apply", "settle", "start_pods", "tls_services", "workload_entry"]

TLS_PORT = 443
TLS_APP_PORT = 8443  # the app's uid cannot bind 443; the ServiceEntry's targetPort maps it, as a Service would
_HOST_NUMBERS = {"tcp-echo-v1": 31, "tcp-echo-v2": 32, "login": 41, "shop": 42}
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
