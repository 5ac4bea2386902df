"""LDS: a sidecar's listeners, Istio's (``listener.go``, ``listener_builder.go``, ``listenertest``'s names). Every
sidecar runs in a pod whose traffic iptables sends through Envoy (Istio's ``INTERCEPTION_MODE: REDIRECT``, the
default; Pilot refuses proxies that ask for another mode, see ``pilot.model.build.parse_node_id``).

Outbound (the app's connections, redirected to 15001):

- ``virtualOutbound`` on ``0.0.0.0:15001`` with ``use_original_dst``: Envoy hands each connection to the listener
  bound (``bind_to_port: false``) to its original destination ``ip:port``, else ``0.0.0.0:port``, else keeps it
  on the default chain ``PassthroughFilterChain``: tcp_proxy to ``PassthroughCluster`` (ALLOW_ANY; a Sidecar's
  ``egressProxy`` cluster when it has one) or ``BlackHoleCluster`` (REGISTRY_ONLY; the proxy's Sidecar's
  ``outboundTrafficPolicy``, else MeshConfig's). A
  connection straight to 15001 itself goes to ``BlackHoleCluster`` (chain ``virtualOutbound-blackhole``), as in
  Istio, so it cannot loop.
- ``0.0.0.0_<port>`` per HTTP port of any visible service: an HTTP connection manager with the route table named
  ``<port>`` (``port_routes.py``: virtual hosts by Host, a catch-all for hosts outside the registry).
- ``<vip>_<port>`` per VIP and non-HTTP port (TCP, TLS, HTTPS, MONGO, MySQL, Redis, unknown) of a service: the
  VirtualService's ``tls`` (by SNI) or ``tcp`` route chains, then tcp_proxy to ``outbound|<port>||<host>``
  (``listeners_l4_routes.py``). A CIDR address (ServiceEntry ``addresses``) gets chains on ``0.0.0.0_<port>``
  matching its prefix, as in Istio; a ``resolution: NONE`` service without addresses of its own gets a chain there
  matching any destination (to its ORIGINAL_DST cluster). An HTTP port holding ``0.0.0.0_<port>`` wins over both.

Inbound (connections to the pod, redirected to 15006):

- ``virtualInbound`` on ``0.0.0.0:15006`` with the ``original_dst`` listener filter (chains match the original
  destination) and the TLS inspector when some chain tells mTLS from plaintext; one group of chains per
  destination port the workload serves: its service ports (where clients' endpoints point) and, when it differs,
  the app's own target port (Istio 1.10+ clients dial it; its authorization policies see the port as written) or,
  under a Sidecar with ``ingress``, exactly those ports (``inbound_ports``).
  Each group is the port's chains of ``filter_chains.build_inbound_chains`` (mTLS per PeerAuthentication, RBAC,
  ext_authz, access logs) matched on ``destination_port``, forwarding to ``inbound|<port>||`` (the app at the pod
  IP and target port, from 127.0.0.6). Every other port goes to ``InboundPassthroughCluster`` under the workload's
  mTLS mode and network RBAC (chains ``InboundPassthroughFilterChain``); 15006 itself to ``BlackHoleCluster``.
  No ``http_inspector``: no chain matches on the application protocol (passthrough is TCP), and the inspector
  would hold back server-first protocols.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import structlog
from envoy.config.core.v3.base_pb2 import TrafficDirection
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain, ListenerFilter
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.listener.original_dst.v3.original_dst_pb2 import OriginalDst

from meshplane import names
from pilot.config.types import Resolution, WorkloadMode
from pilot.generate._protos import network_filter, socket_address
from pilot.generate._tls import has_sds
from pilot.generate.access_logs import build_outbound_access_logs
from pilot.generate.authz_filters import build_network_authz_filters
from pilot.generate.filter_chains import (
    HTTP_CONNECTION_MANAGER,
    TCP_PROXY,
    HttpListenerOptions,
    build_filter_chain,
    build_http_connection_manager,
    build_inbound_chains,
    build_tcp_proxy,
    prepend_filters,
)
from pilot.generate.gateway_tls import build_gateway_tls_context
from pilot.generate.hcm_telemetry import NO_HCM_TELEMETRY, HcmTelemetry, build_hcm_telemetry
from pilot.generate.inbound_ports import InboundPort, inbound_ports
from pilot.generate.listener_tls import (
    InboundSecurity,
    build_inbound_filter_chains,
    inbound_security,
    tls_inspector_filter,
)
from pilot.generate.listeners_l4_routes import L4Target, build_l4_filter_chains, has_sni_chain
from pilot.generate.route_action import ServicePorts
from pilot.model import effective_mtls_mode
from pilot.model.mesh_settings import OutboundTrafficPolicy
from pilot.model.sidecar_scope import ScopeKey, egress_scope, proxy_egress_scope, scope_key
from pilot.model.types import MeshSnapshot, Proxy, Service, ServiceInstance
from pilot.model.vips import service_cidrs
from pilot.model.visibility import service_visible

__all__ = [
    "INBOUND_PASSTHROUGH_CHAIN",
    "ORIGINAL_DST_FILTER",
    "PASSTHROUGH_CHAIN",
    "RESERVED_PORTS",
    "VIRTUAL_INBOUND",
    "VIRTUAL_OUTBOUND",
    "WILDCARD_ADDRESS",
    "build_listeners",
    "build_outbound_http_listener",
    "build_outbound_service_listeners",
    "build_outbound_tcp_listener",
    "build_scope_listeners",
    "build_virtual_inbound_listener",
    "build_virtual_outbound_listener",
    "listener_scopes",
    "outbound_default_cluster",
]

log = structlog.get_logger(__name__)

VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"
PASSTHROUGH_CHAIN = "PassthroughFilterChain"
INBOUND_PASSTHROUGH_CHAIN = "InboundPassthroughFilterChain"
ORIGINAL_DST_FILTER = "envoy.filters.listener.original_dst"
WILDCARD_ADDRESS = "0.0.0.0"
RESERVED_PORTS = names.SIDECAR_PORTS  # no listener for a service port among them (Istio skips them too)


def listener_scopes(proxy: Proxy) -> list[tuple[Hashable, ...]]:
    """None shared: every listener is built per proxy, as Istio builds LDS (virtualInbound is the workload's own;
    the outbound ones depend on the proxy's namespace and on whether it logs to Mixer)."""
    return []


def build_scope_listeners(scope: Sequence[Hashable], snapshot: MeshSnapshot) -> list[Listener]:
    """No shared listeners (see :func:`listener_scopes`)."""
    return []


def build_listeners(proxy: Proxy, snapshot: MeshSnapshot) -> list[Listener]:
    """Everything a sidecar listens with (see the module doc)."""
    scope = proxy_egress_scope(proxy, snapshot)
    return [
        build_virtual_outbound_listener(scope.outbound_policy, scope.default_cluster),
        *build_outbound_service_listeners(proxy, snapshot),
        build_virtual_inbound_listener(proxy, snapshot),
    ]


def outbound_default_cluster(policy: OutboundTrafficPolicy) -> str:
    """Where outbound traffic to a destination outside the registry goes."""
    return names.PASSTHROUGH_CLUSTER if policy is OutboundTrafficPolicy.ALLOW_ANY else names.BLACKHOLE_CLUSTER


def _tcp_proxy_filter(cluster: str) -> Filter:
    return network_filter(TCP_PROXY, build_tcp_proxy(stat_prefix=cluster, cluster=cluster))


def _blackhole_chain(name: str, port: int) -> FilterChain:
    chain = build_filter_chain([_tcp_proxy_filter(names.BLACKHOLE_CLUSTER)], name=name)
    chain.filter_chain_match.destination_port.value = port
    return chain


def build_virtual_outbound_listener(policy: OutboundTrafficPolicy, default_cluster: str = "") -> Listener:
    """``default_cluster``: where the default chain sends (a Sidecar's egress proxy); "": per ``policy``."""
    listener = Listener(
        name=VIRTUAL_OUTBOUND,
        address=socket_address(WILDCARD_ADDRESS, names.OUTBOUND_CAPTURE_PORT),
        traffic_direction=TrafficDirection.OUTBOUND,
        use_original_dst={"value": True},
        filter_chains=[_blackhole_chain(f"{VIRTUAL_OUTBOUND}-blackhole", names.OUTBOUND_CAPTURE_PORT)],
    )
    listener.default_filter_chain.CopyFrom(
        build_filter_chain(
            [_tcp_proxy_filter(default_cluster or outbound_default_cluster(policy))], name=PASSTHROUGH_CHAIN
        )
    )
    return listener


def _service_listener(name: str, address: str, port: int, chains: Sequence[FilterChain]) -> Listener:
    """A listener that only receives connections virtualOutbound hands over (never binds its address); the TLS
    inspector when a chain matches on SNI."""
    listener = Listener(
        name=name,
        address=socket_address(address, port),
        bind_to_port={"value": False},
        traffic_direction=TrafficDirection.OUTBOUND,
        filter_chains=list(chains),
    )
    if has_sni_chain(chains):
        listener.listener_filters.append(tls_inspector_filter())
    return listener


def build_outbound_http_listener(proxy: Proxy, port: int, telemetry: HcmTelemetry = NO_HCM_TELEMETRY) -> Listener:
    """``0.0.0.0_<port>``: HTTP to any destination on ``port``, routed by Host with the route table ``<port>``;
    ``telemetry``: the proxy's client-side Telemetry loggers and tracing."""
    hcm = build_http_connection_manager(
        HttpListenerOptions(
            stat_prefix=f"outbound_{WILDCARD_ADDRESS}_{port}",
            route_name=str(port),
            use_remote_address=False,
            access_logs=(*build_outbound_access_logs(proxy), *telemetry.access_logs),
            tracing=telemetry.tracing,
        )
    )
    name = names.listener_name(WILDCARD_ADDRESS, port)
    chain = build_filter_chain([network_filter(HTTP_CONNECTION_MANAGER, hcm)])
    return _service_listener(name, WILDCARD_ADDRESS, port, [chain])


def build_outbound_tcp_listener(
    address: str,
    port: int,
    targets: Sequence[L4Target],
    proxy: Proxy,
    snapshot: MeshSnapshot,
    service_ports: ServicePorts | None = None,
) -> Listener:
    """``<address>_<port>``: the tcp/tls route chains, then the default tcp_proxy, of the services addressed there
    (``listeners_l4_routes``); ``service_ports`` of the snapshot, when the caller has them already."""
    chains = build_l4_filter_chains(targets, proxy, snapshot, service_ports or ServicePorts.of(snapshot))
    return _service_listener(names.listener_name(address, port), address, port, chains)


def _tcp_binds(snapshot: MeshSnapshot, service: Service) -> tuple[tuple[str, str], ...]:
    """(listener address, CIDR the chains match) of a service's non-HTTP ports: each VIP; ``0.0.0.0`` matching each
    CIDR address (Istio: a CIDR listens on the wildcard with a prefix match); ``0.0.0.0`` matching anything for a
    ``resolution: NONE`` service without addresses (any destination on the port passes through)."""
    if service.resolution is Resolution.NONE and not service.addresses:
        return ((WILDCARD_ADDRESS, ""),)
    vips = tuple((vip, "") for vip in snapshot.vips.get(service.host, ()))
    return (*vips, *((WILDCARD_ADDRESS, cidr) for cidr in service_cidrs(service)))


@dataclass(slots=True)
class _TcpListener:
    address: str
    port: int
    targets: list[L4Target]


@dataclass(frozen=True, slots=True)
class _OutboundPorts:
    """What the outbound service listeners of one egress scope (proxy namespace, Sidecar) listen on: the HTTP ports,
    and each TCP listener's (address, port, targets)."""

    http_ports: tuple[int, ...]
    tcp: tuple[tuple[str, int, tuple[L4Target, ...]], ...]


def build_outbound_service_listeners(proxy: Proxy, snapshot: MeshSnapshot) -> list[Listener]:
    """One HTTP listener per HTTP port, then one TCP listener per (address, other port), of the services visible
    from the proxy's namespace that its Sidecar admits (``pilot.model.sidecar_scope``). A VIP listener belongs to
    the first service (in host order) that claims it; a wildcard one is shared (its chains match the services'
    CIDRs). Which ports and services those are is worked out once per egress scope and snapshot."""
    key = scope_key(proxy)
    ports: _OutboundPorts = snapshot.derived.get(("outbound_ports", key), lambda: _outbound_ports(key, snapshot))
    telemetry = build_hcm_telemetry(proxy, snapshot, WorkloadMode.CLIENT) if ports.http_ports else NO_HCM_TELEMETRY
    listeners = [build_outbound_http_listener(proxy, port, telemetry) for port in ports.http_ports]
    service_ports = ServicePorts.of(snapshot)
    for address, port, targets in ports.tcp:
        listeners.append(build_outbound_tcp_listener(address, port, targets, proxy, snapshot, service_ports))
    return listeners


def _outbound_ports(key: ScopeKey, snapshot: MeshSnapshot) -> _OutboundPorts:
    namespace, sidecar = key
    http_ports: dict[int, str] = {}
    tcp: dict[str, _TcpListener] = {}
    scope = egress_scope(snapshot, key)
    for host in sorted(snapshot.services):
        service = snapshot.services[host]
        if not service_visible(service, namespace, snapshot) or not scope.sees_service(host):
            continue
        for port in service.ports:
            if not scope.sees_port(host, port):
                continue
            if port.number in RESERVED_PORTS:
                log.warning(
                    "outbound_listener_skipped",
                    reason="port is reserved by the sidecar",
                    port=port.number,
                    service=host,
                    namespace=namespace,
                    sidecar=str(sidecar) if sidecar is not None else None,
                )
                continue
            if port.protocol.is_http:
                http_ports.setdefault(port.number, host)
                continue
            for address, cidr in _tcp_binds(snapshot, service):
                name = names.listener_name(address, port.number)
                entry = tcp.setdefault(name, _TcpListener(address, port.number, []))
                first = entry.targets[0].service.host if entry.targets else host
                if address != WILDCARD_ADDRESS and first != host:
                    log.warning("outbound_listener_conflict", listener=name, used=first, ignored=host)
                    continue
                entry.targets.append(L4Target(service=service, port=port, cidr=cidr))
    http_names = {names.listener_name(WILDCARD_ADDRESS, number) for number in http_ports}
    kept: list[tuple[str, int, tuple[L4Target, ...]]] = []
    for name, entry in tcp.items():
        if name in http_names:
            log.warning(
                "outbound_listener_conflict",
                listener=name,
                used=f"HTTP {http_ports[entry.port]}",
                ignored=sorted({target.service.host for target in entry.targets}),
            )
            continue
        kept.append((entry.address, entry.port, tuple(entry.targets)))
    return _OutboundPorts(http_ports=tuple(sorted(http_ports)), tcp=tuple(kept))


def _destination_ports(
    instance: ServiceInstance, service_ports: set[int]
) -> Iterator[tuple[int, dict[int, int] | None]]:
    """(destination port, how policy ports map to it) for the chains of one instance: its service port (a policy's
    target port seen as the service port), and the app's own port when no service port claims it."""
    yield instance.port.number, None
    target = instance.target_port
    if target != instance.port.number and target not in service_ports and target not in RESERVED_PORTS:
        yield target, {}


def _match_port(chains: Sequence[FilterChain], port: int, name: str) -> None:
    for chain in chains:
        chain.name = f"{name}_{chain.name}" if chain.name and len(chains) > 1 else name
        chain.filter_chain_match.destination_port.value = port


def _passthrough_chains(proxy: Proxy, snapshot: MeshSnapshot) -> tuple[list[ListenerFilter], list[FilterChain]]:
    """Ports no service declares: the workload's mTLS mode (without port-level settings), its network RBAC, then
    the app at the original destination."""

    def network(terminates_mtls: bool) -> Filter:
        del terminates_mtls
        return _tcp_proxy_filter(names.INBOUND_PASSTHROUGH_CLUSTER)

    security = _workload_security(proxy, snapshot)
    if security is None:
        filters: list[ListenerFilter] = []
        chains = [build_filter_chain([network(False)])]
    else:
        filters, chains = build_inbound_filter_chains(security, network, tls_passthrough=True)
    policy = build_network_authz_filters(proxy, None, snapshot)
    if policy:
        prepend_filters(chains, policy)
    for chain in chains:
        chain.name = f"{INBOUND_PASSTHROUGH_CHAIN}_{chain.name}" if len(chains) > 1 else INBOUND_PASSTHROUGH_CHAIN
    return filters, chains


def _workload_security(proxy: Proxy, snapshot: MeshSnapshot) -> InboundSecurity | None:
    if proxy.workload is None:
        return None
    mode = effective_mtls_mode(snapshot, proxy.workload, None)
    if not has_sds(proxy):
        return None
    return InboundSecurity(mode=mode, trust_domain=snapshot.trust_domain)


def _port_security(proxy: Proxy, inbound: InboundPort, snapshot: MeshSnapshot) -> InboundSecurity | None:
    """The port's mTLS mode, or its Sidecar ingress ``tls`` (which ``inbound_ports`` keeps only under DISABLE)."""
    if inbound.tls is None:
        return inbound_security(proxy, inbound.instance, snapshot)
    http = inbound.instance.port.protocol.is_http
    context = build_gateway_tls_context(inbound.tls, proxy, snapshot.trust_domain, http=http)
    if context is None:  # certificate files need no SDS: validation refuses credentialName
        return inbound_security(proxy, inbound.instance, snapshot)
    return InboundSecurity(mode="DISABLE", trust_domain=snapshot.trust_domain, server_tls=context)


def build_virtual_inbound_listener(proxy: Proxy, snapshot: MeshSnapshot) -> Listener:
    chains = [_blackhole_chain(f"{VIRTUAL_INBOUND}-blackhole", names.INBOUND_CAPTURE_PORT)]
    inspect = False
    ports = inbound_ports(proxy, snapshot)
    service_ports = {inbound.instance.port.number for inbound in ports}
    # the server side's Telemetry, the same for every HTTP port: built once
    http = any(inbound.instance.port.protocol.is_http for inbound in ports)
    telemetry = build_hcm_telemetry(proxy, snapshot, WorkloadMode.SERVER) if http else NO_HCM_TELEMETRY
    for inbound in ports:
        instance = inbound.instance
        if instance.port.number in RESERVED_PORTS:
            log.warning(
                "inbound_chain_skipped",
                reason="port is reserved by the sidecar",
                port=instance.port.number,
                service=instance.service.host,
                proxy=proxy.node.id,
            )
            continue
        security = _port_security(proxy, inbound, snapshot)
        for port, policy_ports in _destination_ports(instance, service_ports):
            filters, port_chains = build_inbound_chains(
                proxy,
                instance,
                security,
                snapshot,
                stat_prefix=f"inbound_{WILDCARD_ADDRESS}_{port}",
                policy_ports=policy_ports,
                telemetry=telemetry,
            )
            _match_port(port_chains, port, f"inbound_{WILDCARD_ADDRESS}_{port}")
            inspect = inspect or bool(filters)
            chains.extend(port_chains)
    filters, passthrough = _passthrough_chains(proxy, snapshot)
    inspect = inspect or bool(filters)
    chains.extend(passthrough)
    listener = Listener(
        name=VIRTUAL_INBOUND,
        address=socket_address(WILDCARD_ADDRESS, names.INBOUND_CAPTURE_PORT),
        traffic_direction=TrafficDirection.INBOUND,
        filter_chains=chains,
    )
    original_dst = ListenerFilter(name=ORIGINAL_DST_FILTER)
    original_dst.typed_config.Pack(OriginalDst())
    listener.listener_filters.append(original_dst)
    if inspect:
        listener.listener_filters.append(tls_inspector_filter())
        # A client that waits for the server to speak first gets the plaintext chain when the inspector gives up.
        listener.continue_on_listener_filters_timeout = True
    return listener
