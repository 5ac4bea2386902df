"""DestinationRule connection pool settings through real Envoys in pods, in one world (reviews v1 and the
productpage client) with one rule for reviews: ``http.h2UpgradePolicy: UPGRADE`` makes the client's sidecar speak
HTTP/2 to the reviews sidecar (its cluster's HTTP/2 connection counter moves, the HTTP/1 one never does, and the
HTTP/1.1 app still answers), and ``tcp.maxConnectionDuration: 2s`` has the client's sidecar close its upstream
connection after 2 seconds (``upstream_cx_max_duration_reached``), the next request opening a new one. On a TCP
port (Istio's tcp-echo, ``e2e.l4_mesh``) the same field makes the sidecar's ``tcp_proxy`` close the app's own
connection after 2 seconds, which without it stays open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from e2e.conftest import POD_WORLD_LOOP
from e2e.l4_apps import TCP_ECHO_PORT, tcp_echo_counts, tcp_echo_replies
from e2e.l4_mesh import apply, settle, start_tcp_echo
from e2e.mesh_config import DEMO_TCP_SERVICES_FILE, render_pod_demo
from e2e.pod_mesh import NAMESPACE, REVIEWS_PORT, REVIEWS_URL, PodMesh, pod_mesh
from e2e.pods import envoy_stat, pod_python, why_pods_cannot_run

pytestmark = [pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run())), POD_WORLD_LOOP]

MAX_CONNECTION_SECONDS = 2
RULE = f"""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews-pool
  namespace: {NAMESPACE}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnectionDuration: {MAX_CONNECTION_SECONDS}s
      http:
        h2UpgradePolicy: UPGRADE
"""
CLUSTER = f"cluster.outbound|{REVIEWS_PORT}||reviews.{NAMESPACE}.svc.cluster.local"
TCP_RULE = f"""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: tcp-echo-pool
  namespace: {NAMESPACE}
spec:
  host: tcp-echo
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnectionDuration: {MAX_CONNECTION_SECONDS}s
"""
OPEN_SECONDS = 12.0
# One connection: a line each way, then how long until the other side closes it ("open" if it never does).
_HOLD = """
import socket, sys, time
start = time.monotonic()
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as sock:
    sock.sendall(b"hello\\n")
    reply = sock.recv(1024)
    try:
        while sock.recv(1024):
            pass
        print(f"{reply.decode().strip()}|{time.monotonic() - start:.1f}")
    except socket.timeout:
        print(f"{reply.decode().strip()}|open")
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PodMesh]:
    async with pod_mesh(tmp_path_factory.mktemp("pod-pool"), RULE, versions=("v1",)) as mesh:
        await start_tcp_echo(mesh)
        apply(mesh, "tcp-echo", f"{render_pod_demo(DEMO_TCP_SERVICES_FILE, mesh.network)}---\n{TCP_RULE}")
        await settle(
            lambda: tcp_echo_replies(mesh.client, "tcp-echo", TCP_ECHO_PORT, 2),
            lambda replies: set(tcp_echo_counts(replies)) <= {"v1", "v2"},
            mesh,
            "tcp-echo not reachable",
        )
        yield mesh


def _stat(mesh: PodMesh, name: str) -> int:
    return envoy_stat(mesh.client, f"{CLUSTER}.{name}")


async def test_h2_upgrade_policy_makes_the_sidecar_speak_http2_upstream(pool_world: PodMesh) -> None:
    responses = await pool_world.responses(REVIEWS_URL, 3)
    assert [r.status for r in responses] == [200] * 3, [r.text[:200] for r in responses]
    assert {str(r.body["workload"]) for r in responses if r.body is not None} == {"reviews-v1"}
    http2, http1 = await asyncio.gather(
        asyncio.to_thread(_stat, pool_world, "upstream_cx_http2_total"),
        asyncio.to_thread(_stat, pool_world, "upstream_cx_http1_total"),
    )
    assert http2 >= 1 and http1 == 0, (http2, http1)


async def test_max_connection_duration_closes_the_upstream_connection(pool_world: PodMesh) -> None:
    before = await asyncio.to_thread(_stat, pool_world, "upstream_cx_max_duration_reached")
    first = await pool_world.request(REVIEWS_URL)
    assert first.status == 200, first.text[:200]
    deadline = asyncio.get_running_loop().time() + MAX_CONNECTION_SECONDS + 10
    reached = before
    while reached == before and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.5)
        reached = await asyncio.to_thread(_stat, pool_world, "upstream_cx_max_duration_reached")
    assert reached > before, (before, reached)
    opened = await asyncio.to_thread(_stat, pool_world, "upstream_cx_total")
    again = await pool_world.request(REVIEWS_URL)
    assert again.status == 200, again.text[:200]
    assert await asyncio.to_thread(_stat, pool_world, "upstream_cx_total") > opened  # a new connection


async def test_max_connection_duration_closes_a_tcp_connection_through_tcp_proxy(pool_world: PodMesh) -> None:
    args = ["tcp-echo", str(TCP_ECHO_PORT), str(OPEN_SECONDS)]
    found = await asyncio.to_thread(pod_python, pool_world.client, _HOLD, args=args, timeout=OPEN_SECONDS + 10)
    reply, _, seconds = found.partition("|")
    assert reply.endswith("hello"), found  # the echo answered: "one hello" or "two hello"
    assert seconds != "open" and MAX_CONNECTION_SECONDS - 0.5 <= float(seconds) < MAX_CONNECTION_SECONDS + 4, found
