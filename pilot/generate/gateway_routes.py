"""RDS of a gateway proxy (Istio ``buildGatewayHTTPRouteConfig``): one route table per plaintext HTTP port
(``http.<port>``, its servers merged) and one per HTTPS server (``https.<port>.<port name>.<gateway>.<namespace>``).

A table's virtual hosts come from the VirtualServices bound to the servers' Gateways: for each VirtualService
visible from the server (host prefix ``*/``, ``./`` = the Gateway's namespace, or a namespace; no prefix is ``*/``)
and exported to the proxy's namespace, each of its hosts that a server host matches (wildcards both ways) gives a
virtual host named for the more specific of the two, with Istio's domains (``host`` and ``host:*``; a wildcard host
keeps the port). Several VirtualServices for one host are merged as Istio merges them on gateways: their routes in
VirtualService order, catch-all routes moved last (``SortVHostRoutes``). ``httpsRedirect`` sets ``require_tls``
(Envoy answers 301 to https) on every host of the server, VirtualService or not. No virtual host: Istio's
``blackhole:<port>`` (every request 404). A route to a cluster whose DestinationRule (for the gateway's namespace and
``ClientView``) balances by consistent hash gets that hash policy (``route_hash_policy``), as a sidecar's does.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.route.v3.route_components_pb2 import Route, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration

from pilot.config.hosts import host_matches, resolve_host
from pilot.config.types import VirtualService
from pilot.generate.gateway_ports import gateway_ports, https_route_name, plaintext_route_name
from pilot.generate.route_action import ServicePorts
from pilot.generate.route_hash_policy import hash_built_routes
from pilot.generate.route_match import is_catch_all_match
from pilot.generate.routes import build_http_routes, build_route_table, route_view
from pilot.model.gateways import GatewayPortKind, SelectedServer, gateway_labels, gateway_server_hosts
from pilot.model.types import MeshSnapshot, Proxy
from pilot.model.visibility import exported_to

__all__ = [
    "build_gateway_routes",
    "build_gateway_virtual_hosts",
    "gateway_virtual_host_domains",
    "matching_hosts",
    "server_virtual_services",
]


def build_gateway_routes(proxy: Proxy, snapshot: MeshSnapshot) -> list[RouteConfiguration]:
    """Every route table the proxy's gateway listeners fetch."""
    tables: list[RouteConfiguration] = []
    for port in gateway_ports(proxy, snapshot):
        if port.kind is GatewayPortKind.HTTP:
            # matches and virtual host names use the Gateway's port (80), not the targetPort the listener binds (8080)
            vhosts = build_gateway_virtual_hosts(port.servers, port.servers[0].server.port.number, proxy, snapshot)
            tables.append(build_route_table(plaintext_route_name(port), vhosts))
        elif port.kind is GatewayPortKind.TLS:
            for server in port.servers:
                if server.server.port.protocol.is_http or _terminates_http(server):
                    vhosts = build_gateway_virtual_hosts((server,), server.server.port.number, proxy, snapshot)
                    tables.append(build_route_table(https_route_name(server), vhosts))
    return tables


def _terminates_http(server: SelectedServer) -> bool:
    """An HTTPS server that terminates TLS (not PASSTHROUGH / AUTO_PASSTHROUGH): HTTP inside."""
    tls = server.server.tls
    return server.server.port.protocol.value == "HTTPS" and tls is not None and "PASSTHROUGH" not in tls.mode


def server_virtual_services(server: SelectedServer, proxy: Proxy, snapshot: MeshSnapshot) -> list[VirtualService]:
    """The VirtualServices bound to the server's Gateway that the proxy's namespace sees."""
    return [
        vs
        for vs in snapshot.gateway_virtual_services.get(server.gateway, ())
        if exported_to(vs.export_to, vs.meta.key.namespace, proxy.namespace)
    ]


def matching_hosts(server: SelectedServer, hosts: Sequence[str], vs_namespace: str) -> list[str]:
    """The names, among ``hosts`` (of a VirtualService in ``vs_namespace``, resolved), that the server's hosts
    admit, each as the more specific of the pair (Istio's host intersection with namespace prefixes)."""
    out: list[str] = []
    for raw in server.server.hosts:
        namespace, slash, server_host = raw.partition("/")
        if not slash:
            namespace, server_host = "*", raw
        if namespace == ".":
            namespace = server.namespace
        if namespace not in ("*", vs_namespace):
            continue
        for host in hosts:
            if host_matches(server_host, host):
                picked = host
            elif host_matches(host, server_host):
                picked = server_host
            else:
                continue
            if picked not in out:
                out.append(picked)
    return out


def gateway_virtual_host_domains(host: str, port: int) -> list[str]:
    """Istio's ``buildGatewayVirtualHostDomains``: the host, and the host with any port (``host:*``); a wildcard
    host keeps its own port (Envoy allows one wildcard per domain)."""
    if host == "*":
        return ["*"]
    return [host, f"{host}:{port}" if host.startswith("*") else f"{host}:*"]


def build_gateway_virtual_hosts(
    servers: Sequence[SelectedServer], port: int, proxy: Proxy, snapshot: MeshSnapshot
) -> list[VirtualHost]:
    """The virtual hosts of ``servers`` (one port's plaintext servers, or one HTTPS server)."""
    routes: dict[str, list[Route]] = {}
    redirect: set[str] = set()
    service_ports = ServicePorts.of(snapshot)
    labels = tuple(sorted(gateway_labels(proxy).items()))
    view = route_view(proxy)
    for server in servers:
        tls = server.server.tls
        if tls is not None and tls.https_redirect:  # redirected even when no VirtualService is bound (Istio)
            for host in gateway_server_hosts(server.server):
                routes.setdefault(host, [])
                redirect.add(host)
        for vs in server_virtual_services(server, proxy, snapshot):
            namespace = vs.meta.key.namespace
            resolved = [resolve_host(host, namespace, snapshot.domain_suffix) for host in vs.hosts]
            hosts = matching_hosts(server, resolved, namespace)
            if not hosts:
                continue
            built = build_http_routes(
                vs,
                port,
                domain_suffix=snapshot.domain_suffix,
                service_ports=service_ports,
                source_labels=labels,
                source_namespace=proxy.namespace,
                gateway=server.gateway,
            )
            hash_built_routes(built, snapshot, proxy.namespace, view)
            for host in hosts:
                routes.setdefault(host, []).extend(built)
                if tls is not None and tls.https_redirect:
                    redirect.add(host)
    vhosts = [_virtual_host(host, port, host_routes, host in redirect) for host, host_routes in routes.items()]
    if not vhosts:
        return [VirtualHost(name=f"blackhole:{port}", domains=["*"])]
    return sorted(vhosts, key=lambda vhost: vhost.name)


def _virtual_host(host: str, port: int, routes: list[Route], redirect: bool) -> VirtualHost:
    ordered = [r for r in routes if not is_catch_all_match(r.match)] + [
        r for r in routes if is_catch_all_match(r.match)
    ]
    vhost = VirtualHost(
        name=f"{host}:{port}",
        domains=gateway_virtual_host_domains(host, port),
        routes=ordered,
        include_request_attempt_count=True,
    )
    if redirect:
        vhost.require_tls = VirtualHost.TlsRequirementType.ALL
    return vhost
