"""RDS: the route tables of a sidecar (Istio's sidecar ``httproute.go`` over ``route.go``).

- ``build_scope_routes(("http_proxy", namespace), snapshot)``: the outbound table of the HTTP-proxy listener, one
  per namespace (short host names depend on it), shared by every proxy in that namespace. One virtual host per
  (service host, HTTP/HTTP2/GRPC port), routed by the VirtualService for that host when there is one, else by
  Istio's default route (``/`` -> ``outbound|<port>||<host>`` with the default retry policy).
- ``build_inbound_routes(proxy, snapshot)``: one table per HTTP service port the proxy's workload serves,
  sending everything to the local app.

The HTTP-proxy listener's port (15001) is never a service port, so, as Istio does for a listener port that differs
from the service port, every host name is matched with its ``:<port>``, and also bare only for port 80.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence

import structlog
from envoy.config.core.v3.base_pb2 import Metadata
from envoy.config.route.v3.route_components_pb2 import Decorator, Route, RouteAction, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration

from meshplane import names
from pilot.config.types import HTTPMatchRequest, HTTPRoute, VirtualService
from pilot.generate.clusters import inbound_instances
from pilot.generate.route_action import (
    HeaderMutations,
    RouteContext,
    build_direct_response,
    build_redirect,
    build_route_action,
    default_retry_policy,
    set_duration,
    set_timeout,
    translate_fault,
    translate_headers,
)
from pilot.generate.route_match import is_catch_all_match, translate_route_match
from pilot.model import MeshSnapshot, Proxy, Service, virtual_services_for

__all__ = [
    "DEFAULT_ROUTE_NAME",
    "HTTP_PROXY_SCOPE",
    "MAX_DIRECT_RESPONSE_BODY_BYTES",
    "alt_host_names",
    "build_http_routes",
    "build_inbound_routes",
    "build_scope_routes",
    "default_outbound_route",
    "route_scopes",
    "virtual_host_domains",
    "virtual_service_config_path",
]

log = structlog.get_logger(__name__)

HTTP_PROXY_SCOPE = "http_proxy"
DEFAULT_ROUTE_NAME = "default"  # Istio's name for the route of a host without a VirtualService
MAX_DIRECT_RESPONSE_BODY_BYTES = 1024 * 1024  # Istio's limit (its validation's), instead of Envoy's 4 KiB


def route_scopes(proxy: Proxy) -> list[tuple[Hashable, ...]]:
    return [(HTTP_PROXY_SCOPE, proxy.namespace)]


def build_scope_routes(scope: tuple[Hashable, ...], snapshot: MeshSnapshot) -> list[RouteConfiguration]:
    """The HTTP-proxy route table of the namespace named by ``scope`` (``("http_proxy", namespace)``)."""
    if len(scope) != 2 or scope[0] != HTTP_PROXY_SCOPE or not isinstance(scope[1], str) or not scope[1]:
        raise ValueError(f"scope must be ({HTTP_PROXY_SCOPE!r}, <namespace>), got {scope!r}")
    namespace = scope[1]
    table_name = names.http_proxy_route_name(namespace)
    previous = _VIRTUAL_HOSTS.get(table_name, {})
    current: dict[Hashable, tuple[tuple[VirtualService, ...], VirtualHost]] = {}
    registry = (snapshot.domain_suffix, _registry_fingerprint(snapshot))
    vhosts: list[VirtualHost] = []
    for service in snapshot.services.values():
        if not _service_visible(service, namespace, snapshot):
            continue
        rules = _visible_rules(service.host, namespace, snapshot)
        for port in service.ports:
            if not port.protocol.is_http:
                continue
            key = (registry, service.host, port.number, tuple(id(vs) for vs in rules))
            built = previous.get(key) or (rules, _virtual_host(service, port.number, namespace, rules, snapshot))
            current[key] = built
            vhosts.append(built[1])
    _VIRTUAL_HOSTS[table_name] = current  # this build's entries only: memory stays one table's worth
    vhosts.sort(key=lambda vh: vh.name)
    table = RouteConfiguration(name=table_name, virtual_hosts=_without_duplicate_domains(vhosts))
    table.validate_clusters.value = False
    table.max_direct_response_body_size_bytes.value = MAX_DIRECT_RESPONSE_BODY_BYTES
    return [table]


def build_inbound_routes(proxy: Proxy, snapshot: MeshSnapshot) -> list[RouteConfiguration]:
    """One table per HTTP service port of the proxy's workload: everything to ``inbound|<port>||`` (Istio's
    ``BuildDefaultHTTPInboundRoute``: no timeout, ``grpc-timeout`` honoured, retry a reset before the request)."""
    del snapshot  # the proxy's instances were resolved against it already
    out: list[RouteConfiguration] = []
    # The same choice of instance per port as the inbound clusters and listeners make.
    for instance in inbound_instances(proxy):
        if not instance.port.protocol.is_http:
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


def virtual_host_domains(host: str, port: int, namespace: str, domain_suffix: str) -> tuple[str, ...]:
    """Host header values that reach ``host:port`` through the HTTP-proxy listener: each name with ``:<port>``,
    and bare too for port 80 (a client omits the default port)."""
    out: list[str] = []
    for name in (host, *alt_host_names(host, namespace, domain_suffix)):
        if port == 80:
            out.append(name)
        out.append(f"{name}:{port}")
    return tuple(out)


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


def build_http_routes(vs: VirtualService, port: int, snapshot: MeshSnapshot) -> list[Route]:
    """Istio's ``BuildHTTPRoutesForVirtualService`` for a sidecar: one Envoy route per (HTTPRoute, match) in order,
    skipping matches for another port, and stopping after a catch-all (nothing after it can match)."""
    ctx = RouteContext(vs_namespace=vs.meta.key.namespace, vs_name=vs.meta.key.name, port=port, snapshot=snapshot)
    out: list[Route] = []
    for http in vs.http:
        if not http.match:
            route = _translate_route(vs, http, None, ctx)
            if route is not None:
                out.append(route)
            break
        catch_all = False
        for match in http.match:
            if match.port is not None and match.port != port:
                continue
            route = _translate_route(vs, http, match, ctx)
            if route is not None:
                out.append(route)
                if is_catch_all_match(route.match):
                    catch_all = True
                    break
        if catch_all:
            break
    return out


def _translate_route(
    vs: VirtualService, http: HTTPRoute, match: HTTPMatchRequest | None, ctx: RouteContext
) -> Route | None:
    name = f"{http.name}.{match.name}" if match is not None and match.name else http.name
    route = Route(name=name, match=translate_route_match(match))
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


def _exported_to(export_to: Sequence[str], owner_namespace: str, namespace: str) -> bool:
    """Istio's exportTo: empty or ``*`` is everywhere, ``.`` the owner's namespace, ``~`` nowhere."""
    if not export_to or "*" in export_to or namespace in export_to:
        return True
    return "." in export_to and owner_namespace == namespace


def _service_visible(service: Service, namespace: str, snapshot: MeshSnapshot) -> bool:
    entry = snapshot.configs.get(service.source)
    export_to: Sequence[str] = getattr(entry, "export_to", ())
    return _exported_to(export_to, service.namespace, namespace)


# Virtual hosts of the previous build of each route table, keyed on every input a virtual host is built from:
# the domain suffix and every service's ports (destination ports are resolved against them), the host and port,
# and the VirtualServices visible for the host (by identity: config objects are frozen, a changed rule is a new
# object, and the entry keeps the objects alive so an id cannot be reused). One VirtualService change then
# rebuilds one virtual host instead of all of them (1000 services: ~360 ms -> a few ms per snapshot).
_VIRTUAL_HOSTS: dict[str, dict[Hashable, tuple[tuple[VirtualService, ...], VirtualHost]]] = {}


def _registry_fingerprint(snapshot: MeshSnapshot) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for host, service in snapshot.services.items():
        digest.update(f"{host}|{','.join(str(p.number) for p in service.ports)}\n".encode())
    return digest.hexdigest()


def _visible_rules(host: str, namespace: str, snapshot: MeshSnapshot) -> tuple[VirtualService, ...]:
    """The VirtualServices for ``host`` exported to ``namespace``, the one in force first."""
    return tuple(
        vs
        for vs in virtual_services_for(snapshot, host)
        if _exported_to(vs.export_to, vs.meta.key.namespace, namespace)
    )


def _virtual_host(
    service: Service, port: int, namespace: str, rules: Sequence[VirtualService], snapshot: MeshSnapshot
) -> VirtualHost:
    return VirtualHost(
        name=f"{service.host}:{port}",
        domains=virtual_host_domains(service.host, port, namespace, snapshot.domain_suffix),
        routes=_service_routes(service, port, namespace, rules, snapshot),
        include_request_attempt_count=True,
    )


def _service_routes(
    service: Service, port: int, namespace: str, rules: Sequence[VirtualService], snapshot: MeshSnapshot
) -> list[Route]:
    if rules:
        if len(rules) > 1:
            log.warning(
                "virtual_service_shadowed",
                host=service.host,
                port=port,
                namespace=namespace,
                used=str(rules[0].meta.key),
                shadowed=[str(vs.meta.key) for vs in rules[1:]],
            )
        routes = build_http_routes(rules[0], port, snapshot)
        if routes:
            return routes
    return [default_outbound_route(service.host, port)]


def _without_duplicate_domains(vhosts: Sequence[VirtualHost]) -> list[VirtualHost]:
    """Envoy rejects a table where two virtual hosts share a domain. A host's own name (``host``/``host:port``)
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
        if kept != list(vhost.domains):  # a copy: the given virtual hosts may be shared (see _VIRTUAL_HOSTS)
            trimmed = VirtualHost()
            trimmed.CopyFrom(vhost)
            del trimmed.domains[:]
            trimmed.domains.extend(kept)
            vhost = trimmed
        out.append(vhost)
    return out


def _own_domains(vhost: VirtualHost) -> tuple[str, ...]:
    host, _, port = vhost.name.rpartition(":")
    return (vhost.name, host) if port == "80" else (vhost.name,)
