"""What to send a stream for one type: pure functions from (state, the proxy's current resources) to a response.

SotW: CDS/LDS (wildcard) responses carry the proxy's whole set, and are sent only when its type version changed;
EDS/RDS (named) responses carry the subscribed names that exist: all of them when the proxy asked, only the changed
ones on a push (Envoy keeps the others), except for types planned with ``every_watched`` (SDS), whose responses
always carry every watched resource that exists and are never empty. Delta: only resources whose version differs
from what the proxy has, plus ``removed_resources`` for names that disappeared (or, for named types, that were
subscribed but do not exist).

Each planner returns the response to send (``None``: nothing to send) and the state as it will be once sent.

A push passes ``changes`` (``changes.py``): how the proxy's resources differ from those the watch was last planned
against, its names unchanged since. The planner then only looks at the changed names the proxy watches, and sorts
only what it sends. When the proxy had all of its previous set (``sent`` is that set's ``versions``) and watches
every name of the new one, its new state is the new set's ``versions``: nothing is copied per proxy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from xdscore.changes import ResourceChanges
from xdscore.resources import ProxyResources, Resource, entry_digest, format_version
from xdscore.watch import WatchedResource

__all__ = ["DeltaResponse", "SotwResponse", "forget_sent", "plan_delta", "plan_sotw"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SotwResponse:
    version: str
    nonce: str
    resources: tuple[Resource, ...] | None  # None: the proxy's whole set (use ProxyResources.sotw_bodies)
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaResponse:
    version: str
    nonce: str
    resources: tuple[Resource, ...] | None  # None: the proxy's whole set (use ProxyResources.delta_bodies)
    removed: tuple[str, ...]


def plan_sotw(
    watch: WatchedResource,
    current: ProxyResources,
    *,
    nonce: str,
    full: bool,
    changes: ResourceChanges | None = None,
    every_watched: bool = False,
) -> tuple[SotwResponse | None, WatchedResource]:
    """``full``: the proxy asked (initial request, new names), so answer with everything it watches.
    ``changes``: a push's changes since the watch was last planned (see the module doc); ignored when ``full``.
    ``every_watched`` (named types): every response carries every watched resource that exists, and no response
    carries none (see ``ResourceProducer.every_watched``)."""
    if every_watched and not watch.wildcard:
        return _sotw_every_watched(watch, current, nonce=nonce, full=full)
    if not watch.wildcard and not full and changes is not None:
        return _sotw_changes(watch, current, changes, nonce=nonce)
    if watch.wildcard:
        if not full and watch.nonce_sent and current.version == watch.version_sent:
            return None, watch
        response = SotwResponse(version=current.version, nonce=nonce, resources=None, count=len(current.resources))
        return response, _sent_whole(watch, current, nonce)
    available = current.resources
    if full:
        names = watch.names
        if all(names.issuperset(group.resources) for group in current.groups):  # e.g. EDS: all of CDS's clusters
            response = SotwResponse(version=current.version, nonce=nonce, resources=None, count=len(available))
            return response, _sent_whole(watch, current, nonce)
        if len(names) < len(available):
            chosen = [r for r in map(available.get, sorted(names)) if r is not None]
        else:
            chosen = [r for name, r in available.items() if name in names]
        sent: dict[str, str] = {}
        digest = _record(sent, 0, chosen)
    else:
        sent = dict(watch.sent)
        digest = watch.sent_digest
        for name in [n for n in sent if n not in watch.names or n not in available]:
            digest ^= entry_digest(sent.pop(name))  # gone or unsubscribed: Envoy drops it with its CDS/LDS parent
        chosen = [
            changed
            for changed in map(available.get, sorted(watch.names))
            if changed is not None and sent.get(changed.name) != changed.version
        ]
        digest = _record(sent, digest, chosen)
        if not chosen:
            return None, replace(watch, sent=MappingProxyType(sent), sent_digest=digest)
    state = _sent_some(watch, sent, digest, nonce)
    return SotwResponse(version=state.version_sent, nonce=nonce, resources=tuple(chosen), count=len(chosen)), state


def _sotw_every_watched(
    watch: WatchedResource, current: ProxyResources, *, nonce: str, full: bool
) -> tuple[SotwResponse | None, WatchedResource]:
    """The watched resources that exist, all of them, when the proxy asked or one differs from what it was sent."""
    chosen = [r for r in map(current.resources.get, sorted(watch.names)) if r is not None]
    if not chosen or (not full and all(watch.sent.get(r.name) == r.version for r in chosen)):
        return None, watch
    sent: dict[str, str] = {}
    state = _sent_some(watch, sent, _record(sent, 0, chosen), nonce)
    return SotwResponse(version=state.version_sent, nonce=nonce, resources=tuple(chosen), count=len(chosen)), state


def forget_sent(watch: WatchedResource, names: frozenset[str]) -> WatchedResource:
    """The watch as if ``names`` had never been sent, so that the next delta plan sends them again even though
    their versions did not change (Envoy needs the assignment of a changed EDS cluster before it warms)."""
    sent = dict(watch.sent)
    digest = _forget(sent, watch.sent_digest, names)
    return replace(watch, sent=MappingProxyType(sent), sent_digest=digest)


def plan_delta(
    watch: WatchedResource,
    current: ProxyResources,
    *,
    nonce: str,
    force: bool,
    changes: ResourceChanges | None = None,
) -> tuple[DeltaResponse | None, WatchedResource]:
    """``force``: answer even when nothing differs (the first request for a type must complete Envoy's init).
    ``changes``: a push's changes since the watch was last planned (see the module doc)."""
    if changes is not None:
        return _delta_changes(watch, current, changes, nonce=nonce, force=force)
    if not watch.sent and (watch.wildcard or all(watch.names.issuperset(g.resources) for g in current.groups)):
        return _delta_everything(watch, current, nonce=nonce, force=force)
    available = current.resources
    sent = dict(watch.sent)
    digest = watch.sent_digest
    removed: list[str] = []
    if watch.wildcard:
        chosen = [r for name, r in available.items() if sent.get(name) != r.version]
        for name in [n for n in sent if n not in available]:
            gone = sent.pop(name)
            if gone:
                digest ^= entry_digest(gone)
            removed.append(name)
    else:
        chosen = []
        for name in sorted(watch.names):
            subscribed = available.get(name)
            if subscribed is not None:
                if sent.get(name) != subscribed.version:
                    chosen.append(subscribed)
                continue
            had = sent.get(name)
            if had == "":
                continue  # already told it does not exist
            if had:
                digest ^= entry_digest(had)
            sent[name] = ""
            removed.append(name)
    digest = _record(sent, digest, chosen)
    if not chosen and not removed and not force:
        return None, watch
    state = _sent_some(watch, sent, digest, nonce)
    return DeltaResponse(
        version=state.version_sent, nonce=nonce, resources=tuple(chosen), removed=tuple(removed)
    ), state


def _delta_everything(
    watch: WatchedResource, current: ProxyResources, *, nonce: str, force: bool
) -> tuple[DeltaResponse | None, WatchedResource]:
    """The proxy has nothing yet and wants all of ``current`` (plus, for named types, to hear which of its names
    do not exist): send the whole set from the cached bodies, and remember it without copying."""
    missing = () if watch.wildcard else tuple(sorted(n for n in watch.names if n not in current.resources))
    if not current.resources and not missing and not force:
        return None, watch
    sent: Mapping[str, str] = current.versions
    if missing:
        sent = MappingProxyType({**current.versions, **dict.fromkeys(missing, "")})
    response = DeltaResponse(version=current.version, nonce=nonce, resources=None, removed=missing)
    return response, _sent_whole(watch, current, nonce, sent=sent)


def _has_all(watch: WatchedResource, current: ProxyResources, changes: ResourceChanges) -> bool:
    """The proxy has all of its previous set, and its names cover every name of ``current`` (when not wildcard)."""
    if watch.sent is not changes.since.versions:
        return False
    return watch.wildcard or all(name in watch.names for name in changes.added)


def _sotw_changes(
    watch: WatchedResource, current: ProxyResources, changes: ResourceChanges, *, nonce: str
) -> tuple[SotwResponse | None, WatchedResource]:
    """A named type's push: the changed resources the proxy watches. Removed names are dropped from the state
    (Envoy drops them with their CDS/LDS parent)."""
    available = current.resources
    if _has_all(watch, current, changes):
        chosen = [available[name] for name in sorted(changes.updated)]
        state = replace(watch, sent=current.versions, sent_digest=int(current.version, 16))
        if not chosen:
            return None, state
        response = SotwResponse(version=current.version, nonce=nonce, resources=tuple(chosen), count=len(chosen))
        return response, replace(state, version_sent=current.version, nonce_sent=nonce)
    had = watch.sent
    gone = [name for name in changes.removed if name in had]
    watched = sorted(name for name in changes.updated if name in watch.names)
    chosen = [r for r in map(available.__getitem__, watched) if had.get(r.name) != r.version]
    if not gone and not chosen:
        return None, watch
    sent = dict(had)
    digest = _record(sent, _forget(sent, watch.sent_digest, gone), chosen)
    if not chosen:
        return None, replace(watch, sent=MappingProxyType(sent), sent_digest=digest)
    state = _sent_some(watch, sent, digest, nonce)
    return SotwResponse(version=state.version_sent, nonce=nonce, resources=tuple(chosen), count=len(chosen)), state


def _delta_changes(
    watch: WatchedResource, current: ProxyResources, changes: ResourceChanges, *, nonce: str, force: bool
) -> tuple[DeltaResponse | None, WatchedResource]:
    """A push: the changed resources the proxy watches, and removals of the ones it has (wildcard) or watches."""
    available = current.resources
    if _has_all(watch, current, changes) and (watch.wildcard or not changes.removed):
        chosen = [available[name] for name in sorted(changes.updated)]
        removed = tuple(sorted(changes.removed))
        state = replace(watch, sent=current.versions, sent_digest=int(current.version, 16))
        if not chosen and not removed and not force:
            return None, state
        response = DeltaResponse(version=current.version, nonce=nonce, resources=tuple(chosen), removed=removed)
        return response, replace(state, version_sent=current.version, nonce_sent=nonce)
    had = watch.sent
    if watch.wildcard:
        gone = sorted(name for name in changes.removed if name in had)
        updated = sorted(changes.updated)
    else:  # a watched name that disappears is named in removed_resources (and remembered as "": told once)
        gone = sorted(name for name in changes.removed if name in watch.names)
        updated = sorted(name for name in changes.updated if name in watch.names)
    chosen = [r for r in map(available.__getitem__, updated) if had.get(r.name) != r.version]
    if not chosen and not gone and not force:
        return None, watch
    sent = dict(had)
    digest = watch.sent_digest
    for name in gone:
        version = sent.pop(name, "")
        if version:
            digest ^= entry_digest(version)
        if not watch.wildcard:
            sent[name] = ""
    digest = _record(sent, digest, chosen)
    state = _sent_some(watch, sent, digest, nonce)
    return DeltaResponse(version=state.version_sent, nonce=nonce, resources=tuple(chosen), removed=tuple(gone)), state


def _forget(sent: dict[str, str], digest: int, names: Iterable[str]) -> int:
    """Drop ``names`` from ``sent`` and return the set's digest updated to match."""
    for name in names:
        version = sent.pop(name, None)
        if version:
            digest ^= entry_digest(version)
    return digest


def _record(sent: dict[str, str], digest: int, resources: Sequence[Resource]) -> int:
    """Note ``resources`` as sent (replacing older versions) and return the set's digest updated to match."""
    for resource in resources:
        previous = sent.get(resource.name)
        if previous:
            digest ^= entry_digest(previous)
        sent[resource.name] = resource.version
        digest ^= resource.digest
    return digest


def _sent_some(watch: WatchedResource, sent: dict[str, str], digest: int, nonce: str) -> WatchedResource:
    """The watch once a response built from ``sent`` (digest ``digest``) went out with ``nonce``."""
    version = format_version(digest)
    return replace(watch, sent=MappingProxyType(sent), sent_digest=digest, version_sent=version, nonce_sent=nonce)


def _sent_whole(
    watch: WatchedResource, current: ProxyResources, nonce: str, *, sent: Mapping[str, str] | None = None
) -> WatchedResource:
    """The watch once the proxy's whole set ``current`` went out with ``nonce`` (its versions shared, not copied)."""
    return replace(
        watch,
        sent=current.versions if sent is None else sent,
        sent_digest=int(current.version, 16),
        version_sent=current.version,
        nonce_sent=nonce,
    )
