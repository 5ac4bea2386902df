"""The pod network's gateway in real network namespaces: the bridge keeps its MAC address when a pod joins, so a
pod's connections to an address on the host's gateway (Mixer with ``pod run --mixer-direct``) go on when another
pod starts. A Linux bridge without an address of its own takes the lowest MAC of its ports: a pod whose veth's MAC
is lower than the others' changed the gateway's, and every pod that had resolved the gateway kept sending to the old
one, which the host drops ("otherhost"), until its neighbour entry was probed again (tens of seconds)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.netns import ip
from agent.pod_network import (
    PodAddress,
    PodNetwork,
    bridge_mac,
    create_pod,
    delete_pod,
    setup_network,
    teardown_network,
)
from e2e.pods import APP_UID, leftovers, new_state_dir, pod_python, random_pod_network, why_pods_cannot_run

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

NAMESPACE = "gateway-test"
# RFC 7042's documentation range: below any random (locally administered) MAC, so each is the bridge's lowest port MAC
LOW_MAC, LOWER_MAC = "00:00:5e:00:53:02", "00:00:5e:00:53:01"
CONNECT_SECONDS = 2.0

# One connection to HOST:PORT: sends a byte, prints what comes back (the server echoes it).
_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as s:
    s.sendall(b"x"); print(s.recv(1).decode())
"""


@dataclass(frozen=True, slots=True)
class Gateway:
    network: PodNetwork
    port: int  # an echo server's, on the gateway's address (the host)
    state_dir: Path
    made: list[PodAddress]

    def pod(self, name: str, number: int) -> PodAddress:
        pod = create_pod(
            self.network,
            name=name,
            namespace=NAMESPACE,
            pod_ip=str(list(self.network.network.hosts())[number]),
            app_uid=APP_UID,
            app_gid=APP_UID,
            runner_pid=0,
            state_dir=self.state_dir,
        )
        self.made.append(pod)
        return pod

    def echo_from(self, pod: PodAddress) -> str:
        """What one connection from ``pod``'s namespace to the echo server on the gateway got back (fails with the
        client's stderr when it could not connect)."""
        return pod_python(pod, _CLIENT, args=(self.network.gateway, str(self.port), str(CONNECT_SECONDS)), timeout=30)


def _echo(server: socket.socket) -> None:
    while True:
        try:
            connection, _ = server.accept()
        except OSError:  # closed: the test is over
            return
        with connection:
            connection.sendall(connection.recv(1))


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    network = random_pod_network()
    made: list[PodAddress] = []
    state_dir = new_state_dir()
    setup_network(network)
    server = socket.create_server((network.gateway, 0))
    threading.Thread(target=_echo, args=(server,), daemon=True).start()
    try:
        yield Gateway(network=network, port=server.getsockname()[1], state_dir=state_dir, made=made)
    finally:
        server.close()
        for pod in made:
            delete_pod(pod.namespace, pod.name, state_dir)
        teardown_network(network)
    assert leftovers(network, made) == []


def _mac(device: str) -> str:
    return Path(f"/sys/class/net/{device}/address").read_text().strip()


def test_a_pod_keeps_reaching_the_gateway_when_a_pod_with_a_lower_mac_joins(gateway: Gateway) -> None:
    """The first pod resolves the gateway while the lowest port MAC is another pod's veth (the host side), then a
    pod with a still lower one joins: without a MAC of its own the bridge took each, and the first pod's frames to
    the old one were dropped by the host."""
    bridge = gateway.network.bridge
    assert _mac(bridge) == bridge_mac(gateway.network)
    first = gateway.pod("first", 1)
    ip("link", "set", gateway.pod("second", 2).veth, "address", LOW_MAC)
    assert gateway.echo_from(first) == "x"  # the first pod has resolved the gateway's MAC

    ip("link", "set", gateway.pod("third", 3).veth, "address", LOWER_MAC)
    assert _mac(bridge) == bridge_mac(gateway.network)
    assert gateway.echo_from(first) == "x"
