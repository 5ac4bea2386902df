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
from envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 import HttpProtocolOptions

from pilot.config.types import ConnectionPool, LoadBalancer, OutlierDetection, TrafficPolicy
from pilot.generate._protos import UINT32_MAX, duration
from pilot.generate.cluster_load_balancer import apply_load_balancer

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "ClusterTrafficPolicy",
    "apply_connection_pool",
    "apply_load_balancer",
    "apply_outlier_detection",
    "apply_traffic_policy",
    "default_circuit_breaker_thresholds",
    "merge_subset_traffic_policy",
    "port_traffic_policy",
]

DEFAULT_CONNECT_TIMEOUT = 10.0  # Istio's MeshConfig.connectTimeout default, seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterTrafficPolicy:
    """The traffic policy of one cluster: port-level settings and the subset's policy already resolved."""

    load_balancer: LoadBalancer | None = None
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None


def port_traffic_policy(policy: TrafficPolicy | None, port: int) -> ClusterTrafficPolicy | None:
    """Istio ``GetPortLevelTrafficPolicy``: a matching ``portLevelSettings`` entry replaces the whole policy.

    Istio documents that destination-level settings are *not* inherited by a port-level override: fields the
    port-level entry leaves out get the defaults, not the destination-level values.
    """
    if policy is None:
        return None
    for setting in policy.port_level_settings:
        if setting.port == port:
            return ClusterTrafficPolicy(
                load_balancer=setting.load_balancer,
                connection_pool=setting.connection_pool,
                outlier_detection=setting.outlier_detection,
            )
    return ClusterTrafficPolicy(
        load_balancer=policy.load_balancer,
        connection_pool=policy.connection_pool,
        outlier_detection=policy.outlier_detection,
    )


def merge_subset_traffic_policy(
    policy: TrafficPolicy | None, subset_policy: TrafficPolicy | None, port: int
) -> ClusterTrafficPolicy | None:
    """Istio ``MergeSubsetTrafficPolicy``: the subset's policy (its own port level resolved) overrides the rule's
    per field group; when the subset has port-level settings for this port, every group comes from the subset."""
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
    )


def apply_traffic_policy(
    cluster: Cluster,
    policy: ClusterTrafficPolicy | None,
    http_options: HttpProtocolOptions | None,
    *,
    outbound: bool,
) -> HttpProtocolOptions | None:
    """Istio ``applyTrafficPolicy``: connection pool (with defaults) on every cluster; outlier detection and load
    balancing on outbound clusters only. Returns the cluster's upstream HTTP options, created if the pool needs
    them; the caller packs them into ``typed_extension_protocol_options`` once the cluster is complete."""
    policy = policy or ClusterTrafficPolicy()
    http_options = apply_connection_pool(cluster, policy.connection_pool or ConnectionPool(), http_options)
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


def apply_connection_pool(
    cluster: Cluster, pool: ConnectionPool, http_options: HttpProtocolOptions | None
) -> HttpProtocolOptions | None:
    """Istio ``applyConnectionPool``. As in Istio, a count of 0 means "not set" (the proto cannot tell them apart
    there, and the same YAML must behave the same here)."""
    thresholds = default_circuit_breaker_thresholds()
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

    if pool.idle_timeout is None and not pool.max_requests_per_connection and not pool.max_concurrent_streams:
        return http_options
    http2 = http_options is not None and http_options.explicit_http_config.HasField("http2_protocol_options")
    if pool.idle_timeout is None and not pool.max_requests_per_connection and not http2:
        return http_options  # only max_concurrent_streams, which means nothing to an HTTP/1 upstream
    http_options = http_options if http_options is not None else HttpProtocolOptions()
    common = http_options.common_http_protocol_options
    if pool.idle_timeout is not None:
        common.idle_timeout = duration(pool.idle_timeout)
    if pool.max_requests_per_connection:
        common.max_requests_per_connection.value = pool.max_requests_per_connection
    if pool.max_concurrent_streams and http2:
        http_options.explicit_http_config.http2_protocol_options.max_concurrent_streams.value = (
            pool.max_concurrent_streams
        )
    return http_options


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
