"""LDS of a gateway proxy (Istio ``buildGatewayListeners``): one listener per merged (bind, port) of the Gateways
selecting it, bound to the port on the gateway's own address (no capture, no virtualOutbound/virtualInbound).

- plaintext HTTP: ``0.0.0.0_<port>``, one HTTP connection manager fetching ``http.<port>`` (``gateway_routes``);
- HTTPS / TLS: one filter chain per server, matched by SNI (its hosts; none for ``*``), behind the TLS inspector:
  - terminating (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL; ``gateway_tls``): HTTPS -> an HCM fetching the
    server's ``https.<port>...`` table (its stat prefix the server's ``name`` when it has one, as Istio); TLS -> the
    bound VirtualServices' ``tcp`` routes;
  - PASSTHROUGH: one chain per bound ``tls`` route match (its SNI hosts the server admits), tcp_proxy to the
    route's destinations, nothing decrypted;
  - AUTO_PASSTHROUGH: one chain per SNI-DNAT cluster (``gateway_sni_dnat``), no VirtualService;
- TCP: the first bound ``tcp`` route applying to the port.

Matches apply per Gateway (``match.gateways``, else the VirtualService's). A chain whose SNI names an earlier
chain already has is left out (Envoy rejects identical matches); a listener with no chain is not built. HCMs use
the remote address (the gateway is the edge), log to Mixer as a client-side ``source`` reporter, as Istio's
gateways report.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from envoy.config.core.v3.base_pb2 import TrafficDirection
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener

from pilot.config.hosts import host_matches
from pilot.config.types import Protocol, WorkloadMode
from pilot.generate._protos import network_filter, socket_address
from pilot.generate._tls import tls_transport_socket
from pilot.generate.access_logs import build_outbound_access_logs
from pilot.generate.filter_chains import (
    HTTP_CONNECTION_MANAGER,
    HttpListenerOptions,
    build_filter_chain,
    build_http_connection_manager,
)
from pilot.generate.gateway_ports import (
    gateway_listener_address,
    gateway_listener_name,
    gateway_ports,
    https_route_name,
    plaintext_route_name,
)
from pilot.generate.gateway_routes import server_virtual_services
from pilot.generate.gateway_sni_dnat import auto_passthrough_chains
from pilot.generate.gateway_tls import build_gateway_tls_context
from pilot.generate.hcm_telemetry import NO_HCM_TELEMETRY, HcmTelemetry, build_hcm_telemetry
from pilot.generate.listener_tls import tls_inspector_filter
from pilot.generate.listeners_l4_routes import l4_routes_filter
from pilot.generate.route_action import ServicePorts
from pilot.generate.tcp_proxy_limits import rule_lookup
from pilot.model.gateways import (
    GatewayPortKind,
    MergedPort,
    SelectedServer,
    gateway_server_hosts,
    match_gateway_applies,
)
from pilot.model.types import MeshSnapshot, Proxy

__all__ = ["build_gateway_listeners"]

log = structlog.get_logger(__name__)


def build_gateway_listeners(proxy: Proxy, snapshot: MeshSnapshot) -> list[Listener]:
    listeners: list[Listener] = []
    ports = gateway_ports(proxy, snapshot)
    telemetry = build_hcm_telemetry(proxy, snapshot, WorkloadMode.CLIENT) if ports else NO_HCM_TELEMETRY
    for port in ports:
        if port.kind is GatewayPortKind.HTTP:
            hcm = _hcm(proxy, port, plaintext_route_name(port), port.servers[0], telemetry)
            chains = [build_filter_chain([hcm])]
        else:
            chains = _tls_or_tcp_chains(proxy, port, snapshot, telemetry)
        if not chains:
            log.warning("gateway_listener_skipped", listener=gateway_listener_name(port), reason="no routes")
            continue
        listener = Listener(
            name=gateway_listener_name(port),
            address=socket_address(gateway_listener_address(port), port.number),
            traffic_direction=TrafficDirection.OUTBOUND,
            filter_chains=chains,
        )
        if port.kind is GatewayPortKind.TLS:
            listener.listener_filters.append(tls_inspector_filter())
        listeners.append(listener)
    return listeners


def _hcm(
    proxy: Proxy,
    port: MergedPort,
    route_name: str,
    server: SelectedServer,
    telemetry: HcmTelemetry = NO_HCM_TELEMETRY,
    *,
    tls: bool = False,
) -> Filter:
    """The HTTP connection manager of a plaintext port or (``tls``) a TLS-terminating HTTPS server, whose ``name``
    is its stat prefix (Istio's ``statPrefix: server.Name``); ``telemetry``: the gateway's Telemetry loggers and
    tracing (a gateway is a CLIENT)."""
    default = f"outbound_{gateway_listener_address(port)}_{port.number}"
    hcm = build_http_connection_manager(
        HttpListenerOptions(
            stat_prefix=(server.server.name if tls else "") or default,
            route_name=route_name,
            use_remote_address=True,
            http2=server.server.port.protocol.is_http2,
            access_logs=(*build_outbound_access_logs(proxy), *telemetry.access_logs),
            tracing=telemetry.tracing,
        )
    )
    return network_filter(HTTP_CONNECTION_MANAGER, hcm)


def _server_names(server: SelectedServer) -> list[str]:
    hosts = gateway_server_hosts(server.server)
    return [] if "*" in hosts else list(hosts)


def _tls_or_tcp_chains(
    proxy: Proxy, port: MergedPort, snapshot: MeshSnapshot, telemetry: HcmTelemetry
) -> list[FilterChain]:
    chains: list[FilterChain] = []
    taken: set[tuple[str, ...]] = set()
    for server in port.servers:
        for chain in _server_chains(proxy, port, server, snapshot, telemetry):
            match = tuple(sorted(chain.filter_chain_match.server_names))
            if match in taken:
                log.warning("gateway_chain_conflict", listener=gateway_listener_name(port), server_names=match)
                continue
            taken.add(match)
            chains.append(chain)
    return chains


def _server_chains(
    proxy: Proxy, port: MergedPort, server: SelectedServer, snapshot: MeshSnapshot, telemetry: HcmTelemetry
) -> list[FilterChain]:
    tls = server.server.tls
    if tls is None:  # TCP
        tcp = _tcp_route_filter(proxy, server, snapshot)
        return [build_filter_chain([tcp])] if tcp is not None else []
    if tls.mode == "PASSTHROUGH":
        return _passthrough_chains(proxy, server, snapshot)
    if tls.mode == "AUTO_PASSTHROUGH":
        return list(auto_passthrough_chains(proxy, server, snapshot))
    http = server.server.port.protocol is Protocol.HTTPS
    context = build_gateway_tls_context(tls, proxy, snapshot.trust_domain, http=http)
    if context is None:
        log.warning("gateway_server_skipped", server=str(server), reason="its certificates need SDS: no --citadel")
        return []
    if http:
        network: Filter | None = _hcm(proxy, port, https_route_name(server), server, telemetry, tls=True)
    else:
        network = _tcp_route_filter(proxy, server, snapshot)
    if network is None:
        return []
    chain = build_filter_chain([network], transport_socket=tls_transport_socket(context))
    chain.filter_chain_match.server_names.extend(_server_names(server))
    return [chain]


def _tcp_route_filter(proxy: Proxy, server: SelectedServer, snapshot: MeshSnapshot) -> Filter | None:
    """The first ``tcp`` route of the bound VirtualServices whose match applies on this server's port."""
    number = server.server.port.number
    service_ports = ServicePorts.of(snapshot)
    for vs in server_virtual_services(server, proxy, snapshot):
        for tcp in vs.tcp:
            if not tcp.match:
                applies = match_gateway_applies((), vs, server.gateway)
            else:
                applies = any(
                    (m.port is None or m.port == number) and match_gateway_applies(m.gateways, vs, server.gateway)
                    for m in tcp.match
                )
            if applies:
                stat = f"{vs.meta.key.namespace}.{vs.meta.key.name}"
                return l4_routes_filter(
                    vs,
                    tcp.route,
                    number,
                    stat,
                    snapshot.domain_suffix,
                    service_ports,
                    rules=rule_lookup(proxy, snapshot),
                )
    return None


def _admitted(server: SelectedServer, sni_hosts: Sequence[str]) -> list[str]:
    server_hosts = gateway_server_hosts(server.server)
    return [sni for sni in sni_hosts if any(host_matches(h, sni) or host_matches(sni, h) for h in server_hosts)]


def _passthrough_chains(proxy: Proxy, server: SelectedServer, snapshot: MeshSnapshot) -> list[FilterChain]:
    number = server.server.port.number
    service_ports = ServicePorts.of(snapshot)
    chains: list[FilterChain] = []
    for vs in server_virtual_services(server, proxy, snapshot):
        for tls_route in vs.tls:
            for match in tls_route.match:
                if match.port is not None and match.port != number:
                    continue
                if not match_gateway_applies(match.gateways, vs, server.gateway):
                    continue
                sni = _admitted(server, match.sni_hosts)
                if not sni:
                    continue
                stat = f"{vs.meta.key.namespace}.{vs.meta.key.name}"
                network = l4_routes_filter(
                    vs,
                    tls_route.route,
                    number,
                    stat,
                    snapshot.domain_suffix,
                    service_ports,
                    rules=rule_lookup(proxy, snapshot),
                )
                chain = build_filter_chain([network])
                chain.filter_chain_match.server_names.extend(sni)
                chains.append(chain)
    return chains
