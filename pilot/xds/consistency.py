"""Snapshot consistency (go-control-plane's ``Snapshot.Consistent``): every EDS and RDS name that a proxy's clusters
and listeners point at is in what the proxy can be served of that type.

Envoy keeps an EDS cluster warming until its ClusterLoadAssignment arrives, and a listener waits for its RDS route
table (both give up only after the initial fetch timeout): a dangling reference is a generator bug, and a snapshot
that has one is not served. References are read from the generated messages once (``references``) and kept on
their ``ResourceGroup``; a proxy is checked once per snapshot (``ResourceCache.dangling``), and the large shared
groups once per combination of groups (``ReferenceCheck``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from google.protobuf.message import Message

from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from xdscore.resources import TYPE_URL_PREFIX, ProxyResources, ResourceGroup

__all__ = ["REFERENCED_TYPES", "Dangling", "InconsistentSnapshotError", "ReferenceCheck", "references"]

# type URL -> the type URL its resources reference by name
REFERENCED_TYPES: Mapping[str, str] = MappingProxyType({CLUSTER_TYPE: ENDPOINT_TYPE, LISTENER_TYPE: ROUTE_TYPE})

Dangling = Mapping[str, tuple[str, ...]]  # referenced type URL -> the referenced names that do not exist, sorted

_HCM_TYPE = TYPE_URL_PREFIX + HttpConnectionManager.DESCRIPTOR.full_name
_MEMO_MIN_SIZE = 64  # groups with fewer references (a proxy's own part) are checked directly, not remembered


def references(message: Message) -> Iterator[str]:
    """The names a resource needs of its ``REFERENCED_TYPES`` type: an EDS cluster's ClusterLoadAssignment, the
    RDS route tables of a listener's HTTP connection managers. Nothing for other messages."""
    if isinstance(message, Cluster):
        if message.type == Cluster.EDS:
            yield message.eds_cluster_config.service_name or message.name
    elif isinstance(message, Listener):
        chains = [*message.filter_chains]
        if message.HasField("default_filter_chain"):
            chains.append(message.default_filter_chain)
        for chain in chains:
            for network in chain.filters:
                if network.typed_config.type_url == _HCM_TYPE:
                    manager = HttpConnectionManager.FromString(network.typed_config.value)
                    if manager.HasField("rds"):
                        yield manager.rds.route_config_name


class InconsistentSnapshotError(Exception):
    """A snapshot whose resources reference EDS/RDS names that the proxies would not be served: not served."""

    def __init__(self, version: int, dangling: Mapping[str, Dangling]) -> None:
        """``dangling``: per proxy node id, what it would miss."""
        self.version = version
        self.dangling = dangling
        missing: dict[str, set[str]] = {}
        for found in dangling.values():
            for type_url, names in found.items():
                missing.setdefault(type_url, set()).update(names)
        self.missing: Dangling = {type_url: tuple(sorted(names)) for type_url, names in sorted(missing.items())}
        described = "; ".join(f"{t.rsplit('.', 1)[-1]}: {', '.join(n)}" for t, n in self.missing.items())
        super().__init__(
            f"snapshot {version} references resources it does not have ({described}) for {len(dangling)} proxies"
        )


class ReferenceCheck:
    """Which references of a group a proxy's resources of the referenced type lack, memoized per (group, groups
    of the referenced type) for large groups; safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked: dict[tuple[int, ...], tuple[ResourceGroup, ProxyResources, frozenset[str]]] = {}

    def missing(self, group: ResourceGroup, target: ProxyResources) -> frozenset[str]:
        if not group.references:
            return frozenset()
        if len(group.references) < _MEMO_MIN_SIZE:
            return frozenset(name for name in group.references if name not in target.resources)
        key = (id(group), *map(id, target.groups))
        entry = self._checked.get(key)
        if entry is None:
            with self._lock:
                entry = self._checked.get(key)
                if entry is None:
                    found = frozenset(name for name in group.references if name not in target.resources)
                    entry = self._checked[key] = (group, target, found)  # keeps the keyed objects alive
        return entry[2]
