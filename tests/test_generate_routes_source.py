"""HTTP matches on ``sourceLabels`` / ``sourceNamespace`` (Istio's ``sourceMatchHTTP``): a match applies only in the
route tables of proxies whose workload has those labels / is in that namespace; tables stay shared between proxies
that agree on the labels some sourceLabels names, and the route cache cannot go stale."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any as AnyType

import pytest
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.any_pb2 import Any

from meshplane import names
from pilot.config.types import HTTPMatchRequest, HTTPRoute, Resource
from pilot.generate.registry import GENERATORS, ROUTE_TYPE
from pilot.model import MeshSnapshot, Proxy, build_snapshot, parse_node_id, resolve_proxy
from pilot.xds.cache import ResourceCache
from tests.route_builders import NS, REVIEWS, service_entry, to, virtual_service, workload
from tests.sidecar_builders import unpack

CAPTURED = {names.INTERCEPTION_MODE_METADATA: "REDIRECT"}
V2 = names.outbound_cluster_name(9080, "v2", REVIEWS)
V1 = names.outbound_cluster_name(9080, "v1", REVIEWS)


def _match(labels: Mapping[str, str] | None = None, namespace: str = "") -> HTTPMatchRequest:
    return HTTPMatchRequest(source_labels=MappingProxyType(dict(labels or {})), source_namespace=namespace)


def _mesh(*match: HTTPMatchRequest) -> MeshSnapshot:
    """reviews: the first route (with ``match``; a source-only match is a catch-all) to v2, else v1; clients
    productpage (app, version), ratings, and one in namespace shop."""
    rules = virtual_service(
        "reviews",
        ("reviews",),
        HTTPRoute(name="from-source", match=match, route=(to("reviews", "v2"),)),
        HTTPRoute(name="rest", route=(to("reviews", "v1"),)),
    )
    rules = replace(rules, meta=replace(rules.meta, content_hash=repr(match)))  # a changed rule is a changed config
    configs: tuple[Resource, ...] = (
        service_entry("reviews", REVIEWS),
        rules,
        workload("productpage-v1", "10.89.0.2", {"app": "productpage", "version": "v1"}),
        workload("productpage-v2", "10.89.0.3", {"app": "productpage", "version": "v2"}),
        workload("ratings-v1", "10.89.0.4", {"app": "ratings", "version": "v1"}),
        workload("shop-client", "10.89.0.5", {"app": "productpage"}, namespace="shop"),
    )
    return build_snapshot({c.meta.key: c for c in configs}, version=1)


def _proxy(snap: MeshSnapshot, name: str, *, captured: bool, namespace: str = NS) -> Proxy:
    node_id = f"sidecar~10.0.0.1~{name}.{namespace}~{namespace}.svc.cluster.local"
    node = parse_node_id(node_id, "", CAPTURED if captured else None)
    return resolve_proxy(node, snap)


def _tables(snap: MeshSnapshot, proxy: Proxy) -> list[RouteConfiguration]:
    generator = GENERATORS[ROUTE_TYPE]
    return [t for scope in generator.scopes(proxy) for t in generator.build_scope(scope, snap)]  # type: ignore[misc]


def _reviews_clusters(snap: MeshSnapshot, proxy: Proxy) -> list[str]:
    """The clusters of the reviews virtual host's routes, in order, in the proxy's outbound table."""
    for table in _tables(snap, proxy):
        for vhost in table.virtual_hosts:
            if vhost.name == f"{REVIEWS}:9080":
                return [route.route.cluster for route in vhost.routes]
    raise AssertionError("no reviews virtual host")


@pytest.mark.parametrize("captured", [False, True], ids=["http-proxy-model", "captured"])
@pytest.mark.parametrize(
    ("match", "client", "namespace", "expected"),
    [
        (_match({"app": "productpage"}), "productpage-v1", NS, [V2]),
        (_match({"app": "productpage"}), "ratings-v1", NS, [V1]),
        (_match({"app": "productpage", "version": "v2"}), "productpage-v1", NS, [V1]),
        (_match({"app": "productpage", "version": "v2"}), "productpage-v2", NS, [V2]),
        (_match({"app": "productpage"}), "unregistered", NS, [V1]),
        (_match(namespace="shop"), "shop-client", "shop", [V2]),
        (_match(namespace="shop"), "productpage-v1", NS, [V1]),
        (_match({"app": "productpage"}, "shop"), "productpage-v1", NS, [V1]),
        (_match({"app": "productpage"}, "shop"), "shop-client", "shop", [V2]),
    ],
    ids=[
        "labels-match",
        "labels-other-workload",
        "labels-subset-missing",
        "labels-subset-match",
        "no-workload-no-labels",
        "namespace-match",
        "namespace-other",
        "both-wrong-namespace",
        "both-match",
    ],
)
def test_source_matches_apply_only_to_their_clients(
    match: HTTPMatchRequest, client: str, namespace: str, expected: list[str], captured: bool
) -> None:
    snap = _mesh(match)
    assert _reviews_clusters(snap, _proxy(snap, client, captured=captured, namespace=namespace)) == expected


def test_a_source_match_beside_others_drops_alone() -> None:
    snap = _mesh(_match({"app": "ratings"}), HTTPMatchRequest(port=9080))
    proxy = _proxy(snap, "productpage-v1", captured=True)
    assert _reviews_clusters(snap, proxy) == [V2]  # the port match applies (a catch-all: nothing after it)


@pytest.mark.parametrize("captured", [False, True], ids=["http-proxy-model", "captured"])
def test_scopes_hold_only_the_labels_some_source_labels_name(captured: bool) -> None:
    snap = _mesh(_match({"app": "productpage"}))
    scopes = {
        name: tuple(GENERATORS[ROUTE_TYPE].scopes(_proxy(snap, name, captured=captured)))
        for name in ("productpage-v1", "productpage-v2", "ratings-v1", "unregistered")
    }
    assert scopes["productpage-v1"] == scopes["productpage-v2"]  # "version" is named by no sourceLabels: shared
    [(kind, namespace, labels)] = scopes["productpage-v1"]
    assert (namespace, labels) == (NS, (("app", "productpage"),))
    assert scopes["ratings-v1"] == ((kind, NS, (("app", "ratings"),)),)
    assert scopes["unregistered"] == ((kind, NS),)
    plain = _mesh(HTTPMatchRequest(port=9080))
    assert tuple(GENERATORS[ROUTE_TYPE].scopes(_proxy(plain, "productpage-v1", captured=captured))) == ((kind, NS),)


def _served(cache: ResourceCache, proxy: Proxy) -> dict[str, AnyType]:
    return dict(cache.view(ROUTE_TYPE, proxy.node).resources)


def test_route_cache_follows_a_source_labels_change() -> None:
    """Through the resource cache (memoized parts across snapshots): adding, then changing, sourceLabels changes
    which proxies get the match; proxies that agree on the named labels share the same bytes."""
    first = _mesh(HTTPMatchRequest(port=9080))
    cache = ResourceCache(first, GENERATORS)
    v1, v2, ratings = (_proxy(first, n, captured=True).node for n in ("productpage-v1", "productpage-v2", "ratings-v1"))
    before = {n: _served(cache, cache.proxy(n)) for n in (v1, ratings)}
    assert before[v1]["9080"] is before[ratings]["9080"]
    for labels, gets_match in (({"app": "productpage"}, v1), ({"app": "ratings"}, ratings)):
        snap = build_snapshot(dict(_mesh(_match(labels)).configs), version=2, previous=cache.snapshot)
        cache = ResourceCache(snap, GENERATORS, previous=cache)
        for node in (v1, v2, ratings):
            expected = [V2] if node == gets_match or (gets_match == v1 and node == v2) else [V1]
            assert _reviews_clusters(snap, cache.proxy(node)) == expected
            packed = Any()
            packed.ParseFromString(_served(cache, cache.proxy(node))["9080"].any_bytes)
            table = unpack(RouteConfiguration(), packed)
            reviews = next(vh for vh in table.virtual_hosts if vh.name == f"{REVIEWS}:9080")
            assert [r.route.cluster for r in reviews.routes] == expected, (labels, node.id)
    assert _served(cache, cache.proxy(v1))["9080"] is _served(cache, cache.proxy(v2))["9080"]
