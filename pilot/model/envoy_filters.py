"""Which EnvoyFilter patches apply to a proxy, in Istio's order (``PushContext.EnvoyFilters``).

An EnvoyFilter in the root namespace without ``workloadSelector`` applies to every proxy (sidecars and gateways);
one in another namespace to that namespace's proxies; with a selector, to the proxies of its namespace whose labels
(a gateway without a workload: its node's ``LABELS``) include the selector's. A root-namespace filter with a
selector selects the proxies with those labels in every namespace (Istio's ``getMatchedEnvoyFilters`` on the root
namespace: "applied to all applicable workloads in any namespace").

Order: by ``priority`` (lower first), then the root namespace's before the proxy namespace's, then by name (Istio
orders by creation time, which files do not have; within a namespace meshplane's order is the name's). A patch's
``match.proxy`` is decided here too: ``proxyVersion`` is a regex searched (unanchored, as Go's ``MatchString``)
in the node's ``ISTIO_VERSION`` metadata (the meshplane release that wrote
the bootstrap), ``metadata`` needs every key to be present in the node's metadata with that exact value.

The result, ``Proxy.envoy_filter_patches``, is the flat tuple of patches that apply to the proxy: hashable and all
that patching reads, so the generators key the shared resources they patch on it (``pilot.generate.registry``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pilot.config.types import EnvoyFilter, EnvoyFilterPatch, Labels, labels_match

__all__ = [
    "ENVOY_FILTER_KIND",
    "ISTIO_VERSION_METADATA",
    "EnvoyFilterIndex",
    "envoy_filter_patches",
    "index_envoy_filters",
]

ENVOY_FILTER_KIND = "EnvoyFilter"
ISTIO_VERSION_METADATA = "ISTIO_VERSION"


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvoyFilterIndex:
    root_namespace: str = ""
    by_namespace: Mapping[str, tuple[EnvoyFilter, ...]] = field(default_factory=lambda: MappingProxyType({}))


def index_envoy_filters(filters: Iterable[EnvoyFilter], root_namespace: str) -> EnvoyFilterIndex:
    by_namespace: dict[str, list[EnvoyFilter]] = defaultdict(list)
    for envoy_filter in filters:
        by_namespace[envoy_filter.meta.key.namespace].append(envoy_filter)
    return EnvoyFilterIndex(
        root_namespace=root_namespace,
        by_namespace=MappingProxyType({ns: tuple(sorted(f, key=_name)) for ns, f in sorted(by_namespace.items())}),
    )


def _name(envoy_filter: EnvoyFilter) -> str:
    return envoy_filter.meta.key.name


def envoy_filter_patches(
    index: EnvoyFilterIndex, namespace: str, labels: Labels, metadata: Mapping[str, str]
) -> tuple[EnvoyFilterPatch, ...]:
    """The patches that apply to a proxy of ``namespace`` with ``labels`` and node ``metadata``, in order."""
    if not index.by_namespace:
        return ()
    selected: list[tuple[int, int, str, EnvoyFilter]] = []
    root = index.root_namespace
    for rank, ns in enumerate((root, namespace) if namespace != root else (root,)):
        for envoy_filter in index.by_namespace.get(ns, ()):
            if _selects(envoy_filter.workload_selector, labels):
                selected.append((envoy_filter.priority, rank, envoy_filter.meta.key.name, envoy_filter))
    selected.sort(key=lambda item: item[:3])
    return tuple(
        patch
        for *_, envoy_filter in selected
        for patch in envoy_filter.config_patches
        if _proxy_matches(patch, metadata)
    )


def _selects(selector: Labels | None, labels: Labels) -> bool:
    return selector is None or labels_match(selector, labels)


def _proxy_matches(patch: EnvoyFilterPatch, metadata: Mapping[str, str]) -> bool:
    proxy = patch.proxy
    if proxy is None:
        return True
    version = metadata.get(ISTIO_VERSION_METADATA, "")
    if proxy.proxy_version is not None and re.search(proxy.proxy_version, version) is None:
        return False
    return all(metadata.get(key) == value for key, value in proxy.metadata)
