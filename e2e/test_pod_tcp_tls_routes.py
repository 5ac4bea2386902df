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
and Deployments (the VirtualService's ``tcp`` match has no ``port`` here: Istio's task matches the ingress gateway's
31400, and meshplane has no Gateways yet)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e.l4_apps import make_certificates, tcp_echo_replies, tcp_echo_server_command, tls_hellos, tls_server_command
from e2e.l4_mesh import TLS_APP_PORT, TLS_PORT, apply, settle, start_pods, tls_services
from e2e.pod_mesh import NAMESPACE, pod_mesh
from e2e.pods import why_pods_cannot_run
from e2e.traffic import binomial_bounds

pytestmark = pytest.mark.skipif(why_pods_cannot_run() is not None, reason=str(why_pods_cannot_run()))

CONNECTIONS = 200
ECHO_PORT = 9000


TCP_ECHO_SERVICE = f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tcp-echo
  namespace: {NAMESPACE}
spec:
  hosts:
  - tcp-echo.{NAMESPACE}.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: {ECHO_PORT}
    name: tcp
    protocol: TCP
  resolution: STATIC
  workloadSelector:
    labels:
      app: tcp-echo
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: tcp-echo-destination
  namespace: {NAMESPACE}
spec:
  host: tcp-echo
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
"""


def tcp_echo_virtual_service(v1: int, v2: int) -> str:
    """Istio's ``tcp-echo-all-v1.yaml`` (``v2=0``) and ``tcp-echo-20-v2.yaml`` (80/20), for the mesh."""
    routes = [("v1", v1), ("v2", v2)] if v2 else [("v1", 0)]
    destinations = "".join(
        f"""\
    - destination:
        host: tcp-echo
        port:
          number: {ECHO_PORT}
        subset: {subset}
"""
        + (f"      weight: {weight}\n" if v2 else "")
        for subset, weight in routes
    )
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
  namespace: {NAMESPACE}
spec:
  hosts:
  - tcp-echo
  tcp:
  - route:
{destinations}"""


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


def words(replies: list[str]) -> Counter[str]:
    """Replies counted by their first word (``one``, ``two``, ``error``, ``closed``)."""
    return Counter(reply.split(" ", 1)[0] for reply in replies)


async def test_tcp_traffic_shifting_moves_20_percent_of_connections_to_v2(tmp_path: Path) -> None:
    async with pod_mesh(tmp_path) as mesh:
        pods = {
            f"tcp-echo-{version}": (
                tcp_echo_server_command(word, ECHO_PORT),
                f"app=tcp-echo,version={version}",
                "tcp-echo",
            )
            for version, word in (("v1", "one"), ("v2", "two"))
        }
        entries = await start_pods(mesh, pods)
        apply(mesh, "tcp-echo", f"{TCP_ECHO_SERVICE}---\n{entries}---\n{tcp_echo_virtual_service(100, 0)}")

        def echo(count: int) -> Callable[[], list[str]]:
            return lambda: tcp_echo_replies(mesh.client, "tcp-echo", ECHO_PORT, count)

        await settle(echo(5), lambda r: words(r) == {"one": 5}, mesh, "tcp-echo v1 not reachable")
        all_v1 = await asyncio.to_thread(echo(50))
        apply(mesh, "tcp-echo", f"{TCP_ECHO_SERVICE}---\n{entries}---\n{tcp_echo_virtual_service(80, 20)}")
        await settle(echo(10), lambda r: "two" in words(r), mesh, "the 80/20 split did not reach the sidecar")
        split = await asyncio.to_thread(echo(CONNECTIONS))
    assert words(all_v1) == {"one": 50}, all_v1
    assert all(reply.startswith(("one hello", "two hello")) for reply in split), split
    counts = words(split)
    low, high = binomial_bounds(CONNECTIONS, 0.20)
    assert set(counts) == {"one", "two"}, counts
    assert low <= counts["two"] <= high, counts


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
