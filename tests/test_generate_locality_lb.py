"""Locality load balancing on the generated protobufs: EDS priorities and weights per client locality (Istio's
automatic failover with outlier detection, ``failover``, ``failoverPriority``, ``distribute``) and the cluster's
``locality_weighted_lb_config``; endpoints scoped by the client's locality only when a rule needs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from pilot.generate import endpoints
from pilot.generate.registry import CLUSTER_TYPE, ENDPOINT_TYPE
from tests.load_balancing_builders import GATEWAY, REVIEWS, lb_mesh
from tests.xdstest import envoy_validate

CLUSTER = f"outbound|9080||{REVIEWS}"
OUTLIER = {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "30s"}


def _rule(load_balancer: dict[str, Any] | None = None, outlier: bool = True) -> tuple[str, str, dict[str, Any]]:
    policy: dict[str, Any] = {}
    if load_balancer is not None:
        policy["loadBalancer"] = load_balancer
    if outlier:
        policy["outlierDetection"] = OUTLIER
    return ("DestinationRule", "reviews", {"host": "reviews", "trafficPolicy": policy})


Groups = list[tuple[str, int, int, int]]  # (region/zone, priority, weight, endpoints)

CASES: list[tuple[str, tuple[str, str, dict[str, Any]], str, Groups]] = [
    (
        "automatic-failover",  # Istio's default mesh setting: enabled, priorities by locality
        _rule(),
        "productpage",
        [
            ("eu-central/zone1", 2, 1, 1),
            ("us-east/zone1", 2, 1, 1),
            ("us-west/zone1", 0, 1, 1),
            ("us-west/zone2", 1, 1, 1),
        ],
    ),
    (
        "automatic-failover-other-client",
        _rule(),
        "ratings",
        [
            ("eu-central/zone1", 1, 1, 1),
            ("us-east/zone1", 0, 1, 1),
            ("us-west/zone1", 1, 1, 1),
            ("us-west/zone2", 1, 1, 1),
        ],
    ),
    (
        "no-outlier-detection-no-failover",
        _rule({"simple": "ROUND_ROBIN"}, outlier=False),
        "productpage",
        [
            ("eu-central/zone1", 0, 1, 1),
            ("us-east/zone1", 0, 1, 1),
            ("us-west/zone1", 0, 1, 1),
            ("us-west/zone2", 0, 1, 1),
        ],
    ),
    (
        "disabled",
        _rule({"localityLbSetting": {"enabled": False}}),
        "productpage",
        [
            ("eu-central/zone1", 0, 1, 1),
            ("us-east/zone1", 0, 1, 1),
            ("us-west/zone1", 0, 1, 1),
            ("us-west/zone2", 0, 1, 1),
        ],
    ),
    (
        "failover-region",  # us-east is where us-west fails over to; eu-central comes last
        _rule({"localityLbSetting": {"failover": [{"from": "us-west", "to": "us-east"}]}}),
        "productpage",
        [
            ("eu-central/zone1", 3, 1, 1),
            ("us-east/zone1", 2, 1, 1),
            ("us-west/zone1", 0, 1, 1),
            ("us-west/zone2", 1, 1, 1),
        ],
    ),
    (
        "failover-priority-region-label",
        _rule({"localityLbSetting": {"failoverPriority": ["topology.kubernetes.io/region"]}}),
        "productpage",
        [
            ("eu-central/zone1", 1, 1, 1),
            ("us-east/zone1", 1, 1, 1),
            ("us-west/zone1", 0, 1, 1),
            ("us-west/zone2", 0, 1, 1),
        ],
    ),
    (
        "failover-priority-override-and-failover",  # label priority first, then locality (Istio: times 5)
        _rule(
            {
                "localityLbSetting": {
                    "failoverPriority": ["version=v1"],
                    "failover": [{"from": "us-west", "to": "us-east"}],
                }
            }
        ),
        "productpage",
        [
            ("eu-central/zone1", 3, 1, 1),
            ("us-east/zone1", 2, 1, 1),
            ("us-west/zone1", 0, 1, 1),
            ("us-west/zone2", 1, 1, 1),
        ],
    ),
    (
        "distribute",
        _rule(
            {
                "localityLbSetting": {
                    "distribute": [{"from": "us-west/zone1/*", "to": {"us-west/zone1/*": 80, "us-east/*": 20}}]
                }
            },
            outlier=False,
        ),
        "productpage",
        [
            ("eu-central/zone1", 0, 1, 0),
            ("us-east/zone1", 0, 20, 1),
            ("us-west/zone1", 0, 80, 1),
            ("us-west/zone2", 0, 1, 0),
        ],
    ),
    (
        "distribute-not-from-here",
        _rule({"localityLbSetting": {"distribute": [{"from": "us-east/*", "to": {"us-east/*": 100}}]}}, outlier=False),
        "productpage",
        [
            ("eu-central/zone1", 0, 1, 1),
            ("us-east/zone1", 0, 1, 1),
            ("us-west/zone1", 0, 1, 1),
            ("us-west/zone2", 0, 1, 1),
        ],
    ),
]


@pytest.mark.parametrize(("rule", "client", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_locality_priorities(rule: tuple[str, str, dict[str, Any]], client: str, expected: Groups) -> None:
    assert lb_mesh(rule).priorities(CLUSTER, client) == expected


def test_failover_priorities() -> None:
    """``failover`` moves the region it names ahead of other regions (and without it they tie)."""
    with_failover = lb_mesh(_rule({"localityLbSetting": {"failover": [{"from": "us-west", "to": "eu-central"}]}}))
    assert with_failover.priorities(CLUSTER) == [
        ("eu-central/zone1", 2, 1, 1),
        ("us-east/zone1", 3, 1, 1),
        ("us-west/zone1", 0, 1, 1),
        ("us-west/zone2", 1, 1, 1),
    ]
    # a failover from another region does not apply to this client
    other = lb_mesh(_rule({"localityLbSetting": {"failover": [{"from": "us-east", "to": "eu-central"}]}}))
    assert other.priorities(CLUSTER)[:2] == [("eu-central/zone1", 2, 1, 1), ("us-east/zone1", 2, 1, 1)]


@pytest.mark.parametrize(
    ("rule", "weighted"),
    [
        (_rule(), True),
        (_rule({"simple": "ROUND_ROBIN"}, outlier=False), False),
        (_rule({"localityLbSetting": {"enabled": False}}), False),
        (_rule({"localityLbSetting": {"distribute": [{"from": "*", "to": {"*": 100}}]}}, outlier=False), True),
    ],
    ids=["failover", "no-outlier-detection", "disabled", "distribute"],
)
def test_cluster_locality_weighted_lb_config(rule: tuple[str, str, dict[str, Any]], weighted: bool) -> None:
    cluster = lb_mesh(rule).cluster(CLUSTER)
    assert cluster.common_lb_config.HasField("locality_weighted_lb_config") is weighted


def test_endpoints_are_scoped_by_locality_only_when_a_rule_needs_it() -> None:
    plain = lb_mesh(_rule({"simple": "ROUND_ROBIN"}, outlier=False))
    assert endpoints.endpoint_scopes(plain.proxy()) == [("eds", "default")]
    failover = lb_mesh(_rule())
    (west,) = endpoints.endpoint_scopes(failover.proxy("productpage"))
    (east,) = endpoints.endpoint_scopes(failover.proxy("ratings"))
    assert west != east and west[:2] == east[:2] == ("eds", "default")


def test_a_gateway_fails_over_by_its_node_s_locality() -> None:
    """A router has no WorkloadEntry: Envoy's node.locality is its locality (Istio ``proxy.Locality``); it gets the
    endpoints a sidecar there gets, and shares them with that sidecar."""
    mesh = lb_mesh(_rule())
    assert mesh.priorities(CLUSTER, f"{GATEWAY}us-east/zone1") == mesh.priorities(CLUSTER, "ratings")
    assert mesh.priorities(CLUSTER, f"{GATEWAY}us-west/zone1") == mesh.priorities(CLUSTER, "productpage")
    assert endpoints.endpoint_scopes(mesh.proxy(f"{GATEWAY}us-east/zone1")) == endpoints.endpoint_scopes(
        mesh.proxy("ratings")
    )


def test_subset_outlier_detection_enables_failover_for_the_subset_only() -> None:
    rule = (
        "DestinationRule",
        "reviews",
        {
            "host": "reviews",
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}, "trafficPolicy": {"outlierDetection": OUTLIER}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    )
    mesh = lb_mesh(rule)
    assert mesh.priorities(f"outbound|9080|v1|{REVIEWS}") == [("us-west/zone1", 0, 1, 1), ("us-west/zone2", 1, 1, 1)]
    assert mesh.priorities(f"outbound|9080|v2|{REVIEWS}") == [("eu-central/zone1", 0, 1, 1), ("us-east/zone1", 0, 1, 1)]
    assert [g[1] for g in mesh.priorities(CLUSTER)] == [0, 0, 0, 0]


def test_port_level_locality_setting_replaces_the_rule_s() -> None:
    rule = _rule({"localityLbSetting": {"enabled": False}})
    rule[2]["trafficPolicy"]["portLevelSettings"] = [{"port": {"number": 9080}, "outlierDetection": OUTLIER}]
    assert [g[1] for g in lb_mesh(rule).priorities(CLUSTER)] == [2, 2, 0, 1]


def test_envoy_accepts_locality_clusters(tmp_path: Path) -> None:
    mesh = lb_mesh(_rule({"localityLbSetting": {"failover": [{"from": "us-west", "to": "us-east"}]}}))
    clusters = [c for c in mesh.resources(CLUSTER_TYPE) if isinstance(c, Cluster)]
    assignments = [a for a in mesh.resources(ENDPOINT_TYPE) if isinstance(a, ClusterLoadAssignment)]
    envoy_validate(tmp_path, clusters=clusters, load_assignments=assignments)
