"""Which Sidecar applies to a workload: Istio's selection (``PushContext.getSidecarScope``, ``sidecarIndex``).

1. a Sidecar in the workload's namespace whose ``workloadSelector`` matches its labels;
2. else the namespace's Sidecar without a selector;
3. else the root namespace's Sidecar without a selector: the mesh default (its ``.`` means the proxy's namespace).

Istio calls more than one candidate at a level undefined behaviour and its analyzer reports it
(``MultipleSidecarsWithoutSelectors``, ``ConflictingSidecarWorkloadSelectors``); as for PeerAuthentication
(``pilot.model.mtls``) the first in namespace/name order applies here, every time, and the others are reported:
``SidecarIndex.conflicts`` (namespace defaults, seen in the index) and a warning per workload (selectors).
A selector in the root namespace selects root-namespace workloads only, as any selector does.

Each (proxy namespace, Sidecar) pair's egress scope (``pilot.model.sidecar_scope``) is a pure function of the
whole snapshot, memoized on the snapshot itself (``MeshSnapshot.derived``), not here: a snapshot made from another
keeps this index but not what was derived from the other's services.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import structlog

from pilot.config.types import ConfigKey, Labels, Sidecar, labels_match
from pilot.model.mesh_settings import MESH_CONFIG_KIND

__all__ = ["SIDECAR_KIND", "SIDECAR_SCOPE_KIND", "SidecarIndex", "index_sidecars", "scopes_changed", "sidecar_for"]

log = structlog.get_logger(__name__)

SIDECAR_KIND = "Sidecar"
# The "kind" of a change of what some Sidecar scope holds without a Sidecar changing: a VirtualService, a
# RequestAuthentication or MeshConfig changed while Sidecars with egress hosts exist (``scopes_changed``).
SIDECAR_SCOPE_KIND = "SidecarScope"
_SCOPE_INPUTS = frozenset({"VirtualService", "RequestAuthentication", MESH_CONFIG_KIND})

_warned: set[tuple[str, ...]] = set()  # conflicts already logged (snapshots are rebuilt on every change)


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarIndex:
    """The Sidecars of a snapshot by the level they apply at."""

    namespace_defaults: Mapping[str, Sidecar] = field(default_factory=lambda: MappingProxyType({}))
    selecting: Mapping[str, tuple[Sidecar, ...]] = field(default_factory=lambda: MappingProxyType({}))
    root_default: Sidecar | None = None
    # "namespace ns: Sidecars a, b have no workloadSelector; a applies" messages (Istio's analyzer's IST0109)
    conflicts: tuple[str, ...] = ()

    @property
    def scoping(self) -> bool:
        """Whether some Sidecar narrows what proxies see (has egress listeners)."""
        return any(sidecar.egress for sidecar in self.all())

    def all(self) -> tuple[Sidecar, ...]:
        """Every indexed Sidecar (the first namespace default of each namespace, then the selecting ones)."""
        return (*self.namespace_defaults.values(), *(s for found in self.selecting.values() for s in found))

    def get(self, key: ConfigKey | None) -> Sidecar | None:
        """The indexed Sidecar of ``key`` (None for None)."""
        if key is None:
            return None
        if self.root_default is not None and self.root_default.meta.key == key:
            return self.root_default
        default = self.namespace_defaults.get(key.namespace)
        if default is not None and default.meta.key == key:
            return default
        return next((s for s in self.selecting.get(key.namespace, ()) if s.meta.key == key), None)


def index_sidecars(sidecars: Iterable[Sidecar], root_namespace: str) -> SidecarIndex:
    """Index Sidecars given in ConfigKey order."""
    defaults: dict[str, list[Sidecar]] = defaultdict(list)
    selecting: dict[str, list[Sidecar]] = defaultdict(list)
    for sidecar in sidecars:
        level = selecting if sidecar.workload_selector else defaults
        level[sidecar.meta.key.namespace].append(sidecar)
    conflicts = [
        f"namespace {namespace}: Sidecars {', '.join(s.meta.key.name for s in found)} have no workloadSelector; "
        f"{found[0].meta.key.name} applies (the first in name order)"
        for namespace, found in sorted(defaults.items())
        if len(found) > 1
    ]
    for message in conflicts:
        _warn_once(("defaults", message), "sidecar_ignored", reason=message)
    firsts = {namespace: found[0] for namespace, found in sorted(defaults.items())}
    return SidecarIndex(
        namespace_defaults=MappingProxyType(firsts),
        selecting=MappingProxyType({ns: tuple(found) for ns, found in sorted(selecting.items())}),
        root_default=firsts.get(root_namespace),
        conflicts=tuple(conflicts),
    )


def scopes_changed(changed_kinds: frozenset[str], index: SidecarIndex, previous: SidecarIndex | None) -> bool:
    """Whether a change of ``changed_kinds`` can change a Sidecar scope's content (``SIDECAR_SCOPE_KIND``): the
    VirtualServices it admits, the services they route to, and the services the proxies' own filters call
    (MeshConfig's ext_authz providers, RequestAuthentications' JWKS servers)."""
    return bool(changed_kinds & _SCOPE_INPUTS) and (index.scoping or (previous is not None and previous.scoping))


def sidecar_for(index: SidecarIndex, namespace: str, labels: Labels) -> Sidecar | None:
    """The Sidecar that applies to a workload of ``namespace`` with ``labels`` (see the module doc)."""
    matching = [
        s
        for s in index.selecting.get(namespace, ())
        if s.workload_selector and labels_match(s.workload_selector, labels)
    ]
    if matching:
        if len(matching) > 1:
            names = ", ".join(s.meta.key.name for s in matching)
            _warn_once(
                ("selectors", namespace, names),
                "sidecar_ignored",
                reason=f"Sidecars {names} select the same workload; {matching[0].meta.key.name} applies "
                "(the first in name order)",
                namespace=namespace,
            )
        return matching[0]
    return index.namespace_defaults.get(namespace) or index.root_default


def _warn_once(marker: tuple[str, ...], event: str, **fields: str) -> None:
    if marker not in _warned:
        _warned.add(marker)
        log.warning(event, **fields)
