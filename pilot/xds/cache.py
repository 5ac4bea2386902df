"""Generated resources of one snapshot, serialized once and shared by every proxy that needs them.

For each type, a generator splits a proxy's resources into shared scope groups (``build_scope``, built at most
once per scope and snapshot) and the proxy's own part (``build_proxy``). The cache keys the first on
(type, scope) and the second on the proxy node, within one snapshot; a proxy is resolved once per snapshot.

When a new snapshot's ``changed_kinds`` do not intersect a generator's ``affected_by``, that type is not
regenerated: the previous snapshot's groups are carried over as the same objects, and so are the per-proxy results
unless a kind that proxy resolution reads changed (``RESOLUTION_KINDS``: a proxy's workload and service ports are
then the same, and so is everything its own part is built from). Comparing versions is then free: same objects,
same versions, nothing pushed. The real generators all list the registry kinds in ``affected_by``, so for them a
type is either regenerated or wholly carried over.

A part built from pieces (``ScopeParts.build_from_pieces``: a route table's virtual hosts) takes each piece from
this snapshot's or the previous one's pieces by its inputs (``pilot.generate.pieces``): a table rebuilt for one
changed VirtualService rebuilds that one virtual host. The pieces of the parts a snapshot uses are carried to the
next; the others are dropped with the previous snapshot.

For the groups that were rebuilt, ``prepare_changes`` (worker thread) computes once which names differ from the
previous snapshot's group of the same scope (``changes.py``); streams look that up instead of comparing every name.
``dangling`` checks that what a proxy's clusters and listeners reference exists (``consistency.py``).

Generation is CPU work: ``view`` may run in worker threads (``asyncio.to_thread``) while the event loop reads
what is already built with ``cached_view``; a lock makes each group and view built once.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import structlog
from google.protobuf.message import Message

from pilot.generate.pieces import PieceMemo
from pilot.generate.registry import Scope, ScopeParts, TypeGenerator
from pilot.model import MeshSnapshot, Proxy, ProxyNode, resolve_proxy
from pilot.xds.consistency import REFERENCED_TYPES, Dangling, ReferenceCheck, references
from xdscore.changes import ChangeMemo, ResourceChanges
from xdscore.resources import ProxyResources, Resource, ResourceGroup, make_resource

__all__ = ["RESOLUTION_KINDS", "ResourceCache"]

log = structlog.get_logger(__name__)

# The config kinds ``resolve_proxy`` reads (snapshot.workloads and snapshot.instances): while none of them changes,
# every node resolves to an equal Proxy, except for ``Proxy.source_labels``, which also follows VirtualServices'
# sourceLabels; only routes read it, and RDS lists VirtualService in ``affected_by``, so its views are never carried
# over a VirtualService change (the route scope includes the source labels: see ``routes.route_scopes``).
# Sidecar: ``Proxy.sidecar``; EnvoyFilter: ``Proxy.envoy_filter_patches``
RESOLUTION_KINDS = frozenset({"ServiceEntry", "WorkloadEntry", "Sidecar", "EnvoyFilter"})


def _group_of(type_url: str, messages: Sequence[Message], what: str) -> ResourceGroup:
    """Serialize generated messages into one group, with the names they reference (duplicates dropped)."""
    resources: dict[str, Resource] = {}
    for message in messages:
        resource = make_resource(message)
        if resource.name in resources:
            log.error("duplicate resource name dropped", type_url=type_url, name=resource.name, built_by=what)
            continue
        resources[resource.name] = resource
    referenced: Iterator[str] = (name for message in messages for name in references(message))
    return ResourceGroup.of(resources.values(), referenced if type_url in REFERENCED_TYPES else ())


class ResourceCache:
    """The serialized resources of one ``MeshSnapshot``, per type, per scope and per proxy."""

    def __init__(
        self,
        snapshot: MeshSnapshot,
        generators: Mapping[str, TypeGenerator],
        *,
        previous: ResourceCache | None = None,
        keep: Collection[ProxyNode] | None = None,
        changed_at: float | None = None,
    ) -> None:
        """``keep``: the nodes whose previous results are worth carrying over (the connected ones; default all).
        ``changed_at``: monotonic time of the first config change this snapshot includes (convergence metric)."""
        self.snapshot = snapshot
        self.generators = generators
        self.changed_at = changed_at
        self._lock = threading.Lock()
        self._proxies: dict[ProxyNode, Proxy] = {}
        self._groups: dict[str, dict[Scope, ResourceGroup]] = {t: {} for t in generators}
        self._views: dict[str, dict[ProxyNode, ProxyResources]] = {t: {} for t in generators}
        self._carried: dict[str, dict[ProxyNode, ProxyResources]] = {}
        self._previous_groups = dict(previous._groups) if previous is not None else {}  # until prepare_changes
        # Types built from parts (``ScopeParts``): each part by its inputs, and each scope's group by the inputs of
        # all its parts, as used by this snapshot; the previous snapshot's are looked up until prepare_changes.
        self._parts: dict[str, dict[Hashable, Message]] = {t: {} for t in generators}
        self._assembled: dict[str, dict[Scope, tuple[tuple[Hashable, ...], ResourceGroup]]] = {
            t: {} for t in generators
        }
        self._previous_parts = dict(previous._parts) if previous is not None else {}
        self._previous_assembled = dict(previous._assembled) if previous is not None else {}
        # Parts built from pieces (``ScopeParts.build_from_pieces``): the pieces by their inputs, and each part's
        # piece keys, so that a part carried over carries its pieces too (and nothing else stays alive).
        self._pieces: dict[str, dict[Hashable, Any]] = {t: {} for t in generators}
        self._part_pieces: dict[str, dict[Hashable, tuple[Hashable, ...]]] = {t: {} for t in generators}
        self._previous_pieces = dict(previous._pieces) if previous is not None else {}
        self._previous_part_pieces = dict(previous._part_pieces) if previous is not None else {}
        self._changes = ChangeMemo()
        self._references = ReferenceCheck()
        self._dangling: dict[ProxyNode, Dangling] = {}
        reused: list[str] = []
        if previous is not None:
            same_proxies = not snapshot.changed_kinds & RESOLUTION_KINDS
            for type_url, generator in generators.items():
                if previous.generators.get(type_url) is not generator or snapshot.changed_kinds & generator.affected_by:
                    continue
                reused.append(type_url)
                self._groups[type_url] = dict(previous._groups[type_url])
                self._parts[type_url] = dict(previous._parts.get(type_url, {}))
                self._assembled[type_url] = dict(previous._assembled.get(type_url, {}))
                self._pieces[type_url] = dict(previous._pieces.get(type_url, {}))
                self._part_pieces[type_url] = dict(previous._part_pieces.get(type_url, {}))
                if not same_proxies:
                    continue  # the shared groups are still valid; each proxy's own part is rebuilt
                carried = {**previous._carried.get(type_url, {}), **previous._views[type_url]}
                if keep is not None:
                    carried = {node: view for node, view in carried.items() if node in keep}
                self._carried[type_url] = carried
        self.reused_types = frozenset(reused)

    @property
    def version(self) -> int:
        return self.snapshot.version

    def proxy(self, node: ProxyNode) -> Proxy:
        """The node resolved against this snapshot (once). Cheap, and never waits for generation."""
        return self._resolve(node)

    def cached_view(self, type_url: str, node: ProxyNode) -> ProxyResources | None:
        """What ``view`` returns, if it is already built: safe and cheap to call on the event loop."""
        return self._views[type_url].get(node)

    def view(self, type_url: str, node: ProxyNode) -> ProxyResources:
        """The proxy's resources of one type, built (CPU work) if needed."""
        built = self._views[type_url].get(node)
        if built is not None:
            return built
        with self._lock:
            built = self._views[type_url].get(node)
            if built is None:
                built = self._build_view(type_url, node)
                self._views[type_url][node] = built
            return built

    def resources_for(self, type_url: str, proxy: Proxy) -> Mapping[str, Resource]:
        """The proxy's resources of one type, by name (``proxy`` as resolved by ``self.proxy(node)``)."""
        return self.view(type_url, proxy.node).resources

    def warm(self, nodes: Iterable[ProxyNode]) -> None:
        """Build every type for these nodes now (in the pusher's worker thread) so that streams only look up."""
        for node in nodes:
            for type_url in self.generators:
                self.view(type_url, node)

    def scope_group(self, type_url: str, scope: Scope) -> ResourceGroup:
        with self._lock:
            return self._group(type_url, scope)

    def prepare_changes(self) -> None:
        """For every scope group rebuilt since the previous snapshot, compute which names changed (CPU work, in the
        pusher's worker thread, after ``warm``) so that streams only look them up. Releases the previous groups."""
        previous, self._previous_groups = self._previous_groups, {}
        self._previous_parts, self._previous_assembled = {}, {}
        self._previous_pieces, self._previous_part_pieces = {}, {}
        for type_url, groups in previous.items():
            for scope, group in list(self._groups.get(type_url, {}).items()):
                old = groups.get(scope)
                if old is not None:
                    self._changes.prepare(old, group)

    def changes(self, since: ProxyResources, current: ProxyResources) -> ResourceChanges | None:
        """How ``current`` (a view of this snapshot) differs from ``since`` (what a stream was last planned against);
        None when only comparing every name can tell. Cheap when ``prepare_changes`` covered the pair of groups."""
        return self._changes.between(since, current)

    def dangling(self, node: ProxyNode) -> Dangling:
        """What the node's clusters and listeners reference that it would not be served (empty: consistent), by
        referenced type. Builds the node's views if needed (CPU work); checked once per node."""
        found = self._dangling.get(node)
        if found is not None:
            return found
        missing: dict[str, tuple[str, ...]] = {}
        for type_url, target_type in REFERENCED_TYPES.items():
            if type_url not in self.generators or target_type not in self.generators:
                continue
            target = self.view(target_type, node)
            names: set[str] = set()
            for group in self.view(type_url, node).groups:
                names.update(self._references.missing(group, target))
            if names:
                missing[target_type] = tuple(sorted(names))
        return self._dangling.setdefault(node, MappingProxyType(missing))

    def cached_dangling(self, node: ProxyNode) -> Dangling | None:
        """What ``dangling`` returns, if it was already checked: cheap on the event loop."""
        return self._dangling.get(node)

    def _resolve(self, node: ProxyNode) -> Proxy:
        proxy = self._proxies.get(node)
        if proxy is None:  # resolution is pure: a race resolves twice and keeps the first
            proxy = self._proxies.setdefault(node, resolve_proxy(node, self.snapshot))
        return proxy

    def _group(self, type_url: str, scope: Scope) -> ResourceGroup:
        groups = self._groups[type_url]
        group = groups.get(scope)
        if group is None:
            parts = self.generators[type_url].parts
            if parts is not None:
                group = self._assembled_group(type_url, scope, parts)
            else:
                messages = self.generators[type_url].build_scope(scope, self.snapshot)
                group = _group_of(type_url, messages, f"scope {scope!r}")
            groups[scope] = group
        return group

    def _assembled_group(self, type_url: str, scope: Scope, parts: ScopeParts) -> ResourceGroup:
        """The scope's group from memoized parts: the previous snapshot's very group when every part's inputs are
        equal (the same bytes objects: nothing to compare, nothing to push), else reassembled from the parts, each
        built only when no equal inputs were built before."""
        inputs = tuple(parts.inputs(scope, self.snapshot))
        before = self._previous_assembled.get(type_url, {}).get(scope)
        if before is not None and before[0] == inputs:
            group = before[1]
            previous, memo = self._previous_parts.get(type_url, {}), self._parts[type_url]
            for part in inputs:  # for the next snapshot
                if part in previous:
                    memo[part] = previous[part]
                    self._carry_pieces(type_url, part)
        else:
            built = [self._part(type_url, parts, part) for part in inputs]
            group = _group_of(type_url, parts.assemble(scope, built), f"scope {scope!r}")
        self._assembled[type_url][scope] = (inputs, group)
        return group

    def _part(self, type_url: str, parts: ScopeParts, inputs: Hashable) -> Message:
        memo = self._parts[type_url]
        built = memo.get(inputs)
        if built is None:
            built = self._previous_parts.get(type_url, {}).get(inputs)
            if built is not None:
                self._carry_pieces(type_url, inputs)
            elif parts.build_from_pieces is not None:
                pieces = PieceMemo(self._pieces[type_url], self._previous_pieces.get(type_url, {}))
                built = parts.build_from_pieces(inputs, pieces)
                self._part_pieces[type_url][inputs] = tuple(pieces.used)
            else:
                built = parts.build(inputs)
            memo[inputs] = built
        return built

    def _carry_pieces(self, type_url: str, part: Hashable) -> None:
        """A part of the previous snapshot kept as it is: its pieces stay known for the next rebuild of it."""
        keys = self._previous_part_pieces.get(type_url, {}).get(part)
        if keys is None:
            return
        previous, current = self._previous_pieces.get(type_url, {}), self._pieces[type_url]
        for key in keys:
            if key in previous:
                current[key] = previous[key]
        self._part_pieces[type_url][part] = keys

    def _build_view(self, type_url: str, node: ProxyNode) -> ProxyResources:
        carried = self._carried.get(type_url, {}).get(node)
        if carried is not None:
            return carried
        proxy = self._resolve(node)
        generator = self.generators[type_url]
        groups = [self._group(type_url, scope) for scope in generator.scopes(proxy)]
        own = _group_of(type_url, generator.build_proxy(proxy, self.snapshot), f"proxy {node.id}")
        if own.resources:
            groups.append(own)
        view = ProxyResources.of(groups)
        if not view.resources.unique:
            log.error("resource names collide between scopes; first kept", type_url=type_url, proxy=node.id)
        return view
