"""VirtualService ``tcp`` and ``tls`` routes carrying real connections between pods (``e2e.pod_mesh`` plus pods of
these scenarios, ``e2e.l4_apps``' apps):

- Istio's "TCP Traffic Shifting" task: ``tcp-echo`` v1 and v2 (replies prefixed ``one`` / ``two``), all traffic to
  v1, then 80/20 by ``tcp`` route weights, counted over fresh TCP connections of an unmodified app in the
  productpage pod to ``tcp-echo:9000`` (by name, through the pod's DNS agent; iptables hands it to the sidecar's
  ``<vip>_9000`` listener, whose ``tcp_proxy`` picks the subset's cluster).
- A ``tls`` route by SNI: ``login.bookinfo.com`` and ``shop.bookinfo.com`` on TLS port 443, one TLS server pod each
  with its own certificate; the app's SNI decides where its connection lands, whichever of the two addresses it
  dials, and an SNI no route names is closed, as in Istio.

The YAML is written as Istio's docs write it, with ServiceEntries and WorkloadEntries for the Kubernetes Services
and Deployments; the tcp-echo files are the demo's (``e2e/demo_config/00-tcp-echo-services.yaml``,
``06-tcp-echo-all-v1.yaml``, ``07-tcp-echo-20-v2.yaml``: the VirtualService's ``tcp`` match has no ``port`` there:
Istio's task matches the ingress gateway's 31400, and meshplane has no Gateways yet)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e.l4_apps import (
    TCP_ECHO_PORT,
    make_certificates,
    tcp_echo_counts,
    tcp_echo_replies,
    tls_hellos,
    tls_server_command,
)
from e2e.l4_mesh import TLS_APP_PORT, TLS_PORT, apply, settle, start_pods, start_tcp_echo, tls_services
from e2e.mesh_config import DEMO_TCP_ROUTE_FILES, DEMO_TCP_SERVICES_FILE, render_pod_demo
from e2e.pod_mesh import NAMESPACE, PodMesh, pod_mesh
from e2e.pods import why_pods_cannot_run
from e2e.traffic import binomial_bounds

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

CONNECTIONS = 200


def tcp_echo_config(mesh: PodMesh, route_file: Path) -> str:
    """The demo's tcp-echo registry and one of its VirtualServices (Istio's task's files, for the mesh), with the
    pod IPs moved to the test's network."""
    return "---\n".join(render_pod_demo(path, mesh.network) for path in (DEMO_TCP_SERVICES_FILE, route_file))


SNI_VIRTUAL_SERVICE = f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo-sni
  namespace: {NAMESPACE}
spec:
  hosts:
  - login.bookinfo.com
  - shop.bookinfo.com
  tls:
  - match:
    - port: {TLS_PORT}
      sniHosts:
      - login.bookinfo.com
    route:
    - destination:
        host: login.bookinfo.com
  - match:
    - port: {TLS_PORT}
      sniHosts:
      - shop.bookinfo.com
    route:
    - destination:
        host: shop.bookinfo.com
"""


async def test_tcp_traffic_shifting_moves_20_percent_of_connections_to_v2(tmp_path: Path) -> None:
    all_v1_file, split_file = DEMO_TCP_ROUTE_FILES
    async with pod_mesh(tmp_path) as mesh:
        await start_tcp_echo(mesh)
        apply(mesh, "tcp-echo", tcp_echo_config(mesh, all_v1_file))

        def echo(count: int) -> Callable[[], list[str]]:
            return lambda: tcp_echo_replies(mesh.client, "tcp-echo", TCP_ECHO_PORT, count)

        await settle(echo(5), lambda r: tcp_echo_counts(r) == {"v1": 5}, mesh, "tcp-echo v1 not reachable")
        all_v1 = await asyncio.to_thread(echo(50))
        apply(mesh, "tcp-echo", tcp_echo_config(mesh, split_file))
        await settle(echo(10), lambda r: "v2" in tcp_echo_counts(r), mesh, "the 80/20 split did not reach the sidecar")
        split = await asyncio.to_thread(echo(CONNECTIONS))
    assert tcp_echo_counts(all_v1) == {"v1": 50}, all_v1
    assert all(reply.startswith(("one hello", "two hello")) for reply in split), split
    counts = tcp_echo_counts(split)
    low, high = binomial_bounds(CONNECTIONS, 0.20)
    assert set(counts) == {"v1", "v2"}, counts
    assert low <= counts["v2"] <= high, counts


TLS_HOSTS = ("login.bookinfo.com", "shop.bookinfo.com")


async def test_a_tls_route_by_sni_sends_each_connection_to_its_sni_hosts_backend(tmp_path: Path) -> None:
    certificates = make_certificates(list(TLS_HOSTS))
    async with pod_mesh(tmp_path) as mesh:
        pods = {
            host.split(".")[0]: (
                tls_server_command(host.split(".")[0], TLS_APP_PORT, *certificates.leaves[host]),
                f"app={host.split('.')[0]}",
                host.split(".")[0],
            )
            for host in TLS_HOSTS
        }
        entries = await start_pods(mesh, pods)
        apply(mesh, "tls", f"{tls_services(TLS_HOSTS)}---\n{entries}---\n{SNI_VIRTUAL_SERVICE}")
        ca = certificates.ca_pem

        def hello(address: str, sni: str, count: int = 3) -> Callable[[], list[tuple[str, str]]]:
            return lambda: tls_hellos(mesh.client, address, TLS_PORT, sni, ca, count)

        login = await settle(
            hello("login.bookinfo.com", "login.bookinfo.com"),
            lambda r: r == [("login.bookinfo.com", "login")] * 3,
            mesh,
            "login not reached by its SNI",
        )
        shop = await asyncio.to_thread(hello("shop.bookinfo.com", "shop.bookinfo.com"))
        crossed = await asyncio.to_thread(hello("login.bookinfo.com", "shop.bookinfo.com"))
        unknown = await asyncio.to_thread(hello("login.bookinfo.com", "admin.bookinfo.com", 2))
    assert login == [("login.bookinfo.com", "login")] * 3
    assert shop == [("shop.bookinfo.com", "shop")] * 3, shop
    assert crossed == [("shop.bookinfo.com", "shop")] * 3, crossed  # the SNI decides, not the address dialled
    assert [cn for cn, _ in unknown] == ["error", "error"], unknown  # no chain for that SNI: closed
