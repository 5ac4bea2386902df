"""Type URL -> generator: the thin layer the xDS server calls (Istio's cds/eds/lds/rds generators).

A generator produces a proxy's resources of one type in two parts, so that the xDS layer can serialize each
shared resource once per snapshot and hand the same bytes to every proxy that needs it:

- ``scopes(proxy)``: the keys of the shared resource groups this proxy needs (e.g. ``("outbound", "default")`` for
  the outbound clusters of a namespace's sidecars, ``("outbound", "default", <Sidecar key>)`` for those a Sidecar
  applies to, or ``("outbound_http", "default")`` for a namespace's route tables, one per HTTP port);
- ``build_scope(scope, snapshot)``: the resources of one group; pure, called at most once per scope and snapshot;
- ``build_proxy(proxy, snapshot)``: the resources that are the proxy's own (its inbound side); pure.

``affected_by`` lists the config kinds whose change can alter the output; when none of them changed between two
snapshots, the previous snapshot's resources of this type are reused as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from pilot.config.types import EnvoyFilterApplyTo
from pilot.generate import clusters, endpoints, listeners, name_table, port_routes, proxy_config, routes
from pilot.generate.envoy_filter_scopes import cluster_patcher, listener_patcher, route_patcher, with_envoy_filters
from pilot.generate.gateway_listeners import build_gateway_listeners
from pilot.generate.gateway_routes import build_gateway_routes
from pilot.generate.gateway_sni_dnat import build_sni_dnat_clusters
from pilot.generate.pieces import PieceMemo
from pilot.model.gateways import is_router
from pilot.model.l4_routes import L4_ROUTES_KIND
from pilot.model.mesh_settings import MESH_CONFIG_KIND
from pilot.model.proxy_config import PROXY_CONFIG_KIND
from pilot.model.registry import ENDPOINTS_KIND
from pilot.model.sidecar_index import SIDECAR_KIND, SIDECAR_SCOPE_KIND
from pilot.model.types import MeshSnapshot, Proxy
from xdscore.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, NAME_TABLE_TYPE, PROXY_CONFIG_TYPE, ROUTE_TYPE

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "GENERATORS",
    "LISTENER_TYPE",
    "NAME_TABLE_TYPE",
    "PROXY_CONFIG_TYPE",
    "PUSH_ORDER",
    "ROUTE_TYPE",
    "Scope",
    "ScopeParts",
    "TypeGenerator",
]


# Envoy's documented order for making changes without dropping traffic: CDS, EDS, LDS, RDS. Types outside it (the
# agent's NDS name table) are pushed after them, so a new name's VIP resolves only once its listeners are there.
PUSH_ORDER: tuple[str, ...] = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE)

Scope = tuple[Hashable, ...]

REGISTRY_KINDS = frozenset({"ServiceEntry", "WorkloadEntry"})
# A registry whose endpoints alone changed (``pilot.model.registry``): only the ClusterLoadAssignments differ.
ENDPOINT_KINDS = frozenset({ENDPOINTS_KIND})
# PeerAuthentication decides inbound listeners' chains (LDS) and which endpoints take auto mTLS (EDS metadata, and
# the inline endpoints of DNS clusters in CDS).
MTLS_KINDS = frozenset({"PeerAuthentication"})
# Authorization policies and Mixer policies decide inbound listeners' RBAC and ext_authz filters, and
# RequestAuthentications their jwt_authn filter (LDS only).
POLICY_KINDS = frozenset({"AuthorizationPolicy", "AccessList", "RateLimit", "RequestAuthentication"})
# MeshConfig's outboundTrafficPolicy decides sidecars' virtualOutbound default chain (LDS) and the catch-all virtual
# host of their port route tables (RDS).
MESH_KINDS = frozenset({MESH_CONFIG_KIND})
# VirtualService tcp and tls routes decide sidecars' outbound TCP listener chains and gateways' TCP and TLS
# passthrough chains (LDS), as http routes decide the route tables (RDS): a VirtualService change counts for LDS
# only when some VirtualService's L4 part changed (``pilot.model.l4_routes``), so an HTTP route change leaves the
# listeners as they are (same objects, nothing rebuilt or compared).
L4_ROUTE_KINDS = frozenset({L4_ROUTES_KIND})
# A Sidecar decides which services, VirtualServices and outbound policy a proxy's outbound side has: every type; a
# VirtualService change can change what a Sidecar's scope holds (the services its routes send to: SidecarScope).
SIDECAR_KINDS = frozenset({SIDECAR_KIND, SIDECAR_SCOPE_KIND})


# Gateways decide a gateway proxy's listeners (LDS) and route tables (RDS), VirtualServices bound to them too; an
# AUTO_PASSTHROUGH server its SNI-DNAT clusters (CDS) and their endpoints (EDS).
GATEWAY_KINDS = frozenset({"Gateway"})
# Telemetry decides the file access loggers and tracing of every HTTP connection manager (LDS only).
TELEMETRY_KINDS = frozenset({"Telemetry"})
# EnvoyFilters patch listeners, route tables and clusters (``envoy_filter_scopes``: the last step of those types).
ENVOY_FILTER_KINDS = frozenset({"EnvoyFilter"})
_A = EnvoyFilterApplyTo
_LISTENER_PATCHES = (_A.LISTENER, _A.FILTER_CHAIN, _A.NETWORK_FILTER, _A.HTTP_FILTER)
_ROUTE_PATCHES = (_A.ROUTE_CONFIGURATION, _A.VIRTUAL_HOST, _A.HTTP_ROUTE)


def _route_scopes(proxy: Proxy) -> list[Scope]:
    """The per-port tables of the proxy's namespace and Sidecar (and source labels); a gateway's tables are its own."""
    return [] if is_router(proxy) else [port_routes.port_route_scope(proxy)]


def _proxy_routes(proxy: Proxy, snapshot: MeshSnapshot) -> Sequence[Message]:
    """A gateway's tables (``gateway_routes``), a sidecar's inbound ones."""
    return build_gateway_routes(proxy, snapshot) if is_router(proxy) else routes.build_inbound_routes(proxy, snapshot)


def _proxy_listeners(proxy: Proxy, snapshot: MeshSnapshot) -> Sequence[Message]:
    """A gateway's listeners (``gateway_listeners``: its servers' ports), a sidecar's (``listeners``)."""
    return build_gateway_listeners(proxy, snapshot) if is_router(proxy) else listeners.build_listeners(proxy, snapshot)


def _proxy_clusters(proxy: Proxy, snapshot: MeshSnapshot) -> Sequence[Message]:
    """A gateway has no inbound clusters (no app behind it): the outbound ones of its namespace's scope, and its
    AUTO_PASSTHROUGH servers' SNI-DNAT clusters (``gateway_sni_dnat``)."""
    if is_router(proxy):
        return build_sni_dnat_clusters(proxy, snapshot)
    return clusters.build_inbound_clusters(proxy, snapshot)


def _route_inputs(scope: Scope, snapshot: MeshSnapshot) -> list[port_routes.PortRoutesInputs]:
    source = routes.scope_source(scope, port_routes.OUTBOUND_HTTP_SCOPE)
    if source is None:
        optional = "[, <Sidecar key>][, <source labels>][, <ClientView>]"
        expected = f"({port_routes.OUTBOUND_HTTP_SCOPE!r}, <namespace>{optional})"
        raise ValueError(f"unknown route scope {scope!r}: expected {expected}")
    namespace, source_labels, sidecar = source
    return port_routes.port_route_inputs(namespace, snapshot, source_labels, sidecar, routes.scope_view(scope))


def _assemble_routes(scope: Scope, parts: Sequence[Any]) -> Sequence[Message]:
    return list(parts)  # each part is a whole table


def _scope_routes(scope: Scope, snapshot: MeshSnapshot) -> Sequence[Message]:
    return [port_routes.build_port_route_table(inputs) for inputs in _route_inputs(scope, snapshot)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopeParts:
    """How a scope's resources are assembled from parts, each a pure function of its inputs (hashable, and all that
    it reads), so that the resource cache builds each part once per distinct inputs, across snapshots (Istio's
    XdsCache keyed with its dependent configs). ``build_scope`` must equal ``assemble(scope, map(build, inputs))``."""

    inputs: Callable[[Scope, MeshSnapshot], Sequence[Hashable]]
    build: Callable[[Any], Message]  # takes one of ``inputs``
    assemble: Callable[[Scope, Sequence[Any]], Sequence[Message]]  # the scope's resources from its built parts
    # When set, what the cache calls instead of ``build``: the same part, its pieces taken from a ``PieceMemo``
    # (``pilot.generate.pieces``) so that a part rebuilt for one changed input rebuilds only the pieces it changes.
    build_from_pieces: Callable[[Any, PieceMemo], Message] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeGenerator:
    type_url: str
    affected_by: frozenset[str]
    wildcard: bool  # True for CDS/LDS (the proxy gets everything), False for EDS/RDS (the proxy names what it wants)
    scopes: Callable[[Proxy], Sequence[Scope]]
    build_scope: Callable[[Scope, MeshSnapshot], Sequence[Message]]
    build_proxy: Callable[[Proxy, MeshSnapshot], Sequence[Message]]
    parts: ScopeParts | None = None  # when set, the cache builds scopes from memoized parts instead of build_scope


GENERATORS: dict[str, TypeGenerator] = {
    CLUSTER_TYPE: with_envoy_filters(
        TypeGenerator(
            type_url=CLUSTER_TYPE,
            affected_by=REGISTRY_KINDS
            | MTLS_KINDS
            | SIDECAR_KINDS
            | GATEWAY_KINDS
            | ENVOY_FILTER_KINDS
            | {"DestinationRule"},
            wildcard=True,
            scopes=clusters.cluster_scopes,
            build_scope=clusters.build_scope_clusters,
            build_proxy=_proxy_clusters,
        ),
        (_A.CLUSTER,),
        cluster_patcher,
    ),
    ENDPOINT_TYPE: TypeGenerator(
        type_url=ENDPOINT_TYPE,
        affected_by=REGISTRY_KINDS | ENDPOINT_KINDS | MTLS_KINDS | SIDECAR_KINDS | GATEWAY_KINDS | {"DestinationRule"},
        wildcard=False,
        scopes=endpoints.endpoint_scopes,
        build_scope=endpoints.build_scope_load_assignments,
        build_proxy=endpoints.build_proxy_load_assignments,
    ),
    LISTENER_TYPE: with_envoy_filters(
        TypeGenerator(
            type_url=LISTENER_TYPE,
            affected_by=REGISTRY_KINDS
            | MTLS_KINDS
            | POLICY_KINDS
            | MESH_KINDS
            | L4_ROUTE_KINDS
            | GATEWAY_KINDS
            | TELEMETRY_KINDS
            | SIDECAR_KINDS
            | ENVOY_FILTER_KINDS
            # a DestinationRule's connectionPool.tcp idle timeout and max connection duration are written into the
            # outbound tcp_proxy filters (pilot.generate.tcp_proxy_limits)
            | {"DestinationRule"},
            wildcard=True,
            scopes=listeners.listener_scopes,  # none: every listener is the proxy's own
            build_scope=listeners.build_scope_listeners,
            build_proxy=_proxy_listeners,
        ),
        _LISTENER_PATCHES,
        listener_patcher,
    ),
    ROUTE_TYPE: with_envoy_filters(
        TypeGenerator(
            type_url=ROUTE_TYPE,
            affected_by=REGISTRY_KINDS
            | MESH_KINDS
            | GATEWAY_KINDS
            | SIDECAR_KINDS
            | ENVOY_FILTER_KINDS
            | {"VirtualService", "DestinationRule"},
            wildcard=False,
            scopes=_route_scopes,
            build_scope=_scope_routes,
            build_proxy=_proxy_routes,
            parts=ScopeParts(
                inputs=_route_inputs,
                build=port_routes.build_port_route_table,
                assemble=_assemble_routes,
                build_from_pieces=port_routes.build_port_route_table,
            ),
        ),
        _ROUTE_PATCHES,
        route_patcher,
    ),
    # Istio's NDS, for the sidecar agent's DNS proxy: one unnamed NameTable per proxy (its namespace's hosts and VIPs)
    NAME_TABLE_TYPE: TypeGenerator(
        type_url=NAME_TABLE_TYPE,
        affected_by=REGISTRY_KINDS | SIDECAR_KINDS,
        wildcard=True,
        scopes=name_table.name_table_scopes,
        build_scope=name_table.build_scope_name_table,
        build_proxy=name_table.build_proxy_name_table,
    ),
    # The proxy's effective ProxyConfig, for its launcher (read once, before Envoy starts): its labels come from the
    # registry, the mesh's part from MeshConfig defaultConfig
    PROXY_CONFIG_TYPE: TypeGenerator(
        type_url=PROXY_CONFIG_TYPE,
        affected_by=REGISTRY_KINDS | MESH_KINDS | {PROXY_CONFIG_KIND},
        wildcard=True,
        scopes=proxy_config.proxy_config_scopes,
        build_scope=proxy_config.build_scope_proxy_config,
        build_proxy=proxy_config.build_proxy_config,
    ),
}
