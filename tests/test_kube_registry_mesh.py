"""The Kubernetes registry through the seam: with the ServiceEntry registry in one snapshot (Istio's precedence),
its VIPs, a pod's proxy resolved to its workload, and the Envoy config built from it."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster

from envoy_bootstrap.bootstrap import sidecar_node_id
from meshplane.identity import SDS_NODE_METADATA
from mixer.registry import WorkloadRegistry
from pilot.config.types import ConfigKey
from pilot.generate import clusters, endpoints, listeners
from pilot.kube import KINDS, KubernetesRegistry
from pilot.model import MeshSnapshot, build_snapshot, parse_node_id, resolve_proxy
from pilot.model.registry_service_entry import SERVICE_ENTRIES
from tests import kube_builders as kb
from tests.conftest import IstioDocs
from tests.xdstest import check_resources

REVIEWS = "reviews.bookinfo.svc.cluster.local"
V1 = "reviews-v1-7d8f9c6b5-abcde"
PLAIN = "reviews-plain-1"


def bookinfo() -> KubernetesRegistry:
    kube = KubernetesRegistry()
    objects: list[dict[str, Any]] = [
        kb.service(),
        kb.service("ratings", cluster_ip="None"),
        kb.endpoint_slice(endpoints=[kb.endpoint("10.244.0.12", V1), kb.endpoint("10.244.0.40", PLAIN)]),
        kb.pod(V1, "10.244.0.12"),
        kb.pod(PLAIN, "10.244.0.40", sidecar=False, service_account="plain"),
        kb.node(),
    ]
    for kind in KINDS:
        kube.replace(kind, [o for o in objects if o["kind"] == kind])
    return kube


def snapshot(istio: IstioDocs, kube: KubernetesRegistry) -> MeshSnapshot:
    squatter = istio.accepted(
        "ServiceEntry",
        f"""
        hosts: [{REVIEWS}]
        addresses: [192.0.2.1]
        ports: [{{number: 9080, name: http, protocol: HTTP}}]
        resolution: STATIC
        endpoints: [{{address: 192.0.2.99}}]
        """,
        name="squatter",
        namespace="bookinfo",
    )
    return build_snapshot({squatter.meta.key: squatter}, 1, registries=(SERVICE_ENTRIES, kube))


def test_kubernetes_service_wins_its_host_over_a_service_entry(istio: IstioDocs) -> None:
    kube = bookinfo()
    snap = snapshot(istio, kube)
    service = snap.services[REVIEWS]
    assert service.source == ConfigKey(kind="Service", namespace="bookinfo", name="reviews")
    assert [(s.service.source.kind, s.registry, s.shadowed_by) for s in snap.shadowed_services] == [
        ("ServiceEntry", "serviceentry", "kubernetes")
    ]
    assert snap.vips[REVIEWS] == ("10.96.120.15",)  # the ClusterIP, not the entry's address
    assert "ratings.bookinfo.svc.cluster.local" not in snap.vips  # headless: no VIP
    assert snap.registry_versions == {"serviceentry": "", "kubernetes": kube.version}


def test_pod_proxy_resolves_to_its_workload(istio: IstioDocs) -> None:
    snap = snapshot(istio, bookinfo())
    node = parse_node_id(f"sidecar~10.244.0.12~{V1}.bookinfo~bookinfo.svc.cluster.local")
    proxy = resolve_proxy(node, snap)
    assert proxy.workload is not None
    assert proxy.workload.meta.key == ConfigKey(kind="Pod", namespace="bookinfo", name=V1)
    assert [(i.service.host, i.port.number, i.target_port) for i in proxy.instances] == [(REVIEWS, 9080, 9080)]
    inbound = listeners.build_listeners(proxy, snap)
    check_resources(listeners=inbound)
    virtual_inbound = next(listener for listener in inbound if listener.name == "virtualInbound")
    assert 9080 in {chain.filter_chain_match.destination_port.value for chain in virtual_inbound.filter_chains}


@pytest.mark.parametrize(
    ("pod", "address", "namespace", "expected"),
    [
        (V1, "10.244.0.12", "bookinfo", V1),
        (V1, "fd00:10:244::12", "bookinfo", V1),  # a dual-stack pod's sidecar reporting its IPv6 address: by name
        ("reviews-v1-renamed", "10.244.0.12", "bookinfo", V1),  # not its name: by its address
        (PLAIN, "10.244.0.40", "bookinfo", None),  # no sidecar: not a workload
        (V1, "10.244.0.12", "default", None),  # names and addresses count in the proxy's namespace only
    ],
    ids=["pod-name-and-ip", "pod-name-other-ip", "pod-ip-only", "pod-without-sidecar", "other-namespace"],
)
def test_pod_proxy_found_by_istio_node_id(
    istio: IstioDocs, pod: str, address: str, namespace: str, expected: str | None
) -> None:
    """Istio's sidecar node id (``envoy_bootstrap.bootstrap.sidecar_node_id``) names the pod and its namespace."""
    snap = snapshot(istio, bookinfo())
    node_id = sidecar_node_id(workload=pod, namespace=namespace, address=address, domain_suffix="cluster.local")
    assert node_id == f"sidecar~{address}~{pod}.{namespace}~{namespace}.svc.cluster.local"
    proxy = resolve_proxy(parse_node_id(node_id), snap)
    found = proxy.workload.meta.key if proxy.workload is not None else None
    assert found == (ConfigKey(kind="Pod", namespace="bookinfo", name=expected) if expected else None)
    assert bool(proxy.instances) == bool(expected)


def test_eds_marks_the_sidecar_endpoint_for_mutual_tls(istio: IstioDocs) -> None:
    snap = snapshot(istio, bookinfo())
    node = parse_node_id(
        "sidecar~10.244.0.50~productpage-1.bookinfo~bookinfo.svc.cluster.local", metadata={SDS_NODE_METADATA: "true"}
    )
    proxy = resolve_proxy(node, snap)
    (scope,) = endpoints.endpoint_scopes(proxy)
    assignments = {a.cluster_name: a for a in endpoints.build_scope_load_assignments(scope, snap)}
    (cluster_scope,) = clusters.cluster_scopes(proxy)
    built = {c.name: c for c in clusters.build_scope_clusters(cluster_scope, snap)}
    check_resources(clusters=list(built.values()), load_assignments=list(assignments.values()))
    assignment = assignments[f"outbound|9080||{REVIEWS}"]
    (group,) = assignment.endpoints
    assert (group.locality.region, group.locality.zone) == ("eu-west-1", "eu-west-1a")
    got = [
        (
            e.endpoint.address.socket_address.address,
            e.endpoint.address.socket_address.port_value,
            dict(e.metadata.filter_metadata["envoy.transport_socket_match"]),
        )
        for e in group.lb_endpoints
    ]
    assert got == [("10.244.0.12", 9080, {"tlsMode": "istio"}), ("10.244.0.40", 9080, {})]
    cluster = built[f"outbound|9080||{REVIEWS}"]
    assert cluster.type == Cluster.DiscoveryType.EDS
    assert [m.name for m in cluster.transport_socket_matches] == ["tlsMode-istio", "tlsMode-disabled"]
    headless = built["outbound|9080||ratings.bookinfo.svc.cluster.local"]
    assert headless.type == Cluster.DiscoveryType.ORIGINAL_DST


def test_mixer_names_a_pod_by_its_deployment_and_finds_its_sidecar_by_pod_name(istio: IstioDocs) -> None:
    """Istio's metrics label a pod with its workload (the Deployment's name); a sidecar's node id names the pod."""
    registry = WorkloadRegistry(snapshot(istio, bookinfo()))
    by_address = registry.workload_at("10.244.0.12")
    assert by_address is not None
    assert (by_address.name, by_address.namespace, by_address.labels["version"]) == ("reviews-v1", "bookinfo", "v1")
    assert registry.workload_named("bookinfo", V1) is by_address
    assert registry.workload_named("bookinfo", "reviews-v1") is None
