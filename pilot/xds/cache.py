"""Generated resources of one snapshot, serialized once and shared by every proxy that needs them.

For each type, a generator splits a proxy's resources into shared scope groups (``build_scope``, built at most
once per scope and snapshot) and the proxy's own part (``build_proxy``). The cache keys the first on
(type, scope) and the second on the proxy node, within one snapshot; a proxy is resolved once per snapshot.

When a new snapshot's ``changed_kinds`` do not intersect a generator's ``affected_by``, that type is not
regenerated: the previous snapshot's groups and per-proxy results are carried over as the same objects (a proxy's
result only if it resolves to the same workload and service ports). Comparing versions is then free: same
objects, same versions, nothing pushed.

Generation is CPU work: ``view`` may run in worker threads (``asyncio.to_thread``) while the event loop reads
what is already built with ``cached_view``; a lock makes each group and view built once.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping, Sequence

import structlog
from google.protobuf.message import Message

from pilot.generate.registry import Scope, TypeGenerator
from pilot.model import MeshSnapshot, Proxy, ProxyNode, resolve_proxy
from pilot.xds.resources import ProxyResources, Resource, ResourceGroup, make_resource

__all__ = ["ResourceCache"]

log = structlog.get_logger(__name__)


def _same_proxy(a: Proxy, b: Proxy) -> bool:
    """Whether two resolutions of a node (in two snapshots) give a generator the same proxy-level inputs."""
    if a.node != b.node or a.workload != b.workload or len(a.instances) != len(b.instances):
        return False
    return all(
        x.service.host == y.service.host and x.port == y.port and x.target_port == y.target_port
        for x, y in zip(a.instances, b.instances, strict=True)
    )


def _serialize(type_url: str, messages: Sequence[Message], what: str) -> list[Resource]:
    resources: list[Resource] = []
    seen: set[str] = set()
    for message in messages:
        resource = make_resource(message)
        if resource.name in seen:
            log.error("duplicate resource name dropped", type_url=type_url, name=resource.name, built_by=what)
            continue
        seen.add(resource.name)
        resources.append(resource)
    return resources


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
        self._carried: dict[str, dict[ProxyNode, tuple[Proxy, ProxyResources]]] = {}
        reused: list[str] = []
        if previous is not None:
            for type_url, generator in generators.items():
                if previous.generators.get(type_url) is not generator or snapshot.changed_kinds & generator.affected_by:
                    continue
                reused.append(type_url)
                self._groups[type_url] = dict(previous._groups[type_url])
                carried = dict(previous._carried.get(type_url, {}))
                for node, view in list(previous._views[type_url].items()):
                    carried[node] = (previous._proxies[node], view)
                if keep is not None:
                    carried = {node: entry for node, entry in carried.items() if node in keep}
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

    def _resolve(self, node: ProxyNode) -> Proxy:
        proxy = self._proxies.get(node)
        if proxy is None:  # resolution is pure: a race resolves twice and keeps the first
            proxy = self._proxies.setdefault(node, resolve_proxy(node, self.snapshot))
        return proxy

    def _group(self, type_url: str, scope: Scope) -> ResourceGroup:
        groups = self._groups[type_url]
        group = groups.get(scope)
        if group is None:
            messages = self.generators[type_url].build_scope(scope, self.snapshot)
            group = ResourceGroup.of(_serialize(type_url, messages, f"scope {scope!r}"))
            groups[scope] = group
        return group

    def _build_view(self, type_url: str, node: ProxyNode) -> ProxyResources:
        proxy = self._resolve(node)
        carried = self._carried.get(type_url, {}).get(node)
        if carried is not None and _same_proxy(carried[0], proxy):
            return carried[1]
        generator = self.generators[type_url]
        groups = [self._group(type_url, scope) for scope in generator.scopes(proxy)]
        own = _serialize(type_url, generator.build_proxy(proxy, self.snapshot), f"proxy {node.id}")
        if own:
            groups.append(ResourceGroup.of(own))
        view = ProxyResources.of(groups)
        if not view.resources.unique:
            log.error("resource names collide between scopes; first kept", type_url=type_url, proxy=node.id)
        return view
