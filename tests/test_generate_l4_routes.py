"""VirtualService tcp and tls routes and ServiceEntry addresses on a sidecar's outbound TCP listeners,
from YAML through validation and the model to the Listener protobufs, asserted field by field; the whole sidecar
checked by ``xdstest`` and ``envoy --mode validate``."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.config.listener.v3.listener_components_pb2 import FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy

from meshplane.identity import SDS_NODE_METADATA
from pilot.config.parse import parse_config_text
from pilot.config.types import ConfigKey
from pilot.config.types import Resource as ConfigResource
from pilot.generate.listeners import build_listeners
from pilot.generate.listeners_l4_routes import match_applies
from pilot.generate.registry import GENERATORS
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy
from pilot.model.l4_routes import L4_ROUTES_KIND
from pilot.xds import ResourceCache
from tests.sidecar_builders import unpack
from tests.source_builders import by_name, generated_type, validate_generated
from xdscore.types import LISTENER_TYPE, ROUTE_TYPE

SDS = {SDS_NODE_METADATA: "true"}
ECHO = "tcp-echo.default.svc.cluster.local"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"

MESH = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {labels: {app: tcp-echo}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcp-echo-v1, namespace: default}
spec: {address: 10.89.0.31, labels: {app: tcp-echo, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: tcp-echo-v2, namespace: default}
spec: {address: 10.89.0.32, labels: {app: tcp-echo, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage, namespace: default}
spec: {address: 10.89.0.10, labels: {app: productpage}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews, namespace: default}
spec: {address: 10.89.0.20, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo, namespace: default}
spec:
  host: tcp-echo
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: default}
spec:
  hosts: [a.secure.com, b.secure.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: default}
spec:
  hosts: [legacy.internal]
  addresses: [10.20.0.0/16]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pinned, namespace: default}
spec:
  hosts: [pinned.internal]
  addresses: [10.30.0.5/32]
  ports: [{number: 6379, name: redis, protocol: REDIS}]
  resolution: STATIC
  endpoints: [{address: 10.30.0.5}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.internal]
  addresses: [10.40.0.1, 10.41.0.0/16]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.40.0.9}]
"""

VS_ECHO = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{port: 9000, sourceLabels: {app: productpage}%s}]
    route:
    - {destination: {host: tcp-echo, subset: v1}, weight: 80}
    - {destination: {host: tcp-echo, subset: v2}, weight: 20}
"""

VS_SECURE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: default}
spec:
  hosts: [a.secure.com, b.secure.com]
  tls:
  - match: [{sniHosts: [a.secure.com]}]
    route: [{destination: {host: a.secure.com}}]
  - match: [{sniHosts: [b.secure.com], port: 443}]
    route: [{destination: {host: tcp-echo, subset: v2, port: {number: 9000}}}]
  - match: [{sniHosts: [a.secure.com]}]
    route: [{destination: {host: b.secure.com}}]
"""

VS_PINNED = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pinned, namespace: default}
spec:
  hosts: [pinned.internal]
  tcp:
  - match: [{destinationSubnets: [10.30.0.0/24]}, {sourceNamespace: other}]
    route: [{destination: {host: tcp-echo.default.svc.cluster.local, subset: v1}}]
"""


def mesh(*documents: str) -> MeshSnapshot:
    parsed = parse_config_text("\n---\n".join([MESH, *documents]), "mesh.yaml")
    errors = [str(e) for r in parsed.rejected for e in r.errors]
    assert not errors, errors
    return build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)


def proxy(snap: MeshSnapshot, workload: str = "productpage", address: str = "10.89.0.10") -> Proxy:
    node = parse_node_id(f"sidecar~{address}~{workload}.default~default.svc.cluster.local", "", SDS)
    return resolve_proxy(node, snap)


def listeners(snap: MeshSnapshot, client: Proxy | None = None) -> dict[str, Listener]:
    return by_name(build_listeners(client or proxy(snap), snap))


def vip(snap: MeshSnapshot, host: str) -> str:
    [address] = snap.vips[host]
    return address


def tcp_proxy(chain: FilterChain) -> TcpProxy:
    [network] = chain.filters
    assert network.name == "envoy.filters.network.tcp_proxy"
    return unpack(TcpProxy(), network.typed_config)


def weighted(chain: FilterChain) -> list[tuple[str, int]]:
    return [(c.name, c.weight) for c in tcp_proxy(chain).weighted_clusters.clusters]


def prefixes(chain: FilterChain) -> list[str]:
    return [f"{r.address_prefix}/{r.prefix_len.value}" for r in chain.filter_chain_match.prefix_ranges]


def test_tcp_weighted_split_to_subsets() -> None:
    snap = mesh(VS_ECHO % "")
    listener = listeners(snap)[f"{vip(snap, ECHO)}_9000"]
    [chain] = listener.filter_chains  # the match has no destinationSubnets: it takes every connection
    assert not chain.HasField("filter_chain_match")
    assert weighted(chain) == [(f"outbound|9000|v1|{ECHO}", 80), (f"outbound|9000|v2|{ECHO}", 20)]
    assert tcp_proxy(chain).stat_prefix == f"outbound|9000||{ECHO}"
    assert not tcp_proxy(chain).cluster
    assert list(listener.listener_filters) == []


def test_source_labels_pick_the_proxies_a_tcp_route_applies_to() -> None:
    snap = mesh(VS_ECHO % "")
    [chain] = listeners(snap, proxy(snap, "reviews", "10.89.0.20"))[f"{vip(snap, ECHO)}_9000"].filter_chains
    assert tcp_proxy(chain).cluster == f"outbound|9000||{ECHO}"  # the default: reviews is not app=productpage
    assert not tcp_proxy(chain).HasField("weighted_clusters")


def test_match_gateways_mesh_applies_to_sidecars() -> None:
    snap = mesh(VS_ECHO % ", gateways: [mesh]")
    assert listeners(snap) == listeners(mesh(VS_ECHO % ""))
    tcp = snap.virtual_services[ECHO][0].tcp[0]
    assert tcp.match[0].gateways == ("mesh",)
    assert match_applies(tcp.match[0], proxy(snap), 9000)


def test_tls_routes_match_sni_on_the_tls_port() -> None:
    snap = mesh(VS_SECURE)
    listener = listeners(snap)[f"{vip(snap, 'a.secure.com')}_443"]
    assert [f.name for f in listener.listener_filters] == [TLS_INSPECTOR]
    # The third route's match repeats the first's SNI: it can never match, and Envoy rejects identical matches.
    first, second = listener.filter_chains
    assert list(first.filter_chain_match.server_names) == ["a.secure.com"]
    assert tcp_proxy(first).cluster == "outbound|443||a.secure.com"
    assert list(second.filter_chain_match.server_names) == ["b.secure.com"]
    assert tcp_proxy(second).cluster == f"outbound|9000|v2|{ECHO}"
    assert prefixes(first) == prefixes(second) == []
    # The same VirtualService names b.secure.com: its listener gets the same chains.
    other = listeners(snap)[f"{vip(snap, 'b.secure.com')}_443"]
    assert [list(c.filter_chain_match.server_names) for c in other.filter_chains] == [
        ["a.secure.com"],
        ["b.secure.com"],
    ]


def test_tls_port_without_tls_route_is_opaque_tcp() -> None:
    snap = mesh()
    listener = listeners(snap)[f"{vip(snap, 'a.secure.com')}_443"]
    [chain] = listener.filter_chains
    assert not chain.HasField("filter_chain_match")
    assert tcp_proxy(chain).cluster == "outbound|443||a.secure.com"
    assert list(listener.listener_filters) == []


def test_cidr_address_listens_on_the_wildcard_with_a_prefix_match() -> None:
    snap = mesh()
    assert "legacy.internal" not in snap.vips  # a range is no address to resolve a name to
    assert snap.vips["pinned.internal"] == ("10.30.0.5",)  # a /32 is its address
    by = listeners(snap)
    listener = by["0.0.0.0_5432"]
    assert (listener.address.socket_address.address, listener.address.socket_address.port_value) == ("0.0.0.0", 5432)
    assert not listener.bind_to_port.value
    [chain] = listener.filter_chains
    assert prefixes(chain) == ["10.20.0.0/16"]
    assert tcp_proxy(chain).cluster == "outbound|5432||legacy.internal"
    [pinned] = by["10.30.0.5_6379"].filter_chains
    assert tcp_proxy(pinned).cluster == "outbound|6379||pinned.internal"


def test_destination_subnets_chain_comes_before_the_default() -> None:
    snap = mesh(VS_PINNED)
    subnet, default = listeners(snap)["10.30.0.5_6379"].filter_chains
    assert prefixes(subnet) == ["10.30.0.0/24"]
    assert tcp_proxy(subnet).cluster == f"outbound|9000|v1|{ECHO}"
    assert not default.HasField("filter_chain_match")
    assert tcp_proxy(default).cluster == "outbound|6379||pinned.internal"


def test_http_virtual_host_domains_hold_the_service_entry_ip_not_its_cidr() -> None:
    snap = mesh()
    client = proxy(snap)
    routes = {r.name: r for r in generated_type(ROUTE_TYPE, client, snap)}
    [vhost] = [v for v in routes["80"].virtual_hosts if "web.internal" in v.domains]
    assert list(vhost.domains) == ["web.internal", "10.40.0.1"]


def test_a_full_sidecar_with_tcp_and_tls_routes_is_valid(tmp_path: Path) -> None:
    snap = mesh(VS_ECHO % "", VS_SECURE, VS_PINNED)
    validate_generated(tmp_path, proxy(snap), snap)


def test_a_virtual_service_change_regenerates_listeners_only_when_its_l4_routes_change() -> None:
    # The xDS cache reuses a type's resources when no kind in its affected_by changed: tcp/tls routes live in LDS,
    # http routes in RDS alone.
    assert L4_ROUTES_KIND in GENERATORS[LISTENER_TYPE].affected_by
    assert "VirtualService" not in GENERATORS[LISTENER_TYPE].affected_by
    assert "VirtualService" in GENERATORS[ROUTE_TYPE].affected_by


VS_WEB = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.internal]
  http:
  - route: [{destination: {host: web.internal}, weight: %d}, {destination: {host: tcp-echo}, weight: %d}]
"""
# An http-only VirtualService for the TCP service's host: it adds no route to its listener's chains, but being the
# exact host's it shadows a wildcard VirtualService's tcp routes for that host.
VS_ECHO_HTTP = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo-http, namespace: default}
spec:
  hosts: [tcp-echo]
  http: [{route: [{destination: {host: tcp-echo, subset: v2}}]}]
"""


VS_WILDCARD_TCP = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wildcard-tcp, namespace: default}
spec:
  hosts: ["*.default.svc.cluster.local"]
  tcp:
  - route:
    - {destination: {host: tcp-echo, subset: v1}}
"""


def _configs(*documents: str) -> dict[ConfigKey, ConfigResource]:
    parsed = parse_config_text("\n---\n".join([MESH, *documents]), "mesh.yaml")
    assert not [str(e) for r in parsed.rejected for e in r.errors]
    return {r.meta.key: r for r in parsed.resources}


@pytest.mark.parametrize(
    ("before", "after", "l4_changed", "listeners_differ"),
    [
        ((VS_ECHO % "", VS_WEB % (90, 10)), (VS_ECHO % "", VS_WEB % (50, 50)), False, False),
        (
            (VS_ECHO % "", VS_ECHO_HTTP),
            (VS_ECHO % "", VS_ECHO_HTTP.replace("subset: v2", "subset: v1")),
            False,
            False,
        ),
        # rebuilt (an http-only VirtualService's hosts may shadow another's), the same: VS_ECHO is tcp-echo's own
        ((VS_ECHO % "",), (VS_ECHO % "", VS_ECHO_HTTP), True, False),
        ((VS_ECHO % "", VS_ECHO_HTTP), (VS_ECHO % "",), True, False),
        ((VS_WILDCARD_TCP,), (VS_WILDCARD_TCP, VS_ECHO_HTTP), True, True),
        ((VS_WILDCARD_TCP, VS_ECHO_HTTP), (VS_WILDCARD_TCP,), True, True),
        ((VS_ECHO % "",), (VS_ECHO % ", sourceNamespace: other",), True, True),
        ((VS_ECHO % "", VS_SECURE), (VS_ECHO % "",), True, True),
        ((VS_WEB % (90, 10),), (VS_WEB % (90, 10), VS_PINNED), True, True),
    ],
    ids=[
        "http-weights",
        "http-only-vs-routes-changed",
        "http-only-vs-added-for-a-tcp-host",
        "http-only-vs-removed",
        "http-only-vs-shadows-a-wildcard-tcp-route",
        "http-only-vs-no-longer-shadows",
        "tcp-match-changed",
        "tls-vs-removed",
        "tcp-vs-added",
    ],
)
def test_listeners_are_carried_over_a_change_of_http_routes_and_rebuilt_for_l4_routes(
    before: tuple[str, ...], after: tuple[str, ...], l4_changed: bool, listeners_differ: bool
) -> None:
    first_snapshot = build_snapshot(_configs(*before), version=1)
    second_snapshot = build_snapshot(_configs(*after), version=2, previous=first_snapshot)
    assert "VirtualService" in second_snapshot.changed_kinds
    assert (L4_ROUTES_KIND in second_snapshot.changed_kinds) is l4_changed
    node = proxy(first_snapshot).node
    first = ResourceCache(first_snapshot, GENERATORS)
    first.warm([node])
    second = ResourceCache(second_snapshot, GENERATORS, previous=first)
    second.warm([node])
    carried = second.view(LISTENER_TYPE, node)
    assert (carried is first.view(LISTENER_TYPE, node)) is not l4_changed
    assert ROUTE_TYPE not in second.reused_types
    # what a cache without a previous snapshot builds: the carried listeners are exactly those
    rebuilt = ResourceCache(second_snapshot, GENERATORS).view(LISTENER_TYPE, node)
    assert {n: r.any_bytes for n, r in carried.resources.items()} == {
        n: r.any_bytes for n, r in rebuilt.resources.items()
    }
    assert (carried.version != first.view(LISTENER_TYPE, node).version) is listeners_differ


DR_LEGACY_LIMITS = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: legacy-limits, namespace: default}
spec:
  host: legacy.internal
  trafficPolicy: {connectionPool: {tcp: {idleTimeout: %s, maxConnectionDuration: %s}}}
"""


def test_a_destination_rule_change_rebuilds_the_tcp_proxy_limits_of_the_listeners() -> None:
    first_snapshot = build_snapshot(_configs(DR_LEGACY_LIMITS % ("10s", "20s")), version=1)
    second_snapshot = build_snapshot(_configs(DR_LEGACY_LIMITS % ("30s", "40s")), version=2, previous=first_snapshot)
    node = proxy(first_snapshot).node
    first = ResourceCache(first_snapshot, GENERATORS)
    first.warm([node])
    second = ResourceCache(second_snapshot, GENERATORS, previous=first)
    second.warm([node])
    carried = {n: r.any_bytes for n, r in second.view(LISTENER_TYPE, node).resources.items()}
    rebuilt = {
        n: r.any_bytes
        for n, r in ResourceCache(second_snapshot, GENERATORS).view(LISTENER_TYPE, node).resources.items()
    }
    before = {n: r.any_bytes for n, r in first.view(LISTENER_TYPE, node).resources.items()}
    assert carried == rebuilt
    assert carried != before  # the idle timeout and duration in the legacy.internal tcp_proxy changed
