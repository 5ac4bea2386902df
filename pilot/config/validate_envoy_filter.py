"""Validate an EnvoyFilter spec into ``types.EnvoyFilter`` (Istio's ``ValidateEnvoyFilter``), each problem at its field.

- ``workloadSelector.labels``: Kubernetes labels; none is the namespace (in the root namespace, every proxy).
- ``priority``: an int32 (order of application: ``pilot.model.envoy_filters``).
- ``configPatches[]``: ``applyTo`` one of LISTENER, FILTER_CHAIN, NETWORK_FILTER, HTTP_FILTER, ROUTE_CONFIGURATION,
  VIRTUAL_HOST, HTTP_ROUTE, CLUSTER (EXTENSION_CONFIG, BOOTSTRAP, LISTENER_FILTER: not supported by meshplane yet);
  ``patch.operation`` one that Istio's patchers apply to that ``applyTo`` (``ALLOWED_OPERATIONS``): Istio ignores
  the others silently, meshplane rejects them; ``patch.value`` required but for REMOVE (which takes none: Istio
  ignores it there), parsed as the Envoy message (``envoy_filter_values``); ``patch.filterClass``: not supported
  by meshplane yet.
- ``match``: ``context``; ``proxy.proxyVersion`` a regex that compiles, ``proxy.metadata`` strings; one of
  ``listener`` / ``routeConfiguration`` / ``cluster``, and the one that fits ``applyTo`` (Istio's "applyTo for
  listener class objects cannot have non listener match"); ``filterChain.filter.subFilter`` only with applyTo
  HTTP_FILTER and filter ``envoy.filters.network.http_connection_manager``; ports 1-65535.
"""

from __future__ import annotations

import re

from pilot.config.envoy_filter_values import parse_patch_value
from pilot.config.types import (
    ConfigMeta,
    EnvoyFilter,
    EnvoyFilterApplyTo,
    EnvoyFilterClusterMatch,
    EnvoyFilterContext,
    EnvoyFilterFilterChainMatch,
    EnvoyFilterListenerMatch,
    EnvoyFilterOperation,
    EnvoyFilterPatch,
    EnvoyFilterProxyMatch,
    EnvoyFilterRouteMatch,
    frozen_labels,
)
from pilot.config.validate_common import Fields

__all__ = ["ALLOWED_OPERATIONS", "ENVOY_FILTER_FIELDS", "HCM_NAMES", "validate_envoy_filter"]

ENVOY_FILTER_FIELDS = ("workloadSelector", "configPatches", "priority")
_PATCH_FIELDS = ("applyTo", "match", "patch")
_MATCH_FIELDS = ("context", "proxy", "listener", "routeConfiguration", "cluster")
_OBJECT_MATCHES = ("listener", "routeConfiguration", "cluster")
_PATCH_VALUE_FIELDS = ("operation", "value")
_UNSUPPORTED_APPLY_TO = ("EXTENSION_CONFIG", "BOOTSTRAP", "LISTENER_FILTER")
_ALL = tuple(EnvoyFilterOperation)
_O = EnvoyFilterOperation
# What Istio's pilot/pkg/networking/core/envoyfilter/*_patch.go apply, per applyTo
ALLOWED_OPERATIONS: dict[EnvoyFilterApplyTo, tuple[EnvoyFilterOperation, ...]] = {
    EnvoyFilterApplyTo.LISTENER: (_O.MERGE, _O.ADD, _O.REMOVE),
    EnvoyFilterApplyTo.FILTER_CHAIN: (_O.MERGE, _O.ADD, _O.REMOVE),
    EnvoyFilterApplyTo.NETWORK_FILTER: _ALL,
    EnvoyFilterApplyTo.HTTP_FILTER: _ALL,
    EnvoyFilterApplyTo.ROUTE_CONFIGURATION: (_O.MERGE,),
    EnvoyFilterApplyTo.VIRTUAL_HOST: (_O.MERGE, _O.ADD, _O.REMOVE),
    EnvoyFilterApplyTo.HTTP_ROUTE: (_O.MERGE, _O.ADD, _O.REMOVE, _O.INSERT_BEFORE, _O.INSERT_AFTER, _O.INSERT_FIRST),
    EnvoyFilterApplyTo.CLUSTER: (_O.MERGE, _O.ADD, _O.REMOVE),
}
_MATCH_FOR: dict[EnvoyFilterApplyTo, str] = {
    EnvoyFilterApplyTo.LISTENER: "listener",
    EnvoyFilterApplyTo.FILTER_CHAIN: "listener",
    EnvoyFilterApplyTo.NETWORK_FILTER: "listener",
    EnvoyFilterApplyTo.HTTP_FILTER: "listener",
    EnvoyFilterApplyTo.ROUTE_CONFIGURATION: "routeConfiguration",
    EnvoyFilterApplyTo.VIRTUAL_HOST: "routeConfiguration",
    EnvoyFilterApplyTo.HTTP_ROUTE: "routeConfiguration",
    EnvoyFilterApplyTo.CLUSTER: "cluster",
}
HCM_NAMES = ("envoy.filters.network.http_connection_manager", "envoy.http_connection_manager")
_ROUTE_ACTIONS = ("ANY", "ROUTE", "REDIRECT", "DIRECT_RESPONSE")
_INT32 = 2**31


def validate_envoy_filter(spec: Fields, meta: ConfigMeta) -> EnvoyFilter:
    """Check an EnvoyFilter spec (opened with ``ENVOY_FILTER_FIELDS``); problems go to ``spec.problems``."""
    selector = spec.mapping("workloadSelector", known=("labels",), message="WorkloadSelector")
    labels = selector.labels("labels") if selector is not None else None
    priority = spec.integer("priority", minimum=-_INT32, maximum=_INT32 - 1) or 0
    if not spec.has("configPatches"):
        spec.report("configPatches", "required: one or more patches")
    items = spec.mappings("configPatches", known=_PATCH_FIELDS, message="EnvoyFilter.EnvoyConfigObjectPatch")
    patches = tuple(p for p in (_patch(index, item) for index, item in enumerate(items)) if p is not None)
    return EnvoyFilter(
        meta=meta,
        workload_selector=frozen_labels(labels) if labels else None,
        priority=priority,
        config_patches=patches,
    )


def _patch(index: int, item: Fields) -> EnvoyFilterPatch | None:
    apply_to = _apply_to(item)
    patch = item.mapping("patch", known=_PATCH_VALUE_FIELDS, required=True, message="EnvoyFilter.Patch")
    match = item.mapping("match", known=_MATCH_FIELDS, message="EnvoyFilter.EnvoyConfigObjectMatch")
    context = EnvoyFilterContext.ANY
    proxy: EnvoyFilterProxyMatch | None = None
    if match is not None:
        context = EnvoyFilterContext(match.enum("context", tuple(EnvoyFilterContext)) or "ANY")
        proxy = _proxy(match)
        _object_match_fits(match, apply_to)
    listener = _listener(match, apply_to) if match is not None else None
    route = _route(match) if match is not None else None
    cluster = _cluster(match) if match is not None else None
    if patch is None or apply_to is None:
        return None
    operation = _operation(patch, apply_to)
    if operation is None:
        return None
    value = b""
    if operation != EnvoyFilterOperation.REMOVE:
        value = _value(patch, apply_to)
    elif patch.has("value"):
        patch.report("value", "REMOVE takes no value (Istio ignores it): leave value out")
    return EnvoyFilterPatch(
        index=index,
        apply_to=apply_to,
        operation=operation,
        value=value,
        context=context,
        proxy=proxy,
        listener=listener,
        route_configuration=route,
        cluster=cluster,
    )


def _apply_to(item: Fields) -> EnvoyFilterApplyTo | None:
    if not item.has("applyTo"):
        item.report("applyTo", "required: Envoy filter: missing applyTo")
        return None
    value = item.node.get("applyTo")
    if value in _UNSUPPORTED_APPLY_TO:
        item.report("applyTo", f"{value}: not supported by meshplane yet")
        return None
    chosen = item.enum("applyTo", tuple(EnvoyFilterApplyTo))
    return EnvoyFilterApplyTo(chosen) if chosen is not None else None


def _operation(patch: Fields, apply_to: EnvoyFilterApplyTo) -> EnvoyFilterOperation | None:
    if not patch.has("operation"):
        patch.report("operation", "required: Envoy filter: missing patch operation")
        return None
    chosen = patch.enum("operation", tuple(EnvoyFilterOperation))
    if chosen is None:
        return None
    operation = EnvoyFilterOperation(chosen)
    allowed = ALLOWED_OPERATIONS[apply_to]
    if operation not in allowed:
        patch.report(
            "operation",
            f"{operation} has no effect on applyTo {apply_to} (Istio ignores it; it applies {', '.join(allowed)})",
        )
        return None
    return operation


def _value(patch: Fields, apply_to: EnvoyFilterApplyTo) -> bytes:
    if not patch.has("value"):
        patch.report("value", "required: Envoy filter: missing patch value for non-remove operation")
        return b""
    parsed = parse_patch_value(apply_to, patch.node.get("value"))
    if isinstance(parsed, str):
        patch.report("value", parsed)
        return b""
    return parsed


def _proxy(match: Fields) -> EnvoyFilterProxyMatch | None:
    proxy = match.mapping("proxy", known=("proxyVersion", "metadata"), message="EnvoyFilter.ProxyMatch")
    if proxy is None:
        return None
    version = proxy.string("proxyVersion")
    if version:
        try:
            re.compile(version)
        except re.error as exc:
            proxy.report("proxyVersion", f"Envoy filter: invalid regex for proxy version, [{exc}]")
    metadata = proxy.string_map("metadata") or {}
    return EnvoyFilterProxyMatch(proxy_version=version or None, metadata=tuple(sorted(metadata.items())))


def _object_match_fits(match: Fields, apply_to: EnvoyFilterApplyTo | None) -> None:
    given = [name for name in _OBJECT_MATCHES if match.has(name)]
    if len(given) > 1:
        match.report(given[1], f"only one of {', '.join(_OBJECT_MATCHES)} (a oneof), got {', '.join(given)}")
    if apply_to is None or not given or given[0] == _MATCH_FOR[apply_to]:
        return
    wanted = _MATCH_FOR[apply_to]
    what = {"listener": "listener", "routeConfiguration": "http route", "cluster": "cluster"}[wanted]
    other = {"listener": "listener", "routeConfiguration": "route configuration", "cluster": "cluster"}[wanted]
    match.report(given[0], f"Envoy filter: applyTo for {what} class objects cannot have non {other} match")


def _port(fields: Fields, name: str) -> int | None:
    return fields.integer(name, minimum=1, maximum=65535)


def _listener(match: Fields, apply_to: EnvoyFilterApplyTo | None) -> EnvoyFilterListenerMatch | None:
    listener = match.mapping(
        "listener", known=("portNumber", "name", "filterChain"), message="EnvoyFilter.ListenerMatch"
    )
    if listener is None:
        return None
    chain = listener.mapping(
        "filterChain",
        known=("name", "sni", "transportProtocol", "applicationProtocols", "destinationPort", "filter"),
        message="EnvoyFilter.ListenerMatch.FilterChainMatch",
    )
    return EnvoyFilterListenerMatch(
        port_number=_port(listener, "portNumber"),
        name=listener.string("name") or None,
        filter_chain=_filter_chain(chain, apply_to) if chain is not None else None,
    )


def _filter_chain(chain: Fields, apply_to: EnvoyFilterApplyTo | None) -> EnvoyFilterFilterChainMatch:
    protocols = chain.string("applicationProtocols")
    filter_name = sub_name = None
    network = chain.mapping("filter", known=("name", "subFilter"), message="EnvoyFilter.ListenerMatch.FilterMatch")
    if network is not None:
        filter_name = network.string("name") or None
        if filter_name is None:
            network.report("name", "Envoy filter: filter match has no name to match on")
        sub = network.mapping("subFilter", known=("name",), message="EnvoyFilter.ListenerMatch.SubFilterMatch")
        if sub is not None:
            sub_name = sub.string("name") or None
            if apply_to is not None and apply_to != EnvoyFilterApplyTo.HTTP_FILTER:
                network.report("subFilter", "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only")
            elif filter_name is not None and filter_name not in HCM_NAMES:
                network.report("subFilter", f"Envoy filter: subfilter match requires filter match with {HCM_NAMES[0]}")
            if sub_name is None:
                sub.report("name", "Envoy filter: subfilter match has no name to match on")
    return EnvoyFilterFilterChainMatch(
        name=chain.string("name") or None,
        sni=chain.string("sni") or None,
        transport_protocol=chain.string("transportProtocol") or None,
        application_protocols=tuple(p.strip() for p in protocols.split(",") if p.strip()) if protocols else (),
        destination_port=_port(chain, "destinationPort"),
        filter_name=filter_name,
        sub_filter_name=sub_name,
    )


def _route(match: Fields) -> EnvoyFilterRouteMatch | None:
    route = match.mapping(
        "routeConfiguration",
        known=("portNumber", "portName", "gateway", "vhost", "name"),
        message="EnvoyFilter.RouteConfigurationMatch",
    )
    if route is None:
        return None
    vhost = route.mapping(
        "vhost", known=("name", "domainName", "route"), message="EnvoyFilter.RouteConfigurationMatch.VirtualHostMatch"
    )
    inner = None
    if vhost is not None:
        inner = vhost.mapping(
            "route", known=("name", "action"), message="EnvoyFilter.RouteConfigurationMatch.RouteMatch"
        )
    action = inner.enum("action", _ROUTE_ACTIONS) if inner is not None else None
    return EnvoyFilterRouteMatch(
        port_number=_port(route, "portNumber"),
        port_name=route.string("portName") or None,
        gateway=route.string("gateway") or None,
        name=route.string("name") or None,
        vhost_name=(vhost.string("name") or None) if vhost is not None else None,
        vhost_domain_name=(vhost.string("domainName") or None) if vhost is not None else None,
        route_name=(inner.string("name") or None) if inner is not None else None,
        route_action=action if action != "ANY" else None,
    )


def _cluster(match: Fields) -> EnvoyFilterClusterMatch | None:
    cluster = match.mapping(
        "cluster", known=("portNumber", "service", "subset", "name"), message="EnvoyFilter.ClusterMatch"
    )
    if cluster is None:
        return None
    return EnvoyFilterClusterMatch(
        port_number=_port(cluster, "portNumber"),
        service=cluster.string("service") or None,
        subset=cluster.string("subset") or None,
        name=cluster.string("name") or None,
    )
