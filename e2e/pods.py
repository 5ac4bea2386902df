"""Shared pieces of the pod scenarios: why they cannot run here, a per-test pod network, pods with a static
capture-only Envoy, apps inside pods (``/usr/bin/python3`` scripts, stdlib only: the venv's interpreter may sit in a
directory the app's uid cannot read), and the check that nothing of meshplane's is left on the machine."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

from agent.netns import in_netns_command, ip
from agent.pod_network import PodAddress, PodNetwork, pod_dir
from agent.shared_files import private_dir, write_private
from meshplane.names import INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT, PROXY_UID

__all__ = [
    "APP_UID",
    "PYTHON",
    "capture_bootstrap",
    "leftovers",
    "pod_python",
    "random_pod_network",
    "why_pods_cannot_run",
]

APP_UID = 65534  # nobody: an app uid that is neither root nor the proxy's
PYTHON = "/usr/bin/python3"


def why_pods_cannot_run() -> str | None:
    if os.geteuid() != 0:
        return "pods need root (network namespaces, iptables)"
    for tool in ("ip", "iptables", "iptables-restore", "iptables-save", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (Debian: apt-get install -y iproute2 iptables util-linux)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode != 0:
        return "`ip netns` does not work here"
    if not Path(PYTHON).exists():
        return f"{PYTHON} (the apps' interpreter) is missing"
    return None


def random_pod_network() -> PodNetwork:
    """A bridge and a /24 of 10.90.0.0/16 of the test's own, so tests never share one with a running pod."""
    third = random.randint(1, 254)
    return PodNetwork(bridge=f"mptb{third}", cidr=f"10.90.{third}.0/24")


def _listener(name: str, port: int, cluster: str) -> dict[str, object]:
    return {
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "listener_filters": [
            {
                "name": "envoy.filters.listener.original_dst",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
                },
            }
        ],
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "stat_prefix": name,
                            "cluster": cluster,
                        },
                    }
                ]
            }
        ],
    }


def capture_bootstrap(pod: PodAddress) -> Path:
    """A static Envoy bootstrap that only does what capture needs, in a directory only uid 1337 reads:
    ``virtualOutbound`` (15001) and ``virtualInbound`` (15006), each tcp_proxy to an ORIGINAL_DST cluster; the
    inbound one connects from 127.0.0.6, as Istio's InboundPassthroughCluster does (the capture rules let that
    address through, or the sidecar's own connection to the app would be captured again)."""
    original_dst = {"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "1s"}
    bootstrap = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
        "static_resources": {
            "listeners": [
                _listener("virtualOutbound", OUTBOUND_CAPTURE_PORT, "PassthroughCluster"),
                _listener("virtualInbound", INBOUND_CAPTURE_PORT, "InboundPassthroughCluster"),
            ],
            "clusters": [
                {"name": "PassthroughCluster", **original_dst},
                {
                    "name": "InboundPassthroughCluster",
                    **original_dst,
                    "upstream_bind_config": {"source_address": {"address": "127.0.0.6", "port_value": 0}},
                },
            ],
        },
    }
    directory = private_dir(pod_dir(pod.namespace, pod.name) / "sidecar", PROXY_UID)
    return write_private(directory / "bootstrap.json", json.dumps(bootstrap).encode(), PROXY_UID)


def pod_python(pod: PodAddress, script: str, *, uid: int = APP_UID, timeout: float = 10.0) -> str:
    """Run a Python script inside the pod as ``uid``; its stdout (raises on failure, with stderr)."""
    done = subprocess.run(
        in_netns_command(pod.netns, [PYTHON, "-c", script], uid=uid),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert done.returncode == 0, f"script in {pod.name} as uid {uid} failed: {done.stderr}"
    return done.stdout.strip()


def leftovers(network: PodNetwork, pods: list[PodAddress]) -> list[str]:
    """What of meshplane's is still on the machine for these pods and this network (empty: nothing)."""
    found: list[str] = []
    namespaces = ip("netns", "list").stdout
    links = ip("-o", "link").stdout
    for pod in pods:
        if pod.netns in namespaces:
            found.append(f"netns {pod.netns}")
        if f"{pod.veth}@" in links or f" {pod.veth}:" in links:
            found.append(f"veth {pod.veth}")
        if pod_dir(pod.namespace, pod.name).exists():
            found.append(f"state {pod_dir(pod.namespace, pod.name)}")
    if f" {network.bridge}:" in links:
        found.append(f"bridge {network.bridge}")
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    found += [f"host rule: {line}" for line in saved.splitlines() if network.bridge in line or "ISTIO_" in line]
    return found
