"""The filter chains of a sidecar's outbound TCP listeners: VirtualService ``tls`` and ``tcp`` routes
(Istio ``networking/core`` ``buildSidecarOutboundTLSFilterChainOpts`` and ``buildSidecarOutboundTCPFilterChainOpts``).

One service port on one listener (its VIP's ``<vip>_<port>``, or ``0.0.0.0_<port>`` for a CIDR address, matched by
the chain's destination prefix) gets, from the first VirtualService for its host visible in the proxy's namespace
(meshplane does not merge VirtualServices, as for HTTP):

- a TLS or HTTPS port: one chain per ``tls`` match that applies to the proxy, matched on its SNI hosts
  (``server_names``; the listener then gets the TLS inspector) and its ``destinationSubnets`` (else the service's
  CIDR); only when no match applies, the default chain to the service's cluster (matched on the service's host as
  SNI when the listener is shared by a CIDR). As in Istio, ``tcp`` routes do not apply to TLS ports, and once a
  ``tls`` match applies, a connection with another SNI matches no chain and is closed.
- any other non-HTTP port: ``tcp`` routes in order; a route without matches, or with an applying match without
  ``destinationSubnets``, is the last chain (it takes every connection); matches with subnets give one chain
  matched on them; then, unless a route took everything, the default chain to the service's cluster.

A match applies to a proxy when its ``port`` is the listener's (or unset), its ``sourceLabels`` are among the
proxy's labels and its ``sourceNamespace`` is the proxy's (or unset). Destinations become a ``tcp_proxy`` cluster,
or ``weighted_clusters`` for a split (0-weight destinations left out). Chains whose matches an earlier chain of the
listener already takes (same SNI and prefix) are left out: Envoy rejects a listener with two identical matches.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog
from envoy.config.core.v3.address_pb2 import CidrRange
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy

from meshplane import names
from pilot.config.types import L4MatchAttributes, Protocol, RouteDestination, ServicePort, VirtualService, labels_match
from pilot.config.validate_gateway_refs import MESH_GATEWAY
from pilot.generate._protos import network_filter
from pilot.generate.filter_chains import TCP_PROXY, build_filter_chain
from pilot.generate.route_action import RouteContext, ServicePorts, destination_cluster, destination_host_port
from pilot.generate.routes import visible_virtual_services
from pilot.generate.tcp_proxy_limits import RuleLookup, apply_tcp_proxy_limits, rule_lookup
from pilot.model.types import MeshSnapshot, Proxy, Service

__all__ = ["L4Target", "build_l4_filter_chains", "has_sni_chain", "l4_routes_filter", "match_applies"]

log = structlog.get_logger(__name__)

_TLS_PROTOCOLS = (Protocol.TLS, Protocol.HTTPS)


@dataclass(frozen=True, slots=True, kw_only=True)
class L4Target:
    """One service port on one outbound TCP listener; ``cidr`` set when the listener is ``0.0.0.0_<port>`` shared by
    the service's CIDR address (its chains match that prefix)."""

    service: Service
    port: ServicePort
    cidr: str = ""


@dataclass(frozen=True, slots=True)
class _Chain:
    server_names: tuple[str, ...]
    prefixes: tuple[str, ...]
    network: Filter


def build_l4_filter_chains(
    targets: Sequence[L4Target], proxy: Proxy, snapshot: MeshSnapshot, service_ports: ServicePorts
) -> list[FilterChain]:
    """The chains of one listener, target after target (see the module doc), without unreachable duplicates."""
    taken: set[tuple[str, str]] = set()
    chains: list[FilterChain] = []
    for target in targets:
        for chain in _target_chains(target, proxy, snapshot, service_ports):
            leaves = {(n, p) for n in chain.server_names or ("",) for p in chain.prefixes or ("",)}
            if leaves & taken:
                log.warning(
                    "outbound_filter_chain_shadowed",
                    service=target.service.host,
                    port=target.port.number,
                    server_names=list(chain.server_names),
                    prefixes=list(chain.prefixes),
                    proxy=proxy.node.id,
                )
                continue
            taken |= leaves
            chains.append(_filter_chain(chain))
    return chains


def has_sni_chain(chains: Iterable[FilterChain]) -> bool:
    """Whether some chain matches on SNI (the listener then needs the TLS inspector)."""
    return any(chain.filter_chain_match.server_names for chain in chains)


def match_applies(match: L4MatchAttributes, proxy: Proxy, port: int) -> bool:
    """Istio's ``matchTCP`` / ``matchTLS``: the static part of a match, decided per proxy."""
    labels = proxy.labels
    return (
        (match.port is None or match.port == port)
        and labels_match(match.source_labels, labels)
        and (not match.source_namespace or match.source_namespace == proxy.namespace)
        and (not match.gateways or MESH_GATEWAY in match.gateways)
    )


def _filter_chain(chain: _Chain) -> FilterChain:
    out = build_filter_chain([chain.network])
    if chain.server_names:
        out.filter_chain_match.server_names.extend(chain.server_names)
    for prefix in chain.prefixes:
        network = ipaddress.ip_network(prefix, strict=False)
        out.filter_chain_match.prefix_ranges.append(
            CidrRange(address_prefix=str(network.network_address), prefix_len={"value": network.prefixlen})
        )
    return out


def _target_chains(target: L4Target, proxy: Proxy, snapshot: MeshSnapshot, service_ports: ServicePorts) -> list[_Chain]:
    # several VirtualServices for the host: their routes in order (two with tcp, or with tls, routes are a conflict
    # that validation rejects: pilot.config.virtual_service_conflicts)
    rules = visible_virtual_services(target.service.host, proxy.namespace, snapshot, proxy.sidecar)
    if target.port.protocol in _TLS_PROTOCOLS:
        return _tls_chains(target, rules, proxy, snapshot, service_ports)
    return _tcp_chains(target, rules, proxy, snapshot, service_ports)


def _tls_chains(
    target: L4Target,
    rules: Sequence[VirtualService],
    proxy: Proxy,
    snapshot: MeshSnapshot,
    service_ports: ServicePorts,
) -> list[_Chain]:
    own = (target.cidr,) if target.cidr else ()
    out: list[_Chain] = []
    for vs in rules:
        for tls in vs.tls:
            for match in tls.match:
                if match_applies(match, proxy, target.port.number):
                    network = _routes_filter(vs, tls.route, target, proxy, snapshot, service_ports)
                    out.append(_Chain(match.sni_hosts, match.destination_subnets or own, network))
    if not out:
        sni = (target.service.host,) if target.cidr else ()
        out.append(_Chain(sni, own, _default_filter(target, proxy, snapshot)))
    return out


def _tcp_chains(
    target: L4Target,
    rules: Sequence[VirtualService],
    proxy: Proxy,
    snapshot: MeshSnapshot,
    service_ports: ServicePorts,
) -> list[_Chain]:
    own = (target.cidr,) if target.cidr else ()
    out: list[_Chain] = []
    for vs in rules:
        for tcp in vs.tcp:
            applying = [m for m in tcp.match if match_applies(m, proxy, target.port.number)]
            if not tcp.match or any(not m.destination_subnets for m in applying):
                out.append(_Chain((), own, _routes_filter(vs, tcp.route, target, proxy, snapshot, service_ports)))
                return out  # takes every connection left: nothing after it can match
            subnets = tuple(subnet for m in applying for subnet in m.destination_subnets)
            if subnets:
                out.append(_Chain((), subnets, _routes_filter(vs, tcp.route, target, proxy, snapshot, service_ports)))
    out.append(_Chain((), own, _default_filter(target, proxy, snapshot)))
    return out


def _default_port(target: L4Target) -> int:
    """Istio: the service's only port, else the listener's."""
    ports = target.service.ports
    return ports[0].number if len(ports) == 1 else target.port.number


def _default_cluster(target: L4Target) -> str:
    return names.outbound_cluster_name(_default_port(target), "", target.service.host)


def _default_filter(target: L4Target, proxy: Proxy, snapshot: MeshSnapshot) -> Filter:
    cluster = _default_cluster(target)
    tcp_proxy = TcpProxy(stat_prefix=cluster, cluster=cluster)
    apply_tcp_proxy_limits(tcp_proxy, rule_lookup(proxy, snapshot)(target.service.host), _default_port(target))
    return network_filter(TCP_PROXY, tcp_proxy)


def _routes_filter(
    vs: VirtualService,
    routes: Sequence[RouteDestination],
    target: L4Target,
    proxy: Proxy,
    snapshot: MeshSnapshot,
    service_ports: ServicePorts,
) -> Filter:
    return l4_routes_filter(
        vs,
        routes,
        target.port.number,
        _default_cluster(target),
        snapshot.domain_suffix,
        service_ports,
        rules=rule_lookup(proxy, snapshot),
    )


def l4_routes_filter(
    vs: VirtualService,
    routes: Sequence[RouteDestination],
    port: int,
    stat_prefix: str,
    domain_suffix: str,
    service_ports: ServicePorts,
    *,
    rules: RuleLookup | None = None,
) -> Filter:
    """tcp_proxy to the route's destination, or ``weighted_clusters`` over its weighted destinations
    (``stat_prefix``: the weighted proxy's, a single destination's is its cluster), with the destination rule's
    TCP limits (``rules``: the rule the proxy applies to a host; ``tcp_proxy_limits``)."""
    ctx = RouteContext(
        vs_namespace=vs.meta.key.namespace,
        vs_name=vs.meta.key.name,
        port=port,
        domain_suffix=domain_suffix,
        service_ports=service_ports,
    )
    chosen = [r for r in routes if r.weight or len(routes) == 1]
    weighted = [(destination_cluster(r.destination, ctx), r.weight) for r in chosen]
    host, destination_port = destination_host_port(chosen[0].destination, ctx) if chosen else ("", port)
    rule = rules(host) if rules is not None and chosen else None
    if len(weighted) == 1:
        cluster = weighted[0][0]
        proxy_config = TcpProxy(stat_prefix=cluster, cluster=cluster)
        apply_tcp_proxy_limits(proxy_config, rule, destination_port, chosen[0].destination.subset)
        return network_filter(TCP_PROXY, proxy_config)
    proxy_config = TcpProxy(stat_prefix=stat_prefix)
    for cluster, weight in weighted:
        proxy_config.weighted_clusters.clusters.add(name=cluster, weight=weight or 0)
    apply_tcp_proxy_limits(proxy_config, rule, destination_port, weighted=True)
    return network_filter(TCP_PROXY, proxy_config)
