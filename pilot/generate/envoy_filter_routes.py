"""EnvoyFilter patches on route tables and clusters: applyTo ROUTE_CONFIGURATION, VIRTUAL_HOST, HTTP_ROUTE (Istio's
``envoyfilter/rc_patch.go``) and CLUSTER (``cluster_patch.go``), pure functions of the generated resources.

Route tables: a gateway's are GATEWAY, a sidecar's ``inbound|<port>||`` SIDECAR_INBOUND, its per-port outbound
tables (``9080``) SIDECAR_OUTBOUND. ``routeConfiguration.portNumber`` is the port in the table's name; on a gateway
(``http.<port>``, ``https.<port>.<port name>.<gateway>.<namespace>``) ``portName`` and ``gateway``
(``<namespace>/<name>``) are read from the name too; ``name`` is the table's name. ``vhost.name`` / ``domainName``
match a virtual host by its name / one of its domains; ``vhost.route.name`` a route by name and ``action`` by what
it does (ROUTE, REDIRECT, DIRECT_RESPONSE). Order: ROUTE_CONFIGURATION MERGE; per virtual host VIRTUAL_HOST
MERGE/REMOVE, then per route HTTP_ROUTE MERGE/REMOVE, then HTTP_ROUTE ADD (last), INSERT_FIRST, INSERT_BEFORE /
INSERT_AFTER (the first route the match names); then VIRTUAL_HOST ADD.

Clusters: a gateway's are GATEWAY, ``inbound|<port>||`` SIDECAR_INBOUND, the rest SIDECAR_OUTBOUND.
``cluster.name`` alone decides when set; else ``portNumber``, ``subset`` and ``service`` are read from
``outbound|<port>|<subset>|<host>`` (for an inbound cluster the service is one the proxy serves on that port).
MERGE, REMOVE; ADD appends the value once per proxy (with ``add``: the registry asks for it on the proxy's own
resources only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.route.v3.route_components_pb2 import Route, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration

from pilot.config.types import EnvoyFilterApplyTo, EnvoyFilterContext, EnvoyFilterOperation, EnvoyFilterPatch
from pilot.generate.envoy_filter_merge import context_matches, merge_message, proxy_contexts, value_of

__all__ = ["patch_clusters", "patch_route_configurations"]

_A = EnvoyFilterApplyTo
_O = EnvoyFilterOperation
_ROUTE_TYPES = (_A.ROUTE_CONFIGURATION, _A.VIRTUAL_HOST, _A.HTTP_ROUTE)
_ACTIONS = {"ROUTE": "route", "REDIRECT": "redirect", "DIRECT_RESPONSE": "direct_response"}


def _context(name: str, router: bool) -> EnvoyFilterContext:
    if router:
        return EnvoyFilterContext.GATEWAY
    return EnvoyFilterContext.SIDECAR_INBOUND if name.startswith("inbound|") else EnvoyFilterContext.SIDECAR_OUTBOUND


def patch_route_configurations(
    tables: Sequence[RouteConfiguration], patches: Sequence[EnvoyFilterPatch], *, router: bool
) -> list[RouteConfiguration]:
    relevant = [p for p in patches if p.apply_to in _ROUTE_TYPES]
    if not relevant:
        return list(tables)
    return [_patch_table(table, relevant, _context(table.name, router)) for table in tables]


def _table_port(name: str) -> tuple[int, str, str]:
    """(port, port name, gateway) from a table's name (Istio's ``ParseGatewayRDSRouteName`` for gateways)."""
    parts = name.split(".")
    if name.startswith("inbound|"):
        port = name.split("|")[1]
        return (int(port) if port.isdigit() else 0), "", ""
    if parts[0] == "https" and len(parts) >= 5 and parts[1].isdigit():
        return int(parts[1]), parts[2], f"{parts[-1]}/{'.'.join(parts[3:-1])}"
    if parts[0] == "http" and len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1]), "", ""
    return (int(name) if name.isdigit() else 0), "", ""


def _table_matches(table: RouteConfiguration, patch: EnvoyFilterPatch, context: EnvoyFilterContext) -> bool:
    if not context_matches(patch, context):
        return False
    match = patch.route_configuration
    if match is None:
        return True
    port, port_name, gateway = _table_port(table.name)
    if match.port_number is not None and match.port_number != port:
        return False
    if match.name is not None and match.name != table.name:
        return False
    if context is not EnvoyFilterContext.GATEWAY:
        return True
    return (match.port_name is None or match.port_name == port_name) and (
        match.gateway is None or match.gateway == gateway
    )


def _vhost_matches(vhost: VirtualHost, patch: EnvoyFilterPatch) -> bool:
    match = patch.route_configuration
    if match is None:
        return True
    return (match.vhost_name is None or match.vhost_name == vhost.name) and (
        match.vhost_domain_name is None or match.vhost_domain_name in vhost.domains
    )


def _route_matches(route: Route, patch: EnvoyFilterPatch) -> bool:
    match = patch.route_configuration
    if match is None:
        return True
    if match.route_name is not None and match.route_name != route.name:
        return False
    action: str | None = route.WhichOneof("action")
    return match.route_action is None or action == _ACTIONS[match.route_action]


def _route_named(patch: EnvoyFilterPatch) -> bool:
    match = patch.route_configuration
    return match is not None and (match.route_name is not None or match.route_action is not None)


def _patch_table(
    original: RouteConfiguration, patches: Sequence[EnvoyFilterPatch], context: EnvoyFilterContext
) -> RouteConfiguration:
    applying = [p for p in patches if _table_matches(original, p, context)]
    if not applying:
        return original
    table = RouteConfiguration()
    table.CopyFrom(original)
    for patch in applying:
        if patch.apply_to is _A.ROUTE_CONFIGURATION and patch.operation is _O.MERGE:
            merge_message(table, value_of(patch))
    kept = [vhost for vhost in table.virtual_hosts if _patch_vhost(vhost, applying)]
    del table.virtual_hosts[:]
    table.virtual_hosts.extend(kept)
    for patch in applying:
        if patch.apply_to is _A.VIRTUAL_HOST and patch.operation is _O.ADD:
            table.virtual_hosts.append(value_of(patch))
    return table


def _patch_vhost(vhost: VirtualHost, applying: Sequence[EnvoyFilterPatch]) -> bool:
    """Patch one virtual host in place; False: a patch removed it."""
    for patch in applying:
        if patch.apply_to is _A.VIRTUAL_HOST and _vhost_matches(vhost, patch):
            if patch.operation is _O.REMOVE:
                return False
            if patch.operation is _O.MERGE:
                merge_message(vhost, value_of(patch))
    http = [p for p in applying if p.apply_to is _A.HTTP_ROUTE and _vhost_matches(vhost, p)]
    routes: list[Route] = []
    for route in vhost.routes:
        keep = True
        for patch in http:
            if not _route_matches(route, patch):
                continue
            if patch.operation is _O.REMOVE:
                keep = False
                break
            if patch.operation is _O.MERGE:
                merge_message(route, value_of(patch))
        if keep:
            routes.append(route)
    for patch in http:
        _insert_route(routes, patch)
    del vhost.routes[:]
    vhost.routes.extend(routes)
    return True


def _insert_route(routes: list[Route], patch: EnvoyFilterPatch) -> None:
    operation = patch.operation
    if operation is _O.ADD:
        routes.append(value_of(patch))
    elif operation is _O.INSERT_FIRST:
        routes.insert(0, value_of(patch))
    elif operation in (_O.INSERT_BEFORE, _O.INSERT_AFTER):
        if not _route_named(patch):
            return  # Istio: nothing to place it relative to
        found = [i for i, route in enumerate(routes) if _route_matches(route, patch)]
        if found:
            routes.insert(found[0] + (operation is _O.INSERT_AFTER), value_of(patch))


def _cluster_matches(
    cluster: Cluster, patch: EnvoyFilterPatch, context: EnvoyFilterContext, inbound_hosts: Mapping[int, tuple[str, ...]]
) -> bool:
    """Istio's ``clusterMatch``."""
    if not context_matches(patch, context):
        return False
    match = patch.cluster
    if match is None:
        return True
    if match.name is not None:
        return bool(match.name == cluster.name)
    parts = cluster.name.split("|")
    if len(parts) != 4 or parts[0] not in ("inbound", "outbound"):
        return match.port_number is None and match.subset is None and match.service is None
    port = int(parts[1]) if parts[1].isdigit() else 0
    hosts = inbound_hosts.get(port, ()) if parts[0] == "inbound" else (parts[3],)
    return (
        (match.subset is None or match.subset == parts[2])
        and (match.service is None or match.service in hosts)
        and (match.port_number is None or match.port_number == port)
    )


def patch_clusters(
    clusters: Sequence[Cluster],
    patches: Sequence[EnvoyFilterPatch],
    *,
    router: bool,
    add: bool,
    inbound_hosts: Mapping[int, tuple[str, ...]] | None = None,
) -> list[Cluster]:
    """The clusters patched (copies where changed), then, with ``add``, the CLUSTER ADDs."""
    relevant = [p for p in patches if p.apply_to is _A.CLUSTER]
    hosts = inbound_hosts or {}
    out: list[Cluster] = []
    for original in clusters:
        context = _context(original.name, router)
        applying = [p for p in relevant if p.operation is not _O.ADD and _cluster_matches(original, p, context, hosts)]
        if not applying:
            out.append(original)
            continue
        cluster = Cluster()
        cluster.CopyFrom(original)
        removed = False
        for patch in applying:
            if patch.operation is _O.REMOVE:
                removed = True
                break
            merge_message(cluster, value_of(patch))
        if not removed:
            out.append(cluster)
    if add:
        contexts = proxy_contexts(router)
        out.extend(value_of(p) for p in relevant if p.operation is _O.ADD and p.context in contexts)
    return out
