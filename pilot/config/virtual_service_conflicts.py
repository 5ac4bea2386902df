"""Conflicts between VirtualServices for the same host, checked by the store over what is about to be accepted.

Istio merges several VirtualServices for one host on gateways only (on sidecars the oldest wins and the others are
ignored); meshplane merges them on sidecars as well (``pilot.model.virtual_service_merge``): their HTTP routes in
order, oldest (namespace/name order) first. Two of them conflict, and one is rejected with an error naming both,
when they are bound to a common gateway (``mesh`` when none is listed), name the same host (after short names are
resolved) and

- the earlier has an HTTP route without matches (a catch-all) while the later has HTTP routes: they would never
  be used;
- both have an HTTP match with the same conditions (names aside): the later one would never be used;
- both have ``tcp`` routes, or both ``tls`` routes (Envoy's filter chains cannot take the same match twice, and
  which rule would win is not what a reader of either can tell);

and some namespace sees both (their ``exportTo`` overlap).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Iterator

from pilot.config.host_conflicts import HostConflict
from pilot.config.hosts import resolve_host
from pilot.config.types import HTTPMatchRequest, VirtualService, key_order

__all__ = ["VirtualServiceConflict", "virtual_service_conflicts"]

_MESH = "mesh"


VirtualServiceConflict = HostConflict[VirtualService]


def virtual_service_conflicts(
    services: Iterable[VirtualService], domain_suffix: str
) -> Iterator[VirtualServiceConflict]:
    """Every conflict among ``services``, each pair once, the earlier by ConfigKey order first."""
    groups: dict[tuple[str, str], list[VirtualService]] = defaultdict(list)
    for vs in sorted(services, key=lambda v: key_order(v.meta.key)):
        for gateway in vs.gateways or (_MESH,):
            for host in dict.fromkeys(resolve_host(h, vs.meta.key.namespace, domain_suffix) for h in vs.hosts):
                groups[(gateway, host)].append(vs)
    seen: set[tuple[object, object]] = set()
    for (_, host), group in sorted(groups.items()):
        for later_index, later in enumerate(group):
            for earlier in group[:later_index]:
                pair = (earlier.meta.key, later.meta.key)
                if pair in seen:
                    continue
                conflict = _conflict(earlier, later, host)
                if conflict is not None:
                    seen.add(pair)
                    yield conflict


def _visible_together(first: VirtualService, second: VirtualService) -> bool:
    """Whether some namespace sees both (Istio's ``exportTo``: none or ``*``: everywhere; ``.``: its own; ``~``:
    nowhere)."""
    one, other = _export_namespaces(first), _export_namespaces(second)
    if one is None or other is None:
        return bool(one if other is None else other) or (one is None and other is None)
    return bool(one & other)


def _export_namespaces(vs: VirtualService) -> frozenset[str] | None:
    """The namespaces ``vs`` is exported to; None: all of them."""
    export_to = vs.export_to
    if not export_to or "*" in export_to:
        return None
    own = vs.meta.key.namespace
    return frozenset(own if entry == "." else entry for entry in export_to if entry != "~")


def _conflict(earlier: VirtualService, later: VirtualService, host: str) -> VirtualServiceConflict | None:
    if not _visible_together(earlier, later):
        return None
    base = VirtualServiceConflict(earlier=earlier, later=later, host=host, path=(), earlier_path=(), reason="")
    for index, http in enumerate(earlier.http):
        if not http.match and later.http:
            return dataclasses.replace(
                base,
                path=("spec", "http"),
                earlier_path=("spec", "http", index),
                reason="that route has no match (it takes every request), so these routes would never be used",
            )
    seen = {_conditions(m): (i, j) for i, http in enumerate(earlier.http) for j, m in enumerate(http.match)}
    for i, http in enumerate(later.http):
        for j, match in enumerate(http.match):
            found = seen.get(_conditions(match))
            if found is not None:
                return dataclasses.replace(
                    base,
                    path=("spec", "http", i, "match", j),
                    earlier_path=("spec", "http", found[0], "match", found[1]),
                    reason="both have this match, so this one would never be used",
                )
    for kind in ("tcp", "tls"):
        if getattr(earlier, kind) and getattr(later, kind):
            return dataclasses.replace(
                base,
                path=("spec", kind),
                earlier_path=("spec", kind),
                reason=f"both have {kind} routes: only one VirtualService per host may route {kind}",
            )
    return None


def _conditions(match: HTTPMatchRequest) -> str:
    """A match without its name (and stat prefix): what decides which requests it takes (its maps are sorted, so
    equal conditions have equal representations)."""
    return repr(dataclasses.replace(match, name="", stat_prefix=""))
