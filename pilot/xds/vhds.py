"""A proxy's route tables served over VHDS: the tables without virtual hosts (RDS), the virtual hosts (VHDS).

For a delta stream with VHDS on (Pilot's ``--vhds``, the default), each group of serialized route tables the
resource cache built is split (``VhdsSplits``, memoized by content for the server's lifetime): its tables in VHDS
form, and per table a group of its virtual hosts (``pilot.generate.vhds``). A proxy's VHDS view
is then the split of each of its RDS groups; what a stream is served of the VirtualHost type is the groups of the
tables it subscribed to (``VhdsView.subscribed``, shared by every stream with the same subscription), planned by
namespace (``xdscore.plan.plan_delta``). A VirtualService change changes one virtual host: its table's VHDS group
differs by that one name, the stripped table not at all, so one virtual host is pushed and no RDS.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
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


def split_route_table(resource: Resource) -> tuple[Resource, ResourceGroup]:
    """One serialized table in VHDS form: parsed once, its parts serialized (CPU work)."""
    table = RouteConfiguration.FromString(AnyProto.FromString(resource.any_bytes).value)
    stripped, hosts = vhds_route_table(table)
    return make_resource(stripped), ResourceGroup.of(make_resource(host) for host in hosts)


class VhdsSplits:
    """Route tables and groups of them in VHDS form, by content (resource versions are content hashes), for the
    server's lifetime: a table or group that did not change between snapshots gets the very same split objects,
    so comparing them costs nothing. Bounded (least recently used dropped); safe to use from several threads."""

    def __init__(self, *, max_tables: int = 4096, max_groups: int = 1024) -> None:
        self._lock = threading.Lock()
        self._tables: OrderedDict[str, tuple[Resource, ResourceGroup]] = OrderedDict()
        self._groups: OrderedDict[tuple[str, ...], RouteGroupSplit] = OrderedDict()
        self._max_tables = max_tables
        self._max_groups = max_groups

    def group(self, group: ResourceGroup) -> RouteGroupSplit:
        key = tuple(resource.version for resource in group.resources.values())  # sorted by name (ResourceGroup.of)
        with self._lock:
            found = _recent(self._groups, key)
        if found is not None:
            return found
        tables = [self.table(resource) for resource in group.resources.values()]
        split = RouteGroupSplit(
            ResourceGroup.of((stripped for stripped, _ in tables), group.references),
            MappingProxyType({name: hosts for name, (_, hosts) in zip(group.resources, tables, strict=True)}),
        )
        with self._lock:
            return _remember(self._groups, key, split, self._max_groups)

    def table(self, resource: Resource) -> tuple[Resource, ResourceGroup]:
        with self._lock:
            found = _recent(self._tables, resource.version)
        if found is not None:
            return found
        split = split_route_table(resource)
        with self._lock:
            return _remember(self._tables, resource.version, split, self._max_tables)


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


def _recent(entries: OrderedDict[_K, _V], key: _K) -> _V | None:
    found = entries.get(key)
    if found is not None:
        entries.move_to_end(key)
    return found


def _remember(entries: OrderedDict[_K, _V], key: _K, value: _V, limit: int) -> _V:
    """Keep ``value`` unless another thread stored one first (then that one: the same content, one object)."""
    kept = entries.setdefault(key, value)
    entries.move_to_end(key)
    while len(entries) > limit:
        entries.popitem(last=False)
    return kept


@dataclass(eq=False)
class VhdsView:
    """One proxy's route tables in VHDS form, in one snapshot (``ResourceCache.vhds_view``)."""

    routes: ProxyResources
    virtual_hosts: Mapping[str, ResourceGroup]  # every table of the proxy -> its virtual hosts
    _subscribed: dict[frozenset[str], ProxyResources] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, routes: ProxyResources, splits: VhdsSplits) -> VhdsView:
        """The VHDS form of a proxy's RDS view (its groups split, each once per content)."""
        parts = [splits.group(group) for group in routes.groups]
        virtual_hosts: dict[str, ResourceGroup] = {}
        for part in parts:
            for name, hosts in part.virtual_hosts.items():
                virtual_hosts.setdefault(name, hosts)  # the first group holding a name wins, as in MergedResources
        return cls(ProxyResources.of(part.routes for part in parts), MappingProxyType(virtual_hosts))

    def subscribed(self, tables: frozenset[str]) -> ProxyResources:
        """The virtual hosts of the subscribed tables (the same object for the same subscription, so that an
        unchanged view costs a stream nothing)."""
        found = self._subscribed.get(tables)
        if found is None:
            groups = [self.virtual_hosts.get(name, EMPTY_GROUP) for name in sorted(tables)]
            with self._lock:
                found = self._subscribed.setdefault(tables, ProxyResources.of(groups))
        return found
