"""The filter chains and filters sidecar listeners are built from (Istio ``listener_builder.go``,
``httplistener``/``networkfilter.go``): an HTTP connection manager with the sidecar defaults, tcp_proxy, and the
chains in front of the app for one inbound service port (``build_inbound_chains``), which ``listeners.py`` matches
on destination ports inside virtualInbound.

Transport sockets (mTLS), extra HTTP filters (RBAC, ext_authz) and access logs plug in through
:class:`HttpListenerOptions` and :func:`build_filter_chain` arguments. For proxies with Citadel's SDS, an inbound
port's chains follow its PeerAuthentication mode (``listener_tls.py``): mTLS only, mTLS and plaintext side by side,
or plaintext.

Policy and telemetry: an inbound HTTP port's HCM runs the workload's JWT authentication (``jwt_authn.py``) and
then its authorization filters (CUSTOM/Mixer ext_authz,
RBAC AUDIT, DENY, ALLOW: ``authz_filters.py``) before fault injection, CORS and the router; an inbound TCP port runs the
network RBAC filters before tcp_proxy. Sidecars bootstrapped with ``--mixer`` log every request of their inbound
and outbound HCMs to Mixer (``access_logs.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog
from envoy.config.core.v3.base_pb2 import TransportSocket
from envoy.config.core.v3.protocol_pb2 import Http2ProtocolOptions
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain, ListenerFilter
from envoy.extensions.filters.http.cors.v3.cors_pb2 import Cors
from envoy.extensions.filters.http.fault.v3.fault_pb2 import HTTPFault
from envoy.extensions.filters.http.router.v3.router_pb2 import Router
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
    HttpFilter,
    Rds,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy

from meshplane import names
from pilot.config.types import WorkloadMode
from pilot.generate._protos import ads_config_source, duration, http_filter, network_filter
from pilot.generate.access_logs import build_inbound_access_logs
from pilot.generate.authz_filters import build_http_authz_filters, build_network_authz_filters
from pilot.generate.hcm_telemetry import HcmTelemetry, build_hcm_telemetry
from pilot.generate.jwt_authn import build_jwt_authn_filters
from pilot.generate.listener_tls import InboundSecurity, build_inbound_filter_chains
from pilot.model.types import MeshSnapshot, Proxy, ServiceInstance

__all__ = [
    "HTTP_CONNECTION_MANAGER",
    "TCP_PROXY",
    "HttpListenerOptions",
    "build_filter_chain",
    "build_http_connection_manager",
    "build_http_filters",
    "build_inbound_chains",
    "build_tcp_proxy",
    "prepend_filters",
]

HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpListenerOptions:
    """What differs between the HTTP connection managers of one direction and another (Istio httpListenerOpts)."""

    stat_prefix: str
    route_name: str  # fetched over RDS
    use_remote_address: bool
    http2: bool = False  # the port speaks HTTP/2 (HTTP2/GRPC): the codec gets explicit HTTP/2 options
    forward_client_cert: bool = False  # inbound: pass the peer certificate's identity on to the app (XFCC)
    # inbound chain terminating mTLS: XFCC is replaced by the verified caller's URI SAN (SANITIZE_SET); wins over
    # ``forward_client_cert``. With neither, XFCC is removed (SANITIZE, Envoy's default).
    verified_client_cert: bool = False
    http_filters: tuple[HttpFilter, ...] = ()  # run before fault injection and the router (authn/authz)
    access_logs: tuple[AccessLog, ...] = ()
    tracing: HttpConnectionManager.Tracing | None = None  # Telemetry tracing (``tracing.py``)


def build_inbound_chains(
    proxy: Proxy,
    instance: ServiceInstance,
    security: InboundSecurity | None,
    snapshot: MeshSnapshot,
    *,
    stat_prefix: str,
    policy_ports: dict[int, int] | None = None,
    telemetry: HcmTelemetry | None = None,
) -> tuple[list[ListenerFilter], list[FilterChain]]:
    """The listener filters and filter chains in front of the app for one service port: HTTP through an HTTP
    connection manager and the port's inbound route table, other protocols through tcp_proxy, to
    ``inbound|<port>||``. ``security``: the port's mTLS mode (proxies with SDS); None: plaintext, client
    certificates appended to XFCC. ``policy_ports``: how authorization policies' ports map to the port Envoy sees
    (default: a policy's workload port, the instance's target port, is seen as its service port). ``telemetry``:
    the proxy's server-side Telemetry loggers and tracing, built once per listener by the caller (None: built
    here)."""
    port = instance.port
    cluster = names.inbound_cluster_name(port.number)
    http_filters: tuple[HttpFilter, ...] = ()
    access_logs: tuple[AccessLog, ...] = ()
    tracing: HttpConnectionManager.Tracing | None = None
    network_policy: tuple[Filter, ...] = ()
    if port.protocol.is_http:
        http_filters = (
            *build_jwt_authn_filters(proxy, snapshot),  # before RBAC, which reads the tokens it verified
            *build_http_authz_filters(proxy, instance, snapshot, ports=policy_ports),
        )
        if telemetry is None:
            telemetry = build_hcm_telemetry(proxy, snapshot, WorkloadMode.SERVER)
        access_logs = (*build_inbound_access_logs(proxy, instance), *telemetry.access_logs)
        tracing = telemetry.tracing
    else:
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
                tracing=tracing,
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
    """``extra`` filters, then fault injection and CORS (both configured per route, via typed_per_filter_config,
    by the routes of a VirtualService with ``fault`` / ``corsPolicy``; without one they do nothing), then the
    router, which must be last: Istio's order."""
    return [
        *extra,
        http_filter(names.FAULT_FILTER, HTTPFault()),
        http_filter(names.CORS_FILTER, Cors()),
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
    if options.tracing is not None:
        hcm.tracing.CopyFrom(options.tracing)
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
