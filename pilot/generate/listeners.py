"""LDS: a sidecar's listeners, all bound to its workload's own loopback address (Istio ``listener*.go``).

- Outbound: an HTTP-proxy listener on ``<address>:15001`` that apps use as ``HTTP_PROXY`` (Istio's
  ``proxyHttpPort`` listener); requests are routed by Host with the namespace's route table over RDS.
- Inbound: one listener per service port the workload serves, on ``<address>:<service port>``: HTTP ports go
  through an HTTP connection manager and the port's inbound route table, other protocols through tcp_proxy,
  to the app at ``<address>:<target port>``.

Each listener is built from one filter chain whose filters come from :func:`build_http_connection_manager` or
:func:`build_tcp_proxy`; transport sockets (mTLS), extra HTTP filters (RBAC, ext_authz) and access logs plug in
through :class:`HttpListenerOptions` and :func:`build_filter_chain` arguments. For proxies with Citadel's SDS, an
inbound port's chains follow its PeerAuthentication mode (``listener_tls.py``): mTLS only, mTLS and plaintext
side by side, or plaintext.

Policy and telemetry: an inbound HTTP port's HCM runs the workload's authorization filters (CUSTOM/Mixer ext_authz,
RBAC AUDIT, DENY, ALLOW: ``authz_filters.py``) before fault injection and the router; an inbound TCP port runs the
network RBAC filters before tcp_proxy. Sidecars bootstrapped with ``--mixer`` log every request of their inbound
and outbound HCMs to Mixer (``access_logs.py``). A proxy without policies and without Mixer gets exactly the
listeners it had before these existed.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import structlog
from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog
from envoy.config.core.v3.base_pb2 import TrafficDirection, TransportSocket
from envoy.config.core.v3.protocol_pb2 import Http2ProtocolOptions
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain, ListenerFilter
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.http.fault.v3.fault_pb2 import HTTPFault
from envoy.extensions.filters.http.router.v3.router_pb2 import Router
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
    HttpFilter,
    Rds,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy

from meshplane import names
from pilot.generate._protos import ads_config_source, duration, http_filter, network_filter, socket_address
from pilot.generate.access_logs import build_inbound_access_logs, build_outbound_access_logs
from pilot.generate.authz_filters import build_http_authz_filters, build_network_authz_filters
from pilot.generate.clusters import inbound_instances
from pilot.generate.listener_tls import InboundSecurity, build_inbound_filter_chains, inbound_security
from pilot.model.types import MeshSnapshot, Proxy, ServiceInstance

__all__ = [
    "HTTP_CONNECTION_MANAGER",
    "TCP_PROXY",
    "HttpListenerOptions",
    "build_filter_chain",
    "build_http_connection_manager",
    "build_http_filters",
    "build_inbound_chains",
    "build_inbound_listener",
    "build_listeners",
    "build_outbound_listener",
    "build_scope_listeners",
    "build_tcp_proxy",
    "http_filter",
    "listener_scopes",
    "network_filter",
    "prepend_filters",
]

log = structlog.get_logger(__name__)

HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpListenerOptions:
    """What differs between the HTTP connection managers of one direction and another (Istio httpListenerOpts)."""

    stat_prefix: str
    route_name: str  # fetched over RDS
    use_remote_address: bool
    allow_absolute_url: bool = False  # the outbound HTTP proxy receives absolute-form requests (curl -x)
    http2: bool = False  # the port speaks HTTP/2 (HTTP2/GRPC): the codec gets explicit HTTP/2 options
    forward_client_cert: bool = False  # inbound: pass the peer certificate's identity on to the app (XFCC)
    # inbound chain terminating mTLS: XFCC is replaced by the verified caller's URI SAN (SANITIZE_SET); wins over
    # ``forward_client_cert``. With neither, XFCC is removed (SANITIZE, Envoy's default).
    verified_client_cert: bool = False
    http_filters: tuple[HttpFilter, ...] = ()  # run before fault injection and the router (authn/authz)
    access_logs: tuple[AccessLog, ...] = ()


def listener_scopes(proxy: Proxy) -> list[tuple[Hashable, ...]]:
    """Every listener is bound to the proxy's own address, so none is shared between proxies."""
    return []


def build_scope_listeners(scope: Sequence[Hashable], snapshot: MeshSnapshot) -> list[Listener]:
    """No shared listeners (see :func:`listener_scopes`)."""
    return []


def build_listeners(proxy: Proxy, snapshot: MeshSnapshot) -> list[Listener]:
    """The proxy's outbound HTTP-proxy listener, then one inbound listener per service port it can serve (a captured
    sidecar, in a pod, gets ``listeners_captured.py``'s instead)."""
    listeners = [build_outbound_listener(proxy)]
    for instance in inbound_instances(proxy):
        listener = build_inbound_listener(
            proxy, instance, inbound_security(proxy, instance, snapshot), snapshot=snapshot
        )
        if listener is not None:
            listeners.append(listener)
    return listeners


def build_outbound_listener(proxy: Proxy) -> Listener:
    port = names.HTTP_PROXY_PORT
    hcm = build_http_connection_manager(
        HttpListenerOptions(
            stat_prefix=f"outbound_{proxy.address}_{port}",
            route_name=names.http_proxy_route_name(proxy.namespace),
            use_remote_address=False,
            allow_absolute_url=True,
            access_logs=build_outbound_access_logs(proxy),
        )
    )
    return Listener(
        name=names.outbound_listener_name(proxy.address),
        address=socket_address(proxy.address, port),
        traffic_direction=TrafficDirection.OUTBOUND,
        filter_chains=[build_filter_chain([network_filter(HTTP_CONNECTION_MANAGER, hcm)])],
    )


def build_inbound_listener(
    proxy: Proxy,
    instance: ServiceInstance,
    security: InboundSecurity | None = None,
    *,
    snapshot: MeshSnapshot | None = None,
) -> Listener | None:
    """The listener in front of the app for one service port; None when the port cannot be bound.
    ``security``: the port's mTLS mode (proxies with SDS); None: plaintext, client certificates appended to XFCC
    (what a sidecar without SDS always had). ``snapshot``: where the workload's authorization policies come from
    (None: no authorization filters)."""
    port = instance.port
    if port.number == instance.target_port:
        # The sidecar would bind the very address:port the app listens on: one of them would fail to start.
        log.warning(
            "inbound_listener_skipped",
            reason="target port equals service port on the same address",
            proxy=proxy.node.id,
            address=proxy.address,
            port=port.number,
            service=instance.service.host,
        )
        return None
    if port.number in (names.HTTP_PROXY_PORT, names.ADMIN_PORT):
        log.warning(
            "inbound_listener_skipped",
            reason="port is reserved by the sidecar",
            proxy=proxy.node.id,
            address=proxy.address,
            port=port.number,
            service=instance.service.host,
        )
        return None
    listener = Listener(
        name=names.inbound_listener_name(proxy.address, port.number),
        address=socket_address(proxy.address, port.number),
        traffic_direction=TrafficDirection.INBOUND,
    )
    listener_filters, chains = build_inbound_chains(
        proxy, instance, security, snapshot, stat_prefix=f"inbound_{proxy.address}_{port.number}"
    )
    listener.listener_filters.extend(listener_filters)
    listener.filter_chains.extend(chains)
    if listener_filters:
        # A client that waits for the server to speak first gets the plaintext chain when the inspector gives up.
        listener.continue_on_listener_filters_timeout = True
    return listener


def build_inbound_chains(
    proxy: Proxy,
    instance: ServiceInstance,
    security: InboundSecurity | None,
    snapshot: MeshSnapshot | None,
    *,
    stat_prefix: str,
    policy_ports: dict[int, int] | None = None,
) -> tuple[list[ListenerFilter], list[FilterChain]]:
    """The listener filters and filter chains in front of the app for one service port (see
    :func:`build_inbound_listener`); ``policy_ports``: how authorization policies' ports map to the port Envoy sees
    (default: the instance's target port is the service port)."""
    port = instance.port
    cluster = names.inbound_cluster_name(port.number)
    http_filters: tuple[HttpFilter, ...] = ()
    access_logs: tuple[AccessLog, ...] = ()
    network_policy: tuple[Filter, ...] = ()
    if port.protocol.is_http:
        if snapshot is not None:
            http_filters = tuple(build_http_authz_filters(proxy, instance, snapshot, ports=policy_ports))
        access_logs = build_inbound_access_logs(proxy, instance)
    elif snapshot is not None:
        network_policy = tuple(build_network_authz_filters(proxy, instance, snapshot, ports=policy_ports))

    def network(terminates_mtls: bool) -> Filter:
        if not port.protocol.is_http:
            return network_filter(TCP_PROXY, build_tcp_proxy(stat_prefix=cluster, cluster=cluster))
        hcm = build_http_connection_manager(
            HttpListenerOptions(
                stat_prefix=stat_prefix,
                route_name=names.inbound_route_name(port.number),
                use_remote_address=True,
                http2=port.protocol.is_http2,
                forward_client_cert=security is None,
                verified_client_cert=terminates_mtls,
                http_filters=http_filters,
                access_logs=access_logs,
            )
        )
        return network_filter(HTTP_CONNECTION_MANAGER, hcm)

    if security is None:
        return [], [build_filter_chain([*network_policy, network(False)])]
    listener_filters, chains = build_inbound_filter_chains(security, network, tls_passthrough=not port.protocol.is_http)
    if network_policy:  # network RBAC runs before tcp_proxy on every chain, TLS or not
        prepend_filters(chains, network_policy)
    return listener_filters, chains


def prepend_filters(chains: Sequence[FilterChain], filters: Sequence[Filter]) -> None:
    """Put ``filters`` before every chain's own filters (network RBAC before tcp_proxy)."""
    for chain in chains:
        proxying = list(chain.filters)
        del chain.filters[:]
        chain.filters.extend([*filters, *proxying])


def build_filter_chain(
    filters: Sequence[Filter],
    *,
    name: str = "",
    transport_socket: TransportSocket | None = None,
) -> FilterChain:
    """A filter chain; ``transport_socket`` is where a downstream TLS context goes."""
    chain = FilterChain(name=name, filters=list(filters))
    if transport_socket is not None:
        chain.transport_socket.CopyFrom(transport_socket)
    return chain


def build_http_filters(extra: Sequence[HttpFilter] = ()) -> list[HttpFilter]:
    """``extra`` filters, then fault injection (configured per route, via typed_per_filter_config, by the routes
    of a VirtualService with ``fault``), then the router, which must be last."""
    return [
        *extra,
        http_filter(names.FAULT_FILTER, HTTPFault()),
        http_filter(names.ROUTER_FILTER, Router()),
    ]


def build_http_connection_manager(options: HttpListenerOptions) -> HttpConnectionManager:
    """Istio ``buildHTTPConnectionManager`` with the sidecar defaults: codec auto-detection, path normalization
    (escaped slashes left as they are), websocket upgrades, no stream idle timeout, routes over ADS."""
    hcm = HttpConnectionManager(
        codec_type=HttpConnectionManager.CodecType.AUTO,
        stat_prefix=options.stat_prefix,
        rds=Rds(route_config_name=options.route_name, config_source=ads_config_source()),
        http_filters=build_http_filters(options.http_filters),
        access_log=list(options.access_logs),
        use_remote_address={"value": options.use_remote_address},
        normalize_path={"value": True},
        path_with_escaped_slashes_action=HttpConnectionManager.PathWithEscapedSlashesAction.KEEP_UNCHANGED,
        upgrade_configs=[HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        stream_idle_timeout=duration(0),
    )
    if options.allow_absolute_url:
        # Envoy's default is already true; said explicitly (as Istio does) because the proxy depends on it.
        hcm.http_protocol_options.allow_absolute_url.value = True
    if options.http2:
        hcm.http2_protocol_options.CopyFrom(Http2ProtocolOptions())
    if options.verified_client_cert:
        hcm.forward_client_cert_details = HttpConnectionManager.ForwardClientCertDetails.SANITIZE_SET
        hcm.set_current_client_cert_details.CopyFrom(HttpConnectionManager.SetCurrentClientCertDetails(uri=True))
    elif options.forward_client_cert:
        hcm.forward_client_cert_details = HttpConnectionManager.ForwardClientCertDetails.APPEND_FORWARD
        hcm.set_current_client_cert_details.CopyFrom(
            HttpConnectionManager.SetCurrentClientCertDetails(subject={"value": True}, uri=True, dns=True)
        )
    return hcm


def build_tcp_proxy(*, stat_prefix: str, cluster: str, access_logs: Sequence[AccessLog] = ()) -> TcpProxy:
    return TcpProxy(stat_prefix=stat_prefix, cluster=cluster, access_log=list(access_logs))
