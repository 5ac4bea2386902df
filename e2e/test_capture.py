"""Capture in real network namespaces with real iptables and a real Envoy: an app's plain TCP connection to another
pod's IP goes through its sidecar (15001) and the peer's (15006), while the proxy's own traffic, loopback traffic
and excluded ports and CIDRs are not captured. Envoy here is a static capture-only bootstrap (``e2e.pods``)."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import subprocess
import time
from collections.abc import Iterator

import pytest

from agent.capture import CaptureOptions
from agent.iptables import install_capture
from agent.netns import in_netns_command
from agent.pod_network import PodAddress, PodNetwork, create_pod, delete_pod, setup_network, teardown_network
from agent.shared_files import shared_envoy_binary
from e2e.pods import (
    APP_UID,
    PYTHON,
    capture_bootstrap,
    leftovers,
    new_state_dir,
    pod_python,
    random_pod_network,
    why_pods_cannot_run,
)
from envoy_bootstrap.binary import find_envoy_binary
from meshplane.names import PROXY_UID

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

# Answers each connection with the address it came from, on every port given.
_PEER_SERVER = """
import socket, sys, threading
def serve(host, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((host, port)); s.listen(64)
    while True:
        c, peer = s.accept(); c.sendall(peer[0].encode() + b"\\n"); c.close()
for spec in sys.argv[1:]:
    host, port = spec.rsplit(":", 1)
    threading.Thread(target=serve, args=(host, int(port))).start()
"""
_CONNECT = """
import socket
s = socket.create_connection(({host!r}, {port}), timeout=5)
print(s.makefile().readline().strip())
"""
_STAT = """
import urllib.request
text = urllib.request.urlopen("http://127.0.0.1:15000/stats?filter=upstream_cx_total", timeout=2).read().decode()
print(dict(line.split(": ") for line in text.splitlines()).get("cluster.{cluster}.upstream_cx_total", "0"))
"""


@dataclasses.dataclass
class CapturePods:
    network: PodNetwork
    client: PodAddress
    server: PodAddress

    def connect(self, host: str, port: int, *, uid: int = APP_UID) -> str:
        """From the client pod as ``uid``: the address the server saw the connection come from."""
        return pod_python(self.client, _CONNECT.format(host=host, port=port), uid=uid)

    def connections(self, pod: PodAddress, cluster: str) -> int:
        return int(pod_python(pod, _STAT.format(cluster=cluster)))


def _wait_ready(pod: PodAddress) -> None:
    deadline = time.monotonic() + 20
    script = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:15000/ready', timeout=1).read())"
    while True:
        done = subprocess.run(in_netns_command(pod.netns, [PYTHON, "-c", script]), capture_output=True, check=False)
        if done.returncode == 0:
            return
        assert time.monotonic() < deadline, f"Envoy in {pod.name} not ready: {done.stderr!r}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def pods() -> Iterator[CapturePods]:
    network = random_pod_network()
    state_dir = new_state_dir()
    hosts = list(network.network.hosts())
    made: list[PodAddress] = []
    processes: list[subprocess.Popen[bytes]] = []
    envoy = shared_envoy_binary(find_envoy_binary())
    try:
        setup_network(network)
        for name, address in (("client", hosts[1]), ("server", hosts[2])):
            delete_pod("capture-test", name, state_dir)
            pod = create_pod(
                network,
                name=name,
                namespace="capture-test",
                pod_ip=str(address),
                app_uid=APP_UID,
                app_gid=APP_UID,
                runner_pid=0,
                state_dir=state_dir,
            )
            made.append(pod)
            install_capture(CaptureOptions(), pod.netns)
            command = [str(envoy), "-c", str(capture_bootstrap(pod)), "--disable-hot-restart", "--concurrency", "1"]
            processes.append(
                subprocess.Popen(in_netns_command(pod.netns, command, uid=PROXY_UID), stderr=subprocess.DEVNULL)
            )
        client, server = made
        servers = [f"0.0.0.0:{port}" for port in (8080, 9999)]
        processes.append(
            subprocess.Popen(in_netns_command(server.netns, [PYTHON, "-c", _PEER_SERVER, *servers], uid=APP_UID))
        )
        processes.append(
            subprocess.Popen(
                in_netns_command(client.netns, [PYTHON, "-c", _PEER_SERVER, "127.0.0.1:7070"], uid=APP_UID)
            )
        )
        for pod in made:
            _wait_ready(pod)
        time.sleep(0.3)  # the peer servers bind
        yield CapturePods(network=network, client=client, server=server)
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        for pod in made:
            delete_pod(pod.namespace, pod.name, state_dir)
        teardown_network(network)
    assert leftovers(network, made) == []


@pytest.fixture
def client_capture(pods: CapturePods) -> Iterator[None]:
    """Each test sets the client's capture options it needs; back to Istio's default afterwards."""
    yield
    install_capture(CaptureOptions(), pods.client.netns)


def test_app_connection_to_a_pod_ip_goes_through_both_sidecars(pods: CapturePods, client_capture: None) -> None:
    outbound = pods.connections(pods.client, "PassthroughCluster")
    inbound = pods.connections(pods.server, "InboundPassthroughCluster")
    seen = pods.connect(pods.server.ip, 8080)
    assert seen == "127.0.0.6"  # the server's sidecar connected to its app (InboundPassthroughCluster's source)
    assert pods.connections(pods.client, "PassthroughCluster") == outbound + 1
    assert pods.connections(pods.server, "InboundPassthroughCluster") == inbound + 1


def test_the_proxy_uids_own_traffic_is_not_captured(pods: CapturePods, client_capture: None) -> None:
    outbound = pods.connections(pods.client, "PassthroughCluster")
    assert pods.connect(pods.server.ip, 8080, uid=PROXY_UID) == "127.0.0.6"  # still captured on the server's side
    assert pods.connections(pods.client, "PassthroughCluster") == outbound


def test_the_apps_loopback_traffic_is_not_captured(pods: CapturePods, client_capture: None) -> None:
    outbound = pods.connections(pods.client, "PassthroughCluster")
    assert pods.connect("127.0.0.1", 7070) == "127.0.0.1"
    assert pods.connections(pods.client, "PassthroughCluster") == outbound


@pytest.mark.parametrize(
    "options",
    [
        CaptureOptions(exclude_outbound_ports=(9999,)),
        CaptureOptions(include_outbound_ports=(8080,), include_outbound_cidrs=()),
    ],
    ids=["exclude-outbound-port", "only-other-ports-included"],
)
def test_a_port_outside_outbound_capture_bypasses_the_sidecar(
    pods: CapturePods, client_capture: None, options: CaptureOptions
) -> None:
    install_capture(options, pods.client.netns)
    outbound = pods.connections(pods.client, "PassthroughCluster")
    assert pods.connect(pods.server.ip, 9999) == "127.0.0.6"
    assert pods.connections(pods.client, "PassthroughCluster") == outbound
    pods.connect(pods.server.ip, 8080)
    assert pods.connections(pods.client, "PassthroughCluster") == outbound + 1


def test_an_excluded_cidr_bypasses_the_sidecar(pods: CapturePods, client_capture: None) -> None:
    server = ipaddress.IPv4Network(f"{pods.server.ip}/32")
    install_capture(CaptureOptions(exclude_outbound_cidrs=(server,)), pods.client.netns)
    outbound = pods.connections(pods.client, "PassthroughCluster")
    pods.connect(pods.server.ip, 8080)
    assert pods.connections(pods.client, "PassthroughCluster") == outbound


def test_an_excluded_inbound_port_reaches_the_app_directly(pods: CapturePods) -> None:
    try:
        install_capture(CaptureOptions(exclude_inbound_ports=(9999,)), pods.server.netns)
        assert pods.connect(pods.server.ip, 9999, uid=PROXY_UID) == pods.client.ip
        assert pods.connect(pods.server.ip, 8080, uid=PROXY_UID) == "127.0.0.6"
    finally:
        install_capture(CaptureOptions(), pods.server.netns)
