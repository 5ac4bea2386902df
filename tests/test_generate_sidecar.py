"""A sidecar in a pod (Istio's INTERCEPTION_MODE REDIRECT, the default and the one mode): Istio's listeners, per-port
route tables and passthrough clusters, asserted field by field, checked for dangling references and by
``envoy --mode validate``; other interception modes refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy

from meshplane import names
from meshplane.identity import SDS_NODE_METADATA
from pilot.config.types import PeerAuthentication, Protocol, Resolution, ServiceEntry, ServicePort
from pilot.generate.listener_tls import MESH_ALPNS
from pilot.model import (
    MeshSettings,
    MeshSnapshot,
    NodeIdError,
    OutboundTrafficPolicy,
    Proxy,
    parse_node_id,
    resolve_proxy,
)
from tests.route_builders import NS, REVIEWS, meta, port, service_entry, snapshot, workload
from tests.sidecar_builders import unpack
from tests.source_builders import by_name, generated_type, validate_generated
from xdscore.types import CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE

POD_IP = "10.89.0.21"
CAPTURED = {names.INTERCEPTION_MODE_METADATA: "REDIRECT", SDS_NODE_METADATA: "true"}
NODE_ID = f"sidecar~{POD_IP}~reviews-v1.{NS}~{NS}.svc.cluster.local"
DB = "db.example.com"


def mesh(*extra: Any, policy: OutboundTrafficPolicy = OutboundTrafficPolicy.ALLOW_ANY) -> MeshSnapshot:
    reviews = service_entry(
        "reviews",
        REVIEWS,
        (
            ServicePort(number=9080, name="http", protocol=Protocol.HTTP, target_port=19080),
            ServicePort(number=3306, name="mysql", protocol=Protocol.MYSQL, target_port=3306),
        ),
        selector={"app": "reviews"},
    )
    ratings = service_entry("ratings", "ratings.default.svc.cluster.local", (port(9080), port(8080)))
    db = ServiceEntry(
        meta=meta("ServiceEntry", "db"),
        hosts=(DB,),
        ports=(ServicePort(number=5432, name="tcp", protocol=Protocol.TCP),),
        location="MESH_EXTERNAL",
        resolution=Resolution.NONE,
    )
    snap = snapshot(reviews, ratings, db, workload("reviews-v1", POD_IP, {"app": "reviews"}), *extra)
    return dataclasses.replace(snap, mesh=MeshSettings(outbound_traffic_policy=policy))


def captured(snap: MeshSnapshot, metadata: dict[str, str] | None = None) -> Proxy:
    node = parse_node_id(NODE_ID, "", CAPTURED if metadata is None else metadata)
    return resolve_proxy(node, snap)


def tcp_cluster(listener_chain: Any) -> str:
    [network] = listener_chain.filters[-1:]
    return str(unpack(TcpProxy(), network.typed_config).cluster)


def test_a_proxy_without_interception_mode_is_redirect_as_in_istio() -> None:
    snap = mesh()
    for type_url in (LISTENER_TYPE, ROUTE_TYPE, CLUSTER_TYPE):
        unsaid = generated_type(type_url, captured(snap, {SDS_NODE_METADATA: "true"}), snap)
        assert unsaid == generated_type(type_url, captured(snap), snap), type_url


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("TPROXY", "metadata INTERCEPTION_MODE TPROXY is not supported by meshplane yet"),
        ("NONE", "metadata INTERCEPTION_MODE NONE is not supported by meshplane yet"),
        ("redirect", "must be one of Istio's modes REDIRECT, TPROXY, NONE, got 'redirect'"),
    ],
    ids=["tproxy", "none", "unknown"],
)
def test_other_interception_modes_are_refused(mode: str, message: str) -> None:
    with pytest.raises(NodeIdError, match=message):
        parse_node_id(NODE_ID, "", {names.INTERCEPTION_MODE_METADATA: mode})


def test_virtual_outbound() -> None:
    snap = mesh()
    lis = by_name(generated_type(LISTENER_TYPE, captured(snap), snap))["virtualOutbound"]
    assert lis.address.socket_address.address == "0.0.0.0"
    assert lis.address.socket_address.port_value == names.OUTBOUND_CAPTURE_PORT
    assert lis.use_original_dst.value is True
    [blackhole] = lis.filter_chains
    assert blackhole.name == "virtualOutbound-blackhole"
    assert blackhole.filter_chain_match.destination_port.value == 15001
    assert tcp_cluster(blackhole) == names.BLACKHOLE_CLUSTER
    assert lis.default_filter_chain.name == "PassthroughFilterChain"
    assert tcp_cluster(lis.default_filter_chain) == names.PASSTHROUGH_CLUSTER


@pytest.mark.parametrize(
    ("policy", "cluster"),
    [
        (OutboundTrafficPolicy.ALLOW_ANY, names.PASSTHROUGH_CLUSTER),
        (OutboundTrafficPolicy.REGISTRY_ONLY, names.BLACKHOLE_CLUSTER),
    ],
    ids=["allow-any", "registry-only"],
)
def test_outbound_policy_decides_the_default_chain(policy: OutboundTrafficPolicy, cluster: str) -> None:
    snap = mesh(policy=policy)
    lis = by_name(generated_type(LISTENER_TYPE, captured(snap), snap))["virtualOutbound"]
    assert tcp_cluster(lis.default_filter_chain) == cluster


def test_outbound_service_listeners() -> None:
    snap = mesh()
    listeners = by_name(generated_type(LISTENER_TYPE, captured(snap), snap))
    [reviews_vip] = snap.vips[REVIEWS]
    assert sorted(listeners) == sorted(
        ["virtualOutbound", "virtualInbound", "0.0.0.0_8080", "0.0.0.0_9080", f"{reviews_vip}_3306", "0.0.0.0_5432"]
    )
    http = listeners["0.0.0.0_9080"]
    assert http.bind_to_port.value is False
    assert (http.address.socket_address.address, http.address.socket_address.port_value) == ("0.0.0.0", 9080)
    [chain] = http.filter_chains
    hcm = unpack(HttpConnectionManager(), chain.filters[0].typed_config)
    assert hcm.rds.route_config_name == "9080"
    mysql = listeners[f"{reviews_vip}_3306"]
    assert mysql.bind_to_port.value is False
    assert tcp_cluster(mysql.filter_chains[0]) == f"outbound|3306||{REVIEWS}"
    assert tcp_cluster(listeners["0.0.0.0_5432"].filter_chains[0]) == f"outbound|5432||{DB}"


def test_virtual_inbound_chains_per_port_and_passthrough() -> None:
    snap = mesh()
    lis = by_name(generated_type(LISTENER_TYPE, captured(snap), snap))["virtualInbound"]
    assert lis.address.socket_address.port_value == names.INBOUND_CAPTURE_PORT
    assert [f.name for f in lis.listener_filters] == [
        "envoy.filters.listener.original_dst",
        "envoy.filters.listener.tls_inspector",
    ]
    chains = [
        (c.name, c.filter_chain_match.destination_port.value, c.filter_chain_match.transport_protocol)
        for c in lis.filter_chains
    ]
    assert chains == [
        ("virtualInbound-blackhole", 15006, ""),
        ("inbound_0.0.0.0_3306_mtls", 3306, "tls"),
        ("inbound_0.0.0.0_3306_tls-passthrough", 3306, "tls"),  # the app's own TLS, from outside the mesh
        ("inbound_0.0.0.0_3306_plaintext", 3306, "raw_buffer"),
        ("inbound_0.0.0.0_9080_mtls", 9080, "tls"),
        ("inbound_0.0.0.0_9080_plaintext", 9080, "raw_buffer"),
        ("inbound_0.0.0.0_19080_mtls", 19080, "tls"),  # the app's own port, as Istio 1.10+ clients dial it
        ("inbound_0.0.0.0_19080_plaintext", 19080, "raw_buffer"),
        ("InboundPassthroughFilterChain_mtls", 0, "tls"),
        ("InboundPassthroughFilterChain_tls-passthrough", 0, "tls"),
        ("InboundPassthroughFilterChain_plaintext", 0, "raw_buffer"),
    ]
    alpns = {c.name: list(c.filter_chain_match.application_protocols) for c in lis.filter_chains}
    assert {name for name, alpn in alpns.items() if alpn == list(MESH_ALPNS)} == {
        name for name in alpns if name.endswith("_mtls")
    }
    assert not any(alpn for name, alpn in alpns.items() if not name.endswith("_mtls"))
    tls_passthrough = [c for c in lis.filter_chains if c.name.endswith("_tls-passthrough")]
    assert not any(c.HasField("transport_socket") for c in tls_passthrough)
    assert [tcp_cluster(c) for c in tls_passthrough] == ["inbound|3306||", names.INBOUND_PASSTHROUGH_CLUSTER]
    assert tcp_cluster(lis.filter_chains[1]) == "inbound|3306||"
    assert tcp_cluster(lis.filter_chains[-1]) == names.INBOUND_PASSTHROUGH_CLUSTER


def test_strict_applies_to_passthrough() -> None:
    strict = PeerAuthentication(meta=meta("PeerAuthentication", "default", "istio-system"), mode="STRICT")
    snap = mesh(strict)
    lis = by_name(generated_type(LISTENER_TYPE, captured(snap), snap))["virtualInbound"]
    passthrough = [c for c in lis.filter_chains if c.name.startswith("InboundPassthrough")]
    assert [c.name for c in passthrough] == ["InboundPassthroughFilterChain"]
    assert passthrough[0].transport_socket.name == "envoy.transport_sockets.tls"


def test_port_route_tables_domains_and_catch_all() -> None:
    snap = mesh()
    tables = by_name(generated_type(ROUTE_TYPE, captured(snap), snap))
    assert sorted(tables) == ["8080", "9080", "inbound|9080||"]
    table: RouteConfiguration = tables["9080"]
    assert [vh.name for vh in table.virtual_hosts] == [
        "allow_any",
        "ratings.default.svc.cluster.local:9080",
        f"{REVIEWS}:9080",
    ]
    [vip] = snap.vips[REVIEWS]
    reviews = table.virtual_hosts[2]
    assert list(reviews.domains) == [REVIEWS, "reviews", "reviews.default", "reviews.default.svc", vip]
    assert table.ignore_port_in_host_matching  # Host: reviews:9080 matches "reviews"
    allow_any = table.virtual_hosts[0]
    assert list(allow_any.domains) == ["*"]
    assert allow_any.routes[0].route.cluster == names.PASSTHROUGH_CLUSTER


def test_registry_only_blocks_unknown_hosts_with_502() -> None:
    snap = mesh(policy=OutboundTrafficPolicy.REGISTRY_ONLY)
    table = by_name(generated_type(ROUTE_TYPE, captured(snap), snap))["9080"]
    block_all = next(vh for vh in table.virtual_hosts if vh.name == "block_all")
    assert list(block_all.domains) == ["*"]
    assert block_all.routes[0].direct_response.status == 502


def test_passthrough_and_inbound_clusters() -> None:
    snap = mesh()
    clusters = by_name(generated_type(CLUSTER_TYPE, captured(snap), snap))
    passthrough: Cluster = clusters[names.PASSTHROUGH_CLUSTER]
    assert passthrough.type == Cluster.DiscoveryType.ORIGINAL_DST
    assert passthrough.lb_policy == Cluster.LbPolicy.CLUSTER_PROVIDED
    assert not passthrough.HasField("upstream_bind_config")
    inbound_passthrough = clusters[names.INBOUND_PASSTHROUGH_CLUSTER]
    assert inbound_passthrough.type == Cluster.DiscoveryType.ORIGINAL_DST
    assert inbound_passthrough.upstream_bind_config.source_address.address == "127.0.0.6"
    assert clusters[names.BLACKHOLE_CLUSTER].type == Cluster.DiscoveryType.STATIC
    db = clusters[f"outbound|5432||{DB}"]
    assert (db.type, db.lb_policy) == (Cluster.DiscoveryType.ORIGINAL_DST, Cluster.LbPolicy.CLUSTER_PROVIDED)
    inbound = clusters["inbound|9080||"]
    [endpoint] = inbound.load_assignment.endpoints[0].lb_endpoints
    address = endpoint.endpoint.address.socket_address
    assert (address.address, address.port_value) == (POD_IP, 19080)
    assert inbound.upstream_bind_config.source_address.address == "127.0.0.6"


@pytest.mark.parametrize("policy", list(OutboundTrafficPolicy), ids=[p.value.lower() for p in OutboundTrafficPolicy])
def test_sidecar_config_is_consistent_and_envoy_accepts_it(tmp_path: Path, policy: OutboundTrafficPolicy) -> None:
    snap = mesh(policy=policy)
    validate_generated(tmp_path, captured(snap), snap)
