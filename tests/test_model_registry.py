"""The service-registry seam: aggregation of registries as Istio does it, and an in-memory source plus an
in-memory registry driven end to end into the Envoy resources Pilot's generators build."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration

from meshplane.names import outbound_cluster_name
from pilot.analyze import analyze_snapshot
from pilot.config import Origin
from pilot.config.types import ConfigKey, Protocol, ServicePort
from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from pilot.model import (
    KUBERNETES_PROVIDER,
    SERVICE_ENTRIES,
    SERVICE_ENTRY_PROVIDER,
    build_snapshot,
    parse_node_id,
    resolve_proxy,
)
from tests.source_builders import config_object, generated, memory_and_files, registry
from tests.xdstest import check_resources

RATINGS = "ratings.default.svc.cluster.local"
REVIEWS = "reviews.default.svc.cluster.local"
HTTP = ServicePort(number=9080, name="http", protocol=Protocol.HTTP)


SERVICE_ENTRY_RATINGS = config_object(
    "ServiceEntry",
    "ratings",
    {
        "hosts": [RATINGS],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
        "endpoints": [{"address": "127.0.0.50"}],
    },
)


@pytest.mark.parametrize(
    ("first", "second", "winner", "shadowed"),
    [
        (SERVICE_ENTRY_PROVIDER, SERVICE_ENTRY_PROVIDER, "a", "b"),
        (KUBERNETES_PROVIDER, KUBERNETES_PROVIDER, "a", "b"),
        (KUBERNETES_PROVIDER, SERVICE_ENTRY_PROVIDER, "a", "b"),
        (SERVICE_ENTRY_PROVIDER, KUBERNETES_PROVIDER, "b", "a"),
    ],
    ids=["first-wins", "first-kubernetes-wins", "kubernetes-before-entry", "kubernetes-wins-over-earlier-entry"],
)
def test_a_host_in_two_registries_goes_to_one_as_istio_decides(
    first: str, second: str, winner: str, shadowed: str
) -> None:
    addresses = {"a": "127.0.0.61", "b": "127.0.0.62"}
    registries = (registry("a", first, RATINGS, addresses["a"]), registry("b", second, RATINGS, addresses["b"]))
    snapshot = build_snapshot({}, 1, registries=registries)
    (service,) = snapshot.services.values()
    assert [e.address for e in service.endpoints[9080]] == [addresses[winner]]
    (lost,) = snapshot.shadowed_services
    assert (lost.registry, lost.shadowed_by, lost.service.host) == (shadowed, winner, RATINGS)
    # both workloads stay (a proxy still resolves), but only the winner's serves the host
    assert sorted(w.address for w in snapshot.workloads.values()) == sorted(addresses.values())
    assert [(k.name, [i.service.host for i in v]) for k, v in snapshot.instances.items()] == [
        (f"{winner}-ratings", [RATINGS])
    ]


def test_a_kubernetes_service_takes_a_service_entry_host_and_analyze_says_so() -> None:
    seam = memory_and_files()
    seam.memory.put(SERVICE_ENTRY_RATINGS)
    kube = registry("kubernetes", KUBERNETES_PROVIDER, RATINGS, "127.0.0.61")
    snapshot = build_snapshot(seam.store.accepted, 1, registries=(SERVICE_ENTRIES, kube))
    assert snapshot.services[RATINGS].source == ConfigKey(kind="Service", namespace="default", name="ratings")
    (finding,) = [f for f in analyze_snapshot(snapshot) if f.code == "MP0212"]
    assert (finding.level, finding.resource, finding.location) == (
        "Warning",
        "ServiceEntry default/ratings",
        "ServiceEntry/default/ratings",
    )
    assert finding.message == (
        f"host {RATINGS} of registry serviceentry is also served by registry kubernetes, whose service takes "
        "precedence: this one is not used"
    )


@pytest.mark.parametrize(
    ("address", "version", "endpoints_version", "changed"),
    [
        ("127.0.0.61", "1", "1", frozenset()),
        ("127.0.0.62", "2", "1", {"ServiceEntry", "WorkloadEntry", "Endpoints"}),
        ("127.0.0.62", "1", "2", {"Endpoints"}),
        ("127.0.0.62", "2", "2", {"ServiceEntry", "WorkloadEntry", "Endpoints"}),
    ],
    ids=["same-versions", "version", "endpoints-version-alone", "both"],
)
def test_registry_versions_are_change_kinds(
    address: str, version: str, endpoints_version: str, changed: frozenset[str]
) -> None:
    """A registry's version change is a service change (every type rebuilt), its endpoints version alone an
    ``Endpoints`` change (EDS alone)."""
    first = build_snapshot({}, 1, registries=(registry("k", KUBERNETES_PROVIDER, RATINGS, "127.0.0.61", "1", "1"),))
    after = registry("k", KUBERNETES_PROVIDER, RATINGS, address, version, endpoints_version)
    second = build_snapshot({}, 2, first, registries=(after,))
    assert (first.registry_versions, first.registry_endpoints_versions) == ({"k": "1"}, {"k": "1"})
    assert second.changed_kinds == changed


def test_registries_need_distinct_names() -> None:
    twice = (registry("k", KUBERNETES_PROVIDER, RATINGS, "127.0.0.61"),) * 2
    with pytest.raises(ValueError, match="distinct names"):
        build_snapshot({}, 1, registries=twice)


def test_memory_source_and_memory_registry_end_to_end_into_envoy_resources() -> None:
    """In-memory config -> aggregate store -> snapshot with an in-memory registry -> the generators' resources."""
    seam = memory_and_files()
    reviews_entry = {
        "hosts": [REVIEWS],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
        "workloadSelector": {"labels": {"app": "reviews"}},
    }
    seam.memory.put(config_object("ServiceEntry", "reviews", reviews_entry, resource_version="1"))
    for name, version in (("reviews-v1", "v1"), ("reviews-v2", "v2")):
        address = "127.0.0.21" if version == "v1" else "127.0.0.22"
        labels = {"app": "reviews", "version": version}
        workload = {"address": address, "labels": labels, "ports": {"http": 19080}}
        seam.memory.put(config_object("WorkloadEntry", name, workload))
    subsets = [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]
    seam.memory.put(config_object("DestinationRule", "reviews", {"host": "reviews", "subsets": subsets}))
    split = [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10},
    ]
    seam.memory.put(config_object("VirtualService", "reviews", {"hosts": ["reviews"], "http": [{"route": split}]}))
    assert seam.store.rejections == () and len(seam.store.accepted) == 5
    kube = registry("kubernetes", KUBERNETES_PROVIDER, RATINGS, "127.0.0.61")
    snapshot = build_snapshot(seam.store.accepted, seam.store.version, registries=(SERVICE_ENTRIES, kube))
    proxy = resolve_proxy(parse_node_id("sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local"), snapshot)
    assert proxy.workload is not None and proxy.workload.meta.origin == Origin(
        reference="WorkloadEntry/default/reviews-v1"
    )
    resources = generated(proxy, snapshot)
    clusters = [c for c in resources[CLUSTER_TYPE] if isinstance(c, Cluster)]
    assignments = [a for a in resources[ENDPOINT_TYPE] if isinstance(a, ClusterLoadAssignment)]
    listeners = [x for x in resources[LISTENER_TYPE] if isinstance(x, Listener)]
    routes = [r for r in resources[ROUTE_TYPE] if isinstance(r, RouteConfiguration)]
    check_resources(clusters, assignments, listeners, routes)

    names = {c.name for c in clusters}
    v1, v2 = outbound_cluster_name(9080, "v1", REVIEWS), outbound_cluster_name(9080, "v2", REVIEWS)
    ratings = outbound_cluster_name(9080, "", RATINGS)
    assert {v1, v2, ratings, outbound_cluster_name(9080, "", REVIEWS)} <= names
    (ratings_cluster,) = [c for c in clusters if c.name == ratings]
    assert ratings_cluster.type == Cluster.DiscoveryType.EDS
    (ratings_assignment,) = [a for a in assignments if a.cluster_name == ratings]
    (locality,) = ratings_assignment.endpoints
    (endpoint,) = locality.lb_endpoints
    address = endpoint.endpoint.address.socket_address
    assert (address.address, address.port_value) == ("127.0.0.61", 9080)
    (v1_assignment,) = [a for a in assignments if a.cluster_name == v1]
    assert [e.endpoint.address.socket_address.address for e in v1_assignment.endpoints[0].lb_endpoints] == [
        "127.0.0.21"
    ]
    # the inbound side of reviews-v1 serves its ServiceEntry port, from the memory source's WorkloadEntry
    (inbound,) = [x for x in listeners if x.name == "virtualInbound"]
    served = [c.filter_chain_match.destination_port.value for c in inbound.filter_chains if c.name[:7] == "inbound"]
    assert served == [9080, 19080]  # the service port, and the app's own (Istio 1.10+ clients dial it)
    (table,) = [r for r in routes if r.name == "9080"]
    (host,) = [v for v in table.virtual_hosts if v.name == f"{REVIEWS}:9080"]
    (route,) = host.routes
    weighted = [(w.name, w.weight.value) for w in route.route.weighted_clusters.clusters]
    assert weighted == [(v1, 90), (v2, 10)]
    (ratings_host,) = [v for v in table.virtual_hosts if v.name == f"{RATINGS}:9080"]
    assert ratings_host.routes[0].route.cluster == ratings

    # a change in the memory source reaches the next snapshot's resources
    seam.memory.put(config_object("VirtualService", "reviews", {"hosts": ["reviews"], "http": [{"route": split[:1]}]}))
    after = build_snapshot(seam.store.accepted, seam.store.version, snapshot, registries=(SERVICE_ENTRIES, kube))
    assert after.changed_kinds == {"VirtualService"}
    routes = [r for r in generated(proxy, after)[ROUTE_TYPE] if isinstance(r, RouteConfiguration)]
    (host,) = [v for r in routes for v in r.virtual_hosts if v.name == f"{REVIEWS}:9080"]
    assert host.routes[0].route.cluster == v1
