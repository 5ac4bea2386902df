"""DestinationRule traffic policy -> Cluster fields (Istio ``cluster_traffic_policy.go``, ``MergeSubsetTrafficPolicy``).

Which policy applies to a cluster is decided first (:func:`port_traffic_policy`, :func:`merge_subset_traffic_policy`),
then applied to the Cluster being built (:func:`apply_traffic_policy`). Istio's defaults hold where the rule is
silent: connect timeout 10s, LEAST_REQUEST, and circuit breaker thresholds at their maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.cluster.v3.circuit_breaker_pb2 import CircuitBreakers
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.cluster.v3.outlier_detection_pb2 import OutlierDetection as EnvoyOutlierDetection
from envoy.config.core.v3.address_pb2 import TcpKeepalive
from envoy.config.core.v3.base_pb2 import TransportSocket
from envoy.config.core.v3.protocol_pb2 import Http1ProtocolOptions, Http2ProtocolOptions
from envoy.config.core.v3.proxy_protocol_pb2 import ProxyProtocolConfig
from envoy.extensions.transport_sockets.proxy_protocol.v3.upstream_proxy_protocol_pb2 import (
    ProxyProtocolUpstreamTransport,
)
from envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 import HttpProtocolOptions

from pilot.config.types import (
    ConnectionPool,
    LoadBalancer,
    OutlierDetection,
    ProxyProtocolVersion,
    RetryBudget,
    TrafficPolicy,
)
from pilot.generate._protos import UINT32_MAX, duration
from pilot.generate._tls import raw_buffer_transport_socket
from pilot.generate.cluster_load_balancer import apply_load_balancer

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "UPSTREAM_PROXY_PROTOCOL",
    "ClusterTrafficPolicy",
    "apply_connection_pool",
    "apply_h2_upgrade",
    "apply_load_balancer",
    "apply_outlier_detection",
    "apply_proxy_protocol",
    "apply_traffic_policy",
    "default_circuit_breaker_thresholds",
    "merge_subset_traffic_policy",
    "port_traffic_policy",
]

DEFAULT_CONNECT_TIMEOUT = 10.0  # Istio's MeshConfig.connectTimeout default, seconds
UPSTREAM_PROXY_PROTOCOL = "envoy.transport_sockets.upstream_proxy_protocol"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterTrafficPolicy:
    """The traffic policy of one cluster: port-level settings and the subset's policy already resolved."""

    load_balancer: LoadBalancer | None = None
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
    proxy_protocol: ProxyProtocolVersion | None = None  # the rule's (or subset's): port-level settings have none
    retry_budget: RetryBudget | None = None


def port_traffic_policy(policy: TrafficPolicy | None, port: int) -> ClusterTrafficPolicy | None:
    """Istio ``GetPortLevelTrafficPolicy``: a matching ``portLevelSettings`` entry replaces the whole policy.

    Istio documents that destination-level settings are *not* inherited by a port-level override: fields the
    port-level entry leaves out get the defaults, not the destination-level values. ``proxyProtocol`` and
    ``retryBudget`` (which port-level settings do not have) stay the policy's (Istio ``ShallowCopyTrafficPolicy``).
    """
    if policy is None:
        return None
    for setting in policy.port_level_settings:
        if setting.port == port:
            return ClusterTrafficPolicy(
                load_balancer=setting.load_balancer,
                connection_pool=setting.connection_pool,
                outlier_detection=setting.outlier_detection,
                proxy_protocol=policy.proxy_protocol,
                retry_budget=policy.retry_budget,
            )
    return ClusterTrafficPolicy(
        load_balancer=policy.load_balancer,
        connection_pool=policy.connection_pool,
        outlier_detection=policy.outlier_detection,
        proxy_protocol=policy.proxy_protocol,
        retry_budget=policy.retry_budget,
    )


def merge_subset_traffic_policy(
    policy: TrafficPolicy | None, subset_policy: TrafficPolicy | None, port: int
) -> ClusterTrafficPolicy | None:
    """Istio ``MergeSubsetTrafficPolicy``: the subset's policy (its own port level resolved) overrides the rule's
    per field group; when the subset has port-level settings for this port, every group comes from the subset
    (``proxyProtocol`` and ``retryBudget`` only when the subset sets them)."""
    original = port_traffic_policy(policy, port)
    if subset_policy is None:
        return original
    subset = port_traffic_policy(subset_policy, port)
    assert subset is not None  # subset_policy is not None
    if original is None:
        return subset
    port_level = any(setting.port == port for setting in subset_policy.port_level_settings)
    return ClusterTrafficPolicy(
        load_balancer=subset.load_balancer
        if subset.load_balancer is not None or port_level
        else original.load_balancer,
        connection_pool=subset.connection_pool
        if subset.connection_pool is not None or port_level
        else original.connection_pool,
        outlier_detection=subset.outlier_detection
        if subset.outlier_detection is not None or port_level
        else original.outlier_detection,
        proxy_protocol=subset.proxy_protocol if subset.proxy_protocol is not None else original.proxy_protocol,
        retry_budget=subset.retry_budget if subset.retry_budget is not None else original.retry_budget,
    )


def apply_traffic_policy(
    cluster: Cluster,
    policy: ClusterTrafficPolicy | None,
    http_options: HttpProtocolOptions | None,
    *,
    outbound: bool,
) -> HttpProtocolOptions | None:
    """Istio ``applyTrafficPolicy``: the HTTP/2 upgrade (outbound only, first, so that HTTP/2 pool settings apply),
    then the connection pool and retry budget (with defaults) on every cluster; outlier detection and load
    balancing on outbound clusters only. Returns the cluster's upstream HTTP options, created if the policy needs
    them; the caller packs them into ``typed_extension_protocol_options`` once the cluster is complete. The
    upstream PROXY protocol wraps the transport socket once TLS is set (:func:`apply_proxy_protocol`)."""
    policy = policy or ClusterTrafficPolicy()
    pool = policy.connection_pool or ConnectionPool()
    if outbound:
        http_options = apply_h2_upgrade(pool, http_options)
    http_options = apply_connection_pool(cluster, pool, http_options, policy.retry_budget)
    if outbound:
        apply_outlier_detection(cluster, policy.outlier_detection)
        apply_load_balancer(cluster, policy.load_balancer, has_outlier_detection=policy.outlier_detection is not None)
    return http_options


def default_circuit_breaker_thresholds() -> CircuitBreakers.Thresholds:
    """Istio ``getDefaultCircuitBreakerThresholds``: no limits (Envoy's own defaults, e.g. 3 parallel retries,
    cause 503s during endpoint churn), with remaining-capacity gauges tracked."""
    return CircuitBreakers.Thresholds(
        max_connections={"value": UINT32_MAX},
        max_pending_requests={"value": UINT32_MAX},
        max_requests={"value": UINT32_MAX},
        max_retries={"value": UINT32_MAX},
        track_remaining=True,
    )


def apply_h2_upgrade(pool: ConnectionPool, http_options: HttpProtocolOptions | None) -> HttpProtocolOptions | None:
    """Istio ``applyH2Upgrade``/``shouldH2Upgrade``: ``h2UpgradePolicy: UPGRADE`` makes the cluster speak HTTP/2
    upstream (whatever the port's protocol: the rule says the destination takes it), unless ``useClientProtocol``
    is set. ``DEFAULT`` follows MeshConfig ``h2UpgradePolicy``, whose default, DO_NOT_UPGRADE, is the one meshplane
    has (it does not read that MeshConfig field)."""
    if pool.use_client_protocol or pool.h2_upgrade_policy != "UPGRADE":
        return http_options
    http_options = http_options if http_options is not None else HttpProtocolOptions()
    http_options.explicit_http_config.http2_protocol_options.CopyFrom(Http2ProtocolOptions())  # Istio setH2Options
    return http_options


def apply_connection_pool(
    cluster: Cluster,
    pool: ConnectionPool,
    http_options: HttpProtocolOptions | None,
    retry_budget: RetryBudget | None = None,
) -> HttpProtocolOptions | None:
    """Istio ``applyConnectionPool``. As in Istio, a count of 0 means "not set" (the proto cannot tell them apart
    there, and the same YAML must behave the same here). ``tcp.maxConnectionDuration`` and ``tcp.idleTimeout``
    (when ``http.idleTimeout`` is not set) go to the upstream HTTP options, as in Istio; a TCP port's tcp_proxy
    takes them as well (``listeners_l4_routes``)."""
    thresholds = default_circuit_breaker_thresholds()
    if retry_budget is not None:
        _apply_retry_budget(thresholds, retry_budget)
    if pool.http2_max_requests:
        thresholds.max_requests.value = pool.http2_max_requests
    if pool.http1_max_pending_requests:
        thresholds.max_pending_requests.value = pool.http1_max_pending_requests
    if pool.max_retries:
        thresholds.max_retries.value = pool.max_retries
    if pool.max_connections:
        thresholds.max_connections.value = pool.max_connections
    cluster.circuit_breakers.CopyFrom(CircuitBreakers(thresholds=[thresholds]))
    cluster.connect_timeout = duration(
        pool.connect_timeout if pool.connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
    )
    _apply_tcp_keepalive(cluster, pool)
    http_options = _apply_http_connection_limits(pool, http_options)
    if pool.use_client_protocol:
        http_options = _use_downstream_protocol(http_options)
    return http_options


def _apply_http_connection_limits(
    pool: ConnectionPool, http_options: HttpProtocolOptions | None
) -> HttpProtocolOptions | None:
    idle_timeout = pool.idle_timeout if pool.idle_timeout is not None else pool.tcp_idle_timeout
    limits = (
        idle_timeout is not None or pool.max_connection_duration is not None or bool(pool.max_requests_per_connection)
    )
    if not limits and not pool.max_concurrent_streams:
        return http_options
    http2 = http_options is not None and http_options.explicit_http_config.HasField("http2_protocol_options")
    if not limits and not http2:
        return http_options  # only max_concurrent_streams, which means nothing to an HTTP/1 upstream
    http_options = http_options if http_options is not None else HttpProtocolOptions()
    common = http_options.common_http_protocol_options
    if idle_timeout is not None:
        common.idle_timeout = duration(idle_timeout)
    if pool.max_connection_duration is not None:
        common.max_connection_duration = duration(pool.max_connection_duration)
    if pool.max_requests_per_connection:
        common.max_requests_per_connection.value = pool.max_requests_per_connection
    if pool.max_concurrent_streams and http2:
        http_options.explicit_http_config.http2_protocol_options.max_concurrent_streams.value = (
            pool.max_concurrent_streams
        )
    return http_options


def _use_downstream_protocol(http_options: HttpProtocolOptions | None) -> HttpProtocolOptions:
    """Istio ``setUseDownstreamProtocol`` (``useClientProtocol``): HTTP/1.1 upstream for HTTP/1.1 clients (with the
    explicit HTTP/1.1 options, if any), HTTP/2 for HTTP/2 clients."""
    http_options = http_options if http_options is not None else HttpProtocolOptions()
    http1 = Http1ProtocolOptions()
    if http_options.explicit_http_config.HasField("http_protocol_options"):
        http1.CopyFrom(http_options.explicit_http_config.http_protocol_options)
    http_options.use_downstream_protocol_config.CopyFrom(
        HttpProtocolOptions.UseDownstreamHttpConfig(http_protocol_options=http1, http2_protocol_options={})
    )
    return http_options


def _apply_retry_budget(thresholds: CircuitBreakers.Thresholds, budget: RetryBudget) -> None:
    """Istio ``applyRetryBudget``: Envoy's retry budget replaces the ``max_retries`` limit."""
    thresholds.retry_budget.budget_percent.value = budget.percent
    thresholds.retry_budget.min_retry_concurrency.value = budget.min_retry_concurrency


def apply_proxy_protocol(cluster: Cluster, version: ProxyProtocolVersion | None) -> None:
    """Istio ``applyUpstreamProxyProtocol``: the PROXY protocol header before whatever the cluster's transport
    socket sends (plaintext, TLS, or each of the auto-mTLS ``transport_socket_matches``)."""
    if version is None:
        return
    config = ProxyProtocolConfig(version=ProxyProtocolConfig.Version.Value(version))
    if not cluster.HasField("transport_socket") and not cluster.transport_socket_matches:
        cluster.transport_socket.CopyFrom(_proxy_protocol_socket(config, raw_buffer_transport_socket()))
        return
    if cluster.HasField("transport_socket"):
        cluster.transport_socket.CopyFrom(_proxy_protocol_socket(config, cluster.transport_socket))
    for match in cluster.transport_socket_matches:
        match.transport_socket.CopyFrom(_proxy_protocol_socket(config, match.transport_socket))


def _proxy_protocol_socket(config: ProxyProtocolConfig, inner: TransportSocket) -> TransportSocket:
    wrapped = ProxyProtocolUpstreamTransport(config=config)
    wrapped.transport_socket.CopyFrom(inner)
    socket = TransportSocket(name=UPSTREAM_PROXY_PROTOCOL)
    socket.typed_config.Pack(wrapped)
    return socket


def _apply_tcp_keepalive(cluster: Cluster, pool: ConnectionPool) -> None:
    """Istio ``setKeepAliveSettings``: SO_KEEPALIVE with the given probes/time/interval (OS defaults for the rest).
    Envoy counts time and interval in whole seconds."""
    if pool.tcp_keepalive_time is None and pool.tcp_keepalive_interval is None and pool.tcp_keepalive_probes is None:
        return
    keepalive = TcpKeepalive()
    if pool.tcp_keepalive_probes:
        keepalive.keepalive_probes.value = pool.tcp_keepalive_probes
    if pool.tcp_keepalive_time is not None:
        keepalive.keepalive_time.value = int(pool.tcp_keepalive_time)
    if pool.tcp_keepalive_interval is not None:
        keepalive.keepalive_interval.value = int(pool.tcp_keepalive_interval)
    cluster.upstream_connection_options.tcp_keepalive.CopyFrom(keepalive)


def apply_outlier_detection(cluster: Cluster, outlier: OutlierDetection | None) -> None:
    """Istio ``applyOutlierDetection``: consecutive-error ejection only (success-rate ejection disabled), each
    error kind enforced at 100% when its threshold is positive; the panic threshold is ``minHealthPercent``
    (0 unless given: Istio disables panic mode, which rarely helps services with few endpoints)."""
    if outlier is None:
        return
    out = EnvoyOutlierDetection(enforcing_success_rate={"value": 0})
    if outlier.consecutive_5xx_errors is not None:
        out.consecutive_5xx.value = outlier.consecutive_5xx_errors
        out.enforcing_consecutive_5xx.value = 100 if outlier.consecutive_5xx_errors > 0 else 0
    if outlier.consecutive_gateway_errors is not None:
        out.consecutive_gateway_failure.value = outlier.consecutive_gateway_errors
        out.enforcing_consecutive_gateway_failure.value = 100 if outlier.consecutive_gateway_errors > 0 else 0
    if outlier.interval is not None:
        out.interval = duration(outlier.interval)
    if outlier.base_ejection_time is not None:
        out.base_ejection_time = duration(outlier.base_ejection_time)
    if outlier.max_ejection_percent:
        out.max_ejection_percent.value = outlier.max_ejection_percent
    if outlier.split_external_local_origin_errors:
        out.split_external_local_origin_errors = True
        if outlier.consecutive_local_origin_failures:
            out.consecutive_local_origin_failure.value = outlier.consecutive_local_origin_failures
            out.enforcing_consecutive_local_origin_failure.value = 100
        out.enforcing_local_origin_success_rate.value = 0
    cluster.outlier_detection.CopyFrom(out)
    cluster.common_lb_config.healthy_panic_threshold.value = float(outlier.min_health_percent or 0)
