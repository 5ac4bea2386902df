"""DestinationRule validation: one case per rule, each asserting file:line, path and message."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pilot.config.types import DestinationRule, RetryBudget

if TYPE_CHECKING:
    from tests.conftest import IstioDocs

Expected = list[tuple[int, str, str]]  # (line in the spec body, field path, part of the message)

CASES: list[tuple[str, str, Expected]] = [
    ("host-missing", "subsets: []\n", [(0, "spec.host", "required field is missing")]),
    ("host-invalid", "host: reviews_v1\n", [(1, "spec.host", "not a valid DNS label")]),
    (
        "subset-name-missing",
        "host: reviews\nsubsets:\n- labels: {version: v1}\n",
        [(3, "spec.subsets[0].name", "required field is missing")],
    ),
    (
        "subset-name-invalid",
        "host: reviews\nsubsets:\n- name: V1\n",
        [(3, "spec.subsets[0].name", "invalid subset name 'V1'")],
    ),
    (
        "subset-duplicate",
        "host: reviews\nsubsets:\n- name: v1\n- name: v1\n",
        [(4, "spec.subsets[1].name", "duplicate subset name 'v1'")],
    ),
    (
        "subset-labels-type",
        "host: reviews\nsubsets:\n- name: v1\n  labels: [version]\n",
        [(4, "spec.subsets[0].labels", "expected a mapping of strings, got a list")],
    ),
    (
        "lb-simple-invalid",
        "host: reviews\ntrafficPolicy:\n  loadBalancer:\n    simple: ROUND_ROBBIN\n",
        [(4, "spec.trafficPolicy.loadBalancer.simple", "did you mean 'ROUND_ROBIN'?")],
    ),
    (
        "policy-empty",
        "host: reviews\ntrafficPolicy: {}\n",
        [(2, "spec.trafficPolicy", "must set at least one field")],
    ),
    (
        "pool-empty",
        "host: reviews\ntrafficPolicy:\n  connectionPool: {}\n",
        [(3, "spec.trafficPolicy.connectionPool", "must set tcp or http")],
    ),
    (
        "max-connections-negative",
        "host: reviews\ntrafficPolicy:\n  connectionPool:\n    tcp: {maxConnections: -1}\n",
        [(4, "spec.trafficPolicy.connectionPool.tcp.maxConnections", "must be at least 0, got -1")],
    ),
    (
        "connect-timeout-zero",
        "host: reviews\ntrafficPolicy:\n  connectionPool:\n    tcp:\n      connectTimeout: 0s\n",
        [(5, "spec.trafficPolicy.connectionPool.tcp.connectTimeout", "must be at least 1ms")],
    ),
    (
        "connect-timeout-garbage",
        "host: reviews\ntrafficPolicy:\n  connectionPool:\n    tcp:\n      connectTimeout: 10 seconds\n",
        [(5, "spec.trafficPolicy.connectionPool.tcp.connectTimeout", "invalid duration '10 seconds'")],
    ),
    (
        "keepalive-subsecond",
        "host: reviews\ntrafficPolicy:\n  connectionPool:\n    tcp:\n      tcpKeepalive: {time: 500ms}\n",
        [(5, "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time", "must be at least 1s")],
    ),
    (
        "max-connection-duration-zero",
        "host: reviews\ntrafficPolicy:\n  connectionPool:\n    tcp: {maxConnectionDuration: 0s}\n",
        [(4, "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration", "must be at least 1ms")],
    ),
    (
        "tcp-idle-timeout-type",
        "host: reviews\ntrafficPolicy:\n  connectionPool:\n    tcp: {idleTimeout: 30}\n",
        [(4, "spec.trafficPolicy.connectionPool.tcp.idleTimeout", "expected a duration string")],
    ),
    (
        "h2-upgrade-policy-invalid",
        "host: reviews\ntrafficPolicy:\n  connectionPool:\n    http:\n      h2UpgradePolicy: UPGRAD\n",
        [(5, "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy", "did you mean 'UPGRADE'?")],
    ),
    (
        "h2-upgrade-with-client-protocol",
        "host: reviews\ntrafficPolicy:\n  connectionPool:\n    http:\n      h2UpgradePolicy: UPGRADE\n"
        "      useClientProtocol: true\n",
        [(5, "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy", "no effect with useClientProtocol")],
    ),
    (
        "use-client-protocol-type",
        "host: reviews\ntrafficPolicy:\n  connectionPool:\n    http:\n      useClientProtocol: 'yes'\n",
        [(5, "spec.trafficPolicy.connectionPool.http.useClientProtocol", "expected a boolean")],
    ),
    (
        "retry-budget-percent",
        "host: reviews\ntrafficPolicy:\n  retryBudget:\n    percent: 120\n",
        [(4, "spec.trafficPolicy.retryBudget.percent", "must be between 0 and 100, got 120")],
    ),
    (
        "retry-budget-concurrency",
        "host: reviews\ntrafficPolicy:\n  retryBudget:\n    minRetryConcurrency: -1\n",
        [(4, "spec.trafficPolicy.retryBudget.minRetryConcurrency", "must be at least 0, got -1")],
    ),
    (
        "proxy-protocol-version",
        "host: reviews\ntrafficPolicy:\n  proxyProtocol:\n    version: V3\n",
        [(4, "spec.trafficPolicy.proxyProtocol.version", "expected one of V1, V2")],
    ),
    (
        "port-level-proxy-protocol",
        "host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 80}\n"
        "    loadBalancer: {simple: RANDOM}\n    proxyProtocol: {}\n",
        [(6, "spec.trafficPolicy.portLevelSettings[0].proxyProtocol", "unknown field")],  # Istio's has none
    ),
    (
        "tunnel-unsupported",
        "host: reviews\ntrafficPolicy:\n  tunnel: {protocol: CONNECT, targetHost: a.example.com, targetPort: 80}\n",
        [(3, "spec.trafficPolicy.tunnel", "not supported by meshplane yet")],
    ),
    (
        "http-idle-timeout-type",
        "host: reviews\ntrafficPolicy:\n  connectionPool:\n    http:\n      idleTimeout: 30\n",
        [(5, "spec.trafficPolicy.connectionPool.http.idleTimeout", "expected a duration string")],
    ),
    (
        "max-ejection-percent",
        "host: reviews\ntrafficPolicy:\n  outlierDetection:\n    maxEjectionPercent: 101\n",
        [(4, "spec.trafficPolicy.outlierDetection.maxEjectionPercent", "must be between 0 and 100, got 101")],
    ),
    (
        "min-health-percent",
        "host: reviews\ntrafficPolicy:\n  outlierDetection:\n    minHealthPercent: -5\n",
        [(4, "spec.trafficPolicy.outlierDetection.minHealthPercent", "must be between 0 and 100, got -5")],
    ),
    (
        "local-origin-without-split",
        "host: reviews\ntrafficPolicy:\n  outlierDetection:\n    consecutiveLocalOriginFailures: 3\n",
        [(4, "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures", "splitExternalLocalOriginErrors")],
    ),
    (
        "outlier-interval-too-short",
        "host: reviews\ntrafficPolicy:\n  outlierDetection:\n    interval: 100us\n",
        [(4, "spec.trafficPolicy.outlierDetection.interval", "must be at least 1ms")],
    ),
    (
        "outlier-consecutive-errors",
        "host: reviews\ntrafficPolicy:\n  outlierDetection:\n    consecutiveErrors: 5\n",
        [(4, "spec.trafficPolicy.outlierDetection.consecutiveErrors", "not supported by meshplane yet: deprecated")],
    ),
    (
        "outlier-split-type",
        "host: reviews\ntrafficPolicy:\n  outlierDetection:\n    splitExternalLocalOriginErrors: 'yes'\n",
        [(4, "spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors", "expected a boolean")],
    ),
    (
        "port-level-missing-port",
        "host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - loadBalancer: {simple: RANDOM}\n",
        [(4, "spec.trafficPolicy.portLevelSettings[0].port", "required field is missing")],
    ),
    (
        "port-level-missing-number",
        "host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {}\n    loadBalancer: {simple: RANDOM}\n",
        [(4, "spec.trafficPolicy.portLevelSettings[0].port.number", "required field is missing")],
    ),
    (
        "port-level-duplicate",
        "host: reviews\ntrafficPolicy:\n  portLevelSettings:\n"
        "  - port: {number: 80}\n    loadBalancer: {simple: RANDOM}\n"
        "  - port: {number: 80}\n    loadBalancer: {simple: LEAST_REQUEST}\n",
        [(6, "spec.trafficPolicy.portLevelSettings[1].port", "port 80 already has port-level settings")],
    ),
    (
        "port-level-empty",
        "host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 80}\n",
        [(4, "spec.trafficPolicy.portLevelSettings[0]", "must set at least one of loadBalancer")],
    ),
    (
        "port-level-tls-checked",
        "host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 80}\n    tls: {mode: MUTUAL}\n",
        [
            (5, "spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate", "required for mode MUTUAL"),
            (5, "spec.trafficPolicy.portLevelSettings[0].tls.privateKey", "required for mode MUTUAL"),
        ],
    ),
    (
        "subset-policy-checked",
        "host: reviews\nsubsets:\n- name: v1\n  trafficPolicy:\n    loadBalancer: {simple: FASTEST}\n",
        [(5, "spec.subsets[0].trafficPolicy.loadBalancer.simple", "invalid value 'FASTEST'")],
    ),
    (
        "export-to-nobody",
        "host: reviews\nexportTo: ['~']\n",
        [(2, "spec.exportTo[0]", "only allowed in a ServiceEntry")],
    ),
    (
        "passthrough",
        "host: reviews\ntrafficPolicy:\n  loadBalancer: {simple: PASSTHROUGH}\n",
        [(3, "spec.trafficPolicy.loadBalancer.simple", "PASSTHROUGH is not supported by meshplane yet")],
    ),
    (
        "typo",
        "host: reviews\ntrafficPolicy:\n  outlierDetection:\n    consecutive5xxError: 5\n",
        [(4, "spec.trafficPolicy.outlierDetection.consecutive5xxError", "did you mean 'consecutive5xxErrors'?")],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_destination_rule_rejections(istio: IstioDocs, body: str, expected: Expected) -> None:
    errors = istio.errors("DestinationRule", body)
    for line, path, message in expected:
        istio.assert_error(errors, "DestinationRule", line, path, message)
    assert len(errors) == len(expected), errors


@pytest.mark.parametrize(
    "host",
    ["reviews", "reviews.bookinfo.svc.cluster.local", "*.example.com", "*"],
    ids=["short", "fqdn", "wildcard", "everything"],
)
def test_destination_rule_hosts(istio: IstioDocs, host: str) -> None:
    rule = istio.accepted("DestinationRule", f"host: '{host}'\n")
    assert isinstance(rule, DestinationRule) and rule.host == host


def test_destination_rule_fields_are_converted(istio: IstioDocs) -> None:
    rule = istio.accepted(
        "DestinationRule",
        """\
        host: reviews
        exportTo: ['.']
        trafficPolicy:
          loadBalancer: {simple: LEAST_REQUEST}
          connectionPool:
            tcp:
              maxConnections: 100
              connectTimeout: 250ms
              tcpKeepalive: {time: 2h, interval: 75s, probes: 9}
            http:
              http1MaxPendingRequests: 0
              http2MaxRequests: 1000
              maxRequestsPerConnection: 1
              maxRetries: 3
              idleTimeout: 1m30s
              maxConcurrentStreams: 64
          outlierDetection:
            consecutive5xxErrors: 0
            consecutiveGatewayErrors: 7
            splitExternalLocalOriginErrors: true
            consecutiveLocalOriginFailures: 2
            interval: 5m
            baseEjectionTime: 15m
            maxEjectionPercent: 0
            minHealthPercent: 50
          portLevelSettings:
          - port: {number: 9080}
            loadBalancer: {simple: RANDOM}
        subsets:
        - name: v1
          labels: {version: v1}
        - name: v2
          labels: {version: v2}
          trafficPolicy:
            loadBalancer: {simple: ROUND_ROBIN}
        """,
    )
    assert isinstance(rule, DestinationRule)
    policy = rule.traffic_policy
    assert policy is not None and policy.load_balancer is not None and policy.load_balancer.simple == "LEAST_REQUEST"
    pool = policy.connection_pool
    assert pool is not None
    assert (pool.max_connections, pool.connect_timeout) == (100, 0.25)
    assert (pool.tcp_keepalive_time, pool.tcp_keepalive_interval, pool.tcp_keepalive_probes) == (7200.0, 75.0, 9)
    assert pool.http1_max_pending_requests is None  # proto3: 0 is unset, Istio's default applies
    assert (pool.http2_max_requests, pool.max_requests_per_connection, pool.max_retries) == (1000, 1, 3)
    assert (pool.idle_timeout, pool.max_concurrent_streams) == (90.0, 64)
    outlier = policy.outlier_detection
    assert outlier is not None
    assert outlier.consecutive_5xx_errors == 0  # a wrapper in Istio: 0 disables 5xx ejection
    assert (outlier.consecutive_gateway_errors, outlier.consecutive_local_origin_failures) == (7, 2)
    assert outlier.split_external_local_origin_errors is True
    assert (outlier.interval, outlier.base_ejection_time) == (300.0, 900.0)
    assert (outlier.max_ejection_percent, outlier.min_health_percent) == (None, 50)
    (port_policy,) = policy.port_level_settings
    assert port_policy.port == 9080 and port_policy.load_balancer is not None
    assert port_policy.load_balancer.simple == "RANDOM"
    assert [(s.name, dict(s.labels)) for s in rule.subsets] == [("v1", {"version": "v1"}), ("v2", {"version": "v2"})]
    subset_policy = rule.subsets[1].traffic_policy
    assert subset_policy is not None and subset_policy.load_balancer is not None
    assert subset_policy.load_balancer.simple == "ROUND_ROBIN"
    assert rule.export_to == (".",)


def test_destination_rule_new_traffic_policy_fields_are_converted(istio: IstioDocs) -> None:
    rule = istio.accepted(
        "DestinationRule",
        """\
        host: reviews
        trafficPolicy:
          connectionPool:
            tcp: {maxConnectionDuration: 1h, idleTimeout: 10m}
            http: {h2UpgradePolicy: UPGRADE}
          retryBudget: {percent: 12.5, minRetryConcurrency: 0}
          proxyProtocol: {}
          portLevelSettings:
          - port: {number: 9080}
            connectionPool:
              http: {useClientProtocol: true, h2UpgradePolicy: DO_NOT_UPGRADE}
        subsets:
        - name: v1
          trafficPolicy:
            retryBudget: {}
            proxyProtocol: {version: V2}
        """,
    )
    assert isinstance(rule, DestinationRule)
    policy = rule.traffic_policy
    assert policy is not None and policy.connection_pool is not None
    pool = policy.connection_pool
    assert (pool.max_connection_duration, pool.tcp_idle_timeout, pool.idle_timeout) == (3600.0, 600.0, None)
    assert (pool.h2_upgrade_policy, pool.use_client_protocol) == ("UPGRADE", False)
    assert policy.retry_budget == RetryBudget(percent=12.5, min_retry_concurrency=3)  # 0: not set, Istio's 3
    assert policy.proxy_protocol == "V1"  # the proto's default version
    (port_policy,) = policy.port_level_settings
    assert port_policy.connection_pool is not None
    assert (port_policy.connection_pool.use_client_protocol, port_policy.connection_pool.h2_upgrade_policy) == (
        True,
        "DO_NOT_UPGRADE",
    )
    subset_policy = rule.subsets[0].traffic_policy
    assert subset_policy is not None
    assert subset_policy.retry_budget == RetryBudget(percent=20.0, min_retry_concurrency=3)
    assert subset_policy.proxy_protocol == "V2"
