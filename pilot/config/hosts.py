"""Istio host names: short-name resolution, wildcard matching, and the one lookup every host-keyed index uses.

Shared by the config layer's cross-resource checks and ``pilot.model`` (which re-exports these), so that a
DestinationRule or VirtualService is found for a host the same way when config is checked and when it is served.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import TypeVar

__all__ = [
    "DEFAULT_DOMAIN_SUFFIX",
    "host_matches",
    "lookup_host",
    "resolve_host",
]

DEFAULT_DOMAIN_SUFFIX = "cluster.local"

_Value = TypeVar("_Value")


def resolve_host(host: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> str:
    """Istio's short-name rule: a host without a dot (and not a wildcard) is ``host.<namespace>.svc.<suffix>``."""
    if host == "*" or "." in host:
        return host
    return f"{host}.{namespace}.svc.{domain_suffix}"


def host_matches(pattern: str, host: str) -> bool:
    """Istio host matching: exact, or a ``*.suffix`` / ``*`` wildcard pattern covering ``host``."""
    if pattern == host or pattern == "*":
        return True
    return pattern.startswith("*") and fnmatch.fnmatchcase(host, pattern)


def lookup_host(index: Mapping[str, _Value], host: str) -> _Value | None:
    """What ``index`` (keyed by resolved host or wildcard pattern) holds for ``host``: the entry for exactly
    ``host``, else the entry of the most specific (longest) wildcard pattern covering it, else None."""
    exact = index.get(host)
    if exact is not None:
        return exact
    best: tuple[int, _Value] | None = None
    for pattern, value in index.items():
        if pattern.startswith("*") and host_matches(pattern, host) and (best is None or len(pattern) > best[0]):
            best = (len(pattern), value)
    return best[1] if best else None
