"""A proxy's route tables served over VHDS: the tables without virtual hosts (RDS), the virtual hosts (VHDS).

For a delta stream with VHDS on (Pilot's ``--vhds``, the default), each group of serialized route tables the
resource cache built is split (``VhdsSplits``, memoized by content over two snapshots): its tables in VHDS
form, and per table a group of its virtual hosts (``pilot.generate.vhds``). A proxy's VHDS view
is then the split of each of its RDS groups; what a stream is served of the VirtualHost type is the groups of the
tables it subscribed to (``VhdsView.subscribed``, shared by every stream with the same subscription), planned by
namespace (``xdscore.plan.plan_delta``). A VirtualService change changes one virtual host: its table's VHDS group
differs by that one name, the stripped table not at all, so one virtual host is pushed and no RDS.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.any_pb2 import Any as AnyProto

from pilot.generate.vhds import vhds_route_table
from xdscore.resources import EMPTY_GROUP, ProxyResources, Resource, ResourceGroup, make_resource

__all__ = ["RouteGroupSplit", "VhdsSplits", "VhdsView", "split_route_table"]


@dataclass(frozen=True, slots=True)
class RouteGroupSplit:
    """One group of route tables in VHDS form."""

    routes: ResourceGroup  # the tables without virtual hosts
    virtual_hosts: Mapping[str, ResourceGroup]  # table name -> its virtual hosts


def _group_key(group: ResourceGroup) -> tuple[str, ...]:
    return tuple(resource.version for resource in group.resources.values())  # sorted by name (ResourceGroup.of)


def split_route_table(resource: Resource) -> tuple[Resource, ResourceGroup]:
    """One serialized table in VHDS form: parsed once, its parts serialized (CPU work)."""
    table = RouteConfiguration.FromString(AnyProto.FromString(resource.any_bytes).value)
    stripped, hosts = vhds_route_table(table)
    return make_resource(stripped), ResourceGroup.of(make_resource(host) for host in hosts)


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class VhdsSplits:
    """Route tables and groups of them in VHDS form, by content (resource versions are content hashes): a table or
    group that did not change between snapshots gets the very same split objects, so comparing them costs nothing.

    Two generations: what the snapshot being served used, and what the one before it used. ``next_snapshot`` (the
    server calls it when it serves a new snapshot) makes the current generation the previous one; a split found in
    the previous generation moves to the current one, so what no stream asked for since the last snapshot but one
    is dropped. Safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # a group being split, by key: streams asking for the same one wait and share it (others go on)
        self._splitting: dict[tuple[str, ...], threading.Lock] = {}
        self._tables: tuple[dict[str, tuple[Resource, ResourceGroup]], ...] = ({}, {})  # (current, previous)
        self._groups: tuple[dict[tuple[str, ...], RouteGroupSplit], ...] = ({}, {})
        self._views: tuple[dict[tuple[int, ...], VhdsView], ...] = ({}, {})  # by the identities of their splits

    def next_snapshot(self) -> None:
        with self._lock:
            self._tables = ({}, self._tables[0])
            self._groups = ({}, self._groups[0])
            self._views = ({}, self._views[0])

    def view(self, routes: ProxyResources) -> VhdsView:
        """The VHDS form of a proxy's RDS view: shared by every proxy whose tables are the same (CPU work when a
        group was not split yet: call it in a worker thread)."""
        return self._view([self.group(group) for group in routes.groups])

    def cached_view(self, routes: ProxyResources) -> VhdsView | None:
        """``view``, if every group is already split (cheap: safe on the event loop); else None."""
        parts = []
        for group in routes.groups:
            part = self._find(self._groups, _group_key(group))
            if part is None:
                return None
            parts.append(part)
        return self._view(parts)

    def _view(self, parts: list[RouteGroupSplit]) -> VhdsView:
        key = tuple(map(id, parts))  # the view holds its parts, so their identities stay theirs while it is kept
        found = self._find(self._views, key)
        return found if found is not None else self._keep(self._views, key, VhdsView.of(parts))

    def group(self, group: ResourceGroup) -> RouteGroupSplit:
        key = _group_key(group)
        found = self._find(self._groups, key)
        if found is not None:
            return found
        with self._lock:
            splitting = self._splitting.setdefault(key, threading.Lock())
        with splitting:
            found = self._find(self._groups, key)
            if found is not None:
                return found
            tables = [self.table(resource) for resource in group.resources.values()]
            split = RouteGroupSplit(
                ResourceGroup.of((stripped for stripped, _ in tables), group.references),
                MappingProxyType({name: hosts for name, (_, hosts) in zip(group.resources, tables, strict=True)}),
            )
            kept = self._keep(self._groups, key, split)
        with self._lock:
            self._splitting.pop(key, None)
        return kept

    def table(self, resource: Resource) -> tuple[Resource, ResourceGroup]:
        found = self._find(self._tables, resource.version)
        if found is not None:
            return found
        return self._keep(self._tables, resource.version, split_route_table(resource))

    def _find(self, generations: tuple[dict[_K, _V], ...], key: _K) -> _V | None:
        with self._lock:
            current, previous = generations
            found = current.get(key)
            if found is None:
                found = previous.get(key)
                if found is not None:
                    current[key] = found
            return found

    def _keep(self, generations: tuple[dict[_K, _V], ...], key: _K, value: _V) -> _V:
        """Keep ``value`` unless another thread stored one first (then that one: the same content, one object)."""
        with self._lock:
            return generations[0].setdefault(key, value)


@dataclass(eq=False)
class VhdsView:
    """A proxy's route tables in VHDS form (``VhdsSplits.view``: one object for every proxy with the same tables)."""

    routes: ProxyResources
    virtual_hosts: Mapping[str, ResourceGroup]  # every table of the proxy -> its virtual hosts
    parts: tuple[RouteGroupSplit, ...]  # what it was assembled from (kept alive: ``VhdsSplits`` keys views by them)
    _subscribed: dict[frozenset[str], ProxyResources] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, parts: list[RouteGroupSplit]) -> VhdsView:
        """A proxy's RDS groups, split (``VhdsSplits.view``)."""
        virtual_hosts: dict[str, ResourceGroup] = {}
        for part in parts:
            for name, hosts in part.virtual_hosts.items():
                virtual_hosts.setdefault(name, hosts)  # the first group holding a name wins, as in MergedResources
        routes = ProxyResources.of(part.routes for part in parts)
        return cls(routes, MappingProxyType(virtual_hosts), tuple(parts))

    def subscribed(self, tables: frozenset[str]) -> ProxyResources:
        """The virtual hosts of the subscribed tables (the same object for the same subscription, so that an
        unchanged view costs a stream nothing)."""
        found = self._subscribed.get(tables)
        if found is None:
            groups = [self.virtual_hosts.get(name, EMPTY_GROUP) for name in sorted(tables)]
            with self._lock:
                found = self._subscribed.setdefault(tables, ProxyResources.of(groups))
        return found
