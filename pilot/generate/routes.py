"""RDS: the virtual hosts and route tables of a sidecar (Istio's sidecar ``httproute.go`` over ``route.go``).

- ``build_outbound_virtual_host(inputs)``: one virtual host per (visible service host, HTTP/HTTP2/GRPC port), with
  Istio's domains, routed by the VirtualServices for that host when there are any (their routes merged in order, as
  Istio merges them on gateways only: ``pilot.model.virtual_service_merge``), else by Istio's default route
  (``/`` -> ``outbound|<port>||<host>`` with the default retry policy); ``port_routes.py`` gathers them into one
  table per port for the ``0.0.0.0_<port>`` listeners.
- ``build_inbound_routes(proxy, snapshot)``: one table per HTTP service port the proxy's workload serves,
  sending everything to the local app.

HTTP matches with ``sourceLabels`` / ``sourceNamespace`` apply only to proxies whose workload has those labels / is in
that namespace (Istio's ``sourceMatchHTTP``: other proxies' tables leave the match out). Tables are shared per
namespace and Sidecar (``Proxy.sidecar``: it decides which hosts and VirtualServices the tables hold) and per
``Proxy.source_labels`` (the proxy's labels that some sourceLabels names; the scope's last element when not
empty), and a virtual host's inputs hold only the labels its own rule's sourceLabels name.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import structlog
from envoy.config.core.v3.base_pb2 import Metadata
from envoy.config.route.v3.route_components_pb2 import Decorator, Route, RouteAction, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration

from meshplane import names
from pilot.config.types import ConfigKey, HTTPMatchRequest, HTTPRoute, VirtualService
from pilot.config.validate_gateway_refs import MESH_GATEWAY
from pilot.generate.inbound_ports import inbound_ports
from pilot.generate.route_action import (
    HeaderMutations,
    RouteContext,
    ServicePorts,
    build_direct_response,
    build_redirect,
    build_route_action,
    default_retry_policy,
    set_duration,
    set_timeout,
    translate_fault,
    translate_headers,
)
from pilot.generate.route_cors import translate_cors_policy
from pilot.generate.route_hash_policy import HashPolicies, apply_hash_policies, virtual_host_hash_policies
from pilot.generate.route_match import is_catch_all_match, translate_route_match
from pilot.model import MeshSnapshot, Proxy, virtual_services_for
from pilot.model.client_view import EMPTY_VIEW, ClientView
from pilot.model.gateways import match_gateway_applies
from pilot.model.sidecar_scope import egress_scope
from pilot.model.virtual_service_merge import merged_http_routes
from pilot.model.visibility import exported_to, service_visible

__all__ = [
    "DEFAULT_ROUTE_NAME",
    "MAX_DIRECT_RESPONSE_BODY_BYTES",
    "SourceLabels",
    "VirtualHostInputs",
    "alt_host_names",
    "build_http_routes",
    "build_inbound_routes",
    "build_merged_http_routes",
    "build_outbound_virtual_host",
    "build_route_table",
    "default_outbound_route",
    "route_scope",
    "route_view",
    "scope_source",
    "scope_view",
    "source_matches",
    "virtual_host_domains",
    "virtual_service_config_path",
    "visible_virtual_host_inputs",
    "visible_virtual_services",
]

log = structlog.get_logger(__name__)

DEFAULT_ROUTE_NAME = "default"  # Istio's name for the route of a host without a VirtualService
MAX_DIRECT_RESPONSE_BODY_BYTES = 1024 * 1024  # Istio's limit (its validation's), instead of Envoy's 4 KiB


SourceLabels = tuple[tuple[str, str], ...]  # sorted (key, value) pairs


def route_view(proxy: Proxy) -> ClientView:
    """What of the proxy's ``ClientView`` its routes depend on: the workloadSelector rules (their consistent hashes),
    not its locality."""
    selected = proxy.view.selected_rules
    return ClientView(selected_rules=selected) if selected else EMPTY_VIEW


def route_scope(kind: str, proxy: Proxy) -> tuple[Hashable, ...]:
    """``(kind, namespace[, sidecar][, source labels][, view])``: the tables shared by the proxies of a namespace
    under one Sidecar (``Proxy.sidecar``, there only when one applies) with the same source labels (there only when
    the proxy has any) and the same workloadSelector DestinationRules (``route_view``, there only when not empty)."""
    sidecar = (proxy.sidecar,) if proxy.sidecar is not None else ()
    labels = (proxy.source_labels,) if proxy.source_labels else ()
    view = route_view(proxy)
    return (kind, proxy.namespace, *sidecar, *labels, *((view,) if view != EMPTY_VIEW else ()))


def scope_view(scope: tuple[Hashable, ...]) -> ClientView:
    """The view a route scope ends with, else the empty view."""
    return scope[-1] if scope and isinstance(scope[-1], ClientView) else EMPTY_VIEW


def scope_source(scope: tuple[Hashable, ...], kind: str) -> tuple[str, SourceLabels, ConfigKey | None] | None:
    """(namespace, source labels, Sidecar) of a route scope ``(kind, namespace[, sidecar][, source labels][, view])``
    (``scope_view`` reads the view); None for another scope."""
    if scope and isinstance(scope[-1], ClientView):
        scope = scope[:-1]
    if len(scope) < 2 or scope[0] != kind or not isinstance(scope[1], str) or not scope[1]:
        return None
    rest = scope[2:]
    sidecar = rest[0] if rest and isinstance(rest[0], ConfigKey) else None
    rest = rest[1:] if sidecar is not None else rest
    if not rest:
        return scope[1], (), sidecar
    labels = rest[0]
    if len(rest) > 1 or not isinstance(labels, tuple) or not labels or not all(map(_is_label_pair, labels)):
        return None
    return scope[1], labels, sidecar


def _is_label_pair(pair: object) -> bool:
    return isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(part, str) for part in pair)


def source_matches(match: HTTPMatchRequest, labels: SourceLabels, namespace: str) -> bool:
    """Istio's ``sourceMatchHTTP``: whether a match applies to a proxy with these (source) labels in ``namespace``."""
    if match.source_namespace and match.source_namespace != namespace:
        return False
    present = dict(labels)
    return all(present.get(key) == value for key, value in match.source_labels.items())


def _rule_source_labels(rules: tuple[VirtualService, ...], labels: SourceLabels) -> SourceLabels:
    """The labels among ``labels`` that the host's rules name in a sourceLabels (what its routes depend on)."""
    if not rules or not labels:
        return ()
    keys = {key for vs in rules for http in vs.http for match in http.match for key in match.source_labels}
    return tuple(pair for pair in labels if pair[0] in keys)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class VirtualHostInputs:
    """Everything one outbound virtual host is built from: ``build_outbound_virtual_host`` reads nothing else, so
    equal inputs build an equal virtual host, and the resource cache keys its memo on them (``pilot.xds.cache``).
    A new input of routes (a DestinationRule's consistent hash, Sidecar scoping) goes here, or the builder cannot
    read it. VirtualServices compare by identity: config objects are frozen, a changed rule is a new object."""

    host: str
    port: int
    namespace: str  # the clients' namespace: short host names, and which rules are exported to it
    domain_suffix: str
    rules: tuple[VirtualService, ...]  # the VirtualServices for the host visible from ``namespace``, in force first
    service_ports: ServicePorts  # destinations without a port take their service's only one
    vips: tuple[str, ...] = ()  # the host's VIPs: Host values of the virtual host too
    # The clients' labels that the rule's sourceLabels name (``_rule_source_labels``): which source matches apply.
    source_labels: SourceLabels = ()
    # The consistent hash of each cluster the routes send to (``route_hash_policy``): their hash_policy.
    hash_policies: HashPolicies = ()

    def _key(self) -> tuple[object, ...]:
        return (
            self.host,
            self.port,
            self.namespace,
            self.domain_suffix,
            self.service_ports,
            self.vips,
            self.source_labels,
            self.hash_policies,
            *map(id, self.rules),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VirtualHostInputs):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def visible_virtual_host_inputs(
    namespace: str,
    snapshot: MeshSnapshot,
    *,
    source_labels: SourceLabels = (),
    sidecar: ConfigKey | None = None,
    view: ClientView = EMPTY_VIEW,
) -> list[VirtualHostInputs]:
    """One entry per (service host visible from ``namespace``, HTTP port other than the sidecar's own ports) that
    the ``sidecar`` in force admits (``pilot.model.sidecar_scope``); ``source_labels`` and ``view``: the clients'
    (``Proxy``, ``route_view``)."""
    service_ports = ServicePorts.of(snapshot)
    scope = egress_scope(snapshot, (namespace, sidecar))
    out: list[VirtualHostInputs] = []
    for service in snapshot.services.values():
        if not service_visible(service, namespace, snapshot) or not scope.sees_service(service.host):
            continue
        rules = visible_virtual_services(service.host, namespace, snapshot, sidecar)
        out.extend(
            VirtualHostInputs(
                host=service.host,
                port=port.number,
                namespace=namespace,
                domain_suffix=snapshot.domain_suffix,
                rules=rules,
                service_ports=service_ports,
                vips=snapshot.vips.get(service.host, ()),
                source_labels=_rule_source_labels(rules, source_labels),
                hash_policies=virtual_host_hash_policies(
                    snapshot,
                    host=service.host,
                    port=port.number,
                    rules=rules,
                    namespace=namespace,
                    view=view,
                    service_ports=service_ports,
                ),
            )
            for port in service.ports
            if port.protocol.is_http and port.number not in names.SIDECAR_PORTS and scope.sees_port(service.host, port)
        )
    return out


def build_outbound_virtual_host(inputs: VirtualHostInputs) -> VirtualHost:
    """The virtual host of ``inputs.host:inputs.port``: its VirtualService's routes, else Istio's default route."""
    return VirtualHost(
        name=f"{inputs.host}:{inputs.port}",
        domains=virtual_host_domains(inputs.host, inputs.namespace, inputs.domain_suffix, inputs.vips),
        routes=_service_routes(inputs),
        include_request_attempt_count=True,
    )


def build_route_table(name: str, vhosts: Sequence[VirtualHost]) -> RouteConfiguration:
    """A table of the given virtual hosts (which are not modified), by name, without duplicate domains."""
    table = RouteConfiguration(
        name=name,
        virtual_hosts=_without_duplicate_domains(sorted(vhosts, key=lambda vh: vh.name)),
    )
    table.validate_clusters.value = False
    table.max_direct_response_body_size_bytes.value = MAX_DIRECT_RESPONSE_BODY_BYTES
    return table


def build_inbound_routes(proxy: Proxy, snapshot: MeshSnapshot) -> list[RouteConfiguration]:
    """One table per HTTP service port of the proxy's workload: everything to ``inbound|<port>||`` (Istio's
    ``BuildDefaultHTTPInboundRoute``: no timeout, ``grpc-timeout`` honoured, retry a reset before the request)."""
    out: list[RouteConfiguration] = []
    # The same ports, and instance per port, as the inbound clusters and listeners have.
    for inbound in inbound_ports(proxy, snapshot):
        instance = inbound.instance
        if not inbound.http_table:
            continue
        port = instance.port.number
        action = RouteAction(cluster=names.inbound_cluster_name(port))
        set_duration(action.timeout, 0)
        set_duration(action.max_stream_duration.max_stream_duration, 0)
        set_duration(action.max_stream_duration.grpc_timeout_header_max, 0)
        action.retry_policy.retry_on = "reset-before-request"
        action.retry_policy.num_retries.value = 2
        route = Route(
            name=DEFAULT_ROUTE_NAME,
            match=translate_route_match(None),
            decorator=Decorator(operation=f"{instance.service.host}:{port}/*"),
            route=action,
        )
        vhost = VirtualHost(name=f"inbound|http|{port}", domains=["*"], routes=[route])
        table = RouteConfiguration(name=names.inbound_route_name(port), virtual_hosts=[vhost])
        table.validate_clusters.value = False
        out.append(table)
    return out


def alt_host_names(host: str, namespace: str, domain_suffix: str) -> tuple[str, ...]:
    """Other names a client in ``namespace`` may use for ``host`` (Istio's ``GenerateAltVirtualHosts``):
    ``name.ns.svc`` and ``name.ns`` for a ``name.ns.svc.<suffix>`` host, and ``name`` from its own namespace."""
    suffix = f".svc.{domain_suffix}"
    if not host.endswith(suffix):
        return ()
    parts = host[: -len(suffix)].split(".")
    if len(parts) != 2 or not all(parts):
        return ()
    name, host_namespace = parts
    short = (name,) if host_namespace == namespace else ()
    return (*short, f"{name}.{host_namespace}", f"{name}.{host_namespace}.svc")


def virtual_host_domains(host: str, namespace: str, domain_suffix: str, vips: Sequence[str] = ()) -> tuple[str, ...]:
    """Host header values that reach ``host`` through the sidecar's ``0.0.0.0_<port>`` listener (Istio's
    ``generateVirtualHostDomains`` for a sidecar): the host, its other names and its VIPs, without a port. The
    sidecar's tables ignore the Host header's port (``ignore_port_in_host_matching``, Istio's
    ``SidecarIgnorePort``): the listener has already chosen the port."""
    return (host, *alt_host_names(host, namespace, domain_suffix), *vips)


def virtual_service_config_path(vs: VirtualService) -> str:
    """Istio's route metadata ``istio.config``: which VirtualService a route came from."""
    key = vs.meta.key
    return f"/apis/networking.istio.io/v1/namespaces/{key.namespace}/virtual-service/{key.name}"


def default_outbound_route(host: str, port: int) -> Route:
    """Istio's ``BuildDefaultHTTPOutboundRoute``: a host without a VirtualService."""
    action = RouteAction(cluster=names.outbound_cluster_name(port, "", host))
    set_timeout(action, None)
    action.retry_policy.CopyFrom(default_retry_policy())
    return Route(
        name=DEFAULT_ROUTE_NAME,
        match=translate_route_match(None),
        decorator=Decorator(operation=f"{host}:{port}/*"),
        route=action,
    )


def build_http_routes(
    vs: VirtualService,
    port: int,
    *,
    domain_suffix: str,
    service_ports: ServicePorts,
    source_labels: SourceLabels = (),
    source_namespace: str = "",
    gateway: str = MESH_GATEWAY,
) -> list[Route]:
    """Istio's ``BuildHTTPRoutesForVirtualService``: one Envoy route per (HTTPRoute, match) in order, skipping
    matches for another port, for other clients (``source_matches``: the proxy's source labels and namespace) or
    for other gateways than ``gateway`` (``mesh``: sidecars; else a Gateway's ``<namespace>/<name>``), and stopping
    after a catch-all (nothing after it can match)."""
    return build_merged_http_routes(
        (vs,),
        port,
        domain_suffix=domain_suffix,
        service_ports=service_ports,
        source_labels=source_labels,
        source_namespace=source_namespace,
        gateway=gateway,
    )


def build_merged_http_routes(
    rules: Sequence[VirtualService],
    port: int,
    *,
    domain_suffix: str,
    service_ports: ServicePorts,
    source_labels: SourceLabels = (),
    source_namespace: str = "",
    gateway: str = MESH_GATEWAY,
) -> list[Route]:
    """``build_http_routes`` over the routes of several VirtualServices for one host, in order
    (``pilot.model.virtual_service_merge.merged_http_routes``): each route keeps its VirtualService's metadata; nothing
    after a catch-all."""
    contexts: dict[int, RouteContext] = {}
    out: list[Route] = []
    for sourced in merged_http_routes(rules):
        vs, http = sourced.virtual_service, sourced.route
        ctx = contexts.get(id(vs))
        if ctx is None:
            ctx = contexts[id(vs)] = RouteContext(
                vs_namespace=vs.meta.key.namespace,
                vs_name=vs.meta.key.name,
                port=port,
                domain_suffix=domain_suffix,
                service_ports=service_ports,
            )
        if not http.match:
            route = _translate_route(vs, http, None, ctx)
            if route is not None:
                out.append(route)
            break
        if _translate_matches(vs, http, ctx, out, source_labels, source_namespace, gateway):
            break
    return out


def _translate_matches(
    vs: VirtualService,
    http: HTTPRoute,
    ctx: RouteContext,
    out: list[Route],
    source_labels: SourceLabels,
    source_namespace: str,
    gateway: str,
) -> bool:
    """Append one route per match of ``http`` that applies to this port, these clients and this gateway; True after
    a catch-all."""
    for match in http.match:
        if match.port is not None and match.port != ctx.port:
            continue
        if not source_matches(match, source_labels, source_namespace):
            continue
        if not match_gateway_applies(match.gateways, vs, gateway):
            continue
        route = _translate_route(vs, http, match, ctx)
        if route is not None:
            out.append(route)
            if is_catch_all_match(route.match):
                return True
    return False


def _translate_route(
    vs: VirtualService, http: HTTPRoute, match: HTTPMatchRequest | None, ctx: RouteContext
) -> Route | None:
    name = f"{http.name}.{match.name}" if match is not None and match.name else http.name
    route = Route(name=name, match=translate_route_match(match))
    if match is not None and match.stat_prefix:
        route.stat_prefix = match.stat_prefix
    route.metadata.CopyFrom(_config_metadata(vs))
    mutations = translate_headers(http.headers)
    if http.redirect is not None:
        redirect = build_redirect(http.redirect, ctx.port)
        if redirect is None:
            return None
        route.redirect.CopyFrom(redirect)
    elif http.direct_response is not None:
        route.direct_response.CopyFrom(build_direct_response(http.direct_response))
    else:
        built = build_route_action(http, ctx, mutations.authority)
        if built is None:
            return None
        action, destination_mutations = built
        route.route.CopyFrom(action)
        mutations = mutations.then(destination_mutations)
    _apply_headers(route, mutations)
    route.decorator.operation = _route_operation(route, ctx)
    if http.fault is not None:
        fault = translate_fault(http.fault)
        if fault is not None:
            route.typed_per_filter_config[names.FAULT_FILTER].Pack(fault)
    if http.cors_policy is not None:
        route.typed_per_filter_config[names.CORS_FILTER].Pack(translate_cors_policy(http.cors_policy))
    return route


def _apply_headers(route: Route, mutations: HeaderMutations) -> None:
    route.request_headers_to_add.extend(mutations.request_add)
    route.request_headers_to_remove.extend(mutations.request_remove)
    route.response_headers_to_add.extend(mutations.response_add)
    route.response_headers_to_remove.extend(mutations.response_remove)


def _route_operation(route: Route, ctx: RouteContext) -> str:
    """Istio's ``GetRouteOperation`` (the tracing span name): ``host:port/path`` for one destination, else
    ``<virtual service>:port/path``."""
    match = route.match
    kind = match.WhichOneof("path_specifier")
    if kind == "prefix":
        path = match.prefix + "*"
    elif kind == "path":
        path = match.path
    elif kind == "safe_regex":
        path = match.safe_regex.regex
    else:
        path = "/*"
    if route.WhichOneof("action") == "route" and route.route.WhichOneof("cluster_specifier") == "cluster":
        port, _, host = names.parse_outbound_cluster_name(route.route.cluster)
        return f"{host}:{port}{path}"
    return f"{ctx.vs_name}:{ctx.port}{path}"


def _config_metadata(vs: VirtualService) -> Metadata:
    metadata = Metadata()
    metadata.filter_metadata["istio"].update({"config": virtual_service_config_path(vs)})
    return metadata


def visible_virtual_services(
    host: str, namespace: str, snapshot: MeshSnapshot, sidecar: ConfigKey | None = None
) -> tuple[VirtualService, ...]:
    """The VirtualServices for ``host`` exported to ``namespace`` and admitted by the ``sidecar`` in force, the one
    in force first."""
    scope = egress_scope(snapshot, (namespace, sidecar))
    return tuple(
        vs
        for vs in virtual_services_for(snapshot, host)
        if exported_to(vs.export_to, vs.meta.key.namespace, namespace) and scope.sees_virtual_service(vs)
    )


def _service_routes(inputs: VirtualHostInputs) -> list[Route]:
    routes = _unhashed_service_routes(inputs)
    apply_hash_policies(routes, inputs.hash_policies)
    return routes


def _unhashed_service_routes(inputs: VirtualHostInputs) -> list[Route]:
    rules = inputs.rules
    if rules:
        routes = build_merged_http_routes(
            rules,
            inputs.port,
            domain_suffix=inputs.domain_suffix,
            service_ports=inputs.service_ports,
            source_labels=inputs.source_labels,
            source_namespace=inputs.namespace,
        )
        if routes:
            return routes
    return [default_outbound_route(inputs.host, inputs.port)]


def _without_duplicate_domains(vhosts: Sequence[VirtualHost]) -> list[VirtualHost]:
    """Envoy rejects a table where two virtual hosts share a domain. A host's own name
    is claimed before any alternative name, so that a ServiceEntry host ``reviews.default`` keeps its name
    against the short alias of ``reviews.default.svc.cluster.local``; otherwise the first virtual host (by name)
    keeps the domain. Each conflict is logged."""
    claimed: dict[str, str] = {}
    for vhost in vhosts:
        for domain in _own_domains(vhost):
            claimed.setdefault(domain.lower(), vhost.name)
    out: list[VirtualHost] = []
    for vhost in vhosts:
        kept: list[str] = []
        for domain in vhost.domains:
            owner = claimed.setdefault(domain.lower(), vhost.name)
            if owner != vhost.name:
                log.warning("domain_conflict", domain=domain, virtual_host=vhost.name, kept_by=owner)
            elif domain not in kept:
                kept.append(domain)
        if not kept:
            log.warning("virtual_host_dropped", virtual_host=vhost.name, reason="every domain is taken")
            continue
        if kept != list(vhost.domains):  # a copy: the given virtual hosts may be shared (the cache's)
            trimmed = VirtualHost()
            trimmed.CopyFrom(vhost)
            del trimmed.domains[:]
            trimmed.domains.extend(kept)
            vhost = trimmed
        out.append(vhost)
    return out


def _own_domains(vhost: VirtualHost) -> tuple[str, ...]:
    """The host of a ``<host>:<port>`` virtual host (a table is one port's)."""
    return (vhost.name.rpartition(":")[0],)
