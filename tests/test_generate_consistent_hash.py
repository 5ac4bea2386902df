"""consistentHash, warmup and workloadSelector on the generated protobufs: the cluster's lb_policy and its
ring_hash/maglev/slow start config, and the hash_policy of every route to the cluster (Istio's route.go)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.route.v3.route_components_pb2 import RouteAction
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf import json_format

from pilot.config.types import ConfigKey
from pilot.generate import clusters, endpoints, port_routes
from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE
from tests.load_balancing_builders import GATEWAY, REVIEWS, lb_mesh
from tests.xdstest import envoy_validate

CLUSTER = f"outbound|9080||{REVIEWS}"
VHOST = f"{REVIEWS}:9080"


def _rule(load_balancer: dict[str, Any], **more: Any) -> tuple[str, str, dict[str, Any]]:
    return ("DestinationRule", "reviews", {"host": "reviews", "trafficPolicy": {"loadBalancer": load_balancer}, **more})


HASH_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("header", {"httpHeaderName": "x-user"}, {"header": {"headerName": "x-user"}}),
    (
        "cookie",
        {"httpCookie": {"name": "user", "path": "/", "ttl": "0s"}},
        {"cookie": {"name": "user", "path": "/", "ttl": "0s"}},
    ),
    ("cookie-ttl", {"httpCookie": {"name": "user", "ttl": "10s"}}, {"cookie": {"name": "user", "ttl": "10s"}}),
    ("source-ip", {"useSourceIp": True}, {"connectionProperties": {"sourceIp": True}}),
    ("query", {"httpQueryParameterName": "user"}, {"queryParameter": {"name": "user"}}),
]


@pytest.mark.parametrize(("hashing", "expected"), [c[1:] for c in HASH_CASES], ids=[c[0] for c in HASH_CASES])
def test_default_route_hash_policy(hashing: dict[str, Any], expected: dict[str, Any]) -> None:
    vhost = lb_mesh(_rule({"consistentHash": hashing})).virtual_host(VHOST)
    (route,) = vhost.routes
    assert [json_format.MessageToDict(p) for p in route.route.hash_policy] == [expected]


@pytest.mark.parametrize(
    ("hashing", "policy", "ring", "table"),
    [
        ({"httpHeaderName": "x", "ringHash": {"minimumRingSize": 2048}}, Cluster.LbPolicy.RING_HASH, 2048, None),
        ({"httpHeaderName": "x", "ringHash": {}}, Cluster.LbPolicy.RING_HASH, None, None),
        ({"httpHeaderName": "x"}, Cluster.LbPolicy.RING_HASH, 1024, None),  # Istio writes Envoy's default
        ({"httpHeaderName": "x", "minimumRingSize": 10}, Cluster.LbPolicy.RING_HASH, 10, None),
        ({"httpHeaderName": "x", "maglev": {"tableSize": 65537}}, Cluster.LbPolicy.MAGLEV, None, 65537),
    ],
    ids=["ring-hash", "ring-hash-default", "deprecated-default", "deprecated-size", "maglev"],
)
def test_cluster_hash_algorithm(hashing: dict[str, Any], policy: int, ring: int | None, table: int | None) -> None:
    cluster = lb_mesh(_rule({"consistentHash": hashing})).cluster(CLUSTER)
    assert cluster.lb_policy == policy
    if ring is None:
        assert not cluster.HasField("ring_hash_lb_config") or not cluster.ring_hash_lb_config.HasField(
            "minimum_ring_size"
        )
    else:
        assert cluster.ring_hash_lb_config.minimum_ring_size.value == ring
    assert (cluster.maglev_lb_config.table_size.value if cluster.HasField("maglev_lb_config") else None) == table


@pytest.mark.parametrize(
    ("balancer", "config", "window", "minimum", "aggression"),
    [
        ({"simple": "ROUND_ROBIN", "warmupDurationSecs": "100s"}, "round_robin_lb_config", 100, None, None),
        (
            {"simple": "LEAST_REQUEST", "warmup": {"duration": "30s", "minimumPercent": 10, "aggression": 2}},
            "least_request_lb_config",
            30,
            10.0,
            2.0,
        ),
        ({"warmupDurationSecs": "5s"}, "least_request_lb_config", 5, None, None),  # Istio's default LEAST_REQUEST
    ],
    ids=["round-robin", "least-request-warmup", "default-policy"],
)
def test_warmup_slow_start(
    balancer: dict[str, Any], config: str, window: int, minimum: float | None, aggression: float | None
) -> None:
    cluster = lb_mesh(_rule(balancer)).cluster(CLUSTER)
    slow_start = getattr(cluster, config).slow_start_config
    assert slow_start.slow_start_window.seconds == window
    assert (slow_start.min_weight_percent.value if slow_start.HasField("min_weight_percent") else None) == minimum
    assert (slow_start.aggression.default_value if slow_start.HasField("aggression") else None) == aggression
    if aggression is not None:
        assert slow_start.aggression.runtime_key


def _subset_rule() -> tuple[str, str, dict[str, Any]]:
    return _rule(
        {"consistentHash": {"httpHeaderName": "x-user"}},
        subsets=[
            {
                "name": "v1",
                "labels": {"version": "v1"},
                "trafficPolicy": {"loadBalancer": {"consistentHash": {"useSourceIp": True}}},
            },
            {"name": "v2", "labels": {"version": "v2"}},
        ],
    )


def test_virtual_service_routes_get_their_destinations_hash_policies() -> None:
    routes = {
        "hosts": ["reviews"],
        "http": [
            {"match": [{"uri": {"prefix": "/v1"}}], "route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
            {
                "route": [
                    {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
                    {"destination": {"host": "reviews", "subset": "v2"}, "weight": 50},
                ]
            },
        ],
    }
    mesh = lb_mesh(_subset_rule(), ("VirtualService", "reviews", routes))
    first, weighted = mesh.virtual_host(VHOST).routes
    source_ip = RouteAction.HashPolicy()
    source_ip.connection_properties.source_ip = True
    header = RouteAction.HashPolicy()
    header.header.header_name = "x-user"
    assert list(first.route.hash_policy) == [source_ip]  # the subset's own policy
    assert list(weighted.route.hash_policy) == [source_ip, header]  # v2 inherits the rule's
    assert mesh.cluster(f"outbound|9080|v1|{REVIEWS}").lb_policy == Cluster.LbPolicy.RING_HASH


def test_port_level_consistent_hash() -> None:
    rule = _rule(
        {"simple": "ROUND_ROBIN"},
    )
    rule[2]["trafficPolicy"]["portLevelSettings"] = [
        {"port": {"number": 9080}, "loadBalancer": {"consistentHash": {"httpQueryParameterName": "u"}}}
    ]
    mesh = lb_mesh(rule)
    assert mesh.cluster(CLUSTER).lb_policy == Cluster.LbPolicy.RING_HASH
    (route,) = mesh.virtual_host(VHOST).routes
    assert [p.query_parameter.name for p in route.route.hash_policy] == ["u"]


def test_no_consistent_hash_no_hash_policy() -> None:
    (route,) = lb_mesh(_rule({"simple": "RANDOM"})).virtual_host(VHOST).routes
    assert not route.route.hash_policy


SELECTOR_RULE = (  # a consistentHash rule for the productpage clients only
    "DestinationRule",
    "reviews-for-productpage",
    {
        "host": "reviews",
        "workloadSelector": {"matchLabels": {"app": "productpage"}},
        "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user"}}},
    },
)


def test_workload_selector_rule_applies_to_the_selected_clients_only() -> None:
    mesh = lb_mesh(_rule({"simple": "RANDOM"}), SELECTOR_RULE)
    assert mesh.cluster(CLUSTER, "productpage").lb_policy == Cluster.LbPolicy.RING_HASH
    assert mesh.cluster(CLUSTER, "ratings").lb_policy == Cluster.LbPolicy.RANDOM
    assert [p.header.header_name for p in mesh.virtual_host(VHOST, "productpage").routes[0].route.hash_policy] == [
        "x-user"
    ]
    assert not mesh.virtual_host(VHOST, "ratings").routes[0].route.hash_policy
    # the selected proxy has scopes of its own; the others share the namespace's
    assert clusters.cluster_scopes(mesh.proxy("ratings")) == [("outbound", "default")]
    assert clusters.cluster_scopes(mesh.proxy("productpage")) != [("outbound", "default")]
    assert port_routes.port_route_scope(mesh.proxy("ratings")) == ("outbound_http", "default")


GATEWAY_RESOURCES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "Gateway",
        "bookinfo-gateway",
        {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    ),
    (
        "VirtualService",
        "bookinfo",
        {
            "hosts": ["*"],
            "gateways": ["bookinfo-gateway"],
            "http": [
                {
                    "match": [{"uri": {"prefix": "/v1"}}],
                    "route": [{"destination": {"host": "reviews", "subset": "v1"}}],
                },
                {"route": [{"destination": {"host": "reviews", "port": {"number": 9080}}}]},
            ],
        },
    ),
]


def test_gateway_routes_get_their_destinations_hash_policies() -> None:
    """An ingress gateway routing to a consistentHash destination hashes as a sidecar does (Istio's gateway routes
    take ``hashForVirtualService`` too)."""
    mesh = lb_mesh(_subset_rule(), *GATEWAY_RESOURCES)
    v1, default = mesh.virtual_host("*:80", f"{GATEWAY}us-west/zone1").routes
    source_ip = RouteAction.HashPolicy()
    source_ip.connection_properties.source_ip = True
    header = RouteAction.HashPolicy()
    header.header.header_name = "x-user"
    assert (v1.route.cluster, list(v1.route.hash_policy)) == (f"outbound|9080|v1|{REVIEWS}", [source_ip])
    assert (default.route.cluster, list(default.route.hash_policy)) == (CLUSTER, [header])


def test_gateway_routes_without_consistent_hash_have_no_hash_policy() -> None:
    mesh = lb_mesh(_rule({"simple": "RANDOM"}), *GATEWAY_RESOURCES)
    assert not any(r.route.hash_policy for r in mesh.virtual_host("*:80", f"{GATEWAY}us-west/zone1").routes)


def test_scopes_carry_the_sidecar_and_the_client_view() -> None:
    """Under a Sidecar, a proxy that a workloadSelector rule selects has scopes keyed by both; one it does not
    select shares the Sidecar's scopes (``(*prefix, namespace, sidecar[, labels][, view])``)."""
    sidecar = ("Sidecar", "default", {"egress": [{"hosts": ["./*"]}]})
    mesh = lb_mesh(_rule({"simple": "RANDOM"}), SELECTOR_RULE, sidecar)
    key = ConfigKey(kind="Sidecar", namespace="default", name="default")
    productpage, ratings = mesh.proxy("productpage"), mesh.proxy("ratings")
    view = productpage.view
    assert view.selected_rules == (ConfigKey(kind="DestinationRule", namespace="default", name=SELECTOR_RULE[1]),)
    assert clusters.cluster_scopes(productpage) == [("outbound", "default", key, view)]
    assert clusters.cluster_scopes(ratings) == [("outbound", "default", key)]
    assert endpoints.endpoint_scopes(productpage) == [("eds", "default", key, view)]
    assert port_routes.port_route_scope(productpage) == ("outbound_http", "default", key, view)
    assert port_routes.port_route_scope(ratings) == ("outbound_http", "default", key)
    assert mesh.cluster(CLUSTER, "productpage").lb_policy == Cluster.LbPolicy.RING_HASH
    assert mesh.cluster(CLUSTER, "ratings").lb_policy == Cluster.LbPolicy.RANDOM
    assert [p.header.header_name for p in mesh.virtual_host(VHOST, "productpage").routes[0].route.hash_policy] == [
        "x-user"
    ]


def test_envoy_accepts_hash_clusters_and_routes(tmp_path: Path) -> None:
    mesh = lb_mesh(
        _rule(
            {"consistentHash": {"httpCookie": {"name": "u", "path": "/", "ttl": "60s"}, "maglev": {"tableSize": 65537}}}
        )
    )
    built = [c for c in mesh.resources(CLUSTER_TYPE) if isinstance(c, Cluster)]
    warm = lb_mesh(
        _rule({"simple": "ROUND_ROBIN", "warmup": {"duration": "30s", "minimumPercent": 10, "aggression": 2}})
    )
    (warm_cluster,) = [c for c in warm.resources(CLUSTER_TYPE) if isinstance(c, Cluster) and c.name == CLUSTER]
    warm_cluster.name = "warm"
    warm_cluster.eds_cluster_config.service_name = "warm"
    assignments = [a for a in mesh.resources(ENDPOINT_TYPE) if isinstance(a, ClusterLoadAssignment)]
    assignments.append(ClusterLoadAssignment(cluster_name="warm"))
    routes = [r for r in mesh.resources(ROUTE_TYPE) if isinstance(r, RouteConfiguration)]
    envoy_validate(tmp_path, clusters=[*built, warm_cluster], routes=routes, load_assignments=assignments)
