"""Validate a DestinationRule spec into ``types.DestinationRule`` (Istio's ``ValidateDestinationRule`` rules).

Istio fields that meshplane does not implement yet (``tunnel``, ...) are reported as "not supported by meshplane
yet" rather than silently ignored: a rule that seems to apply but does not is worse than a clear rejection.
``tls`` (top level, per port and per subset) is read by ``validate_client_tls``, ``loadBalancer`` by
``validate_load_balancer``.

Integer settings that are plain ``int32`` in Istio's protos (connection pool limits, maxEjectionPercent) treat 0 as
"not set", as proto3 does; they come out as ``None`` so that builders apply Istio's defaults.
"""

from __future__ import annotations

from typing import cast

from pilot.config.types import (
    ConfigMeta,
    ConnectionPool,
    DestinationRule,
    H2UpgradePolicy,
    Labels,
    OutlierDetection,
    PortTrafficPolicy,
    ProxyProtocolVersion,
    RetryBudget,
    Subset,
    TrafficPolicy,
    frozen_labels,
)
from pilot.config.validate_client_tls import read_client_tls
from pilot.config.validate_common import INT32_MAX, UINT32_MAX, Fields
from pilot.config.validate_load_balancer import LOAD_BALANCER_POLICIES, read_load_balancer
from pilot.config.validate_names import dns1123_label_error, export_to, host_error

__all__ = [
    "DESTINATION_RULE_FIELDS",
    "DESTINATION_RULE_UNSUPPORTED",
    "LOAD_BALANCER_POLICIES",
    "read_connection_pool",
    "read_traffic_policy",
    "validate_destination_rule",
]

DESTINATION_RULE_FIELDS = ("host", "trafficPolicy", "subsets", "exportTo", "workloadSelector")
DESTINATION_RULE_UNSUPPORTED: tuple[str, ...] = ()

_POLICY_FIELDS = (
    "loadBalancer",
    "connectionPool",
    "outlierDetection",
    "portLevelSettings",
    "tls",
    "proxyProtocol",
    "retryBudget",
)
_PORT_POLICY_FIELDS = ("port", "loadBalancer", "connectionPool", "outlierDetection", "tls")
_TCP_FIELDS = ("maxConnections", "connectTimeout", "tcpKeepalive", "maxConnectionDuration", "idleTimeout")
_KEEPALIVE = "ConnectionPoolSettings.TCPSettings.TcpKeepalive"
_HTTP_FIELDS = (
    "http1MaxPendingRequests",
    "http2MaxRequests",
    "maxRequestsPerConnection",
    "maxRetries",
    "idleTimeout",
    "maxConcurrentStreams",
    "h2UpgradePolicy",
    "useClientProtocol",
)
_RETRY_BUDGET_FIELDS = ("percent", "minRetryConcurrency")
_H2_UPGRADE_POLICIES = ("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")
_OUTLIER_FIELDS = (
    "consecutive5xxErrors",
    "consecutiveGatewayErrors",
    "splitExternalLocalOriginErrors",
    "consecutiveLocalOriginFailures",
    "interval",
    "baseEjectionTime",
    "maxEjectionPercent",
    "minHealthPercent",
)


def validate_destination_rule(spec: Fields, meta: ConfigMeta) -> DestinationRule:
    """Check a DestinationRule spec (opened with ``DESTINATION_RULE_FIELDS``); problems go to ``spec.problems``."""
    host = spec.string("host", required=True) or ""
    if host:
        spec.problems.add_if(spec.at("host"), host_error(host))
    subsets: list[Subset] = []
    names: set[str] = set()
    for subset in spec.mappings("subsets", known=("name", "labels", "trafficPolicy"), message="Subset"):
        name = subset.string("name", required=True) or ""
        if name:
            subset.problems.add_if(subset.at("name"), dns1123_label_error(name, "subset name"))
            if name in names:
                subset.report("name", f"duplicate subset name {name!r}")
            names.add(name)
        subsets.append(
            Subset(
                name=name,
                labels=frozen_labels(subset.labels("labels")),
                traffic_policy=read_traffic_policy(subset, "trafficPolicy"),
            )
        )
    return DestinationRule(
        meta=meta,
        host=host,
        traffic_policy=read_traffic_policy(spec, "trafficPolicy"),
        subsets=tuple(subsets),
        export_to=export_to(spec, meta.key.namespace, allow_none=False),
        workload_selector=_workload_selector(spec),
    )


def _workload_selector(spec: Fields) -> Labels | None:
    """``workloadSelector.matchLabels``: the client workloads of the rule's namespace it applies to (Istio 1.13+).
    An empty selector selects every workload of the namespace, but the rule stays a selector rule (Istio: never
    seen from other namespaces)."""
    selector = spec.mapping("workloadSelector", known=("matchLabels",), message="type.WorkloadSelector")
    if selector is None:
        return None
    return frozen_labels(selector.labels("matchLabels") or {})


def read_traffic_policy(parent: Fields, name: str) -> TrafficPolicy | None:
    policy = parent.mapping(name, known=_POLICY_FIELDS, message="TrafficPolicy")
    if policy is None:
        return None
    if not policy.node:
        policy.report(None, "a traffic policy must set at least one field")
    return TrafficPolicy(
        load_balancer=read_load_balancer(policy, has_outlier_detection=policy.has("outlierDetection")),
        connection_pool=read_connection_pool(policy),
        outlier_detection=_outlier_detection(policy),
        port_level_settings=_port_level_settings(policy),
        tls=read_client_tls(policy),
        proxy_protocol=_proxy_protocol(policy),
        retry_budget=_retry_budget(policy),
    )


def _proxy_protocol(policy: Fields) -> ProxyProtocolVersion | None:
    """``proxyProtocol``: the PROXY protocol header version sent upstream (V1 when left out, the proto default)."""
    proxy_protocol = policy.mapping("proxyProtocol", known=("version",), message="TrafficPolicy.ProxyProtocol")
    if proxy_protocol is None:
        return None
    return cast("ProxyProtocolVersion", proxy_protocol.enum("version", ("V1", "V2")) or "V1")


def _retry_budget(policy: Fields) -> RetryBudget | None:
    """``retryBudget``: Istio's defaults (20%, at least 3 concurrent retries) where left out; a
    ``minRetryConcurrency`` of 0 means "not set" (proto3 uint32)."""
    budget = policy.mapping(
        "retryBudget", known=("percent", "minRetryConcurrency"), message="TrafficPolicy.RetryBudget"
    )
    if budget is None:
        return None
    percent = budget.number("percent", minimum=0, maximum=100)
    concurrency = budget.integer("minRetryConcurrency", minimum=0, maximum=UINT32_MAX)
    return RetryBudget(
        percent=percent if percent is not None else RetryBudget().percent,
        min_retry_concurrency=concurrency or RetryBudget().min_retry_concurrency,
    )


def _port_level_settings(policy: Fields) -> tuple[PortTrafficPolicy, ...]:
    settings: list[PortTrafficPolicy] = []
    seen: set[int] = set()
    for entry in policy.mappings(
        "portLevelSettings", known=_PORT_POLICY_FIELDS, message="TrafficPolicy.PortTrafficPolicy"
    ):
        port = entry.mapping("port", known=("number",), required=True, message="PortSelector")
        number = port.integer("number", minimum=1, maximum=65535, required=True) if port is not None else None
        if number is not None:
            if number in seen:
                entry.report("port", f"port {number} already has port-level settings")
            seen.add(number)
        if not any(entry.has(key) for key in _PORT_POLICY_FIELDS[1:]):
            entry.report(
                None, "port-level settings must set at least one of loadBalancer, connectionPool, outlierDetection, tls"
            )
        settings.append(
            PortTrafficPolicy(
                port=number or 0,
                load_balancer=read_load_balancer(entry, has_outlier_detection=entry.has("outlierDetection")),
                connection_pool=read_connection_pool(entry),
                outlier_detection=_outlier_detection(entry),
                tls=read_client_tls(entry),
            )
        )
    return tuple(settings)


def read_connection_pool(policy: Fields, name: str = "connectionPool") -> ConnectionPool | None:
    """The ConnectionPoolSettings at ``name`` of ``policy`` (a DestinationRule's, a Sidecar's inbound ones)."""
    pool = policy.mapping(name, known=("tcp", "http"), message="ConnectionPoolSettings")
    if pool is None:
        return None
    if not pool.has("tcp") and not pool.has("http"):
        pool.report(None, "a connection pool must set tcp or http")
    tcp = pool.mapping("tcp", known=_TCP_FIELDS, message="ConnectionPoolSettings.TCPSettings")
    http = pool.mapping("http", known=_HTTP_FIELDS, message="ConnectionPoolSettings.HTTPSettings")
    keepalive = (
        tcp.mapping("tcpKeepalive", known=("probes", "time", "interval"), message=_KEEPALIVE)
        if tcp is not None
        else None
    )
    return ConnectionPool(
        max_connections=_limit(tcp, "maxConnections"),
        connect_timeout=tcp.timeout("connectTimeout") if tcp is not None else None,
        tcp_keepalive_time=_keepalive_seconds(keepalive, "time"),
        tcp_keepalive_interval=_keepalive_seconds(keepalive, "interval"),
        tcp_keepalive_probes=_limit(keepalive, "probes", maximum=UINT32_MAX),
        max_connection_duration=tcp.timeout("maxConnectionDuration") if tcp is not None else None,
        tcp_idle_timeout=tcp.timeout("idleTimeout") if tcp is not None else None,
        http1_max_pending_requests=_limit(http, "http1MaxPendingRequests"),
        http2_max_requests=_limit(http, "http2MaxRequests"),
        max_requests_per_connection=_limit(http, "maxRequestsPerConnection"),
        max_retries=_limit(http, "maxRetries"),
        idle_timeout=http.timeout("idleTimeout") if http is not None else None,
        max_concurrent_streams=_limit(http, "maxConcurrentStreams"),
        h2_upgrade_policy=_h2_upgrade_policy(http),
        use_client_protocol=(http.boolean("useClientProtocol") or False) if http is not None else False,
    )


def _h2_upgrade_policy(http: Fields | None) -> H2UpgradePolicy:
    if http is None:
        return "DEFAULT"
    policy = cast("H2UpgradePolicy", http.enum("h2UpgradePolicy", _H2_UPGRADE_POLICIES) or "DEFAULT")
    if policy == "UPGRADE" and http.boolean("useClientProtocol"):
        # Istio keeps the client's protocol then and drops the upgrade: a policy weaker than written
        http.report("h2UpgradePolicy", "UPGRADE has no effect with useClientProtocol: true; set one of them")
    return policy


def _limit(fields: Fields | None, name: str, *, maximum: int = INT32_MAX) -> int | None:
    """A non-negative integer limit; 0 means "not set" (proto3), so Istio's default applies."""
    if fields is None:
        return None
    return fields.integer(name, minimum=0, maximum=maximum) or None


def _keepalive_seconds(keepalive: Fields | None, name: str) -> float | None:
    if keepalive is None:
        return None
    seconds = keepalive.timeout(name)
    if seconds is not None and seconds < 1:
        keepalive.report(name, "must be at least 1s: Envoy counts TCP keepalive time in whole seconds")
        return None
    return seconds


def _outlier_detection(policy: Fields) -> OutlierDetection | None:
    outlier = policy.mapping("outlierDetection", known=_OUTLIER_FIELDS, message="OutlierDetection")
    if outlier is None:
        return None
    split = outlier.boolean("splitExternalLocalOriginErrors") or False
    local_failures = outlier.integer("consecutiveLocalOriginFailures", minimum=0, maximum=UINT32_MAX)
    if local_failures is not None and not split:
        outlier.report(
            "consecutiveLocalOriginFailures", "only takes effect with splitExternalLocalOriginErrors: true; set it"
        )
    return OutlierDetection(
        consecutive_5xx_errors=outlier.integer("consecutive5xxErrors", minimum=0, maximum=UINT32_MAX),
        consecutive_gateway_errors=outlier.integer("consecutiveGatewayErrors", minimum=0, maximum=UINT32_MAX),
        split_external_local_origin_errors=split,
        consecutive_local_origin_failures=local_failures,
        interval=outlier.timeout("interval"),
        base_ejection_time=outlier.timeout("baseEjectionTime"),
        max_ejection_percent=outlier.integer("maxEjectionPercent", minimum=0, maximum=100) or None,
        min_health_percent=outlier.integer("minHealthPercent", minimum=0, maximum=100),
    )
