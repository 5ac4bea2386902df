"""AUTO_PASSTHROUGH gateway servers (Istio's SNI-DNAT, ``pilot.generate.gateway_sni_dnat``): the gateway's own
``outbound_.<port>_.<subset>_.<host>`` clusters without TLS, their endpoints that take Istio mTLS only, and one
filter chain per cluster matching its name as SNI and Istio's mTLS ALPNs, asserted field by field and accepted by
real Envoy (``envoy --mode validate``)."""

from __future__ import annotations

from pathlib import Path

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy

from pilot.config.parse import parse_config_text
from pilot.generate.listener_tls import MESH_ALPNS
from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy
from tests.source_builders import by_name, generated_type, validate_generated

ROUTER = "router~10.0.0.90~istio-eastwestgateway.istio-system~istio-system.svc.cluster.local"
SIDECAR = "sidecar~10.0.0.10~productpage.default~default.svc.cluster.local"
REVIEWS = "reviews.default.svc.cluster.local"
REGISTRY = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 10.0.0.21, serviceAccount: bookinfo-reviews, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-plain, namespace: default}
spec:
  address: 10.0.0.29
  labels: {app: reviews, version: v1, security.istio.io/tlsMode: disabled}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}, connectionPool: {tcp: {maxConnections: 7}}}
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: other}
spec:
  hosts: [ratings.other.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.31}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [api.external.local]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
"""


def gateway(hosts: str = '"*.local"') -> str:
    """Istio's multicluster samples/multicluster/expose-services.yaml."""
    return f"""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: cross-network-gateway
  namespace: istio-system
spec:
  selector:
    istio: eastwestgateway
  servers:
    - port:
        number: 15443
        name: tls
        protocol: TLS
      tls:
        mode: AUTO_PASSTHROUGH
      hosts:
        - {hosts}
"""


def mesh(*documents: str) -> MeshSnapshot:
    parsed = parse_config_text("\n---\n".join((REGISTRY, *documents)), "mesh.yaml")
    assert not parsed.rejected, [str(e) for r in parsed.rejected for e in r.errors]
    return build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)


def router(snapshot: MeshSnapshot) -> Proxy:
    """An east-west gateway with Citadel's SDS (its own outbound clusters take ISTIO_MUTUAL)."""
    return resolve_proxy(parse_node_id(ROUTER, "", {"MESHPLANE_SDS": "true"}, {"istio": "eastwestgateway"}), snapshot)


SNI_CLUSTERS = [
    f"outbound_.9080_._.{REVIEWS}",
    f"outbound_.9080_.v1_.{REVIEWS}",
    "outbound_.9080_._.ratings.other.svc.cluster.local",
]


def sni_clusters(proxy: Proxy, snapshot: MeshSnapshot) -> dict[str, Cluster]:
    return {n: c for n, c in by_name(generated_type(CLUSTER_TYPE, proxy, snapshot)).items() if "_." in n}


def test_sni_dnat_clusters_carry_no_tls_and_keep_the_traffic_policy(tmp_path: Path) -> None:
    snapshot = mesh(gateway())
    proxy = router(snapshot)
    validate_generated(tmp_path, proxy, snapshot)
    clusters = sni_clusters(proxy, snapshot)
    assert sorted(clusters) == sorted(SNI_CLUSTERS)  # not the MESH_EXTERNAL api.external.local
    reviews = clusters[f"outbound_.9080_.v1_.{REVIEWS}"]
    assert reviews.type == Cluster.DiscoveryType.EDS
    assert reviews.eds_cluster_config.service_name == reviews.name
    assert not reviews.HasField("transport_socket") and not reviews.transport_socket_matches  # the client's TLS
    assert reviews.circuit_breakers.thresholds[0].max_connections.value == 7
    outbound = by_name(generated_type(CLUSTER_TYPE, proxy, snapshot))[f"outbound|9080|v1|{REVIEWS}"]
    assert outbound.HasField("transport_socket")  # the gateway's own outbound clusters keep ISTIO_MUTUAL


def test_sni_dnat_endpoints_are_those_that_take_istio_mtls() -> None:
    snapshot = mesh(gateway())
    assignments = {a.cluster_name: a for a in generated_type(ENDPOINT_TYPE, router(snapshot), snapshot)}
    for name in (f"outbound_.9080_._.{REVIEWS}", f"outbound_.9080_.v1_.{REVIEWS}"):
        [group] = assignments[name].endpoints
        addresses = [e.endpoint.address.socket_address.address for e in group.lb_endpoints]
        assert addresses == ["10.0.0.21"], name  # not 10.0.0.29 (tlsMode disabled)
    assert not assignments["outbound_.9080_._.ratings.other.svc.cluster.local"].endpoints  # no sidecar there
    outbound = assignments[f"outbound|9080||{REVIEWS}"]
    assert len(outbound.endpoints[0].lb_endpoints) == 2  # the mesh's own clusters are unchanged


def test_one_chain_per_cluster_by_sni_and_istio_alpn() -> None:
    snapshot = mesh(gateway())
    listener = by_name(generated_type(LISTENER_TYPE, router(snapshot), snapshot))["0.0.0.0_15443"]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    found: list[str] = []
    for chain in listener.filter_chains:
        [name] = chain.filter_chain_match.server_names
        assert list(chain.filter_chain_match.application_protocols) == list(MESH_ALPNS)
        assert not chain.HasField("transport_socket")
        [tcp] = chain.filters
        proxy_config = TcpProxy()
        assert tcp.typed_config.Unpack(proxy_config)
        assert (proxy_config.cluster, proxy_config.stat_prefix) == (name, name)
        found.append(name)
    assert sorted(found) == sorted(SNI_CLUSTERS)


def test_a_namespace_prefix_narrows_the_services() -> None:
    snapshot = mesh(gateway('"default/*.local"'))
    assert sorted(sni_clusters(router(snapshot), snapshot)) == sorted(SNI_CLUSTERS[:2])
    snapshot = mesh(gateway('"./*.local"'))  # the Gateway's namespace, istio-system: none of these services
    assert sni_clusters(router(snapshot), snapshot) == {}
    assert by_name(generated_type(LISTENER_TYPE, router(snapshot), snapshot)) == {}  # no chain: no listener


def test_sidecars_and_other_gateways_get_no_sni_dnat_clusters() -> None:
    snapshot = mesh(gateway())
    sidecar = resolve_proxy(parse_node_id(SIDECAR), snapshot)
    assert sni_clusters(sidecar, snapshot) == {}
    ingress = resolve_proxy(parse_node_id(ROUTER, "", {}, {"istio": "ingressgateway"}), snapshot)
    assert sni_clusters(ingress, snapshot) == {}
