"""EnvoyFilter patches on listeners: applyTo LISTENER, FILTER_CHAIN, NETWORK_FILTER and HTTP_FILTER (Istio's
``envoyfilter/listener_patch.go``), a pure function of the generated listeners and the proxy's patches.

Context: a gateway's listeners are GATEWAY; a sidecar's ``virtualInbound`` SIDECAR_INBOUND, every other listener
(``virtualOutbound``, ``0.0.0.0_<port>``, ``<vip>_<port>``) SIDECAR_OUTBOUND. ``listener.portNumber`` is the
listener's port, except on ``virtualInbound``/``virtualOutbound`` for everything but applyTo LISTENER, where it is
the filter chain's ``destination_port`` (as Istio: those listeners carry the ports in their chains). ``name`` is the
listener's name; ``filterChain`` matches a chain by its ``name``, ``filter_chain_match`` (``sni`` among its server
names, ``transportProtocol``, every ``applicationProtocols``, ``destinationPort``); ``filter.name`` a network filter
and ``subFilter.name`` an HTTP filter of that HTTP connection manager (Istio's old names, ``envoy.router``, ...,
match the current ones). A ``default_filter_chain`` is patched as the chains are.

Order within a listener, as Istio: LISTENER MERGE/REMOVE; per chain FILTER_CHAIN MERGE/REMOVE, then NETWORK_FILTER
ADD/INSERT_*/REPLACE, then per network filter its MERGE/REMOVE and, for an HTTP connection manager, HTTP_FILTER
ADD/INSERT_*/REPLACE then MERGE/REMOVE; then FILTER_CHAIN ADD. LISTENER ADD appends the value once per proxy (with
``add``: the registry asks for it on the proxy's own resources only). INSERT_BEFORE/INSERT_AFTER without a filter
match put the filter first/last; with a match that finds nothing, and REPLACE without one, do nothing, as Istio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from google.protobuf.message import Message

from pilot.config.types import EnvoyFilterApplyTo, EnvoyFilterContext, EnvoyFilterOperation, EnvoyFilterPatch
from pilot.generate.envoy_filter_merge import (
    canonical_filter_name,
    context_matches,
    merge_message,
    proxy_contexts,
    value_of,
)

__all__ = ["HCM_NAME", "VIRTUAL_LISTENERS", "listener_context", "patch_listeners"]

HCM_NAME = "envoy.filters.network.http_connection_manager"
VIRTUAL_LISTENERS = frozenset({"virtualInbound", "virtualOutbound"})
_A = EnvoyFilterApplyTo
_O = EnvoyFilterOperation
_LISTENER_TYPES = (_A.LISTENER, _A.FILTER_CHAIN, _A.NETWORK_FILTER, _A.HTTP_FILTER)
_T = TypeVar("_T", bound=Message)


def listener_context(listener: Listener, router: bool) -> EnvoyFilterContext:
    if router:
        return EnvoyFilterContext.GATEWAY
    if listener.name == "virtualInbound":
        return EnvoyFilterContext.SIDECAR_INBOUND
    return EnvoyFilterContext.SIDECAR_OUTBOUND


def patch_listeners(
    listeners: Sequence[Listener], patches: Sequence[EnvoyFilterPatch], *, router: bool, add: bool
) -> list[Listener]:
    """The listeners patched (copies; the inputs are not changed), then, with ``add``, the LISTENER ADDs."""
    relevant = [p for p in patches if p.apply_to in _LISTENER_TYPES]
    out: list[Listener] = []
    for listener in listeners:
        patched = _patch_listener(listener, relevant, listener_context(listener, router)) if relevant else listener
        if patched is not None:
            out.append(patched)
    if add:
        contexts = proxy_contexts(router)
        for patch in relevant:
            if patch.apply_to is _A.LISTENER and patch.operation is _O.ADD and patch.context in contexts:
                out.append(value_of(patch))
    return out


def _patch_listener(
    original: Listener, patches: Sequence[EnvoyFilterPatch], context: EnvoyFilterContext
) -> Listener | None:
    listener = Listener()
    listener.CopyFrom(original)
    for patch in patches:
        if patch.apply_to is not _A.LISTENER or not _listener_matches(listener, patch, context):
            continue
        if patch.operation is _O.REMOVE:
            return None
        if patch.operation is _O.MERGE:
            merge_message(listener, value_of(patch))
    kept = [chain for chain in listener.filter_chains if _patch_chain(listener, chain, patches, context)]
    del listener.filter_chains[:]
    listener.filter_chains.extend(kept)
    default = listener.default_filter_chain
    if listener.HasField("default_filter_chain") and not _patch_chain(listener, default, patches, context):
        listener.ClearField("default_filter_chain")
    for patch in patches:
        adds = patch.apply_to is _A.FILTER_CHAIN and patch.operation is _O.ADD
        if adds and _listener_matches(listener, patch, context):
            listener.filter_chains.append(value_of(patch))
    return listener


def _listener_matches(listener: Listener, patch: EnvoyFilterPatch, context: EnvoyFilterContext) -> bool:
    """Istio's ``commonConditionMatch`` and ``listenerMatch``."""
    if not context_matches(patch, context):
        return False
    match = patch.listener
    if match is None:
        return True
    if match.name is not None and match.name != listener.name:
        return False
    if patch.apply_to is not _A.LISTENER and listener.name in VIRTUAL_LISTENERS:
        return True  # the port is matched on the chains
    return match.port_number is None or listener.address.socket_address.port_value == match.port_number


def _chain_matches(listener: Listener, chain: FilterChain, patch: EnvoyFilterPatch) -> bool:
    """Istio's ``filterChainMatch``."""
    match = patch.listener
    if match is None:
        return True
    criteria = chain.filter_chain_match
    virtual = listener.name in VIRTUAL_LISTENERS
    if virtual and match.port_number is not None and criteria.destination_port.value != match.port_number:
        return False
    wanted = match.filter_chain
    if wanted is None:
        return True
    checks = (
        wanted.name is None or wanted.name == chain.name,
        wanted.sni is None or wanted.sni in criteria.server_names,
        wanted.transport_protocol is None or wanted.transport_protocol == criteria.transport_protocol,
        all(p in criteria.application_protocols for p in wanted.application_protocols),
        wanted.destination_port is None or wanted.destination_port == criteria.destination_port.value,
    )
    return all(checks)


def _patch_chain(
    listener: Listener, chain: FilterChain, patches: Sequence[EnvoyFilterPatch], context: EnvoyFilterContext
) -> bool:
    """Patch one chain in place; False: a patch removed it."""
    applying = [p for p in patches if _listener_matches(listener, p, context) and _chain_matches(listener, chain, p)]
    for patch in applying:
        if patch.apply_to is _A.FILTER_CHAIN and patch.operation is _O.REMOVE:
            return False
        if patch.apply_to is _A.FILTER_CHAIN and patch.operation is _O.MERGE:
            merge_message(chain, value_of(patch))
    network = [p for p in applying if p.apply_to is _A.NETWORK_FILTER]
    filters = _insert(list(chain.filters), network, _filter_name)
    kept: list[Filter] = []
    for network_filter in filters:
        if _patch_network_filter(network_filter, applying):
            kept.append(network_filter)
    del chain.filters[:]
    chain.filters.extend(kept)
    return True


def _filter_name(patch: EnvoyFilterPatch) -> str | None:
    chain = patch.listener.filter_chain if patch.listener is not None else None
    return chain.filter_name if chain is not None else None


def _sub_filter_name(patch: EnvoyFilterPatch) -> str | None:
    chain = patch.listener.filter_chain if patch.listener is not None else None
    return chain.sub_filter_name if chain is not None else None


def _named(name: str | None, item: Any) -> bool:
    return name is None or canonical_filter_name(name) == canonical_filter_name(item.name)


def _insert(
    items: list[_T], patches: Sequence[EnvoyFilterPatch], name_of: Callable[[EnvoyFilterPatch], str | None]
) -> list[_T]:
    """ADD, INSERT_FIRST, INSERT_BEFORE, INSERT_AFTER and REPLACE on a filter list, in patch order."""
    for patch in patches:
        operation, name = patch.operation, name_of(patch)
        if operation is _O.ADD or (operation is _O.INSERT_AFTER and name is None):
            items.append(value_of(patch))  # type: ignore[arg-type]
        elif operation is _O.INSERT_FIRST or (operation is _O.INSERT_BEFORE and name is None):
            items.insert(0, value_of(patch))  # type: ignore[arg-type]
        elif operation in (_O.INSERT_BEFORE, _O.INSERT_AFTER, _O.REPLACE) and name is not None:
            found = [i for i, item in enumerate(items) if _named(name, item)]
            if not found:
                continue
            position = found[0]
            if operation is _O.INSERT_BEFORE:
                items.insert(position, value_of(patch))  # type: ignore[arg-type]
            elif operation is _O.INSERT_AFTER:
                items.insert(position + 1, value_of(patch))  # type: ignore[arg-type]
            else:
                items[position] = value_of(patch)  # type: ignore[assignment]
    return items


def _merge_or_remove(
    item: Message, patches: Sequence[EnvoyFilterPatch], name_of: Callable[[EnvoyFilterPatch], str | None]
) -> bool:
    """MERGE and REMOVE on one filter (a patch naming no filter applies to every one); False: removed."""
    for patch in patches:
        if not _named(name_of(patch), item):
            continue
        if patch.operation is _O.REMOVE:
            return False
        if patch.operation is _O.MERGE:
            merge_message(item, value_of(patch))
    return True


def _patch_network_filter(network_filter: Filter, applying: Sequence[EnvoyFilterPatch]) -> bool:
    network = [p for p in applying if p.apply_to is _A.NETWORK_FILTER]
    if not _merge_or_remove(network_filter, network, _filter_name):
        return False
    if network_filter.name != HCM_NAME:
        return True
    http = [p for p in applying if p.apply_to is _A.HTTP_FILTER and _named(_filter_name(p), network_filter)]
    if not http:
        return True
    hcm = HttpConnectionManager()
    if not network_filter.typed_config.Unpack(hcm):
        return True
    filters = _insert(list(hcm.http_filters), http, _sub_filter_name)
    kept = [f for f in filters if _merge_or_remove(f, http, _sub_filter_name)]
    del hcm.http_filters[:]
    hcm.http_filters.extend(kept)
    network_filter.typed_config.Pack(hcm, deterministic=True)
    return True
