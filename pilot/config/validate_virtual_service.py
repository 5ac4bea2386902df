"""Validate a VirtualService spec into ``types.VirtualService`` (Istio's ``ValidateVirtualService`` rules).

Routes: ``http`` here, ``tcp`` and ``tls`` in ``validate_tcp_tls_routes``. ``gateways`` binds the VirtualService
to Gateways (``validate_gateway_refs``) and, with ``mesh`` or when empty, to the sidecars.

Delegation (Istio 1.6+): a VirtualService without ``hosts`` is a delegate; it has only ``http`` routes, no
``gateways``, and none of its routes delegates again (one level). A root's route with ``delegate`` has no route,
redirect or direct response of its own. The merge itself is ``pilot.model.virtual_service_merge``.

Checks that need other resources (does the subset exist? is the port one of the service's?) are not here: they run
in the store over the whole set of resources about to be accepted.
"""

from __future__ import annotations

from pilot.config.errors import quote
from pilot.config.hosts import host_matches
from pilot.config.types import (
    ConfigMeta,
    Delegate,
    Destination,
    HTTPRoute,
    HTTPRouteDestination,
    Mirror,
    VirtualService,
)
from pilot.config.validate_common import Fields
from pilot.config.validate_cors import read_cors_policy
from pilot.config.validate_gateway_refs import MESH_GATEWAY, read_gateway_names
from pilot.config.validate_http_actions import (
    read_direct_response,
    read_fault,
    read_headers,
    read_percentage,
    read_redirect,
    read_retries,
    read_rewrite,
)
from pilot.config.validate_http_match import read_matches
from pilot.config.validate_names import dns1123_label_error, dns1123_subdomain_error, export_to, host_error, ip_error
from pilot.config.validate_tcp_tls_routes import check_weights, read_destination, read_tcp_routes, read_tls_routes

__all__ = [
    "HTTP_ROUTE_FIELDS",
    "VIRTUAL_SERVICE_FIELDS",
    "VIRTUAL_SERVICE_UNSUPPORTED",
    "read_destination",
    "validate_virtual_service",
]

VIRTUAL_SERVICE_FIELDS = ("hosts", "gateways", "http", "tls", "tcp", "exportTo")
VIRTUAL_SERVICE_UNSUPPORTED: tuple[str, ...] = ()
HTTP_ROUTE_FIELDS = (
    "name",
    "match",
    "route",
    "redirect",
    "directResponse",
    "rewrite",
    "timeout",
    "retries",
    "fault",
    "mirror",
    "mirrorPercentage",
    "mirrors",
    "corsPolicy",
    "headers",
    "delegate",
)
_DELEGATE_FIELDS = ("name", "namespace")
# Istio takes these from the root's match (they pick the proxies, which the root's gateways and hosts decide)
_ROOT_ONLY_MATCH_FIELDS = ("sourceLabels", "sourceNamespace")


def validate_virtual_service(spec: Fields, meta: ConfigMeta) -> VirtualService:
    """Check a VirtualService spec (opened with ``VIRTUAL_SERVICE_FIELDS``); problems go to ``spec.problems``."""
    gateways = read_gateway_names(spec)
    applies_to_mesh = not gateways or MESH_GATEWAY in gateways
    hosts = _hosts(spec, applies_to_mesh=applies_to_mesh)
    is_delegate = not hosts
    if is_delegate:
        _check_delegate(spec)
    if not any(spec.has(name) for name in ("http", "tcp", "tls")):
        spec.report(None, "http, tcp or tls must be provided in virtual service")
    routes = tuple(
        _http_route(route, meta.key.namespace, is_delegate=is_delegate)
        for route in spec.mappings("http", known=HTTP_ROUTE_FIELDS, required=spec.has("http"), message="HTTPRoute")
    )
    return VirtualService(
        meta=meta,
        hosts=hosts,
        gateways=gateways,
        http=routes,
        tls=read_tls_routes(spec, hosts),
        tcp=read_tcp_routes(spec),
        export_to=export_to(spec, meta.key.namespace, allow_none=False),
    )


def _check_delegate(spec: Fields) -> None:
    """Istio's rules for a delegate (a VirtualService without hosts)."""
    if spec.has("gateways"):
        spec.report("gateways", "delegate virtual service must have no gateways specified")
    for kind in ("tls", "tcp"):
        if spec.has(kind):
            spec.report(kind, f"delegate virtual service must have no {kind} route specified")


def _delegate(route: Fields, namespace: str, *, is_delegate: bool) -> Delegate | None:
    delegate = route.mapping("delegate", known=_DELEGATE_FIELDS, message="Delegate")
    if delegate is None:
        return None
    if is_delegate:
        delegate.report(
            None,
            "a delegate VirtualService (one without hosts) cannot delegate again: Istio allows "
            "one level of delegation only",
        )
    name = delegate.string("name", required=True) or ""
    if name:
        delegate.problems.add_if(delegate.at("name"), dns1123_subdomain_error(name, "delegate name"))
    target_namespace = delegate.string("namespace") or ""
    if target_namespace:
        delegate.problems.add_if(delegate.at("namespace"), dns1123_label_error(target_namespace, "delegate namespace"))
    return Delegate(name=name, namespace=target_namespace or namespace)


def _check_delegate_matches(route: Fields) -> None:
    """A delegate's matches are merged into the root's; what only the root's match can say is refused, not
    ignored."""
    for index, match in enumerate(route.node.get("match") or ()):
        if not isinstance(match, dict):
            continue
        for name in _ROOT_ONLY_MATCH_FIELDS:
            if name in match:
                route.problems.add(
                    route.at("match", index, name),
                    f"{name} in a delegate VirtualService's match would be ignored (Istio takes it from the root's "
                    "match): set it on the root VirtualService's route",
                )


def _hosts(spec: Fields, *, applies_to_mesh: bool) -> tuple[str, ...]:
    hosts = spec.strings("hosts") or ()  # none: a delegate
    before = len(spec.problems)
    for index, host in enumerate(hosts):
        path = spec.at("hosts", index)
        if host == "*" and applies_to_mesh:
            spec.problems.add(
                path, "host '*' is not allowed for the mesh: list gateways without 'mesh', or name the hosts"
            )
        elif ip_error(host) is not None:
            spec.problems.add_if(path, host_error(host))
    if len(spec.problems) == before:  # as Istio: overlaps are looked for only among valid hosts
        _overlapping_hosts(spec, hosts)
    return hosts


def _overlapping_hosts(spec: Fields, hosts: tuple[str, ...]) -> None:
    """Istio's duplicate-host rule: two hosts of one VirtualService must not match each other, literally or by
    wildcard (``*.foo.com`` with ``a.foo.com``, or with ``*.a.foo.com``)."""
    for later in range(1, len(hosts)):
        for earlier in range(later):
            first, second = hosts[earlier], hosts[later]
            if first == second:
                spec.problems.add(spec.at("hosts", later), f"duplicate host {quote(second)}")
            elif host_matches(first, second) or host_matches(second, first):
                spec.problems.add(
                    spec.at("hosts", later),
                    f"overlapping hosts in one VirtualService: {quote(second)} and {quote(first)} (hosts[{earlier}])",
                )
            else:
                continue
            break


def _http_route(route: Fields, namespace: str, *, is_delegate: bool) -> HTTPRoute:
    _check_conflicts(route)
    if is_delegate:
        _check_delegate_matches(route)
    destinations: list[HTTPRouteDestination] = []
    # a route list given empty routes nowhere (Istio: "HTTP route or redirect is required")
    for entry in route.mappings(
        "route",
        known=("destination", "weight", "headers"),
        required=route.has("route"),
        message="HTTPRouteDestination",
    ):
        destination = read_destination(entry)
        destinations.append(
            HTTPRouteDestination(
                destination=destination or Destination(host=""),
                weight=entry.integer("weight", minimum=0, maximum=100),
                headers=read_headers(entry),
            )
        )
    check_weights(route, [d.weight for d in destinations])
    rewrite = read_rewrite(route)
    headers = read_headers(route)
    if rewrite is not None and rewrite.authority:
        request = headers.request if headers is not None else None
        if request is not None and any(h.lower() in ("host", ":authority") for h in (*request.set, *request.add)):
            route.report("headers", "the authority is also rewritten by rewrite.authority: set it in one place only")
    return HTTPRoute(
        name=route.string("name") or "",
        match=read_matches(route),
        route=tuple(destinations),
        redirect=read_redirect(route),
        direct_response=read_direct_response(route),
        rewrite=rewrite,
        timeout=route.timeout("timeout"),
        retries=read_retries(route),
        fault=read_fault(route),
        mirrors=_mirrors(route),
        cors_policy=read_cors_policy(route),
        headers=headers,
        delegate=_delegate(route, namespace, is_delegate=is_delegate),
    )


def _check_conflicts(route: Fields) -> None:
    """Exactly one of route / redirect / directResponse, and what cannot go with a redirect or a direct response."""
    action = route.exclusive(("route", "redirect", "directResponse", "delegate"), required=True)
    for other in ("fault", "rewrite"):
        if action in ("redirect", "directResponse") and route.has(other):
            route.report(other, f"cannot be combined with {action}")


def _mirrors(route: Fields) -> tuple[Mirror, ...]:
    route.exclusive(("mirror", "mirrors"))
    if route.has("mirrorPercentage") and not route.has("mirror"):
        route.report("mirrorPercentage", "only applies together with mirror")
    if route.has("mirror"):
        destination = read_destination(route, "mirror")
        percentage = read_percentage(route, "mirrorPercentage")
        return (Mirror(destination=destination or Destination(host=""), percentage=percentage),)
    mirrors: list[Mirror] = []
    for entry in route.mappings("mirrors", known=("destination", "percentage"), message="HTTPMirrorPolicy"):
        destination = read_destination(entry)
        mirrors.append(
            Mirror(destination=destination or Destination(host=""), percentage=read_percentage(entry, "percentage"))
        )
    return tuple(mirrors)
