"""DestinationRule traffic policy fields on outbound and inbound clusters, field by field (Istio
``cluster_traffic_policy.go``): ``tcp.maxConnectionDuration`` / ``tcp.idleTimeout``, ``http.h2UpgradePolicy`` /
``useClientProtocol``, ``retryBudget`` and ``proxyProtocol``; and Envoy accepting every one of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import TransportSocket
from envoy.config.core.v3.proxy_protocol_pb2 import ProxyProtocolConfig
from envoy.extensions.transport_sockets.proxy_protocol.v3.upstream_proxy_protocol_pb2 import (
    ProxyProtocolUpstreamTransport,
)

from pilot.config.types import ConnectionPool, PortTrafficPolicy, Protocol, RetryBudget, TrafficPolicy
from pilot.generate import clusters, endpoints
from pilot.generate._protos import UINT32_MAX
from pilot.generate.cluster_traffic_policy import (
    UPSTREAM_PROXY_PROTOCOL,
    ClusterTrafficPolicy,
    apply_traffic_policy,
    merge_subset_traffic_policy,
    port_traffic_policy,
)
from pilot.generate.clusters import upstream_http_options
from pilot.model import MeshSnapshot, Proxy
from tests.test_generate_clusters import REVIEWS, MakeMeta, http_options, mesh
from tests.xdstest import check_resources, envoy_validate

HTTP = f"outbound|9080||{REVIEWS}"
HTTP_V1 = f"outbound|9080|v1|{REVIEWS}"
HTTP_V2 = f"outbound|9080|v2|{REVIEWS}"
GRPC = f"outbound|9090||{REVIEWS}"


def built(
    make_meta: MakeMeta,
    mesh_snapshot: Callable[..., MeshSnapshot],
    policy: TrafficPolicy | None,
    *,
    v2_policy: TrafficPolicy | None = None,
    scope: tuple[str, ...] = ("outbound", "default"),
) -> dict[str, Cluster]:
    snapshot = mesh_snapshot(*mesh(make_meta, reviews_policy=policy, v2_policy=v2_policy))
    return {c.name: c for c in clusters.build_scope_clusters(scope, snapshot)}


def test_max_connection_duration_and_tcp_idle_timeout_go_to_the_upstream_http_options(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]
) -> None:
    pool = ConnectionPool(max_connection_duration=3600, tcp_idle_timeout=600)
    out = built(make_meta, mesh_snapshot, TrafficPolicy(connection_pool=pool))
    options = http_options(out[HTTP])
    assert options is not None
    assert options.common_http_protocol_options.max_connection_duration.seconds == 3600
    assert options.common_http_protocol_options.idle_timeout.seconds == 600
    assert options.explicit_http_config.HasField("http_protocol_options")  # HTTP/1.1 still, said explicitly
    grpc = http_options(out[GRPC])
    assert grpc is not None and grpc.explicit_http_config.HasField("http2_protocol_options")
    assert grpc.common_http_protocol_options.max_connection_duration.seconds == 3600


def test_http_idle_timeout_wins_over_the_tcp_one(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]
) -> None:
    pool = ConnectionPool(tcp_idle_timeout=600, idle_timeout=30)
    options = http_options(built(make_meta, mesh_snapshot, TrafficPolicy(connection_pool=pool))[HTTP])
    assert options is not None and options.common_http_protocol_options.idle_timeout.seconds == 30
    assert not options.common_http_protocol_options.HasField("max_connection_duration")


@pytest.mark.parametrize(
    ("pool", "protocol", "expected"),
    [
        (ConnectionPool(h2_upgrade_policy="UPGRADE"), Protocol.HTTP, "http2"),
        (ConnectionPool(h2_upgrade_policy="UPGRADE"), Protocol.UNKNOWN, "http2"),  # replaces the client's protocol
        (ConnectionPool(h2_upgrade_policy="UPGRADE"), Protocol.TCP, "http2"),  # Istio: the rule says it takes it
        (ConnectionPool(h2_upgrade_policy="DO_NOT_UPGRADE"), Protocol.HTTP, None),
        (ConnectionPool(h2_upgrade_policy="DEFAULT"), Protocol.HTTP, None),  # MeshConfig's default: DO_NOT_UPGRADE
        (ConnectionPool(h2_upgrade_policy="DO_NOT_UPGRADE"), Protocol.GRPC, "http2"),  # gRPC is HTTP/2 anyway
        (ConnectionPool(use_client_protocol=True), Protocol.HTTP, "downstream"),
        (ConnectionPool(use_client_protocol=True), Protocol.GRPC, "downstream"),  # Istio: the client's, as asked
        (ConnectionPool(use_client_protocol=True, h2_upgrade_policy="DO_NOT_UPGRADE"), Protocol.UNKNOWN, "downstream"),
    ],
    ids=[
        "upgrade-http",
        "upgrade-unknown",
        "upgrade-tcp",
        "do-not-upgrade",
        "default",
        "do-not-upgrade-grpc",
        "client-protocol-http",
        "client-protocol-grpc",
        "client-protocol-unknown",
    ],
)
def test_upstream_protocol_follows_h2_upgrade_policy_and_use_client_protocol(
    pool: ConnectionPool, protocol: Protocol, expected: str | None
) -> None:
    cluster = Cluster(name="c")
    options = apply_traffic_policy(
        cluster, ClusterTrafficPolicy(connection_pool=pool), upstream_http_options(protocol), outbound=True
    )
    if expected is None:
        assert options is None
    elif expected == "http2":
        assert options is not None and options.explicit_http_config.HasField("http2_protocol_options")
        assert not options.HasField("use_downstream_protocol_config")
    else:
        assert options is not None and not options.HasField("explicit_http_config")
        config = options.use_downstream_protocol_config
        assert config.HasField("http_protocol_options") and config.HasField("http2_protocol_options")


def test_the_upgrade_reaches_the_built_cluster_and_not_inbound(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]
) -> None:
    out = built(make_meta, mesh_snapshot, TrafficPolicy(connection_pool=ConnectionPool(h2_upgrade_policy="UPGRADE")))
    options = http_options(out[HTTP])
    assert options is not None and options.explicit_http_config.HasField("http2_protocol_options")
    assert http_options(out["outbound|80||httpbin.org"]) is None  # another host's


def test_upgraded_cluster_takes_the_http2_pool_settings(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]
) -> None:
    """Istio upgrades before it applies the pool, so that ``maxConcurrentStreams`` reaches the HTTP/2 options."""
    pool = ConnectionPool(h2_upgrade_policy="UPGRADE", max_concurrent_streams=40)
    options = http_options(built(make_meta, mesh_snapshot, TrafficPolicy(connection_pool=pool))[HTTP])
    assert options is not None
    assert options.explicit_http_config.http2_protocol_options.max_concurrent_streams.value == 40


def test_port_level_and_subset_pools_take_the_new_fields(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]
) -> None:
    policy = TrafficPolicy(
        port_level_settings=(PortTrafficPolicy(port=9080, connection_pool=ConnectionPool(max_connection_duration=60)),)
    )
    v2_policy = TrafficPolicy(connection_pool=ConnectionPool(h2_upgrade_policy="UPGRADE", tcp_idle_timeout=5))
    out = built(make_meta, mesh_snapshot, policy, v2_policy=v2_policy)
    port_level = http_options(out[HTTP_V1])
    assert port_level is not None and port_level.common_http_protocol_options.max_connection_duration.seconds == 60
    subset = http_options(out[HTTP_V2])
    assert subset is not None and subset.explicit_http_config.HasField("http2_protocol_options")
    assert subset.common_http_protocol_options.idle_timeout.seconds == 5
    grpc = http_options(out[GRPC])  # another port: not the port-level pool
    assert grpc is not None and not grpc.common_http_protocol_options.HasField("max_connection_duration")


def test_retry_budget_sets_the_circuit_breaker_budget(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]
) -> None:
    out = built(make_meta, mesh_snapshot, TrafficPolicy(retry_budget=RetryBudget(percent=25, min_retry_concurrency=7)))
    thresholds = out[HTTP].circuit_breakers.thresholds[0]
    assert thresholds.retry_budget.budget_percent.value == 25
    assert thresholds.retry_budget.min_retry_concurrency.value == 7
    assert thresholds.max_retries.value == UINT32_MAX  # Istio's default stays; Envoy uses the budget instead
    defaults = built(make_meta, mesh_snapshot, TrafficPolicy(retry_budget=RetryBudget()))[HTTP]
    budget = defaults.circuit_breakers.thresholds[0].retry_budget
    assert (budget.budget_percent.value, budget.min_retry_concurrency.value) == (20.0, 3)
    assert not built(make_meta, mesh_snapshot, None)[HTTP].circuit_breakers.thresholds[0].HasField("retry_budget")


def test_retry_budget_and_proxy_protocol_survive_port_level_settings_and_subsets_override_them() -> None:
    """Port-level settings do not have them (Istio keeps the policy's); a subset's replace the rule's."""
    budget, other = RetryBudget(percent=10), RetryBudget(percent=50)
    policy = TrafficPolicy(
        retry_budget=budget,
        proxy_protocol="V1",
        port_level_settings=(PortTrafficPolicy(port=9080, connection_pool=ConnectionPool(max_connections=3)),),
    )
    assert port_traffic_policy(policy, 9080) == ClusterTrafficPolicy(
        connection_pool=ConnectionPool(max_connections=3), retry_budget=budget, proxy_protocol="V1"
    )
    merged = merge_subset_traffic_policy(policy, TrafficPolicy(retry_budget=other), 9080)
    assert merged is not None and merged.retry_budget == other and merged.proxy_protocol == "V1"
    merged = merge_subset_traffic_policy(policy, TrafficPolicy(proxy_protocol="V2"), 9080)
    assert merged is not None and merged.retry_budget == budget and merged.proxy_protocol == "V2"


def _unwrap(socket: TransportSocket) -> tuple[int, TransportSocket]:
    assert socket.name == UPSTREAM_PROXY_PROTOCOL
    wrapper = ProxyProtocolUpstreamTransport()
    assert socket.typed_config.Unpack(wrapper)
    return wrapper.config.version, wrapper.transport_socket


def test_proxy_protocol_wraps_plaintext(make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]) -> None:
    out = built(make_meta, mesh_snapshot, TrafficPolicy(proxy_protocol="V2"))
    version, inner = _unwrap(out[HTTP].transport_socket)
    assert version == ProxyProtocolConfig.Version.V2
    assert inner.name == "envoy.transport_sockets.raw_buffer"
    assert not out["outbound|80||httpbin.org"].HasField("transport_socket")  # another host's rule: untouched


def test_proxy_protocol_wraps_each_auto_mtls_socket(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]
) -> None:
    out = built(make_meta, mesh_snapshot, TrafficPolicy(proxy_protocol="V1"), scope=("outbound", "sds", "default"))
    matches = out[HTTP].transport_socket_matches
    assert [m.name for m in matches] == ["tlsMode-istio", "tlsMode-disabled"]
    inner = [_unwrap(m.transport_socket) for m in matches]
    assert [version for version, _ in inner] == [ProxyProtocolConfig.Version.V1] * 2
    assert [socket.name for _, socket in inner] == [
        "envoy.transport_sockets.tls",
        "envoy.transport_sockets.raw_buffer",
    ]
    assert not out[HTTP].HasField("transport_socket")


def test_inbound_clusters_take_the_retry_budget_and_client_protocol_not_the_upgrade(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot], sidecar_proxy: Callable[..., Proxy]
) -> None:
    """Istio applies the connection pool (with the retry budget) inbound too; the HTTP/2 upgrade and the PROXY
    protocol are outbound only."""
    policy = TrafficPolicy(
        connection_pool=ConnectionPool(h2_upgrade_policy="UPGRADE", max_connection_duration=60),
        retry_budget=RetryBudget(percent=30),
        proxy_protocol="V2",
    )
    snapshot = mesh_snapshot(*mesh(make_meta, reviews_policy=policy))
    proxy = sidecar_proxy(snapshot, "reviews-v1", ip="127.0.0.21")
    inbound = {c.name: c for c in clusters.build_inbound_clusters(proxy, snapshot)}["inbound|9080||"]
    assert inbound.circuit_breakers.thresholds[0].retry_budget.budget_percent.value == 30
    options = http_options(inbound)
    assert options is not None and options.explicit_http_config.HasField("http_protocol_options")
    assert options.common_http_protocol_options.max_connection_duration.seconds == 60
    assert not inbound.HasField("transport_socket")


def test_envoy_accepts_every_new_field(
    tmp_path: Path,
    make_meta: MakeMeta,
    mesh_snapshot: Callable[..., MeshSnapshot],
    sidecar_proxy: Callable[..., Proxy],
) -> None:
    policy = TrafficPolicy(
        connection_pool=ConnectionPool(
            max_connection_duration=3600, tcp_idle_timeout=600, h2_upgrade_policy="UPGRADE", max_concurrent_streams=9
        ),
        retry_budget=RetryBudget(percent=25.5, min_retry_concurrency=4),
        proxy_protocol="V2",
    )
    v2_policy = TrafficPolicy(connection_pool=ConnectionPool(use_client_protocol=True), proxy_protocol="V1")
    snapshot = mesh_snapshot(*mesh(make_meta, reviews_policy=policy, v2_policy=v2_policy))
    proxy = sidecar_proxy(snapshot, "reviews-v1", ip="127.0.0.21")
    out = [
        *clusters.build_scope_clusters(("outbound", "sds", "default"), snapshot),
        *clusters.build_scope_clusters(("outbound", "default"), snapshot),
    ]
    plain = {c.name: c for c in out[len(out) // 2 :]}
    assert plain[HTTP].transport_socket.name == UPSTREAM_PROXY_PROTOCOL  # the fields are really there
    unique = list({c.name: c for c in out[: len(out) // 2]}.values())
    for cluster in (unique, [*plain.values(), *clusters.build_inbound_clusters(proxy, snapshot)]):
        assignments = endpoints.build_scope_load_assignments(("eds", "default"), snapshot)
        check_resources(clusters=cluster, load_assignments=assignments)
        envoy_validate(tmp_path, clusters=cluster, load_assignments=assignments)
