"""The resource cache memoizes route tables (Istio's XdsCache): a port's table is rebuilt when an input of one of
its virtual hosts changes, and reused, down to the table's bytes, when nothing it reads changed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import pytest
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import Message

from pilot.config.parse import content_hash
from pilot.config.types import HTTPRoute, Resource
from pilot.generate import port_routes, routes
from pilot.generate.pieces import PieceMemo
from pilot.generate.registry import GENERATORS, ROUTE_TYPE, ScopeParts, TypeGenerator
from pilot.generate.route_action import ServicePorts
from pilot.model import build_snapshot
from pilot.xds import ResourceCache
from tests.route_builders import port, service_entry, to, vhost, virtual_service
from tests.xds_fakes import destination_rule, workload_entry

RATINGS = "ratings.default.svc.cluster.local"
REVIEWS = "reviews.default.svc.cluster.local"
SCOPE = (port_routes.OUTBOUND_HTTP_SCOPE, "default")
R = TypeVar("R", bound=Resource)
P = TypeVar("P")


def _stored(resource: R) -> R:
    """A config as the config layer stores it: with its content hash (what says "changed"), one object while it
    does not change."""
    return replace(resource, meta=replace(resource.meta, content_hash=content_hash(resource)))


REVIEWS_SE = _stored(service_entry("reviews", REVIEWS))
RATINGS_SE = _stored(service_entry("ratings", RATINGS, (port(8080),)))
TO_V1 = _stored(virtual_service("reviews", ("reviews",), HTTPRoute(route=(to("reviews", "v1"),))))
TO_RATINGS = _stored(virtual_service("reviews", ("reviews",), HTTPRoute(route=(to("ratings"),))))
WORKLOAD = _stored(workload_entry("reviews", "v1", "10.0.0.1"))  # no port: ratings' only
MESH: tuple[Resource, ...] = (REVIEWS_SE, RATINGS_SE, TO_V1)


class _CountedPieces:
    """A ``PieceMemo`` whose builds are recorded (the virtual hosts actually built, not looked up)."""

    def __init__(self, pieces: PieceMemo, hosts: list[str]) -> None:
        self._pieces, self._hosts = pieces, hosts

    def get(self, key: routes.VirtualHostInputs, build: Callable[[routes.VirtualHostInputs], P]) -> P:
        def counted(inputs: routes.VirtualHostInputs) -> P:
            self._hosts.append(f"{inputs.host}:{inputs.port}")
            return build(inputs)

        return self._pieces.get(key, counted)


class Built:
    """The route generator with its virtual host builds counted: the virtual hosts a snapshot built."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        original = GENERATORS[ROUTE_TYPE]
        assert original.parts is not None
        parts = replace(original.parts, build=self._build, build_from_pieces=self._build_from_pieces)
        self.generators: dict[str, TypeGenerator] = {**GENERATORS, ROUTE_TYPE: replace(original, parts=parts)}
        self._original: ScopeParts = original.parts

    def _build(self, inputs: port_routes.PortRoutesInputs) -> object:
        raise AssertionError("the cache builds route tables from pieces")

    def _build_from_pieces(self, inputs: port_routes.PortRoutesInputs, pieces: PieceMemo) -> Message:
        assert self._original.build_from_pieces is not None
        return self._original.build_from_pieces(inputs, _CountedPieces(pieces, self.hosts))  # type: ignore[arg-type]

    def cache(self, configs: tuple[Resource, ...], previous: ResourceCache | None = None) -> ResourceCache:
        version = previous.version + 1 if previous is not None else 1
        snapshot = build_snapshot({c.meta.key: c for c in configs}, version, previous.snapshot if previous else None)
        self.hosts.clear()
        cache = ResourceCache(snapshot, self.generators, previous=previous)
        cache.scope_group(ROUTE_TYPE, SCOPE)  # build the table now: ``hosts`` says what this snapshot built
        return cache


def _table_bytes(cache: ResourceCache) -> dict[str, bytes]:
    """Each port's table's bytes, by name."""
    return {name: r.any_bytes for name, r in cache.scope_group(ROUTE_TYPE, SCOPE).resources.items()}


def _tables(cache: ResourceCache) -> dict[str, RouteConfiguration]:
    return {
        name: RouteConfiguration.FromString(AnyProto.FromString(data).value)
        for name, data in _table_bytes(cache).items()
    }


def _fresh(configs: tuple[Resource, ...]) -> dict[str, RouteConfiguration]:
    """The tables built by the pure builder, with nothing remembered."""
    tables = GENERATORS[ROUTE_TYPE].build_scope(SCOPE, build_snapshot({c.meta.key: c for c in configs}, 1))
    return {table.name: table for table in tables}


def _with(*replacements: Resource) -> tuple[Resource, ...]:
    keys = {r.meta.key for r in replacements}
    return (*(c for c in MESH if c.meta.key not in keys), *replacements)


# (id, the changed mesh, the virtual hosts that must be rebuilt)
INPUT_CHANGES: list[tuple[str, tuple[Resource, ...], list[str]]] = [
    ("the-host-s-virtual-service", _with(TO_RATINGS), [f"{REVIEWS}:9080"]),
    (
        "a-service-s-ports",  # every host's routes may resolve a port-less destination against them
        _with(_stored(service_entry("ratings", RATINGS, (port(8081),)))),
        [f"{RATINGS}:8081", f"{REVIEWS}:9080"],
    ),
    (
        "exported-away",
        _with(
            _stored(virtual_service("reviews", ("reviews",), HTTPRoute(route=(to("reviews", "v1"),)), export_to=("x",)))
        ),
        [f"{REVIEWS}:9080"],
    ),
]


@pytest.mark.parametrize(("changed", "rebuilt"), [c[1:] for c in INPUT_CHANGES], ids=[c[0] for c in INPUT_CHANGES])
def test_a_change_of_an_input_rebuilds_what_reads_it(changed: tuple[Resource, ...], rebuilt: list[str]) -> None:
    built = Built()
    first = built.cache(MESH)
    before = _table_bytes(first)
    assert sorted(built.hosts) == [f"{RATINGS}:8080", f"{REVIEWS}:9080"]

    second = built.cache(changed, first)

    assert sorted(built.hosts) == rebuilt
    assert _table_bytes(second) != before
    assert _tables(second) == _fresh(changed), "the cache's tables are the pure builder's"


@pytest.mark.parametrize(
    "unrelated",
    [WORKLOAD, _stored(destination_rule(REVIEWS, ["v1"]))],
    ids=["a-workload-entry", "a-destination-rule"],
)
def test_an_unrelated_change_reuses_the_table_bytes(unrelated: Resource) -> None:
    """Routes are regenerated for these kinds (RDS is affected by them), but nothing a virtual host reads changed."""
    built = Built()
    first = built.cache(MESH)
    before = _table_bytes(first)

    second = built.cache((*MESH, unrelated), first)

    assert ROUTE_TYPE not in second.reused_types, "the type was regenerated, not carried over"
    assert built.hosts == []
    after = _table_bytes(second)
    assert after.keys() == before.keys()
    assert all(after[name] is before[name] for name in before), "the same bytes objects: nothing to compare or push"


def test_parts_are_remembered_past_a_snapshot_that_reused_the_whole_table() -> None:
    built = Built()
    first = built.cache(MESH)
    second = built.cache((*MESH, WORKLOAD), first)
    third = built.cache((REVIEWS_SE, RATINGS_SE, TO_RATINGS, WORKLOAD), second)

    assert built.hosts == [f"{REVIEWS}:9080"], "ratings' virtual host came through the snapshot in between"
    assert vhost(_tables(third)["9080"], f"{REVIEWS}:9080").routes[0].route.cluster == f"outbound|8080||{RATINGS}"


DETAILS = "details.default.svc.cluster.local"
DETAILS_SE = _stored(service_entry("details", DETAILS))  # on 9080 too: reviews' table has two virtual hosts


def test_a_table_rebuilt_for_one_virtual_host_rebuilds_that_one_only() -> None:
    built = Built()
    first = built.cache((*MESH, DETAILS_SE))
    assert sorted(built.hosts) == [f"{DETAILS}:9080", f"{RATINGS}:8080", f"{REVIEWS}:9080"]
    changed = (REVIEWS_SE, RATINGS_SE, DETAILS_SE, TO_RATINGS)

    second = built.cache(changed, first)

    assert built.hosts == [f"{REVIEWS}:9080"], "details' virtual host is taken as it was"
    assert _table_bytes(second)["9080"] != _table_bytes(first)["9080"]
    assert _tables(second) == _fresh(changed), "the cache's tables are the pure builder's"


def test_pieces_are_carried_through_a_snapshot_that_kept_the_table() -> None:
    built = Built()
    first = built.cache((*MESH, DETAILS_SE))
    second = built.cache((*MESH, DETAILS_SE, WORKLOAD), first)
    assert built.hosts == []
    changed = (REVIEWS_SE, RATINGS_SE, DETAILS_SE, TO_RATINGS, WORKLOAD)

    third = built.cache(changed, second)

    assert built.hosts == [f"{REVIEWS}:9080"], "details' virtual host came through the snapshot in between"
    assert _tables(third) == _fresh(changed)


def test_a_piece_memo_looks_up_this_snapshot_then_the_previous_then_builds() -> None:
    current: dict[object, object] = {"a": "current a"}
    memo = PieceMemo(current, {"a": "previous a", "b": "previous b"})
    built: list[str] = []

    def build(key: str) -> str:
        built.append(key)
        return f"built {key}"

    assert [memo.get(key, build) for key in ("a", "b", "c", "c")] == ["current a", "previous b", "built c", "built c"]
    assert built == ["c"], "built once per key"
    assert memo.used == ["a", "b", "c", "c"]
    assert current == {"a": "current a", "b": "previous b", "c": "built c"}, "kept for the next snapshot"


def test_the_pure_builder_remembers_nothing() -> None:
    assert _fresh(_with(TO_RATINGS)) == _fresh(_with(TO_RATINGS))
    for module in (routes, port_routes):
        assert not [name for name in vars(module) if name.isupper() and isinstance(getattr(module, name), dict)]


@pytest.mark.parametrize(
    "other",
    [
        {"host": RATINGS},
        {"port": 9081},
        {"namespace": "other"},
        {"domain_suffix": "mesh.internal"},
        {"rules": ()},
        {"service_ports": ServicePorts({REVIEWS: (9080, 9090)})},
    ],
    ids=["host", "port", "namespace", "domain-suffix", "rules", "service-ports"],
)
def test_virtual_host_inputs_differ_in_every_field(other: dict[str, object]) -> None:
    """Every input the builder reads is part of the cache key (the domain suffix and the namespace too, though a
    cache never sees them change: one Pilot has one suffix, one table per namespace)."""
    inputs = routes.VirtualHostInputs(
        host=REVIEWS,
        port=9080,
        namespace="default",
        domain_suffix="cluster.local",
        rules=(TO_V1,),
        service_ports=ServicePorts({REVIEWS: (9080,)}),
    )
    assert inputs == replace(inputs) and hash(inputs) == hash(replace(inputs))
    assert inputs != replace(inputs, **other)  # type: ignore[arg-type]
