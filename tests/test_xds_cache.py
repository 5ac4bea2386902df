"""The resource cache: scopes built once per snapshot, shared objects, and reuse across snapshots."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from pilot.model import build_snapshot, parse_node_id
from pilot.xds import ResourceCache
from pilot.xds.cache import RESOLUTION_KINDS
from tests.xds_fakes import (
    DEFAULT_ROUTES,
    PRODUCTPAGE,
    REVIEWS_CLUSTER,
    REVIEWS_V1,
    bookinfo,
    configs_of,
    fake_generators,
    node_id,
    workload_entry,
)

NODES = [parse_node_id(PRODUCTPAGE), parse_node_id(REVIEWS_V1), parse_node_id(node_id("reviews-v2", "127.0.0.12"))]


def test_scopes_are_built_once_and_shared_by_every_proxy() -> None:
    calls: Counter[str] = Counter()
    cache = ResourceCache(build_snapshot(bookinfo(), 1), fake_generators(calls))
    cache.warm(NODES)
    assert calls == Counter({"cds": 1, "eds": 1, "rds": 1})  # one "default" namespace: one route table
    clusters = [cache.view(CLUSTER_TYPE, node) for node in NODES]
    assert all(view.groups[0] is clusters[0].groups[0] for view in clusters)
    assert len({id(view.resources[REVIEWS_CLUSTER].any_bytes) for view in clusters}) == 1
    assert cache.view(CLUSTER_TYPE, NODES[0]) is clusters[0]  # per proxy, built once too
    assert cache.cached_view(LISTENER_TYPE, NODES[1]) is not None
    assert cache.cached_view(LISTENER_TYPE, parse_node_id(node_id("other", "127.0.0.99"))) is None


def test_types_not_affected_by_the_change_are_reused_as_the_same_objects() -> None:
    calls: Counter[str] = Counter()
    generators = fake_generators(calls)
    first = ResourceCache(build_snapshot(bookinfo("v1"), 1), generators)
    first.warm(NODES)
    snapshot = build_snapshot(bookinfo("v2"), 2, previous=first.snapshot)
    assert snapshot.changed_kinds == {"VirtualService"}
    second = ResourceCache(snapshot, generators, previous=first)
    second.warm(NODES)
    assert second.reused_types == {CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE}
    assert calls == Counter({"cds": 1, "eds": 1, "rds": 2})
    for node in NODES:
        for type_url in (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE):
            assert second.view(type_url, node) is first.view(type_url, node)
        before, after = first.view(ROUTE_TYPE, node), second.view(ROUTE_TYPE, node)
        assert after.resources[DEFAULT_ROUTES].version != before.resources[DEFAULT_ROUTES].version
        assert after.version != before.version


def test_a_reused_type_rebuilds_proxies_own_parts_when_proxy_resolution_may_differ() -> None:
    generators = fake_generators()
    # Pretend listeners and routes do not depend on WorkloadEntries: a WorkloadEntry change then reuses both types'
    # shared groups, but every proxy's own part is rebuilt, so that a proxy whose workload moved does not keep its
    # old listeners.
    for type_url, kinds in ((LISTENER_TYPE, {"DestinationRule"}), (ROUTE_TYPE, {"VirtualService"})):
        generators[type_url] = replace(generators[type_url], affected_by=frozenset(kinds))
    first = ResourceCache(build_snapshot(bookinfo(), 1), generators)
    first.warm(NODES)
    moved = configs_of(*bookinfo().values(), workload_entry("productpage", "v1", "127.0.0.22"))
    second = ResourceCache(build_snapshot(moved, 2, previous=first.snapshot), generators, previous=first)
    assert {LISTENER_TYPE, ROUTE_TYPE} <= second.reused_types
    productpage, reviews = NODES[0], NODES[1]
    moved_listeners = sorted(second.view(LISTENER_TYPE, productpage).resources)
    assert moved_listeners == ["virtualInbound_127.0.0.22_9080", "virtualOutbound"]
    unmoved, before = second.view(LISTENER_TYPE, reviews), first.view(LISTENER_TYPE, reviews)
    assert unmoved is not before and unmoved.version == before.version
    routes, routes_before = second.view(ROUTE_TYPE, reviews), first.view(ROUTE_TYPE, reviews)
    assert routes is not routes_before and routes.groups[0] is routes_before.groups[0]  # the shared table is kept


def test_a_reused_type_carries_proxies_results_over_while_resolution_kinds_are_unchanged() -> None:
    generators = fake_generators()
    first = ResourceCache(build_snapshot(bookinfo("v1"), 1), generators)
    first.warm(NODES)
    snapshot = build_snapshot(bookinfo("v2"), 2, previous=first.snapshot)
    assert not snapshot.changed_kinds & RESOLUTION_KINDS
    second = ResourceCache(snapshot, generators, previous=first)
    assert LISTENER_TYPE in second.reused_types
    assert all(second.view(LISTENER_TYPE, node) is first.view(LISTENER_TYPE, node) for node in NODES)
    assert second.proxy(NODES[0]) == first.proxy(NODES[0])


def test_only_kept_nodes_are_carried_over() -> None:
    generators = fake_generators()
    first = ResourceCache(build_snapshot(bookinfo("v1"), 1), generators)
    first.warm(NODES)
    second = ResourceCache(
        build_snapshot(bookinfo("v2"), 2, previous=first.snapshot), generators, previous=first, keep={NODES[0]}
    )
    assert second.view(CLUSTER_TYPE, NODES[0]) is first.view(CLUSTER_TYPE, NODES[0])
    rebuilt = second.view(CLUSTER_TYPE, NODES[1])  # a disconnected proxy's old result was dropped...
    assert rebuilt is not first.view(CLUSTER_TYPE, NODES[1])
    assert rebuilt.groups[0] is first.view(CLUSTER_TYPE, NODES[1]).groups[0]  # ...but the shared scope was kept
