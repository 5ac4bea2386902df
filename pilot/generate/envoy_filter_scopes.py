"""EnvoyFilter patches as the last, pure step of a type's generator: a ``TypeGenerator`` wrapped so that what it
builds for a proxy is patched by ``Proxy.envoy_filter_patches`` (``pilot.model.envoy_filters``).

Shared resources stay shared: a proxy to which no patch of the type applies gets the generator's scopes unchanged
(the very groups other proxies get); one with patches gets each scope as ``("envoyfilter", <scope>, <gateway?>,
<patches>)``: the key holds every input patching reads (the patches themselves, hashable, and whether the proxy is
a gateway), so proxies share patched bytes exactly when the same patches apply to the same scope, across
snapshots too (Istio keys its XdsCache entries with the EnvoyFilters they depend on). ADD patches of whole
resources (LISTENER, CLUSTER) are applied to the proxy's own part only (once per proxy), and so are not in the
scope keys. Types built from parts (RDS's route tables) are patched per part, with the same key in each part's
inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from google.protobuf.message import Message

from pilot.config.types import EnvoyFilterApplyTo, EnvoyFilterOperation, EnvoyFilterPatch
from pilot.generate.envoy_filter_listeners import patch_listeners
from pilot.generate.envoy_filter_routes import patch_clusters, patch_route_configurations
from pilot.model.gateways import is_router
from pilot.model.types import MeshSnapshot, Proxy

__all__ = [
    "ENVOY_FILTER_SCOPE",
    "PatchedPart",
    "Patcher",
    "cluster_patcher",
    "listener_patcher",
    "route_patcher",
    "with_envoy_filters",
]

ENVOY_FILTER_SCOPE = "envoyfilter"
_A = EnvoyFilterApplyTo
_WHOLE_RESOURCE_ADDS = (_A.LISTENER, _A.CLUSTER)

# (messages, patches, gateway?, add, proxy or None for a shared scope) -> patched messages
Patcher = Callable[[Sequence[Message], Sequence[EnvoyFilterPatch], bool, bool, Proxy | None], Sequence[Message]]


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchedPart:
    """The inputs of one part of a patched scope: the generator's own inputs, and what patching reads."""

    inner: Hashable
    router: bool
    patches: tuple[EnvoyFilterPatch, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Wrapping:
    apply_to: frozenset[EnvoyFilterApplyTo]
    patch: Patcher


def listener_patcher(
    messages: Sequence[Message], patches: Sequence[EnvoyFilterPatch], router: bool, add: bool, proxy: Proxy | None
) -> Sequence[Message]:
    return patch_listeners(messages, patches, router=router, add=add)


def route_patcher(
    messages: Sequence[Message], patches: Sequence[EnvoyFilterPatch], router: bool, add: bool, proxy: Proxy | None
) -> Sequence[Message]:
    return patch_route_configurations(messages, patches, router=router)


def cluster_patcher(
    messages: Sequence[Message], patches: Sequence[EnvoyFilterPatch], router: bool, add: bool, proxy: Proxy | None
) -> Sequence[Message]:
    hosts: dict[int, tuple[str, ...]] = {}
    for instance in proxy.instances if proxy is not None else ():
        hosts[instance.port.number] = (*hosts.get(instance.port.number, ()), instance.service.host)
    return patch_clusters(messages, patches, router=router, add=add, inbound_hosts=hosts)


def _scope_patches(proxy: Proxy, wrapping: _Wrapping) -> tuple[EnvoyFilterPatch, ...]:
    """The patches that can change the proxy's shared resources of this type (not the whole-resource ADDs)."""
    return tuple(
        p
        for p in proxy.envoy_filter_patches
        if p.apply_to in wrapping.apply_to
        and not (p.operation is EnvoyFilterOperation.ADD and p.apply_to in _WHOLE_RESOURCE_ADDS)
    )


def with_envoy_filters(generator: Any, apply_to: Sequence[EnvoyFilterApplyTo], patch: Patcher) -> Any:
    """``generator`` (a ``registry.TypeGenerator``) patched as the module doc says."""
    wrapping = _Wrapping(apply_to=frozenset(apply_to), patch=patch)
    inner_scopes, inner_build_scope, inner_build_proxy = generator.scopes, generator.build_scope, generator.build_proxy

    def scopes(proxy: Proxy) -> Sequence[tuple[Hashable, ...]]:
        found: list[tuple[Hashable, ...]] = list(inner_scopes(proxy))
        patches = _scope_patches(proxy, wrapping)
        if not patches:
            return found
        router = is_router(proxy)
        return [(ENVOY_FILTER_SCOPE, scope, router, patches) for scope in found]

    def build_scope(scope: tuple[Hashable, ...], snapshot: MeshSnapshot) -> Sequence[Message]:
        if not scope or scope[0] != ENVOY_FILTER_SCOPE:
            return inner_build_scope(scope, snapshot)  # type: ignore[no-any-return]
        _, inner, router, patches = scope
        return wrapping.patch(inner_build_scope(inner, snapshot), patches, router, False, None)  # type: ignore[arg-type]

    def build_proxy(proxy: Proxy, snapshot: MeshSnapshot) -> Sequence[Message]:
        built = inner_build_proxy(proxy, snapshot)
        patches = tuple(p for p in proxy.envoy_filter_patches if p.apply_to in wrapping.apply_to)
        if not patches:
            return built  # type: ignore[no-any-return]
        return wrapping.patch(built, patches, is_router(proxy), True, proxy)

    parts = generator.parts
    if parts is not None:
        parts = _patched_parts(parts, wrapping)
    return replace(generator, scopes=scopes, build_scope=build_scope, build_proxy=build_proxy, parts=parts)


def _patched_parts(parts: Any, wrapping: _Wrapping) -> Any:
    inner_inputs, inner_build, inner_assemble = parts.inputs, parts.build, parts.assemble

    def inputs(scope: tuple[Hashable, ...], snapshot: MeshSnapshot) -> Sequence[Hashable]:
        if not scope or scope[0] != ENVOY_FILTER_SCOPE:
            return inner_inputs(scope, snapshot)  # type: ignore[no-any-return]
        _, inner, router, patches = scope
        return [
            PatchedPart(inner=i, router=bool(router), patches=patches)  # type: ignore[arg-type]
            for i in inner_inputs(inner, snapshot)
        ]

    def build(part: Any) -> Message:
        if not isinstance(part, PatchedPart):
            return inner_build(part)  # type: ignore[no-any-return]
        [patched] = wrapping.patch([inner_build(part.inner)], part.patches, part.router, False, None)
        return patched

    def assemble(scope: tuple[Hashable, ...], built: Sequence[Any]) -> Sequence[Message]:
        inner = scope[1] if scope and scope[0] == ENVOY_FILTER_SCOPE else scope
        return inner_assemble(inner, built)  # type: ignore[no-any-return]

    inner_from_pieces = parts.build_from_pieces
    if inner_from_pieces is None:
        return replace(parts, inputs=inputs, build=build, assemble=assemble)

    def build_from_pieces(part: Any, pieces: Any) -> Message:
        """The pieces are unpatched: the patches apply to the part built from them (a copy)."""
        if not isinstance(part, PatchedPart):
            return inner_from_pieces(part, pieces)  # type: ignore[no-any-return]
        [patched] = wrapping.patch([inner_from_pieces(part.inner, pieces)], part.patches, part.router, False, None)
        return patched

    return replace(parts, inputs=inputs, build=build, assemble=assemble, build_from_pieces=build_from_pieces)
