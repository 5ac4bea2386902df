"""EDS: one ClusterLoadAssignment per EDS cluster, subset endpoints filtered by labels, weights and localities."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import pytest
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from pilot.config.types import (
    ConfigMeta,
    DestinationRule,
    Protocol,
    Resolution,
    Resource,
    ServiceEntry,
    ServiceEntryEndpoint,
    ServicePort,
    Subset,
    WorkloadEntry,
)
from pilot.generate import clusters, endpoints
from pilot.model import MeshSnapshot, Proxy
from tests.xdstest import check_resources, envoy_validate

RATINGS = "ratings.default.svc.cluster.local"
MakeMeta = Callable[..., ConfigMeta]


def labels(**values: str) -> MappingProxyType[str, str]:
    return MappingProxyType(values)


def mesh(make_meta: MakeMeta) -> tuple[Resource, ...]:
    """ratings: three sidecar workloads (v1, v1 canary weighted 3 in another zone, v2) and one inline endpoint;
    subsets v1, v2 and v3 (nothing carries v3). An external DNS service has no EDS cluster."""
    return (
        ServiceEntry(
            meta=make_meta("ServiceEntry", "ratings"),
            hosts=(RATINGS,),
            ports=(ServicePort(number=9080, name="http", protocol=Protocol.HTTP),),
            location="MESH_INTERNAL",
            resolution=Resolution.STATIC,
            workload_selector=labels(app="ratings"),
            endpoints=(ServiceEntryEndpoint(address="10.0.0.9", ports=MappingProxyType({"http": 8080})),),
        ),
        WorkloadEntry(
            meta=make_meta("WorkloadEntry", "ratings-v2"),
            address="127.0.0.33",
            labels=labels(app="ratings", version="v2"),
        ),
        WorkloadEntry(
            meta=make_meta("WorkloadEntry", "ratings-v1"),
            address="127.0.0.31",
            labels=labels(app="ratings", version="v1"),
        ),
        WorkloadEntry(
            meta=make_meta("WorkloadEntry", "ratings-v1-canary"),
            address="127.0.0.32",
            labels=labels(app="ratings", version="v1", track="canary"),
            weight=3,
            locality="us-east/zone-b/rack-1",
        ),
        DestinationRule(
            meta=make_meta("DestinationRule", "ratings"),
            host="ratings",
            subsets=(
                Subset(name="v1", labels=labels(version="v1")),
                Subset(name="v2", labels=labels(version="v2")),
                Subset(name="v3", labels=labels(version="v3")),
            ),
        ),
        ServiceEntry(
            meta=make_meta("ServiceEntry", "httpbin"),
            hosts=("httpbin.org",),
            ports=(ServicePort(number=80, name="http", protocol=Protocol.HTTP),),
            resolution=Resolution.DNS,
        ),
    )


@pytest.fixture
def snapshot(make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]) -> MeshSnapshot:
    return mesh_snapshot(*mesh(make_meta))


@pytest.fixture
def assignments(snapshot: MeshSnapshot) -> dict[str, ClusterLoadAssignment]:
    return {a.cluster_name: a for a in endpoints.build_scope_load_assignments(("eds", "default"), snapshot)}


def addresses(assignment: ClusterLoadAssignment) -> list[str]:
    return [
        f"{e.endpoint.address.socket_address.address}:{e.endpoint.address.socket_address.port_value}"
        for group in assignment.endpoints
        for e in group.lb_endpoints
    ]


def test_every_eds_cluster_has_its_assignment(
    snapshot: MeshSnapshot, assignments: dict[str, ClusterLoadAssignment]
) -> None:
    built = clusters.build_scope_clusters(("outbound", "default"), snapshot)
    assert list(assignments) == [
        f"outbound|9080||{RATINGS}",
        f"outbound|9080|v1|{RATINGS}",
        f"outbound|9080|v2|{RATINGS}",
        f"outbound|9080|v3|{RATINGS}",
    ]
    check_resources(clusters=built, load_assignments=list(assignments.values()))


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (f"outbound|9080||{RATINGS}", ["10.0.0.9:8080", "127.0.0.31:9080", "127.0.0.33:9080", "127.0.0.32:9080"]),
        (f"outbound|9080|v1|{RATINGS}", ["127.0.0.31:9080", "127.0.0.32:9080"]),
        (f"outbound|9080|v2|{RATINGS}", ["127.0.0.33:9080"]),
        (f"outbound|9080|v3|{RATINGS}", []),
    ],
    ids=["all", "subset-v1", "subset-v2", "subset-without-endpoints-is-empty"],
)
def test_subset_assignments_filter_endpoints_by_labels(
    assignments: dict[str, ClusterLoadAssignment], cluster: str, expected: list[str]
) -> None:
    assert addresses(assignments[cluster]) == expected


def test_weights_and_localities(assignments: dict[str, ClusterLoadAssignment]) -> None:
    """Grouped by locality (sorted, unset first), each group weighted by its endpoints' total (as Istio)."""
    no_locality, zone_b = assignments[f"outbound|9080|v1|{RATINGS}"].endpoints
    assert not no_locality.HasField("locality")
    assert [e.load_balancing_weight.value for e in no_locality.lb_endpoints] == [1]
    assert (zone_b.locality.region, zone_b.locality.zone, zone_b.locality.sub_zone) == ("us-east", "zone-b", "rack-1")
    assert [e.load_balancing_weight.value for e in zone_b.lb_endpoints] == [3]
    assert zone_b.load_balancing_weight.value == 3
    everything = assignments[f"outbound|9080||{RATINGS}"].endpoints
    assert [group.load_balancing_weight.value for group in everything] == [3, 3]


def test_assignments_are_deterministic(make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]) -> None:
    """Same config in another order: the same bytes (the xDS layer hashes them into versions)."""
    forward = mesh_snapshot(*mesh(make_meta))
    backward = mesh_snapshot(*reversed(mesh(make_meta)))

    def serialize(snap: MeshSnapshot) -> list[bytes]:
        return [
            a.SerializeToString(deterministic=True)
            for a in endpoints.build_scope_load_assignments(("eds", "default"), snap)
        ]

    assert serialize(forward) == serialize(backward)


def test_scopes_and_proxy_assignments(snapshot: MeshSnapshot, sidecar_proxy: Callable[..., Proxy]) -> None:
    proxy = sidecar_proxy(snapshot, "ratings-v1", ip="127.0.0.31")
    assert endpoints.endpoint_scopes(proxy) == [("eds", "default")]
    assert endpoints.build_proxy_load_assignments(proxy, snapshot) == []
    with pytest.raises(ValueError, match="unknown scope"):
        endpoints.build_scope_load_assignments(("outbound",), snapshot)


def test_check_resources_reports_a_missing_assignment(
    snapshot: MeshSnapshot, assignments: dict[str, ClusterLoadAssignment]
) -> None:
    built = clusters.build_scope_clusters(("outbound", "default"), snapshot)
    without_v3 = [a for name, a in assignments.items() if "|v3|" not in name]
    with pytest.raises(
        AssertionError, match=r"EDS cluster 'outbound\|9080\|v3\|ratings\.default\.svc\.cluster\.local' has no"
    ):
        check_resources(clusters=built, load_assignments=without_v3)
    with pytest.raises(AssertionError, match="duplicate load assignment"):
        check_resources(load_assignments=[*assignments.values(), assignments[f"outbound|9080||{RATINGS}"]])


def test_envoy_accepts_the_assignments(
    tmp_path: Path, snapshot: MeshSnapshot, assignments: dict[str, ClusterLoadAssignment]
) -> None:
    built = clusters.build_scope_clusters(("outbound", "default"), snapshot)
    envoy_validate(tmp_path, clusters=built, load_assignments=list(assignments.values()))
