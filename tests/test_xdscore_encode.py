"""Responses built from cached bytes are exactly what the protobuf runtime would produce."""

from __future__ import annotations

import hashlib

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import ControlPlane
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse, DiscoveryResponse
from envoy.service.discovery.v3.discovery_pb2 import Resource as DeltaResource
from google.protobuf.any_pb2 import Any

from xdscore import encode
from xdscore.resources import ProxyResources, ResourceGroup, make_resource, resource_name


def _cluster(name: str, seconds: int = 1) -> Cluster:
    cluster = Cluster(name=name, type=Cluster.EDS)
    cluster.connect_timeout.seconds = seconds
    return cluster


def _packed(message: Cluster | RouteConfiguration | ClusterLoadAssignment) -> Any:
    packed = Any()
    packed.Pack(message)
    return packed


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"), (2**21, b"\x80\x80\x80\x01")],
    ids=["zero", "one", "max-1-byte", "min-2-bytes", "300", "2^21"],
)
def test_varint(value: int, expected: bytes) -> None:
    assert encode.varint(value) == expected


def test_varint_rejects_negative() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        encode.varint(-1)


def test_make_resource_versions_and_packs_once() -> None:
    cluster = _cluster("outbound|9080||reviews.default.svc.cluster.local")
    resource = make_resource(cluster)
    assert resource.name == "outbound|9080||reviews.default.svc.cluster.local"
    assert resource.version == hashlib.sha256(cluster.SerializeToString(deterministic=True)).hexdigest()[:16]
    assert Any.FromString(resource.any_bytes) == _packed(cluster)
    assert make_resource(_cluster(cluster.name)).version == resource.version  # content hash: same bytes, same version
    assert make_resource(_cluster(cluster.name, seconds=2)).version != resource.version


@pytest.mark.parametrize(
    ("message", "name"),
    [
        (Cluster(name="c"), "c"),
        (ClusterLoadAssignment(cluster_name="outbound|80||a"), "outbound|80||a"),
        (RouteConfiguration(name="15001.default"), "15001.default"),
    ],
    ids=["cluster", "load-assignment-by-cluster-name", "route"],
)
def test_resource_name(message: Cluster | ClusterLoadAssignment | RouteConfiguration, name: str) -> None:
    assert resource_name(message) == name


def test_resource_without_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="has no name"):
        make_resource(Cluster())


@pytest.mark.parametrize("count", [0, 1, 3, 200], ids=["empty", "one", "three", "200-multibyte-lengths"])
def test_sotw_response_bytes_equal_protobuf_serialization(count: int) -> None:
    clusters = [_cluster(f"cluster-{i:03d}" + "x" * i) for i in range(count)]
    resources = [make_resource(c) for c in clusters]
    view = ProxyResources.of([ResourceGroup.of(resources[: count // 2]), ResourceGroup.of(resources[count // 2 :])])
    wire = encode.discovery_response(
        version_info=view.version,
        resources=view.sotw_bodies,
        type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster",
        nonce="abc-1",
        control_plane="meshplane-pilot",
    )
    expected = DiscoveryResponse(
        version_info=view.version,
        resources=[_packed(c) for c in sorted(clusters, key=lambda c: c.name)],
        type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster",
        nonce="abc-1",
        control_plane=ControlPlane(identifier="meshplane-pilot"),
    )
    assert DiscoveryResponse.FromString(wire) == expected
    assert wire == expected.SerializeToString()


def test_sotw_response_from_individual_resources() -> None:
    resources = [make_resource(_cluster("b")), make_resource(_cluster("a"))]
    wire = encode.discovery_response(
        version_info="",
        resources=[piece for r in resources for piece in (r.sotw_header, r.any_bytes)],
        type_url="t",
        nonce="n",
    )
    assert DiscoveryResponse.FromString(wire) == DiscoveryResponse(
        resources=[_packed(_cluster("b")), _packed(_cluster("a"))], type_url="t", nonce="n"
    )


@pytest.mark.parametrize(
    ("count", "removed"),
    [(0, ()), (2, ()), (0, ("gone-1", "gone-2")), (150, ("gone",))],
    ids=["empty", "two", "only-removals", "many-and-removal"],
)
def test_delta_response_bytes_equal_protobuf_serialization(count: int, removed: tuple[str, ...]) -> None:
    clusters = [_cluster(f"c{i}" + "y" * i) for i in range(count)]
    resources = [make_resource(c) for c in clusters]
    wire = encode.delta_discovery_response(
        system_version_info="00ff",
        resources=[p for r in resources for p in (r.delta_prefix, r.any_bytes, r.delta_suffix)],
        type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster",
        nonce="n-7",
        removed_resources=removed,
        control_plane="meshplane-pilot",
    )
    expected = DeltaDiscoveryResponse(
        system_version_info="00ff",
        resources=[
            DeltaResource(name=c.name, version=r.version, resource=_packed(c))
            for c, r in zip(clusters, resources, strict=True)
        ],
        type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster",
        nonce="n-7",
        removed_resources=list(removed),
        control_plane=ControlPlane(identifier="meshplane-pilot"),
    )
    assert DeltaDiscoveryResponse.FromString(wire) == expected
    assert wire == expected.SerializeToString()


def test_type_version_is_a_hash_over_the_name_version_set() -> None:
    a, b, c = (make_resource(_cluster(n)) for n in "abc")
    same = ProxyResources.of([ResourceGroup.of([a, b])]).version
    assert ProxyResources.of([ResourceGroup.of([b]), ResourceGroup.of([a])]).version == same  # grouping is irrelevant
    assert ProxyResources.of([ResourceGroup.of([a, b, c])]).version != same
    assert ProxyResources.of([ResourceGroup.of([a, make_resource(_cluster("b", 9))])]).version != same


def test_names_claimed_by_two_groups_are_sent_once() -> None:
    first, second = make_resource(_cluster("x", 1)), make_resource(_cluster("x", 2))
    view = ProxyResources.of([ResourceGroup.of([first]), ResourceGroup.of([second, make_resource(_cluster("y"))])])
    assert list(view.resources) == ["x", "y"]
    assert view.resources["x"] is first
    wire = encode.discovery_response(version_info=view.version, resources=view.sotw_bodies, type_url="t", nonce="n")
    assert len(DiscoveryResponse.FromString(wire).resources) == 2
