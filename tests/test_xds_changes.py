"""Pushes look at what changed, not at everything a proxy watches: group changes computed once per pair of groups,
and planners that, given those changes, answer exactly what comparing every name answers."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from pilot.generate.registry import ENDPOINT_TYPE
from pilot.metrics import PilotMetrics
from pilot.model import build_snapshot, parse_node_id
from pilot.xds import Connection, ResourceCache, build_cache
from tests.xds_fakes import (
    PRODUCTPAGE,
    REVIEWS_V1_CLUSTER,
    bookinfo,
    configs_of,
    fake_generators,
    resource_names,
    service_entry,
    workload_entry,
)
from xdscore import StreamSettings
from xdscore import changes as changes_module
from xdscore import stream as stream_module
from xdscore.changes import NO_GROUP_CHANGES, ChangeMemo, GroupChanges, ResourceChanges, group_changes
from xdscore.plan import plan_delta, plan_sotw
from xdscore.resources import ProxyResources, Resource, ResourceGroup, make_resource
from xdscore.watch import WatchedResource

EDS = ENDPOINT_TYPE


def _res(spec: str) -> Resource:
    """``"b2"``: resource ``b`` at version 2 (a cluster whose connect timeout is 2s)."""
    cluster = Cluster(name=spec[0])
    cluster.connect_timeout.seconds = int(spec[1:])
    return make_resource(cluster)


def _view(*groups: Sequence[str]) -> ProxyResources:
    return ProxyResources.of([ResourceGroup.of(map(_res, group)) for group in groups])


def _group(*specs: str) -> ResourceGroup:
    return ResourceGroup.of(map(_res, specs))


# ------------------------------------------------------------------------------------------ group changes


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (("a1", "b1"), ("a1", "b1"), NO_GROUP_CHANGES),
        (("a1", "b1"), ("a1", "b2"), GroupChanges(frozenset("b"), frozenset())),
        (("a1",), ("a1", "c1"), GroupChanges(frozenset("c"), frozenset())),
        (("a1", "b1"), ("a1",), GroupChanges(frozenset(), frozenset("b"))),
        (("a1", "b1"), ("a2", "c1"), GroupChanges(frozenset("ac"), frozenset("b"))),
    ],
    ids=["equal", "version", "added", "removed", "all-at-once"],
)
def test_group_changes(old: tuple[str, ...], new: tuple[str, ...], expected: GroupChanges) -> None:
    assert group_changes(_group(*old), _group(*new)) == expected


def test_large_pairs_are_compared_once_small_ones_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Counter[int] = Counter()
    original = changes_module.group_changes

    def counting(old: ResourceGroup, new: ResourceGroup) -> GroupChanges:
        calls[len(new.resources)] += 1
        return original(old, new)

    monkeypatch.setattr(changes_module, "group_changes", counting)
    names = [f"outbound|{port}||svc" for port in range(100)]
    old = ResourceGroup.of(make_resource(Cluster(name=name)) for name in names)
    new = ResourceGroup.of(
        make_resource(Cluster(name=name, alt_stat_name="x" if name == names[7] else "")) for name in names
    )
    memo = ChangeMemo()
    first = memo.group(old, new)
    assert first.updated == {names[7]} and memo.group(old, new) is first and len(memo) == 1
    small_old, small_new = _group("a1"), _group("a2")
    assert (
        memo.group(small_old, small_new)
        == memo.group(small_old, small_new)
        == GroupChanges(frozenset("a"), frozenset())
    )
    assert calls == Counter({100: 1, 1: 2}) and len(memo) == 1
    assert memo.group(new, new) is NO_GROUP_CHANGES


@pytest.mark.parametrize(
    ("before", "after", "updated", "added", "removed"),
    [
        ([["a1", "b1"], ["c1"]], [["a1"], ["b1", "c1"]], "", "", ""),
        ([["a1", "b1"], ["c1"]], [["a1"], ["b2", "c1"]], "b", "", ""),
        ([["a1", "b1"]], [["a1", "b1"], ["x1"]], "x", "x", ""),
        ([["a1", "b1"], ["x1"]], [["a1"]], "", "", "bx"),
    ],
    ids=["moved-unchanged", "moved-changed", "own-part-appears", "own-part-disappears"],
)
def test_proxy_changes_compare_groups_in_order(
    before: list[list[str]], after: list[list[str]], updated: str, added: str, removed: str
) -> None:
    since = _view(*before)
    found = ChangeMemo().between(since, _view(*after))
    assert found == ResourceChanges(
        since=since, updated=frozenset(updated), added=frozenset(added), removed=frozenset(removed)
    )


def test_a_set_with_a_name_in_two_groups_is_compared_whole() -> None:
    assert ChangeMemo().between(_view(["a1"], ["a2"]), _view(["a1"])) is None


# ------------------------------------------------------------------------------------------ planners


STEPS = {
    "version": ([["a1", "b1", "c1"]], [["a1", "b2", "c1"]]),
    "added": ([["a1", "b1", "c1"]], [["a1", "b1", "c1", "d1"]]),
    "removed": ([["a1", "b1", "c1"]], [["a1", "c1"]]),
    "all-at-once": ([["a1", "b1", "c1"]], [["a2", "c1", "d1"]]),
    "moved": ([["a1", "b1"], ["c1"]], [["a1"], ["b2", "c1"]]),
    "own-part": ([["a1", "b1"]], [["a1", "b1"], ["d1"]]),
    "nothing": ([["a1", "b1"]], [["a1", "b1"]]),
}
WATCHES = {
    "everything": frozenset("abcd"),
    "what-it-had": frozenset("abc"),
    "and-a-missing-name": frozenset("abcdz"),
    "some": frozenset("abd"),
    "wildcard": None,
}


def _outcome(response: Any, state: WatchedResource, view: ProxyResources) -> tuple[Any, ...]:
    """What the proxy gets and what the stream remembers, independent of how it was computed."""
    if response is None:
        sent = None
    else:
        names = sorted(view.resources) if response.resources is None else sorted(r.name for r in response.resources)
        sent = (names, response.version, sorted(getattr(response, "removed", ())))
    return sent, dict(state.sent), state.sent_digest, state.version_sent


PLANS = [  # a SotW wildcard response is the whole set: no changes involved
    (mode, watched) for mode in ("sotw", "delta") for watched in WATCHES if mode == "delta" or WATCHES[watched]
]


@pytest.mark.parametrize(("mode", "watched"), PLANS, ids=[f"{mode}-{watched}" for mode, watched in PLANS])
@pytest.mark.parametrize("step", list(STEPS), ids=list(STEPS))
def test_planning_a_push_from_changes_answers_what_comparing_everything_answers(
    mode: str, watched: str, step: str
) -> None:
    names = WATCHES[watched]
    before, after = (_view(*groups) for groups in STEPS[step])
    views = [before, after, _view(*STEPS[step][0])]  # there and back again
    watch = WatchedResource(type_url=EDS, wildcard=names is None, names=names or frozenset())

    def plan(state: WatchedResource, view: ProxyResources, nonce: str, changes: ResourceChanges | None) -> Any:
        if mode == "sotw":
            return plan_sotw(state, view, nonce=nonce, full=changes is None and nonce == "n0", changes=changes)
        return plan_delta(state, view, nonce=nonce, force=nonce == "n0", changes=changes)

    _, compared = plan(watch, before, "n0", None)
    from_changes = compared
    memo = ChangeMemo()
    for index in range(1, len(views)):
        previous, view = views[index - 1], views[index]
        expected, compared = plan(compared, view, f"n{index}", None)
        changes = memo.between(previous, view)
        assert changes is not None
        got, from_changes = plan(from_changes, view, f"n{index}", changes)
        assert _outcome(got, from_changes, view) == _outcome(expected, compared, view)


def test_a_proxy_that_has_everything_keeps_the_new_set_without_a_copy() -> None:
    before, after = _view(["a1", "b1", "c1"]), _view(["a1", "b2", "c1"])
    watch = WatchedResource(type_url=EDS, wildcard=False, names=frozenset("abc"))
    _, watch = plan_sotw(watch, before, nonce="n1", full=True)
    assert watch.sent is before.versions
    response, watch = plan_sotw(watch, after, nonce="n2", full=False, changes=ChangeMemo().between(before, after))
    assert response is not None and [r.name for r in response.resources or ()] == ["b"]
    assert watch.sent is after.versions and response.version == after.version


# ------------------------------------------------------------------------------------------ the push path


def test_build_cache_compares_the_rebuilt_shared_groups_once_for_every_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Counter[tuple[int, int]] = Counter()
    original = changes_module.group_changes

    def counting(old: ResourceGroup, new: ResourceGroup) -> GroupChanges:
        calls[id(old), id(new)] += 1
        return original(old, new)

    monkeypatch.setattr(changes_module, "group_changes", counting)
    services = [service_entry(f"svc{i}") for i in range(70)]  # 70 clusters: a group worth remembering
    generators = fake_generators()
    nodes = [
        parse_node_id(PRODUCTPAGE),
        parse_node_id("sidecar~127.0.0.11~reviews-v1.default~default.svc.cluster.local"),
    ]
    configs = configs_of(*bookinfo().values(), *services)
    first = build_cache(
        configs, 1, previous=None, generators=generators, domain_suffix="cluster.local", nodes=nodes, changed_at=None
    )
    moved = configs_of(*configs.values(), workload_entry("svc3", "v1", "127.0.0.33"))
    second = build_cache(
        moved, 2, previous=first, generators=generators, domain_suffix="cluster.local", nodes=nodes, changed_at=None
    )
    assert len(calls) == 2 and set(calls.values()) == {1}  # CDS and EDS, in the worker thread
    built = calls.copy()
    for node in nodes:
        found = second.changes(first.view(EDS, node), second.view(EDS, node))
        assert found is not None and found.updated == {"outbound|9080||svc3.default.svc.cluster.local"}
    assert calls == built  # the streams only looked the changes up


async def test_a_push_hands_the_planner_the_changes_since_the_last_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ResourceChanges | None] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["changes"])
        return plan_sotw(*args, **kwargs)

    monkeypatch.setattr(stream_module, "plan_sotw", spy)
    generators = fake_generators()
    node = parse_node_id(PRODUCTPAGE)
    first = ResourceCache(build_snapshot(bookinfo(), 1), generators)
    written: asyncio.Queue[DiscoveryResponse] = asyncio.Queue()
    requests: asyncio.Queue[DiscoveryRequest | None] = asyncio.Queue()

    async def write(payload: bytes) -> None:
        written.put_nowait(DiscoveryResponse.FromString(payload))

    async def incoming() -> AsyncIterator[DiscoveryRequest]:
        while (request := await requests.get()) is not None:
            yield request

    metrics = PilotMetrics()
    connection = Connection(
        node=node,
        mode="sotw",
        write=write,
        generators=generators,
        cache=first,
        metrics=metrics,
        settings=StreamSettings(nonce=iter(f"n{i}" for i in range(1, 100)).__next__, throttle=asyncio.Semaphore(1)),
    )
    watched = sorted(first.view(EDS, node).resources)
    serving = asyncio.create_task(connection.serve(DiscoveryRequest(type_url=EDS, resource_names=watched), incoming()))
    try:
        initial = await asyncio.wait_for(written.get(), 5)
        assert sorted(resource_names(initial)) == watched and seen == [None]
        more = configs_of(*bookinfo().values(), workload_entry("reviews", "v1", "127.0.0.13", name="reviews-v1b"))
        second = build_cache(
            more, 2, previous=first, generators=generators, domain_suffix="cluster.local", nodes=[node], changed_at=None
        )
        connection.notify(second)
        pushed = await asyncio.wait_for(written.get(), 5)
        reviews = "outbound|9080||reviews.default.svc.cluster.local"
        assert sorted(resource_names(pushed)) == sorted([reviews, REVIEWS_V1_CLUSTER])
        assert seen[1] is not None and seen[1].updated == {reviews, REVIEWS_V1_CLUSTER}
    finally:
        await requests.put(None)
        await asyncio.wait_for(serving, 5)
