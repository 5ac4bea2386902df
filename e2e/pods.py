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
from agent.pod_dns import NETNS_ETC
from agent.pod_network import STATE_DIR, PodAddress, PodNetwork, pod_dir
from agent.shared_files import private_dir, write_private
from meshplane.names import INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT, PROXY_UID

__all__ = [
    "APP_UID",
    "PYTHON",
    "app_server_command",
    "capture_bootstrap",
    "leftovers",
    "meshplane_state",
    "pod_get",
    "pod_python",
    "pod_requests",
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


_APP_SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
service, version, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"service": service, "version": version, "path": self.path, "peer": self.client_address[0],
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
"""

_CLIENT = """
import json, sys, urllib.error, urllib.request
url, count, headers, timeout = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
out = []
for _ in range(count):
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            out.append([response.status, response.read().decode(errors="replace"), dict(response.headers.items())])
    except urllib.error.HTTPError as error:
        out.append([error.code, error.read().decode(errors="replace"), dict(error.headers.items())])
    except OSError as error:
        out.append([0, repr(error), {}])
print(json.dumps(out))
"""


def app_server_command(service: str, version: str, port: int = 9080) -> list[str]:
    """A stdlib HTTP server on 0.0.0.0:``port`` answering JSON ``{service, version, path, peer, headers}`` (the
    shape of ``e2e.sample_app``'s answers, so ``e2e.traffic.count_by`` counts them)."""
    return [PYTHON, "-c", _APP_SERVER, service, version, str(port)]


def pod_get(
    pod: PodAddress, url: str, count: int = 1, *, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> list[tuple[int, str]]:
    """``count`` GETs of ``url`` by a plain ``urllib`` app inside the pod (app uid, the pod's resolv.conf, no proxy
    settings: no proxy variables in its environment, and proxies disabled): (status, body) each, status 0 with
    the error for a failed connection."""
    return [(status, body) for status, body, _ in pod_requests(pod, url, count, headers=headers, timeout=timeout)]


def pod_requests(
    pod: PodAddress, url: str, count: int = 1, *, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> list[tuple[int, str, dict[str, str]]]:
    """As ``pod_get``, with each response's headers (lower-case names)."""
    script = [PYTHON, "-c", _CLIENT, url, str(count), json.dumps(headers or {}), str(timeout)]
    done = subprocess.run(
        in_netns_command(pod.netns, script, uid=pod.app_uid or APP_UID),
        capture_output=True,
        text=True,
        check=False,
        timeout=30 + count * timeout,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert done.returncode == 0, f"client in {pod.name} failed: {done.stderr}"
    return [(status, body, {k.lower(): v for k, v in found.items()}) for status, body, found in json.loads(done.stdout)]


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
        if (NETNS_ETC / pod.netns).exists():
            found.append(f"resolv.conf {NETNS_ETC / pod.netns}")
    if f" {network.bridge}:" in links:
        found.append(f"bridge {network.bridge}")
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    found += [f"host rule: {line}" for line in saved.splitlines() if network.bridge in line or "ISTIO_" in line]
    return found


def meshplane_state() -> frozenset[str]:
    """Everything of meshplane's on the machine now: network namespaces ``mp-*`` (a pod's capture rules live and
    die with its namespace), links ``mp*`` (veths, bridges), ``/etc/netns/mp-*``, pod state directories and the
    host's iptables rules of the pod network (``meshplane`` comments, ``ISTIO_`` chains, test bridges). Compared
    before and after a run, the difference is what the run left behind (other runs on the machine keep theirs)."""
    state = {f"netns {name}" for name in ip("netns", "list").stdout.split() if name.startswith("mp-")}
    for line in ip("-o", "link").stdout.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0] if line.count(":") >= 2 else ""
        if name.startswith("mp"):
            state.add(f"link {name}")
    if NETNS_ETC.is_dir():
        state |= {f"{NETNS_ETC}/{entry.name}" for entry in NETNS_ETC.iterdir() if entry.name.startswith("mp-")}
    pods = STATE_DIR / "pods"
    if pods.is_dir():
        state |= {f"state {path}" for path in pods.glob("*/*") if path.is_dir()}
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    rules = (line for line in saved.splitlines() if not line.startswith(("#", ":")))
    state |= {f"host rule: {line}" for line in rules if "meshplane" in line or "ISTIO_" in line or " mptb" in line}
    return frozenset(state)
