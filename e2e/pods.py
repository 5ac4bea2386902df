"""Shared pieces of the pod scenarios: why they cannot run here, a per-test pod network, pods with a static
capture-only Envoy, apps inside pods (``/usr/bin/python3`` scripts, stdlib only: the venv's interpreter may sit in a
directory the app's uid cannot read), and the checks that nothing of meshplane's is left on the machine.

Every run of the tests keeps its pods' state in directories of its own (``new_state_dir``: under
``/run/meshplane/e2e/``, passed as ``pod run --state-dir``) and puts them on bridges of its own
(``random_pod_network``), so the names of its network namespaces and veths carry prefixes no other run (another test
run, the demo, a user's pods) uses: ``leftovers`` checks one mesh's pods and network, ``session_leftovers`` every
state directory and network this process handed out, by prefix, so a leak is caught even for a pod nobody
recorded."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.netns import in_netns_command, ip
from agent.pod_dns import NETNS_ETC
from agent.pod_network import STATE_DIR, PodAddress, PodNetwork, netns_prefix, veth_prefix
from agent.shared_files import private_dir, write_private
from e2e import pod_app
from meshplane.names import ADMIN_PORT, INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT, PROXY_UID

__all__ = [
    "APP_UID",
    "PYTHON",
    "app_server_command",
    "capture_bootstrap",
    "client_arguments",
    "client_responses",
    "envoy_stat",
    "leftovers",
    "new_state_dir",
    "pod_get",
    "pod_python",
    "pod_requests",
    "pod_resolve",
    "random_pod_network",
    "session_leftovers",
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


_E2E_STATE_ROOT = STATE_DIR / "e2e"
_STATE_DIRS: list[Path] = []
_NETWORKS: list[PodNetwork] = []


def random_pod_network() -> PodNetwork:
    """A bridge and a /24 of 10.90.0.0/16 of the test's own (a bridge name neither on the machine nor in a host
    rule yet), so tests never share one with a running pod."""
    taken = ip("-o", "link").stdout + subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    used = {x.bridge for x in _NETWORKS} | set(re.findall(r"mptb\d+(?!\d)", taken))
    third = random.choice([n for n in range(1, 255) if f"mptb{n}" not in used])
    network = PodNetwork(bridge=f"mptb{third}", cidr=f"10.90.{third}.0/24")
    _NETWORKS.append(network)
    return network


def new_state_dir() -> Path:
    """A pods' state directory of the caller's own (``pod run --state-dir``), 0755 as the sidecar's uid needs."""
    _E2E_STATE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=_E2E_STATE_ROOT))
    directory.chmod(0o755)
    _STATE_DIRS.append(directory)
    return directory


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
    directory = private_dir(pod.directory / "sidecar", PROXY_UID)
    return write_private(directory / "bootstrap.json", json.dumps(bootstrap).encode(), PROXY_UID)


def pod_python(
    pod: PodAddress, script: str, *, args: Sequence[str] = (), uid: int = APP_UID, timeout: float = 10.0
) -> str:
    """Run a Python script (its ``sys.argv[1:]``: ``args``) inside the pod as ``uid``; its stdout (raises on failure,
    with stderr)."""
    done = subprocess.run(
        in_netns_command(pod.netns, [PYTHON, "-c", script, *args], uid=uid),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert done.returncode == 0, f"script in {pod.name} as uid {uid} failed: {done.stderr}"
    return done.stdout.strip()


_RESOLVER = """
import json, socket, sys
answers = {}
for name in sys.argv[1:]:
    try:
        found = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
        answers[name] = sorted({address[4][0] for address in found})
    except socket.gaierror as error:
        answers[name] = {socket.EAI_NONAME: "EAI_NONAME", socket.EAI_AGAIN: "EAI_AGAIN"}.get(error.errno, repr(error))
print(json.dumps(answers))
"""


def pod_resolve(pod: PodAddress, names: Sequence[str]) -> dict[str, list[str] | str]:
    """Each name resolved by an app inside the pod as any app does (``getaddrinfo`` for IPv4: the pod's
    resolv.conf, its search list and ndots; UDP 53 captured to the sidecar's DNS agent): its addresses, sorted, or
    the resolver's error, ``EAI_NONAME`` (no such name: NXDOMAIN) or ``EAI_AGAIN`` (SERVFAIL, no answer)."""
    answers = json.loads(pod_python(pod, _RESOLVER, args=names))
    assert isinstance(answers, dict)
    return answers


_CLIENT = """
import json, sys, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
url, count, headers, timeout = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4])
method, redirects, concurrency = sys.argv[5], sys.argv[6] == "follow", int(sys.argv[7])
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
handlers = [urllib.request.ProxyHandler({})] + ([] if redirects else [NoRedirect()])
opener = urllib.request.build_opener(*handlers)
data = b"" if method in ("POST", "PUT", "PATCH") else None
def one(_):
    try:
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        with opener.open(request, timeout=timeout) as response:
            return [response.status, response.read().decode(errors="replace"), dict(response.headers.items())]
    except urllib.error.HTTPError as error:
        return [error.code, error.read().decode(errors="replace"), dict(error.headers.items())]
    except OSError as error:
        return [0, repr(error), {}]
with ThreadPoolExecutor(concurrency) as pool:
    print(json.dumps(list(pool.map(one, range(count)))))
"""


def app_server_command(service: str, version: str, port: int = 9080, workload: str | None = None) -> list[str]:
    """The sample app as a pod's app (``e2e.pod_app``: stdlib only) on 0.0.0.0:``port``; its source is passed to
    ``python3 -c`` so the app's uid needs to read neither the venv nor the checkout."""
    source = Path(pod_app.__file__).read_text()
    return [PYTHON, "-c", source, service, version, str(port), *([workload] if workload else [])]


def pod_get(
    pod: PodAddress, url: str, count: int = 1, *, headers: Mapping[str, str] | None = None, timeout: float = 5.0
) -> list[tuple[int, str]]:
    """``count`` GETs of ``url`` by a plain ``urllib`` app inside the pod (app uid, the pod's resolv.conf, no proxy
    settings: no proxy variables in its environment, and proxies disabled): (status, body) each, status 0 with
    the error for a failed connection."""
    return [(status, body) for status, body, _ in pod_requests(pod, url, count, headers=headers, timeout=timeout)]


def envoy_stat(pod: PodAddress, stat: str) -> int:
    """A counter or gauge of the Envoy in ``pod`` (its admin on the pod's 127.0.0.1), 0 when absent."""
    [(status, text)] = pod_get(pod, f"http://127.0.0.1:{ADMIN_PORT}/stats?filter=^{re.escape(stat)}$")
    assert status == 200, (status, text)
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == stat:
            return int(value)
    return 0


def pod_requests(
    pod: PodAddress,
    url: str,
    count: int = 1,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    method: str = "GET",
    follow_redirects: bool = True,
    concurrency: int = 1,
) -> list[tuple[int, str, dict[str, str]]]:
    """As ``pod_get``, with each response's headers (lower-case names); ``method`` (an empty body for POST, PUT,
    PATCH), redirects followed as urllib does unless ``follow_redirects`` is off (then the 3xx is the answer),
    ``concurrency`` requests in flight (threads of the app; responses in request order)."""
    script = [PYTHON, *client_arguments(url, count, headers, timeout, method, follow_redirects, concurrency)]
    done = subprocess.run(
        in_netns_command(pod.netns, script, uid=pod.app_uid or APP_UID),
        capture_output=True,
        text=True,
        check=False,
        timeout=30 + count * timeout,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert done.returncode == 0, f"client in {pod.name} failed: {done.stderr}"
    return client_responses(done.stdout)


def client_arguments(
    url: str,
    count: int,
    headers: Mapping[str, str] | None,
    timeout: float,
    method: str = "GET",
    follow_redirects: bool = True,
    concurrency: int = 1,
) -> list[str]:
    """The arguments after a Python interpreter of ``pod_requests``' client (stdlib urllib, no proxy settings),
    for any place an app runs: a pod's network namespace, a container (``docker exec``)."""
    redirects = "follow" if follow_redirects else "stop"
    options = [str(timeout), method, redirects, str(concurrency)]
    return ["-c", _CLIENT, url, str(count), json.dumps(dict(headers or {})), *options]


def client_responses(stdout: str) -> list[tuple[int, str, dict[str, str]]]:
    """(status, body, headers with lower-case names) of each request, from the client's output."""
    return [(status, body, {k.lower(): v for k, v in found.items()}) for status, body, found in json.loads(stdout)]


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
        if pod.directory.exists():
            found.append(f"state {pod.directory}")
        if (NETNS_ETC / pod.netns).exists():
            found.append(f"resolv.conf {NETNS_ETC / pod.netns}")
    return found + _network_leftovers(network, links)


def _network_leftovers(network: PodNetwork, links: str) -> list[str]:
    found = [f"bridge {network.bridge}"] if f" {network.bridge}:" in links else []
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    bridge = re.compile(rf"(?<![\w.-]){re.escape(network.bridge)}(?![\w.-])")  # mptb13, not mptb133
    return found + [f"host rule: {line}" for line in saved.splitlines() if bridge.search(line) or "ISTIO_" in line]


def session_leftovers() -> list[str]:
    """What is left of every state directory and pod network this process handed out (empty: nothing): network
    namespaces and veths named with a state directory's prefix, state files, bridges and their host rules. The
    state directories themselves are removed when empty."""
    namespaces = ip("netns", "list").stdout.split()
    links = ip("-o", "link").stdout
    link_names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines() if line.count(":") >= 2]
    found: list[str] = []
    for directory in _STATE_DIRS:
        left = [f"netns {n}" for n in namespaces if n.startswith(netns_prefix(directory))]
        left += [f"veth {v}" for v in link_names if v.startswith(veth_prefix(directory))]
        left += [f"state {path.parent}" for path in sorted(directory.glob("*/*/pod.json"))]
        if NETNS_ETC.is_dir():  # a pod's resolv.conf for ``ip netns exec``
            prefix = netns_prefix(directory)
            left += [f"/etc/netns/{n}" for n in sorted(os.listdir(NETNS_ETC)) if n.startswith(prefix)]
        if not left:  # kept as evidence otherwise
            shutil.rmtree(directory, ignore_errors=True)
        found += left
    for network in _NETWORKS:
        found += _network_leftovers(network, links)
    return found
