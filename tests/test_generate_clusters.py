"""CDS: outbound clusters per service port and subset, their DestinationRule traffic policy, inbound clusters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 import HttpProtocolOptions

from meshplane import names
from pilot.config.types import (
    ConfigMeta,
    ConnectionPool,
    DestinationRule,
    LoadBalancer,
    OutlierDetection,
    PortTrafficPolicy,
    Protocol,
    Resolution,
    Resource,
    ServiceEntry,
    ServiceEntryEndpoint,
    ServicePort,
    Subset,
    TrafficPolicy,
    WorkloadEntry,
)
from pilot.generate import clusters, endpoints
from pilot.generate._protos import HTTP_PROTOCOL_OPTIONS_KEY, UINT32_MAX
from pilot.generate.cluster_traffic_policy import (
    ClusterTrafficPolicy,
    merge_subset_traffic_policy,
    port_traffic_policy,
)
from pilot.model import MeshSnapshot, Proxy
from tests.xdstest import check_resources, envoy_validate

REVIEWS = "reviews.default.svc.cluster.local"
MakeMeta = Callable[..., ConfigMeta]


def labels(**values: str) -> MappingProxyType[str, str]:
    return MappingProxyType(values)


def mesh(
    make_meta: MakeMeta, *, reviews_policy: TrafficPolicy | None = None, v2_policy: TrafficPolicy | None = None
) -> tuple[Resource, ...]:
    """reviews (STATIC, two sidecar workloads, HTTP + GRPC ports, subsets v1/v2) and one external service per
    other resolution."""
    return (
        ServiceEntry(
            meta=make_meta("ServiceEntry", "reviews"),
            hosts=(REVIEWS,),
            ports=(
                ServicePort(number=9080, name="http", protocol=Protocol.HTTP),
                ServicePort(number=9090, name="grpc", protocol=Protocol.GRPC),
            ),
            location="MESH_INTERNAL",
            resolution=Resolution.STATIC,
            workload_selector=labels(app="reviews"),
        ),
        WorkloadEntry(
            meta=make_meta("WorkloadEntry", "reviews-v1"),
            address="127.0.0.21",
            ports=MappingProxyType({"http": 19080, "grpc": 19090}),
            labels=labels(app="reviews", version="v1"),
        ),
        WorkloadEntry(
            meta=make_meta("WorkloadEntry", "reviews-v2"),
            address="127.0.0.22",
            ports=MappingProxyType({"http": 19080, "grpc": 19090}),
            labels=labels(app="reviews", version="v2"),
        ),
        DestinationRule(
            meta=make_meta("DestinationRule", "reviews"),
            host="reviews",
            traffic_policy=reviews_policy,
            subsets=(
                Subset(name="v1", labels=labels(version="v1")),
                Subset(name="v2", labels=labels(version="v2"), traffic_policy=v2_policy),
            ),
        ),
        ServiceEntry(
            meta=make_meta("ServiceEntry", "httpbin"),
            hosts=("httpbin.org",),
            ports=(ServicePort(number=80, name="http", protocol=Protocol.HTTP, target_port=8080),),
            resolution=Resolution.DNS,
        ),
        ServiceEntry(
            meta=make_meta("ServiceEntry", "db"),
            hosts=("db.example.com",),
            ports=(ServicePort(number=5432, name="tcp", protocol=Protocol.TCP),),
            resolution=Resolution.DNS,
            endpoints=(
                ServiceEntryEndpoint(address="db-b.example.com", labels=labels(role="replica")),
                ServiceEntryEndpoint(address="db-a.example.com", ports=MappingProxyType({"tcp": 6432})),
            ),
        ),
        DestinationRule(
            meta=make_meta("DestinationRule", "db"),
            host="db.example.com",
            subsets=(Subset(name="replica", labels=labels(role="replica")), Subset(name="none", labels=labels(x="y"))),
        ),
        ServiceEntry(
            meta=make_meta("ServiceEntry", "rr"),
            hosts=("rr.example.com",),
            ports=(ServicePort(number=8000, name="unnamed", protocol=Protocol.UNKNOWN),),
            resolution=Resolution.DNS_ROUND_ROBIN,
        ),
        ServiceEntry(
            meta=make_meta("ServiceEntry", "api"),
            hosts=("api.example.com",),
            ports=(ServicePort(number=443, name="tls", protocol=Protocol.TLS),),
            resolution=Resolution.NONE,
        ),
    )


@pytest.fixture
def outbound(make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]) -> dict[str, Cluster]:
    built = clusters.build_scope_clusters(("outbound", "default"), mesh_snapshot(*mesh(make_meta)))
    return {c.name: c for c in built}


def field(message: Any, path: str) -> Any:
    """``field(cluster, "circuit_breakers.thresholds.0.max_connections.value")``; a last part ``has:name`` asks
    whether the submessage ``name`` is present."""
    for part in path.split("."):
        if part.startswith("has:"):
            return message.HasField(part.removeprefix("has:"))
        message = message[int(part)] if part.isdigit() else getattr(message, part)
    return message


def http_options(cluster: Cluster) -> HttpProtocolOptions | None:
    if HTTP_PROTOCOL_OPTIONS_KEY not in cluster.typed_extension_protocol_options:
        return None
    options = HttpProtocolOptions()
    assert cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS_KEY].Unpack(options)
    return options


def socket_addresses(cluster: Cluster) -> list[str]:
    return [
        f"{e.endpoint.address.socket_address.address}:{e.endpoint.address.socket_address.port_value}"
        for group in cluster.load_assignment.endpoints
        for e in group.lb_endpoints
    ]


def test_outbound_clusters_cover_every_port_and_subset(outbound: dict[str, Cluster]) -> None:
    assert list(outbound) == [
        "outbound|443||api.example.com",
        "outbound|5432||db.example.com",
        "outbound|5432|replica|db.example.com",
        "outbound|5432|none|db.example.com",
        "outbound|80||httpbin.org",
        f"outbound|9080||{REVIEWS}",
        f"outbound|9080|v1|{REVIEWS}",
        f"outbound|9080|v2|{REVIEWS}",
        f"outbound|9090||{REVIEWS}",
        f"outbound|9090|v1|{REVIEWS}",
        f"outbound|9090|v2|{REVIEWS}",
        "outbound|8000||rr.example.com",
        "BlackHoleCluster",
        "PassthroughCluster",
        "InboundPassthroughCluster",
    ]
    check_resources(clusters=list(outbound.values()))


@pytest.mark.parametrize(
    ("name", "cluster_type", "addresses"),
    [
        (f"outbound|9080|v1|{REVIEWS}", Cluster.DiscoveryType.EDS, []),
        ("outbound|80||httpbin.org", Cluster.DiscoveryType.STRICT_DNS, ["httpbin.org:8080"]),
        (
            "outbound|5432||db.example.com",
            Cluster.DiscoveryType.STRICT_DNS,
            ["db-a.example.com:6432", "db-b.example.com:5432"],
        ),
        ("outbound|5432|replica|db.example.com", Cluster.DiscoveryType.STRICT_DNS, ["db-b.example.com:5432"]),
        ("outbound|5432|none|db.example.com", Cluster.DiscoveryType.STATIC, []),
        ("outbound|8000||rr.example.com", Cluster.DiscoveryType.LOGICAL_DNS, ["rr.example.com:8000"]),
        ("outbound|443||api.example.com", Cluster.DiscoveryType.ORIGINAL_DST, []),  # wherever the app connected
        ("BlackHoleCluster", Cluster.DiscoveryType.STATIC, []),
    ],
    ids=[
        "static-eds",
        "dns-host-itself",
        "dns-endpoints",
        "dns-subset",
        "dns-subset-no-match",
        "dns-round-robin",
        "none-passthrough",
        "blackhole",
    ],
)
def test_cluster_type_follows_resolution(
    outbound: dict[str, Cluster], name: str, cluster_type: int, addresses: list[str]
) -> None:
    cluster = outbound[name]
    assert cluster.type == cluster_type
    assert socket_addresses(cluster) == addresses
    if cluster_type in (Cluster.DiscoveryType.STRICT_DNS, Cluster.DiscoveryType.LOGICAL_DNS):
        assert cluster.dns_lookup_family == Cluster.DnsLookupFamily.V4_ONLY
        assert cluster.load_assignment.cluster_name == name


def test_eds_clusters_fetch_their_own_name_over_ads(outbound: dict[str, Cluster]) -> None:
    for name in (f"outbound|9080||{REVIEWS}", f"outbound|9090|v2|{REVIEWS}"):
        eds = outbound[name].eds_cluster_config
        assert eds.service_name == name
        assert eds.eds_config.HasField("ads")
        assert eds.eds_config.resource_api_version == ApiVersion.V3
        assert not outbound[name].HasField("load_assignment")


def test_istio_defaults_without_destination_rule_policy(outbound: dict[str, Cluster]) -> None:
    cluster = outbound[f"outbound|9080||{REVIEWS}"]
    assert cluster.connect_timeout.ToSeconds() == 10
    assert cluster.lb_policy == Cluster.LbPolicy.LEAST_REQUEST
    [thresholds] = cluster.circuit_breakers.thresholds
    for limit in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
        assert getattr(thresholds, limit).value == UINT32_MAX, limit
    assert thresholds.track_remaining
    assert cluster.HasField("common_lb_config")
    assert not cluster.HasField("outlier_detection")
    assert not cluster.HasField("upstream_connection_options")
    assert http_options(cluster) is None


@pytest.mark.parametrize(
    ("name", "upstream"),
    [
        (f"outbound|9090||{REVIEWS}", "http2"),
        (f"outbound|9090|v1|{REVIEWS}", "http2"),
        (f"outbound|9080||{REVIEWS}", None),
        ("outbound|8000||rr.example.com", "downstream"),
        ("outbound|443||api.example.com", None),
    ],
    ids=["grpc", "grpc-subset", "http", "unknown-protocol", "tls"],
)
def test_upstream_http_protocol_follows_port_protocol(
    outbound: dict[str, Cluster], name: str, upstream: str | None
) -> None:
    options = http_options(outbound[name])
    if upstream is None:
        assert options is None
    elif upstream == "http2":
        assert options is not None and options.explicit_http_config.HasField("http2_protocol_options")
    else:
        assert options is not None and options.HasField("use_downstream_protocol_config")


POOL = ConnectionPool(
    max_connections=100,
    connect_timeout=0.25,
    tcp_keepalive_time=7200,
    tcp_keepalive_interval=75,
    tcp_keepalive_probes=9,
    http1_max_pending_requests=10,
    http2_max_requests=1000,
    max_requests_per_connection=5,
    max_retries=3,
    idle_timeout=30,
    max_concurrent_streams=50,
)
OUTLIER = OutlierDetection(
    consecutive_5xx_errors=7,
    consecutive_gateway_errors=0,
    split_external_local_origin_errors=True,
    consecutive_local_origin_failures=4,
    interval=5,
    base_ejection_time=30,
    max_ejection_percent=50,
    min_health_percent=20,
)


@pytest.mark.parametrize(
    ("policy", "cluster_name", "expected"),
    [
        (
            TrafficPolicy(load_balancer=LoadBalancer(simple="ROUND_ROBIN")),
            f"outbound|9080||{REVIEWS}",
            {"lb_policy": Cluster.LbPolicy.ROUND_ROBIN},
        ),
        (
            TrafficPolicy(load_balancer=LoadBalancer(simple="RANDOM")),
            f"outbound|9080||{REVIEWS}",
            {"lb_policy": Cluster.LbPolicy.RANDOM},
        ),
        (
            TrafficPolicy(load_balancer=LoadBalancer(simple="LEAST_CONN")),
            f"outbound|9080||{REVIEWS}",
            {"lb_policy": Cluster.LbPolicy.LEAST_REQUEST},
        ),
        (
            TrafficPolicy(load_balancer=LoadBalancer(simple="PASSTHROUGH")),
            f"outbound|9080||{REVIEWS}",
            {"lb_policy": Cluster.LbPolicy.LEAST_REQUEST, "type": Cluster.DiscoveryType.EDS},
        ),
        (
            TrafficPolicy(connection_pool=POOL),
            f"outbound|9080||{REVIEWS}",
            {
                "connect_timeout.nanos": 250_000_000,
                "circuit_breakers.thresholds.0.max_connections.value": 100,
                "circuit_breakers.thresholds.0.max_pending_requests.value": 10,
                "circuit_breakers.thresholds.0.max_requests.value": 1000,
                "circuit_breakers.thresholds.0.max_retries.value": 3,
                "upstream_connection_options.tcp_keepalive.keepalive_time.value": 7200,
                "upstream_connection_options.tcp_keepalive.keepalive_interval.value": 75,
                "upstream_connection_options.tcp_keepalive.keepalive_probes.value": 9,
                "http.common_http_protocol_options.idle_timeout.seconds": 30,
                "http.common_http_protocol_options.max_requests_per_connection.value": 5,
                "http.explicit_http_config.has:http_protocol_options": True,  # HTTP/1.1, said explicitly
            },
        ),
        (
            TrafficPolicy(connection_pool=POOL),
            f"outbound|9090||{REVIEWS}",
            {"http.explicit_http_config.http2_protocol_options.max_concurrent_streams.value": 50},
        ),
        (
            TrafficPolicy(connection_pool=ConnectionPool(max_concurrent_streams=50)),
            f"outbound|9080||{REVIEWS}",
            {"http": None},  # meaningless to HTTP/1.1: no options at all
        ),
        (
            TrafficPolicy(outlier_detection=OUTLIER),
            f"outbound|9080||{REVIEWS}",
            {
                "outlier_detection.consecutive_5xx.value": 7,
                "outlier_detection.enforcing_consecutive_5xx.value": 100,
                "outlier_detection.consecutive_gateway_failure.value": 0,
                "outlier_detection.enforcing_consecutive_gateway_failure.value": 0,
                "outlier_detection.split_external_local_origin_errors": True,
                "outlier_detection.consecutive_local_origin_failure.value": 4,
                "outlier_detection.enforcing_consecutive_local_origin_failure.value": 100,
                "outlier_detection.enforcing_local_origin_success_rate.value": 0,
                "outlier_detection.enforcing_success_rate.value": 0,
                "outlier_detection.interval.seconds": 5,
                "outlier_detection.base_ejection_time.seconds": 30,
                "outlier_detection.max_ejection_percent.value": 50,
                "common_lb_config.healthy_panic_threshold.value": 20.0,
            },
        ),
        (
            TrafficPolicy(outlier_detection=OutlierDetection(consecutive_5xx_errors=3)),
            f"outbound|9080||{REVIEWS}",
            {
                "outlier_detection.has:consecutive_gateway_failure": False,
                "outlier_detection.has:interval": False,
                "common_lb_config.has:healthy_panic_threshold": True,  # panic mode off (0%)
            },
        ),
        (
            TrafficPolicy(
                load_balancer=LoadBalancer(simple="RANDOM"),
                port_level_settings=(PortTrafficPolicy(port=9090, connection_pool=ConnectionPool(max_connections=7)),),
            ),
            f"outbound|9090||{REVIEWS}",
            # the port-level entry replaces the whole policy: RANDOM is not inherited
            {"lb_policy": Cluster.LbPolicy.LEAST_REQUEST, "circuit_breakers.thresholds.0.max_connections.value": 7},
        ),
        (
            TrafficPolicy(
                load_balancer=LoadBalancer(simple="RANDOM"),
                port_level_settings=(PortTrafficPolicy(port=9090, connection_pool=ConnectionPool(max_connections=7)),),
            ),
            f"outbound|9080|v1|{REVIEWS}",
            {"lb_policy": Cluster.LbPolicy.RANDOM, "circuit_breakers.thresholds.0.max_connections.value": UINT32_MAX},
        ),
    ],
    ids=[
        "lb-round-robin",
        "lb-random",
        "lb-least-conn-is-least-request",
        "lb-passthrough-is-default",
        "connection-pool-http1",
        "connection-pool-http2-streams",
        "max-concurrent-streams-http1-ignored",
        "outlier-detection",
        "outlier-detection-minimal",
        "port-level-replaces-policy",
        "port-level-other-port-untouched",
    ],
)
def test_destination_rule_traffic_policy(
    make_meta: MakeMeta,
    mesh_snapshot: Callable[..., MeshSnapshot],
    policy: TrafficPolicy,
    cluster_name: str,
    expected: dict[str, Any],
) -> None:
    built = clusters.build_scope_clusters(
        ("outbound", "default"), mesh_snapshot(*mesh(make_meta, reviews_policy=policy))
    )
    cluster = {c.name: c for c in built}[cluster_name]
    for path, value in expected.items():
        if path == "http":
            assert http_options(cluster) is value
        elif path.startswith("http."):
            assert field(http_options(cluster), path.removeprefix("http.")) == value, path
        else:
            assert field(cluster, path) == value, path


@pytest.mark.parametrize(
    ("policy", "subset_policy", "port", "expected"),
    [
        (None, None, 9080, None),
        (
            TrafficPolicy(load_balancer=LoadBalancer(simple="RANDOM"), outlier_detection=OUTLIER),
            TrafficPolicy(load_balancer=LoadBalancer(simple="ROUND_ROBIN")),
            9080,
            ClusterTrafficPolicy(load_balancer=LoadBalancer(simple="ROUND_ROBIN"), outlier_detection=OUTLIER),
        ),
        (
            None,
            TrafficPolicy(connection_pool=POOL),
            9080,
            ClusterTrafficPolicy(connection_pool=POOL),
        ),
        (
            TrafficPolicy(
                load_balancer=LoadBalancer(simple="RANDOM"),
                port_level_settings=(PortTrafficPolicy(port=9080, outlier_detection=OUTLIER),),
            ),
            TrafficPolicy(connection_pool=POOL),
            9080,
            ClusterTrafficPolicy(connection_pool=POOL, outlier_detection=OUTLIER),
        ),
        (
            TrafficPolicy(load_balancer=LoadBalancer(simple="RANDOM"), outlier_detection=OUTLIER),
            TrafficPolicy(
                connection_pool=POOL,
                port_level_settings=(PortTrafficPolicy(port=9080, load_balancer=LoadBalancer(simple="ROUND_ROBIN")),),
            ),
            9080,
            ClusterTrafficPolicy(load_balancer=LoadBalancer(simple="ROUND_ROBIN")),
        ),
        (
            TrafficPolicy(load_balancer=LoadBalancer(simple="RANDOM"), outlier_detection=OUTLIER),
            TrafficPolicy(
                connection_pool=POOL,
                port_level_settings=(PortTrafficPolicy(port=9090, load_balancer=LoadBalancer(simple="ROUND_ROBIN")),),
            ),
            9080,
            ClusterTrafficPolicy(
                load_balancer=LoadBalancer(simple="RANDOM"), connection_pool=POOL, outlier_detection=OUTLIER
            ),
        ),
    ],
    ids=[
        "nothing",
        "subset-overrides-per-group",
        "subset-only",
        "rule-port-level-then-subset",
        "subset-port-level-replaces-all",
        "subset-port-level-other-port",
    ],
)
def test_merge_subset_traffic_policy(
    policy: TrafficPolicy | None,
    subset_policy: TrafficPolicy | None,
    port: int,
    expected: ClusterTrafficPolicy | None,
) -> None:
    assert merge_subset_traffic_policy(policy, subset_policy, port) == expected


def test_port_traffic_policy_without_matching_port_keeps_top_level() -> None:
    policy = TrafficPolicy(connection_pool=POOL, port_level_settings=(PortTrafficPolicy(port=1),))
    assert port_traffic_policy(policy, 2) == ClusterTrafficPolicy(connection_pool=POOL)
    assert port_traffic_policy(policy, 1) == ClusterTrafficPolicy()


def test_subset_policy_reaches_its_cluster_only(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot]
) -> None:
    snapshot = mesh_snapshot(
        *mesh(
            make_meta,
            reviews_policy=TrafficPolicy(load_balancer=LoadBalancer(simple="RANDOM")),
            v2_policy=TrafficPolicy(outlier_detection=OutlierDetection(consecutive_5xx_errors=2)),
        )
    )
    built = {c.name: c for c in clusters.build_scope_clusters(("outbound", "default"), snapshot)}
    v2, v1 = built[f"outbound|9080|v2|{REVIEWS}"], built[f"outbound|9080|v1|{REVIEWS}"]
    assert v2.outlier_detection.consecutive_5xx.value == 2
    assert v2.lb_policy == v1.lb_policy == Cluster.LbPolicy.RANDOM
    assert not v1.HasField("outlier_detection")


def test_unknown_scope_is_rejected(mesh_snapshot: Callable[..., MeshSnapshot]) -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        clusters.build_scope_clusters(("inbound",), mesh_snapshot())


@pytest.fixture
def reviews_v1(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot], sidecar_proxy: Callable[..., Proxy]
) -> tuple[Proxy, MeshSnapshot]:
    policy = TrafficPolicy(
        connection_pool=ConnectionPool(max_connections=11),
        load_balancer=LoadBalancer(simple="RANDOM"),
        outlier_detection=OutlierDetection(consecutive_5xx_errors=1),
    )
    snapshot = mesh_snapshot(*mesh(make_meta, reviews_policy=policy))
    return sidecar_proxy(snapshot, "reviews-v1", ip="127.0.0.21"), snapshot


def test_inbound_clusters_point_at_the_app(reviews_v1: tuple[Proxy, MeshSnapshot]) -> None:
    proxy, snapshot = reviews_v1
    assert clusters.cluster_scopes(proxy) == [("outbound", "default")]
    inbound = {c.name: c for c in clusters.build_inbound_clusters(proxy, snapshot)}
    assert list(inbound) == ["inbound|9080||", "inbound|9090||"]
    for name, app, http2 in (
        ("inbound|9080||", "127.0.0.21:19080", False),
        ("inbound|9090||", "127.0.0.21:19090", True),
    ):
        cluster = inbound[name]
        assert cluster.type == Cluster.DiscoveryType.STATIC
        assert socket_addresses(cluster) == [app]
        assert cluster.load_assignment.cluster_name == name
        options = http_options(cluster)
        assert (options is not None and options.explicit_http_config.HasField("http2_protocol_options")) is http2
        # Only the DestinationRule's connection pool applies inbound (Istio): no outlier detection, no lb policy.
        assert cluster.circuit_breakers.thresholds[0].max_connections.value == 11
        assert not cluster.HasField("outlier_detection")
        assert cluster.lb_policy == Cluster.LbPolicy.ROUND_ROBIN


def test_proxy_without_workload_has_no_inbound_clusters(
    make_meta: MakeMeta, mesh_snapshot: Callable[..., MeshSnapshot], sidecar_proxy: Callable[..., Proxy]
) -> None:
    snapshot = mesh_snapshot(*mesh(make_meta))
    proxy = sidecar_proxy(snapshot, "client", ip="127.0.0.99")
    assert proxy.workload is None
    assert clusters.build_inbound_clusters(proxy, snapshot) == []


def test_envoy_accepts_outbound_and_inbound_clusters(tmp_path: Path, reviews_v1: tuple[Proxy, MeshSnapshot]) -> None:
    proxy, snapshot = reviews_v1
    built = clusters.build_scope_clusters(("outbound", "default"), snapshot) + clusters.build_inbound_clusters(
        proxy, snapshot
    )
    assignments = endpoints.build_scope_load_assignments(("eds", "default"), snapshot)
    check_resources(clusters=built, load_assignments=assignments)
    envoy_validate(tmp_path, clusters=built, load_assignments=assignments)


def test_envoy_validate_rejects_what_envoy_rejects(tmp_path: Path) -> None:
    """The validator is only worth something if it fails: LOGICAL_DNS takes exactly one address."""
    two_addresses = Cluster(name="logical", type=Cluster.DiscoveryType.LOGICAL_DNS)
    two_addresses.load_assignment.cluster_name = "logical"
    for host in ("a.example.com", "b.example.com"):
        address = two_addresses.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address.socket_address
        address.address, address.port_value = host, 80
    with pytest.raises(AssertionError, match="LOGICAL_DNS clusters must have a single"):
        envoy_validate(tmp_path, clusters=[two_addresses])


def test_no_outbound_cluster_binds_a_source_address(outbound: dict[str, Cluster]) -> None:
    """A pod's connections leave from its own IP: only InboundPassthroughCluster binds (127.0.0.6, see
    test_generate_sidecar)."""
    bound = [name for name, cluster in outbound.items() if cluster.HasField("upstream_bind_config")]
    assert bound == [names.INBOUND_PASSTHROUGH_CLUSTER]
