"""The demo mesh's config and topology: the YAML files in ``e2e/demo_config/`` and where each workload lives.

The demo runs as pods: ``00-reviews-mesh.yaml`` is written with the pod IPs of the default pod network
(``10.89.0.x``), and so is ``00-tcp-echo-services.yaml`` (Istio's TCP traffic-shifting task's ``tcp-echo`` v1 and v2),
so that a reader can apply the files as they are; a test runs the same mesh on a pod network of
its own, and ``render_pod_demo`` moves the ``10.89.0.x`` addresses there.

What is left of the loopback model (``e2e.harness.LocalMesh``: only the Mixer benchmark, no e2e scenario) uses
``e2e/loopback_config/`` instead, written for ``127.0.0.x`` and moved to another loopback subnet by
``demo_config_text``/``render_demo_mesh``.
"""

from __future__ import annotations

import ipaddress
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
    "DEMO_SUBNET",
    "DEMO_TCP_ROUTE_FILES",
    "DEMO_TCP_SERVICES_FILE",
    "DEMO_WORKLOADS",
    "LOOPBACK_MESH_FILE",
    "REVIEWS_APP_PORT",
    "REVIEWS_PORT",
    "WorkloadSpec",
    "check_subnet",
    "demo_config_text",
    "render_demo_mesh",
    "render_pod_demo",
    "subnet_address",
]

DEMO_CONFIG_DIR = Path(__file__).parent / "demo_config"
DEMO_MESH_FILE = DEMO_CONFIG_DIR / "00-reviews-mesh.yaml"  # the pod IPs of DEMO_POD_NETWORK
LOOPBACK_MESH_FILE = Path(__file__).parent / "loopback_config" / "00-reviews-mesh.yaml"
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
DEMO_SUBNET = "127.0.0"  # the addresses written in the files
DEMO_HOST = "reviews.default.svc.cluster.local"
REVIEWS_PORT = 9080  # the service port: each reviews sidecar's inbound listener
REVIEWS_APP_PORT = 19080  # the app behind it (the WorkloadEntry's `ports: {http: 19080}`)

_DEMO_ADDRESS = re.compile(r"\b127\.0\.0\.(\d{1,3})\b")
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
    """A workload of the demo mesh: its WorkloadEntry name, host number in the subnet and sample app (if any)."""

    name: str
    host: int  # last octet of the workload's address
    service: str | None = None  # the sample app's service; None for a client without an app
    version: str = "v1"
    app_port: int = REVIEWS_APP_PORT
    namespace: str = "default"
    service_account: str = "default"  # the WorkloadEntry's serviceAccount: the workload's SPIFFE identity


DEMO_CLIENT = WorkloadSpec(name="productpage", host=10, service_account="bookinfo-productpage")
DEMO_WORKLOADS: tuple[WorkloadSpec, ...] = (
    DEMO_CLIENT,
    WorkloadSpec(name="reviews-v1", host=21, service="reviews", version="v1", service_account="bookinfo-reviews"),
    WorkloadSpec(name="reviews-v2", host=22, service="reviews", version="v2", service_account="bookinfo-reviews"),
    WorkloadSpec(name="reviews-v3", host=23, service="reviews", version="v3", service_account="bookinfo-reviews"),
)


def check_subnet(subnet: str) -> str:
    """A loopback /24 written as its first three octets, e.g. ``127.0.2``."""
    parts = subnet.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"subnet: expected three octets like '127.0.2', got {subnet!r}")
    address = ipaddress.ip_address(f"{subnet}.1")
    if not address.is_loopback:
        raise ValueError(f"subnet: must be inside 127.0.0.0/8 (loopback), got {subnet!r}")
    return subnet


def subnet_address(subnet: str, host: int) -> str:
    if not 1 <= host <= 254:
        raise ValueError(f"host: must be 1-254, got {host}")
    return f"{check_subnet(subnet)}.{host}"


def demo_config_text(path: Path, subnet: str = DEMO_SUBNET) -> str:
    """A demo config file with its ``127.0.0.x`` addresses moved to ``<subnet>.x``."""
    text = path.read_text()
    if check_subnet(subnet) == DEMO_SUBNET:
        return text
    return _DEMO_ADDRESS.sub(lambda m: f"{subnet}.{m.group(1)}", text)


def render_demo_mesh(subnet: str = DEMO_SUBNET) -> str:
    """The loopback scenarios' registry and subsets: ServiceEntry reviews, WorkloadEntries reviews-v1..v3 and
    productpage on ``<subnet>.x``, DestinationRule reviews with subsets v1, v2, v3."""
    return demo_config_text(LOOPBACK_MESH_FILE, subnet)


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
