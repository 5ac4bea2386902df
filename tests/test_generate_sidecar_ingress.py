"""A Sidecar's ``ingress`` listeners and inbound connection pools (Istio's ``buildSidecarInboundListeners`` with a
SidecarScope that has ingress, ``buildInboundClustersFromSidecar``, ``InboundConnectionPoolForPort``): the inbound
chains, clusters and route tables are those of the ingress ports, each cluster sending to its ``defaultEndpoint``;
a service port not listed goes through the passthrough chains; the Sidecar's connection pools replace the
DestinationRule's on the inbound clusters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import DownstreamTlsContext

from meshplane import names
from pilot.analyze import analyze_snapshot
from pilot.config.parse import parse_config_text
from pilot.generate import clusters, listeners, routes
from pilot.generate.registry import GENERATORS, ROUTE_TYPE
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy
from pilot.xds.cache import ResourceCache
from tests.mtls_builders import write_test_pki
from tests.source_builders import by_name, validate_generated

SUFFIX = "svc.cluster.local"
POD_IP = "127.0.0.30"
WEB = {
    "kind": "ServiceEntry",
    "metadata": {"name": "web", "namespace": "a"},
    "spec": {
        "hosts": [f"web.a.{SUFFIX}"],
        "ports": [
            {"number": 9080, "name": "http", "protocol": "HTTP"},
            {"number": 7000, "name": "t", "protocol": "TCP"},
        ],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "workloadSelector": {"labels": {"app": "web"}},
    },
}
WORKLOAD = {
    "kind": "WorkloadEntry",
    "metadata": {"name": "web", "namespace": "a"},
    "spec": {"address": POD_IP, "labels": {"app": "web"}, "ports": {"http": 19080}},
}
DR_POOL = {
    "kind": "DestinationRule",
    "metadata": {"name": "web", "namespace": "a"},
    "spec": {"host": "web", "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 10}}}},
}


def _sidecar(spec: Mapping[str, Any]) -> dict[str, Any]:
    meta = {"name": "web", "namespace": "a"}
    return {"kind": "Sidecar", "metadata": meta, "spec": {"workloadSelector": {"labels": {"app": "web"}}, **spec}}


def _world(*documents: Mapping[str, Any]) -> tuple[Proxy, MeshSnapshot]:
    text = "\n---\n".join(
        json.dumps({"apiVersion": "networking.istio.io/v1", **d}) for d in (WEB, WORKLOAD, *documents)
    )
    parsed = parse_config_text(text, "mesh.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    snapshot = build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)
    node = parse_node_id(f"sidecar~{POD_IP}~web.a~a.{SUFFIX}", "", {"MESHPLANE_SDS": "true"})
    return resolve_proxy(node, snapshot), snapshot


def _inbound_clusters(proxy: Proxy, snapshot: MeshSnapshot) -> dict[str, Cluster]:
    return by_name(clusters.build_inbound_clusters(proxy, snapshot))


def _virtual_inbound(proxy: Proxy, snapshot: MeshSnapshot) -> Listener:
    [listener] = [x for x in listeners.build_listeners(proxy, snapshot) if x.name == listeners.VIRTUAL_INBOUND]
    return listener


def _chain_ports(listener: Listener) -> set[int]:
    return {c.filter_chain_match.destination_port.value for c in listener.filter_chains} - {0}


def _endpoint(cluster: Cluster) -> tuple[str, int]:
    [locality] = cluster.load_assignment.endpoints
    [lb_endpoint] = locality.lb_endpoints
    address = lb_endpoint.endpoint.address.socket_address
    return address.address, address.port_value


def test_without_ingress_the_inbound_ports_are_the_service_ports() -> None:
    proxy, snapshot = _world()
    found = _inbound_clusters(proxy, snapshot)
    assert sorted(found) == ["inbound|7000||", "inbound|9080||"]
    assert _endpoint(found["inbound|9080||"]) == (POD_IP, 19080)
    assert found["inbound|9080||"].upstream_bind_config.source_address.address == "127.0.0.6"
    assert {9080, 19080, 7000} <= _chain_ports(_virtual_inbound(proxy, snapshot))


def test_an_ingress_port_to_loopback_replaces_the_service_ports() -> None:
    ingress = [{"port": {"number": 9080, "protocol": "HTTP", "name": "http"}, "defaultEndpoint": "127.0.0.1:9090"}]
    proxy, snapshot = _world(_sidecar({"ingress": ingress}))
    found = _inbound_clusters(proxy, snapshot)
    assert sorted(found) == ["inbound|9080||"]  # 7000 is not listed: passthrough, no cluster
    cluster = found["inbound|9080||"]
    assert cluster.type == Cluster.DiscoveryType.STATIC
    assert _endpoint(cluster) == ("127.0.0.1", 9090)
    assert not cluster.HasField("upstream_bind_config")  # loopback: the capture never redirects it
    inbound = _virtual_inbound(proxy, snapshot)
    assert _chain_ports(inbound) == {9080, names.INBOUND_CAPTURE_PORT}  # no 19080, no 7000 chain
    chains = [c for c in inbound.filter_chains if c.filter_chain_match.destination_port.value == 9080]
    assert len(chains) == 2  # PERMISSIVE: mTLS and plaintext
    assert {c.filters[-1].name for c in chains} == {"envoy.filters.network.http_connection_manager"}
    [table] = routes.build_inbound_routes(proxy, snapshot)
    assert table.name == names.inbound_route_name(9080)
    assert table.virtual_hosts[0].routes[0].route.cluster == "inbound|9080||"
    # web's 9080 is the app's 19080: no service instance has target port 9080, so Istio's stand-in service
    assert table.virtual_hosts[0].routes[0].decorator.operation == "web.a:9080/*"


@pytest.mark.parametrize(
    ("endpoint", "address", "bound"),
    [("0.0.0.0:9091", (POD_IP, 9091), True), ("127.0.0.1:9091", ("127.0.0.1", 9091), False)],
    ids=["pod-ip", "loopback"],
)
def test_default_endpoint_hosts(endpoint: str, address: tuple[str, int], bound: bool) -> None:
    ingress = [{"port": {"number": 8000, "protocol": "TCP"}, "defaultEndpoint": endpoint}]
    proxy, snapshot = _world(_sidecar({"ingress": ingress}))
    cluster = _inbound_clusters(proxy, snapshot)["inbound|8000||"]
    assert _endpoint(cluster) == address
    assert cluster.HasField("upstream_bind_config") is bound


def test_without_default_endpoint_the_cluster_is_the_original_destination() -> None:
    proxy, snapshot = _world(_sidecar({"ingress": [{"port": {"number": 8000, "protocol": "TCP"}}]}))
    cluster = _inbound_clusters(proxy, snapshot)["inbound|8000||"]
    assert cluster.type == Cluster.DiscoveryType.ORIGINAL_DST
    assert cluster.lb_policy == Cluster.LbPolicy.CLUSTER_PROVIDED
    assert cluster.upstream_bind_config.source_address.address == "127.0.0.6"
    chains = [
        c
        for c in _virtual_inbound(proxy, snapshot).filter_chains
        if c.filter_chain_match.destination_port.value == 8000
    ]
    assert chains and {c.filters[-1].name for c in chains} == {"envoy.filters.network.tcp_proxy"}


@pytest.mark.parametrize("socket", ["/var/run/app.sock", "@app"], ids=["path", "abstract"])
def test_a_unix_socket_default_endpoint(socket: str) -> None:
    ingress = [{"port": {"number": 9080, "protocol": "HTTP"}, "defaultEndpoint": f"unix://{socket}"}]
    proxy, snapshot = _world(_sidecar({"ingress": ingress}))
    cluster = _inbound_clusters(proxy, snapshot)["inbound|9080||"]
    [locality] = cluster.load_assignment.endpoints
    assert locality.lb_endpoints[0].endpoint.address.pipe.path == socket
    assert not cluster.HasField("upstream_bind_config")


def _max_connections(cluster: Cluster) -> int:
    [threshold] = cluster.circuit_breakers.thresholds
    value: int = threshold.max_connections.value
    return value


def test_connection_pools_sidecar_port_then_inbound_then_destination_rule() -> None:
    proxy, snapshot = _world(DR_POOL)
    assert _max_connections(_inbound_clusters(proxy, snapshot)["inbound|9080||"]) == 10  # the DR's, as before
    pool = {"tcp": {"maxConnections": 5}}
    proxy, snapshot = _world(DR_POOL, _sidecar({"inboundConnectionPool": pool}))
    found = _inbound_clusters(proxy, snapshot)
    assert [_max_connections(found[n]) for n in ("inbound|7000||", "inbound|9080||")] == [5, 5]  # over the DR's
    ingress = [
        {"port": {"number": 9080, "protocol": "HTTP"}, "connectionPool": {"tcp": {"maxConnections": 7}}},
        {"port": {"number": 7000, "protocol": "TCP"}},
    ]
    proxy, snapshot = _world(DR_POOL, _sidecar({"inboundConnectionPool": pool, "ingress": ingress}))
    found = _inbound_clusters(proxy, snapshot)
    assert _max_connections(found["inbound|9080||"]) == 7  # the port's own
    assert _max_connections(found["inbound|7000||"]) == 5  # the Sidecar's inboundConnectionPool


def test_http_pool_settings_reach_the_inbound_cluster() -> None:
    pool = {"http": {"http1MaxPendingRequests": 3, "maxRequestsPerConnection": 2}}
    ingress = [{"port": {"number": 9080, "protocol": "HTTP"}, "connectionPool": pool, "defaultEndpoint": "127.0.0.1:1"}]
    proxy, snapshot = _world(_sidecar({"ingress": ingress}))
    cluster = _inbound_clusters(proxy, snapshot)["inbound|9080||"]
    [threshold] = cluster.circuit_breakers.thresholds
    assert threshold.max_pending_requests.value == 3


def test_the_service_of_an_ingress_port_is_the_instance_with_that_target_port() -> None:
    ingress = [
        {"port": {"number": 19080, "protocol": "HTTP"}, "defaultEndpoint": "127.0.0.1:8081"},
        {"port": {"number": 8080, "protocol": "HTTP"}, "defaultEndpoint": "127.0.0.1:8082"},
    ]
    proxy, snapshot = _world(DR_POOL, _sidecar({"ingress": ingress}))
    found = _inbound_clusters(proxy, snapshot)
    assert _max_connections(found["inbound|19080||"]) == 10  # web's (the app's port): its DestinationRule's pool
    assert _max_connections(found["inbound|8080||"]) != 10  # the stand-in service has no rule: Istio's defaults
    tables = by_name(routes.build_inbound_routes(proxy, snapshot))
    operations = {n: t.virtual_hosts[0].routes[0].decorator.operation for n, t in tables.items()}
    assert operations == {
        names.inbound_route_name(8080): "web.a:8080/*",  # Istio's <sidecar>.<namespace>
        names.inbound_route_name(19080): f"web.a.{SUFFIX}:19080/*",
    }


@pytest.mark.parametrize(
    "ingress",
    [
        [{"port": {"number": 9080, "protocol": "HTTP"}, "defaultEndpoint": "127.0.0.1:9090"}],
        [{"port": {"number": 8000, "protocol": "TCP"}}, {"port": {"number": 9443, "protocol": "TLS"}}],
        [{"port": {"number": 9080, "protocol": "GRPC"}, "defaultEndpoint": "unix:///var/run/app.sock"}],
    ],
    ids=["http-loopback", "tcp-tls-original-destination", "grpc-unix"],
)
def test_envoy_accepts_what_ingress_generates(tmp_path: Path, ingress: list[dict[str, Any]]) -> None:
    pool = {"tcp": {"maxConnections": 5}, "http": {"http1MaxPendingRequests": 3}}
    proxy, snapshot = _world(_sidecar({"ingress": ingress, "inboundConnectionPool": pool}))
    validate_generated(tmp_path, proxy, snapshot)


def test_capture_mode_default_and_iptables_are_how_pods_capture() -> None:
    def generated(capture: Mapping[str, str]) -> list[bytes]:
        ingress = [{"port": {"number": 9080, "protocol": "HTTP"}, **capture}]
        proxy, snapshot = _world(_sidecar({"ingress": ingress}))
        built = [*clusters.build_inbound_clusters(proxy, snapshot), _virtual_inbound(proxy, snapshot)]
        return [m.SerializeToString(deterministic=True) for m in built]

    without = generated({})
    assert generated({"captureMode": "DEFAULT"}) == without
    assert generated({"captureMode": "IPTABLES"}) == without


def _peer_authentication(mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "web", "namespace": "a"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": mode}},
    }


def _tls_ingress(pki: Mapping[str, Path], mode: str = "SIMPLE", protocol: str = "HTTPS") -> dict[str, Any]:
    tls: dict[str, Any] = {"mode": mode, "serverCertificate": str(pki["cert"]), "privateKey": str(pki["key"])}
    if mode == "MUTUAL":
        tls["caCertificates"] = str(pki["root"])
    listener = {"port": {"number": 9443, "protocol": protocol}, "defaultEndpoint": "127.0.0.1:8443", "tls": tls}
    return _sidecar({"ingress": [listener]})


def _port_chains(proxy: Proxy, snapshot: MeshSnapshot, port: int) -> list[Any]:
    inbound = _virtual_inbound(proxy, snapshot)
    return [c for c in inbound.filter_chains if c.filter_chain_match.destination_port.value == port]


@pytest.mark.parametrize(
    ("mode", "protocol", "network"),
    [
        ("SIMPLE", "HTTPS", "envoy.filters.network.http_connection_manager"),
        ("MUTUAL", "TLS", "envoy.filters.network.tcp_proxy"),
    ],
    ids=["simple-https-is-http-inside", "mutual-tls-is-tcp-inside"],
)
def test_ingress_tls_is_terminated_where_peer_authentication_disables_mtls(
    tmp_path: Path, mode: str, protocol: str, network: str
) -> None:
    pki = write_test_pki(tmp_path)
    proxy, snapshot = _world(_peer_authentication("DISABLE"), _tls_ingress(pki, mode, protocol))
    [chain] = _port_chains(proxy, snapshot, 9443)
    assert chain.filter_chain_match.transport_protocol == "tls"  # plaintext on 9443 matches no chain: closed
    assert chain.filters[-1].name == network
    context = DownstreamTlsContext()
    chain.transport_socket.typed_config.Unpack(context)
    [certificate] = context.common_tls_context.tls_certificates
    assert certificate.certificate_chain.filename == str(pki["cert"])
    assert certificate.private_key.filename == str(pki["key"])
    assert not context.common_tls_context.tls_certificate_sds_secret_configs  # not the mesh certificate
    if mode == "MUTUAL":
        assert context.require_client_certificate.value
        assert context.common_tls_context.validation_context.trusted_ca.filename == str(pki["root"])
    tables = routes.build_inbound_routes(proxy, snapshot)
    assert [t.name for t in tables] == ([names.inbound_route_name(9443)] if protocol == "HTTPS" else [])
    assert tables == routes.build_inbound_routes(*_world(_tls_ingress(pki, mode, protocol)))  # whatever the mode
    validate_generated(tmp_path, proxy, snapshot)


@pytest.mark.parametrize("mode", ["PERMISSIVE", "STRICT"])
def test_ingress_tls_gives_way_to_mesh_mtls_as_in_istio(tmp_path: Path, mode: str) -> None:
    pki = write_test_pki(tmp_path)
    proxy, snapshot = _world(_peer_authentication(mode), _tls_ingress(pki))
    chains = _port_chains(proxy, snapshot, 9443)
    terminating = [c for c in chains if c.HasField("transport_socket")]
    assert len(terminating) == 1
    context = DownstreamTlsContext()
    terminating[0].transport_socket.typed_config.Unpack(context)
    assert not context.common_tls_context.tls_certificates  # the workload's SDS certificate, not the files
    assert context.common_tls_context.tls_certificate_sds_secret_configs[0].name == "default"
    assert {c.filters[-1].name for c in chains} == {"envoy.filters.network.tcp_proxy"}  # HTTPS not terminated


def test_an_https_ingress_ports_route_table_does_not_depend_on_peer_authentication(tmp_path: Path) -> None:
    # RDS is not regenerated on a PeerAuthentication change: the HTTPS port's table is there under any mode
    assert "PeerAuthentication" not in GENERATORS[ROUTE_TYPE].affected_by
    pki = write_test_pki(tmp_path)
    documents = (WEB, WORKLOAD, _tls_ingress(pki))
    disabled = _snapshot_of(*documents, _peer_authentication("DISABLE"))
    permissive = _snapshot_of(*documents, _peer_authentication("PERMISSIVE"), previous=disabled)
    cache = ResourceCache(permissive, GENERATORS, previous=ResourceCache(disabled, GENERATORS))
    assert ROUTE_TYPE in cache.reused_types
    node = parse_node_id(f"sidecar~{POD_IP}~web.a~a.{SUFFIX}", "", {"MESHPLANE_SDS": "true"})
    tables = [[t.name for t in routes.build_inbound_routes(resolve_proxy(node, s), s)] for s in (disabled, permissive)]
    assert tables == [[names.inbound_route_name(9443)]] * 2


def _snapshot_of(*documents: Mapping[str, Any], previous: MeshSnapshot | None = None) -> MeshSnapshot:
    text = "\n---\n".join(json.dumps({"apiVersion": "networking.istio.io/v1", **d}) for d in documents)
    parsed = parse_config_text(text, "mesh.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    version = previous.version + 1 if previous is not None else 1
    return build_snapshot({r.meta.key: r for r in parsed.resources}, version=version, previous=previous)


@pytest.mark.parametrize(("mode", "reported"), [("DISABLE", False), ("PERMISSIVE", True), ("STRICT", True)])
def test_analyze_warns_of_ingress_tls_that_mtls_overrides(tmp_path: Path, mode: str, reported: bool) -> None:
    pki = write_test_pki(tmp_path)
    _, snapshot = _world(_peer_authentication(mode), _tls_ingress(pki))
    found = [f for f in analyze_snapshot(snapshot) if f.code == "MP0215"]
    assert bool(found) is reported
    if reported:
        assert found[0].level == "Warning" and f"mTLS mode there is {mode}" in found[0].message
        assert found[0].resource == "Sidecar a/web"
