"""The demo mesh's config and topology: the YAML files in ``e2e/demo_config/`` and where each workload lives.

The demo runs as pods: ``00-reviews-mesh.yaml`` is written with the pod IPs of the default pod network
(``10.89.0.x``), and so is ``00-tcp-echo-services.yaml`` (Istio's TCP traffic-shifting task's ``tcp-echo`` v1 and v2),
so that a reader can apply the files as they are; a test runs the same mesh on a pod network of
its own, and ``render_pod_demo`` moves the ``10.89.0.x`` addresses there (``demo_pod_addresses``: each pod's IP on
a network). Every app listens on its service port (``REVIEWS_PORT``): the WorkloadEntries have no ``ports`` map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agent.pod_network import PodNetwork

__all__ = [
    "DEMO_CLIENT",
    "DEMO_CONFIG_DIR",
    "DEMO_HOST",
    "DEMO_MESH_FILE",
    "DEMO_MTLS_FILE",
    "DEMO_POD_HOSTS",
    "DEMO_POD_NETWORK",
    "DEMO_POLICY_FILE",
    "DEMO_ROUTE_FILES",
    "DEMO_TCP_ROUTE_FILES",
    "DEMO_TCP_SERVICES_FILE",
    "DEMO_TCP_WORKLOADS",
    "DEMO_WORKLOADS",
    "REVIEWS_PORT",
    "WorkloadSpec",
    "demo_pod_addresses",
    "render_pod_demo",
]

DEMO_CONFIG_DIR = Path(__file__).parent / "demo_config"
DEMO_MESH_FILE = DEMO_CONFIG_DIR / "00-reviews-mesh.yaml"  # the pod IPs of DEMO_POD_NETWORK
DEMO_MTLS_FILE = DEMO_CONFIG_DIR / "04-mesh-mtls-strict.yaml"
DEMO_POLICY_FILE = DEMO_CONFIG_DIR / "05-reviews-policy.yaml"
DEMO_ROUTE_FILES = (
    DEMO_CONFIG_DIR / "01-reviews-all-v1.yaml",
    DEMO_CONFIG_DIR / "02-reviews-90-10.yaml",
    DEMO_CONFIG_DIR / "03-reviews-jason.yaml",
)
DEMO_TCP_SERVICES_FILE = DEMO_CONFIG_DIR / "00-tcp-echo-services.yaml"  # tcp-echo v1/v2: ServiceEntry, pods, subsets
DEMO_TCP_ROUTE_FILES = (  # Istio's tcp-echo-all-v1.yaml and tcp-echo-20-v2.yaml
    DEMO_CONFIG_DIR / "06-tcp-echo-all-v1.yaml",
    DEMO_CONFIG_DIR / "07-tcp-echo-20-v2.yaml",
)
DEMO_HOST = "reviews.default.svc.cluster.local"
REVIEWS_PORT = 9080  # the service port: the reviews apps listen on it in their pods, captured by the sidecar

DEMO_POD_NETWORK = PodNetwork()  # meshplane pod run's defaults: bridge mpbr0, 10.89.0.0/16
_DEMO_POD_ADDRESS = re.compile(r"\b10\.89\.0\.(\d{1,3})\b(?!/)")  # an address, not the network's CIDR
# The last octet of each pod's IP in the demo files; ``stranger`` is a network namespace on the pod network without
# a sidecar (a namespace outside the mesh), the plaintext caller of the mTLS step.
DEMO_POD_HOSTS = {
    "productpage": 10,
    "reviews-v1": 21,
    "reviews-v2": 22,
    "reviews-v3": 23,
    "tcp-echo-v1": 31,
    "tcp-echo-v2": 32,
    "stranger": 99,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadSpec:
    """A pod of the demo mesh: its WorkloadEntry name (its IP is host ``DEMO_POD_HOSTS[name]`` of the pod network)
    and sample app (if any)."""

    name: str
    service: str | None = None  # the sample app's service; None for a client without an app
    version: str = "v1"
    namespace: str = "default"
    service_account: str = "default"  # the WorkloadEntry's serviceAccount: the workload's SPIFFE identity


DEMO_CLIENT = WorkloadSpec(name="productpage", service_account="bookinfo-productpage")
DEMO_WORKLOADS: tuple[WorkloadSpec, ...] = (
    DEMO_CLIENT,
    WorkloadSpec(name="reviews-v1", service="reviews", version="v1", service_account="bookinfo-reviews"),
    WorkloadSpec(name="reviews-v2", service="reviews", version="v2", service_account="bookinfo-reviews"),
    WorkloadSpec(name="reviews-v3", service="reviews", version="v3", service_account="bookinfo-reviews"),
)
# Istio's tcp-echo v1 and v2 (the WorkloadEntries of 00-tcp-echo-services.yaml): the TCP step's servers
DEMO_TCP_WORKLOADS: tuple[WorkloadSpec, ...] = tuple(
    WorkloadSpec(name=f"tcp-echo-{version}", service="tcp-echo", version=version, service_account="tcp-echo")
    for version in ("v1", "v2")
)


def demo_pod_addresses(network: PodNetwork = DEMO_POD_NETWORK) -> dict[str, str]:
    """Each demo pod's IP on ``network``: host N of the network for the demo files' ``10.89.0.N``."""
    return {name: str(network.network.network_address + host) for name, host in DEMO_POD_HOSTS.items()}


def render_pod_demo(path: Path, network: PodNetwork = DEMO_POD_NETWORK) -> str:
    """A demo config file with its pod IPs (``10.89.0.x``) moved to host ``x`` of ``network``."""
    text = path.read_text()
    if network.cidr == DEMO_POD_NETWORK.cidr:
        return text
    hosts = network.network

    def move(match: re.Match[str]) -> str:
        host = int(match.group(1))
        if not 1 <= host < hosts.num_addresses - 1:
            raise ValueError(f"{path.name}: {match.group(0)} has no host {host} in {network.cidr}")
        return str(hosts.network_address + host)

    return _DEMO_POD_ADDRESS.sub(move, text)
