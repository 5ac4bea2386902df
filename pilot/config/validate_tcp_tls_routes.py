"""Validate a VirtualService's ``tcp`` and ``tls`` routes (Istio ``pkg/config/validation``: ``validateTCPRoute``,
``validateTCPMatch``, ``validateTLSRoute``, ``validateTLSMatch``, ``validateSniHost``, ``validateRouteDestinations``).

- ``tcp``: at least one destination ("TCP route is required"); matches are optional (none: every connection).
- ``tls``: at least one match ("TLS route must have at least one match condition"), each with at least one SNI
  host, each SNI host a valid (wildcard) domain within one of the VirtualService's hosts ("is not a compatible
  subset of any of the virtual service hosts"); an IP address is accepted as an SNI host, as Istio does (with a
  warning there: most clients send no SNI for an IP).
- Match fields: ``destinationSubnets`` IPs or CIDRs, ``port`` 1-65535, ``sourceLabels`` label syntax,
  ``sourceNamespace`` a DNS-1123 label, ``gateways`` names as ``validate_gateway_refs`` checks them.
- Destinations as HTTP's (``read_destination``); weights 0-100 that add up to 100 when there are several (the rule
  meshplane applies to HTTP routes too).
"""

from __future__ import annotations

from pilot.config.errors import quote
from pilot.config.hosts import host_matches
from pilot.config.types import (
    Destination,
    L4MatchAttributes,
    RouteDestination,
    TCPRoute,
    TLSMatchAttributes,
    TLSRoute,
    frozen_labels,
)
from pilot.config.validate_common import Fields
from pilot.config.validate_gateway_refs import read_gateway_names
from pilot.config.validate_names import cidr_error, dns1123_label_error, host_error, ip_error

__all__ = [
    "L4_MATCH_FIELDS",
    "ROUTE_DESTINATION_FIELDS",
    "TLS_MATCH_FIELDS",
    "check_weights",
    "read_destination",
    "read_tcp_routes",
    "read_tls_routes",
]

L4_MATCH_FIELDS = ("destinationSubnets", "port", "sourceLabels", "gateways", "sourceNamespace")
TLS_MATCH_FIELDS = ("sniHosts", *L4_MATCH_FIELDS)
ROUTE_DESTINATION_FIELDS = ("destination", "weight")
_ROUTE_FIELDS = ("match", "route")


def read_tcp_routes(spec: Fields) -> tuple[TCPRoute, ...]:
    """The VirtualService's ``tcp`` list."""
    routes: list[TCPRoute] = []
    for route in spec.mappings("tcp", known=_ROUTE_FIELDS, required=spec.has("tcp"), message="TCPRoute"):
        matches = tuple(
            _l4_match(match) for match in route.mappings("match", known=L4_MATCH_FIELDS, message="L4MatchAttributes")
        )
        routes.append(TCPRoute(match=matches, route=_route_destinations(route, "TCP")))
    return tuple(routes)


def read_tls_routes(spec: Fields, hosts: tuple[str, ...]) -> tuple[TLSRoute, ...]:
    """The VirtualService's ``tls`` list; ``hosts`` are the VirtualService's, which every SNI host must be within."""
    routes: list[TLSRoute] = []
    for route in spec.mappings("tls", known=_ROUTE_FIELDS, required=spec.has("tls"), message="TLSRoute"):
        if not route.is_set("match"):
            route.report("match", "TLS route must have at least one match condition")
        matches = tuple(
            _tls_match(match, hosts)
            for match in route.mappings("match", known=TLS_MATCH_FIELDS, message="TLSMatchAttributes")
        )
        routes.append(TLSRoute(match=matches, route=_route_destinations(route, "TLS")))
    return tuple(routes)


def _l4_fields(match: Fields) -> dict[str, object]:
    subnets = match.strings("destinationSubnets") or ()
    for index, subnet in enumerate(subnets):
        match.problems.add_if(match.at("destinationSubnets", index), cidr_error(subnet))
    namespace = match.string("sourceNamespace") or ""
    if namespace:
        match.problems.add_if(match.at("sourceNamespace"), dns1123_label_error(namespace, "sourceNamespace"))
    gateways = read_gateway_names(match)
    labels = match.labels("sourceLabels")
    return {
        "destination_subnets": subnets,
        "port": match.integer("port", minimum=1, maximum=65535),
        "source_labels": frozen_labels(labels),
        "source_namespace": namespace,
        "gateways": gateways,
    }


def _l4_match(match: Fields) -> L4MatchAttributes:
    return L4MatchAttributes(**_l4_fields(match))  # type: ignore[arg-type]


def _tls_match(match: Fields, hosts: tuple[str, ...]) -> TLSMatchAttributes:
    if not match.is_set("sniHosts"):
        match.report("sniHosts", "TLS match must have at least one SNI host")
    sni_hosts = match.strings("sniHosts") or ()
    for index, sni in enumerate(sni_hosts):
        match.problems.add_if(match.at("sniHosts", index), sni_host_error(sni, hosts))
    return TLSMatchAttributes(sni_hosts=sni_hosts, **_l4_fields(match))  # type: ignore[arg-type]


def sni_host_error(sni: str, hosts: tuple[str, ...]) -> str | None:
    """Istio's ``validateSniHost``: a (wildcard) domain, or an IP address; within one of the VirtualService's hosts
    (``*.example.com`` is within ``*.com``; a short host is compared as written, as Istio does)."""
    error = host_error(sni)
    if error is not None:
        return None if ip_error(sni) is None else error
    if any(host_matches(host, sni) for host in hosts):
        return None
    return f"SNI host {quote(sni)} is not a compatible subset of any of the virtual service hosts: [{', '.join(hosts)}]"


def _route_destinations(route: Fields, kind: str) -> tuple[RouteDestination, ...]:
    if not route.is_set("route"):
        route.report("route", f"{kind} route is required")
    destinations: list[RouteDestination] = []
    for entry in route.mappings("route", known=ROUTE_DESTINATION_FIELDS, message="RouteDestination"):
        destination = read_destination(entry)
        destinations.append(
            RouteDestination(
                destination=destination or Destination(host=""),
                weight=entry.integer("weight", minimum=0, maximum=100),
            )
        )
    check_weights(route, [d.weight for d in destinations])
    return tuple(destinations)


def check_weights(route: Fields, weights: list[int | None]) -> None:
    """Several destinations: their weights must add up to 100."""
    if len(weights) > 1:
        total = sum(w or 0 for w in weights)
        if total != 100:
            route.report("route", f"the weights of {len(weights)} destinations must add up to 100, got {total}")


def read_destination(parent: Fields, name: str = "destination") -> Destination | None:
    """An Istio ``Destination``: host (short name, FQDN; no wildcard), subset, port.number."""
    destination = parent.mapping(name, known=("host", "subset", "port"), required=True, message="Destination")
    if destination is None:
        return None
    host = destination.string("host", required=True) or ""
    if host:
        destination.problems.add_if(destination.at("host"), host_error(host, wildcard=False))
    subset = destination.string("subset") or ""
    if subset:
        destination.problems.add_if(destination.at("subset"), dns1123_label_error(subset, "subset name"))
    port = destination.mapping("port", known=("number",), message="PortSelector")
    number = port.integer("number", minimum=1, maximum=65535, required=True) if port is not None else None
    return Destination(host=host, subset=subset, port=number)
