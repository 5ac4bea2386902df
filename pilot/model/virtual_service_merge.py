"""Merging VirtualServices: delegates into their roots (Istio's ``mergeVirtualServicesIfNeeded``, Istio 1.6+), and
several VirtualServices for one host into one route list (Istio does that on gateways; meshplane on sidecars too).

Delegation (``resolve_delegates``): a root VirtualService's HTTP route with ``delegate`` is replaced by the routes of
the delegate (a VirtualService without hosts, in ``delegate.namespace``), each merged with the root's route:

- matches: each delegate match must be a subset of some root match (``match_conflicts``: an exact or prefix
  within the root's, no regex on either side, the same ``ignoreUriCase``, no other port); it is merged with every
  root match it fits (the delegate's fields win, headers and query parameters are joined). A delegate route with a
  match that fits no root match is dropped, as in Istio; a route without matches takes the root's.
- the root's rewrite, timeout, retries, fault, mirrors, corsPolicy and headers apply where the delegate sets none;
  the name is ``<root>-<delegate>``; source labels and namespace come from the root's match.
- a delegate that does not exist, has hosts, or is not exported to the root's namespace: the root's route is
  dropped (Istio), with a warning in the log.

The merged root is a new VirtualService whose ``meta.content_hash`` covers the root and its delegates, so a
delegate's change re-renders the root; ``build_snapshot`` reuses the previous snapshot's merged object while that
hash is the same (route caches compare rules by identity).

Several VirtualServices for one host (``merged_http_routes``): their HTTP routes in rule order, each route keeping
its VirtualService (for ``istio.config`` metadata). Conflicts are rejected before they get here
(``pilot.config.virtual_service_conflicts``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import structlog

from pilot.config.types import ConfigKey, HTTPMatchRequest, HTTPRoute, StringMatch, VirtualService
from pilot.model.visibility import exported_to

__all__ = [
    "SourcedRoute",
    "match_conflicts",
    "merge_delegate_route",
    "merged_http_routes",
    "resolve_delegates",
]

log = structlog.get_logger(__name__)

# route fields the delegate's route takes from the root's when it sets none (Istio's mergeHTTPRoute)
_INHERITED = ("rewrite", "timeout", "retries", "fault", "cors_policy", "headers")


@dataclass(frozen=True, slots=True, kw_only=True)
class SourcedRoute:
    """An HTTP route of a host's merged route list and the VirtualService it came from."""

    virtual_service: VirtualService
    route: HTTPRoute


def merged_http_routes(rules: Sequence[VirtualService]) -> tuple[SourcedRoute, ...]:
    """The HTTP routes of all ``rules`` for one host (in force first), in order: what a sidecar's or a gateway's
    virtual host is built from. Delegates must be resolved already (``resolve_delegates``)."""
    return tuple(SourcedRoute(virtual_service=vs, route=route) for vs in rules for route in vs.http)


def resolve_delegates(
    virtual_services: Iterable[VirtualService],
    previous: Mapping[ConfigKey, VirtualService] | None = None,
) -> dict[ConfigKey, VirtualService]:
    """Every VirtualService with hosts, roots merged with their delegates; delegates themselves are left out.
    ``previous``: merged roots of the snapshot before, reused when their content hash is unchanged."""
    ordered = list(virtual_services)
    delegates = {vs.meta.key: vs for vs in ordered if vs.is_delegate}
    out: dict[ConfigKey, VirtualService] = {}
    for vs in ordered:
        if vs.is_delegate:
            continue
        if not vs.is_root:
            out[vs.meta.key] = vs
            continue
        merged = _merge_root(vs, delegates)
        old = (previous or {}).get(vs.meta.key)
        out[vs.meta.key] = old if old is not None and old.meta.content_hash == merged.meta.content_hash else merged
    return out


def _merge_root(root: VirtualService, delegates: Mapping[ConfigKey, VirtualService]) -> VirtualService:
    routes: list[HTTPRoute] = []
    hashes = [root.meta.content_hash]
    for http in root.http:
        if http.delegate is None:
            routes.append(http)
            continue
        key = ConfigKey(kind="VirtualService", namespace=http.delegate.namespace, name=http.delegate.name)
        delegate = delegates.get(key)
        if delegate is None:
            log.warning("delegate_not_found", root=str(root.meta.key), delegate=str(key))
            continue
        if not exported_to(delegate.export_to, key.namespace, root.meta.key.namespace):
            log.warning("delegate_not_exported", root=str(root.meta.key), delegate=str(key))
            continue
        hashes.append(f"{key}={delegate.meta.content_hash}")
        for leaf in delegate.http:
            merged = merge_delegate_route(http, leaf)
            if merged is None:
                log.warning("delegate_route_conflict", root=str(root.meta.key), delegate=str(key), route=leaf.name)
            else:
                routes.append(merged)
    content = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    meta = dataclasses.replace(root.meta, content_hash=content)
    return dataclasses.replace(root, meta=meta, http=tuple(routes))


def merge_delegate_route(root: HTTPRoute, leaf: HTTPRoute) -> HTTPRoute | None:
    """Istio's ``mergeHTTPRoute``: the delegate's route ``leaf`` under the root's route ``root``; None when a
    delegate match fits no root match."""
    matches = _merge_matches(root.match, leaf.match)
    if matches is None:
        return None
    inherited = {name: getattr(root, name) for name in _INHERITED if getattr(leaf, name) is None}
    if not leaf.mirrors and root.mirrors:
        inherited["mirrors"] = root.mirrors
    name = leaf.name or root.name
    if root.name and leaf.name:
        name = f"{root.name}-{leaf.name}"
    return dataclasses.replace(leaf, name=name, match=matches, delegate=None, **inherited)


def _merge_matches(
    root: tuple[HTTPMatchRequest, ...], leaf: tuple[HTTPMatchRequest, ...]
) -> tuple[HTTPMatchRequest, ...] | None:
    if not root:
        return leaf
    if not leaf:
        return root
    out: list[HTTPMatchRequest] = []
    for sub in leaf:
        fits = [_merge_match(parent, sub) for parent in root if not match_conflicts(parent, sub)]
        if not fits:
            return None
        out.extend(fits)
    return tuple(out)


def _merge_match(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> HTTPMatchRequest:
    name = leaf.name or root.name
    if root.name and leaf.name:
        name = f"{root.name}-{leaf.name}"
    return dataclasses.replace(
        leaf,
        name=name,
        uri=leaf.uri or root.uri,
        scheme=leaf.scheme or root.scheme,
        method=leaf.method or root.method,
        authority=leaf.authority or root.authority,
        headers=_joined(root.headers, leaf.headers),
        without_headers=_joined(root.without_headers, leaf.without_headers),
        query_params=_joined(root.query_params, leaf.query_params),
        port=leaf.port if leaf.port is not None else root.port,
        source_labels=root.source_labels,
        source_namespace=root.source_namespace,
        stat_prefix=leaf.stat_prefix or root.stat_prefix,
    )


def _joined(root: Mapping[str, StringMatch], leaf: Mapping[str, StringMatch]) -> Mapping[str, StringMatch]:
    return MappingProxyType(dict(sorted({**root, **leaf}.items())))


def match_conflicts(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> bool:
    """Istio's ``hasConflict``: whether ``leaf`` is not within ``root``."""
    pairs = [(root.uri, leaf.uri), (root.scheme, leaf.scheme), (root.method, leaf.method)]
    pairs.append((root.authority, leaf.authority))
    pairs.extend((root.headers.get(k), v) for k, v in leaf.headers.items())
    pairs.extend((root.headers.get(k), v) for k, v in leaf.without_headers.items())
    pairs.extend((root.query_params.get(k), v) for k, v in leaf.query_params.items())
    if any(_string_match_conflicts(parent, sub) for parent, sub in pairs):
        return True
    if root.ignore_uri_case != leaf.ignore_uri_case:
        return True
    return root.port is not None and leaf.port is not None and root.port != leaf.port


def _string_match_conflicts(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    """Istio's ``stringMatchConflict``: no conflict when either side is absent; regexes always conflict; an exact
    root takes only the same exact; a prefix root takes exacts and prefixes that start with it."""
    if root is None or leaf is None:
        return False
    if root.regex is not None or leaf.regex is not None:
        return True
    if root.exact is not None:
        return leaf.exact != root.exact
    if root.prefix is not None:
        value = leaf.prefix if leaf.prefix is not None else leaf.exact
        return value is None or not value.startswith(root.prefix)
    return True
