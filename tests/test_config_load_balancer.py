"""DestinationRule loadBalancer (consistentHash, localityLbSetting, warmup) and workloadSelector validation:
Istio's ``validateLoadBalancer`` / ``ValidateLocalityLbSetting`` rules, each case asserting file:line, path, message."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pilot.config.types import (
    ConsistentHash,
    DestinationRule,
    HttpCookie,
    LoadBalancer,
    LocalityDistribute,
    LocalityFailover,
    LocalityLbSetting,
    Warmup,
)

if TYPE_CHECKING:
    from tests.conftest import IstioDocs

Expected = list[tuple[int, str, str]]  # (line in the spec body, field path, part of the message)
LB = "spec.trafficPolicy.loadBalancer"
HEAD = "host: reviews\ntrafficPolicy:\n  loadBalancer:\n"
OUTLIER = "  outlierDetection: {consecutive5xxErrors: 1}\n"

CASES: list[tuple[str, str, Expected]] = [
    (
        "simple-and-hash",
        HEAD + "    simple: ROUND_ROBIN\n    consistentHash: {useSourceIp: true}\n",
        [(3, LB, "only one of simple, consistentHash may be set")],
    ),
    (
        "two-hash-keys",
        HEAD + "    consistentHash: {httpHeaderName: x-user, useSourceIp: true}\n",
        [(4, f"{LB}.consistentHash", "only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName")],
    ),
    (
        "empty-header",
        HEAD + "    consistentHash: {httpHeaderName: ''}\n",
        [(4, f"{LB}.consistentHash.httpHeaderName", "must not be empty")],
    ),
    (
        "cookie-without-name-and-ttl",
        HEAD + "    consistentHash:\n      httpCookie: {path: /}\n",
        [
            (5, f"{LB}.consistentHash.httpCookie.name", "name required for HttpCookie"),
            (5, f"{LB}.consistentHash.httpCookie.ttl", "ttl required for HttpCookie"),
        ],
    ),
    (
        "cookie-ttl-garbage",
        HEAD + "    consistentHash:\n      httpCookie: {name: user, ttl: soon}\n",
        [(5, f"{LB}.consistentHash.httpCookie.ttl", "invalid duration 'soon'")],
    ),
    (
        "ring-and-maglev",
        HEAD + "    consistentHash:\n      useSourceIp: true\n      ringHash: {}\n      maglev: {tableSize: 7}\n",
        [(4, f"{LB}.consistentHash", "only one of ringHash, maglev, minimumRingSize may be set")],
    ),
    (
        "deprecated-ring-size-and-ring-hash",
        HEAD + "    consistentHash:\n      minimumRingSize: 10\n      ringHash: {minimumRingSize: 10}\n",
        [(4, f"{LB}.consistentHash", "only one of ringHash, maglev, minimumRingSize")],
    ),
    (
        "maglev-not-prime",
        HEAD + "    consistentHash:\n      useSourceIp: true\n      maglev: {tableSize: 1000}\n",
        [(6, f"{LB}.consistentHash.maglev.tableSize", "tableSize must be a prime number for maglev, got 1000")],
    ),
    (
        "maglev-without-size",
        HEAD + "    consistentHash:\n      useSourceIp: true\n      maglev: {}\n",
        [(6, f"{LB}.consistentHash.maglev.tableSize", "tableSize must be set for maglev")],
    ),
    (
        "hash-unknown-field",
        HEAD + "    consistentHash: {httpHeader: x-user}\n",
        [(4, f"{LB}.consistentHash.httpHeader", "did you mean 'httpHeaderName'?")],
    ),
    (
        "distribute-and-failover",
        HEAD
        + "    localityLbSetting:\n      distribute:\n      - {from: us-west/*, to: {us-west/*: 100}}\n"
        + "      failover:\n      - {from: us-west, to: us-east}\n"
        + OUTLIER,
        [(4, f"{LB}.localityLbSetting", "can not simultaneously specify 'distribute' and 'failover'")],
    ),
    (
        "distribute-total",
        HEAD + "    localityLbSetting:\n      distribute:\n      - from: us-west/zone1/*\n"
        "        to: {us-west/zone1/*: 80, us-west/zone2/*: 10}\n",
        [(7, f"{LB}.localityLbSetting.distribute[0].to", "total locality weight 90 != 100")],
    ),
    (
        "distribute-weight-range",
        HEAD + "    localityLbSetting:\n      distribute:\n      - from: us-west/zone1/*\n"
        "        to: {us-west/zone1/*: 0, us-west/zone2/*: 100}\n",
        [
            (
                7,
                f'{LB}.localityLbSetting.distribute[0].to["us-west/zone1/*"]',
                "locality weight must be in range [1, 100]",
            )
        ],
    ),
    (
        "distribute-wildcard-in-middle",
        HEAD + "    localityLbSetting:\n      distribute:\n      - from: us-west/*/zone1\n        to: {us-west: 100}\n",
        [
            (
                6,
                f"{LB}.localityLbSetting.distribute[0].from",
                "wildcard '*' number can not exceed 1 and must be in the end",
            )
        ],
    ),
    (
        "distribute-overlap",
        HEAD + "    localityLbSetting:\n      distribute:\n      - from: us-west/zone1/*\n        to: {us-west: 100}\n"
        "      - from: us-west/zone1/a\n        to: {us-west: 100}\n",
        [(8, f"{LB}.localityLbSetting.distribute[1].from", "locality us-west/zone1/a overlap with previous")],
    ),
    (
        "failover-same-region",
        HEAD + "    localityLbSetting:\n      failover:\n      - {from: us-east, to: us-east}\n" + OUTLIER,
        [(6, f"{LB}.localityLbSetting.failover[0]", "must specify different regions")],
    ),
    (
        "failover-zone",
        HEAD + "    localityLbSetting:\n      failover:\n      - {from: us-east/zone1, to: us-west}\n" + OUTLIER,
        [(6, f"{LB}.localityLbSetting.failover[0]", "locality lb failover only specify region")],
    ),
    (
        "failover-without-outlier-detection",
        HEAD + "    localityLbSetting:\n      failover:\n      - {from: us-east, to: us-west}\n",
        [(5, f"{LB}.localityLbSetting.failover", "outlier detection policy must be provided for failover")],
    ),
    (
        "failover-and-topology-priority",
        HEAD + "    localityLbSetting:\n      failover:\n      - {from: us-east, to: us-west}\n"
        "      failoverPriority: [topology.kubernetes.io/region]\n" + OUTLIER,
        [
            (
                7,
                f"{LB}.localityLbSetting.failoverPriority[0]",
                "can not simultaneously set 'failover' and topology label",
            )
        ],
    ),
    (
        "warmup-with-hash",
        HEAD + "    consistentHash: {useSourceIp: true}\n    warmupDurationSecs: 10s\n",
        [(5, f"{LB}.warmupDurationSecs", "takes effect only with ROUND_ROBIN or LEAST_REQUEST")],
    ),
    (
        "warmup-with-random",
        HEAD + "    simple: RANDOM\n    warmup: {duration: 10s}\n",
        [(5, f"{LB}.warmup", "not with RANDOM")],
    ),
    (
        "warmup-both",
        HEAD + "    warmupDurationSecs: 10s\n    warmup: {duration: 10s}\n",
        [(3, LB, "only one of warmupDurationSecs, warmup may be set")],
    ),
    (
        "warmup-aggression",
        HEAD + "    warmup: {duration: 10s, aggression: 0.5}\n",
        [(4, f"{LB}.warmup.aggression", "must be between 1 and")],
    ),
    (
        "warmup-duration-missing",
        HEAD + "    warmup: {minimumPercent: 10}\n",
        [(4, f"{LB}.warmup.duration", "required field is missing")],
    ),
    (
        "workload-selector-labels",
        "host: reviews\nworkloadSelector: {matchLabels: {'a b': c}}\n",
        [(2, 'spec.workloadSelector.matchLabels["a b"]', "invalid label key")],
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_load_balancer_rejections(istio: IstioDocs, body: str, expected: Expected) -> None:
    errors = istio.errors("DestinationRule", body)
    for line, path, message in expected:
        istio.assert_error(errors, "DestinationRule", line, path, message)
    assert len(errors) == len(expected), errors


ACCEPTED: list[tuple[str, str, LoadBalancer]] = [
    (
        "header-ring-hash",
        "consistentHash:\n  httpHeaderName: x-user\n  ringHash: {minimumRingSize: 2048}\n",
        LoadBalancer(consistent_hash=ConsistentHash(http_header_name="x-user", minimum_ring_size=2048)),
    ),
    (
        "cookie-maglev",
        "consistentHash:\n  httpCookie: {name: user, path: /, ttl: 0s}\n  maglev: {tableSize: 65537}\n",
        LoadBalancer(
            consistent_hash=ConsistentHash(
                http_cookie=HttpCookie(name="user", path="/", ttl=0.0), algorithm="MAGLEV", table_size=65537
            )
        ),
    ),
    (
        "source-ip-deprecated-ring",
        "consistentHash: {useSourceIp: true, minimumRingSize: 10}\n",
        LoadBalancer(
            consistent_hash=ConsistentHash(use_source_ip=True, minimum_ring_size=10, deprecated_ring_size=True)
        ),
    ),
    (
        "query-parameter",
        "consistentHash: {httpQueryParameterName: user}\n",
        LoadBalancer(consistent_hash=ConsistentHash(http_query_parameter_name="user", deprecated_ring_size=True)),
    ),
    (
        "distribute",
        "localityLbSetting:\n  distribute:\n  - from: us-west/zone1/*\n"
        "    to: {us-west/zone1/*: 80, us-west/zone2/*: 20}\n",
        LoadBalancer(
            locality_lb_setting=LocalityLbSetting(
                distribute=(
                    LocalityDistribute(from_="us-west/zone1/*", to=(("us-west/zone1/*", 80), ("us-west/zone2/*", 20))),
                )
            )
        ),
    ),
    (
        "disabled",
        "localityLbSetting: {enabled: false}\n",
        LoadBalancer(locality_lb_setting=LocalityLbSetting(enabled=False)),
    ),
    (
        "warmup",
        "simple: ROUND_ROBIN\nwarmup: {duration: 30s, minimumPercent: 10, aggression: 2}\n",
        LoadBalancer(simple="ROUND_ROBIN", warmup=Warmup(duration=30.0, minimum_percent=10.0, aggression=2.0)),
    ),
    (
        "warmup-duration-secs",
        "warmupDurationSecs: 100s\n",
        LoadBalancer(warmup=Warmup(duration=100.0)),
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_load_balancer_accepted(istio: IstioDocs, body: str, expected: LoadBalancer) -> None:
    indented = "".join(f"    {line}\n" for line in body.splitlines())
    rule = istio.accepted("DestinationRule", HEAD + indented)
    assert isinstance(rule, DestinationRule) and rule.traffic_policy is not None
    assert rule.traffic_policy.load_balancer == expected


def test_failover_with_outlier_detection_accepted(istio: IstioDocs) -> None:
    rule = istio.accepted(
        "DestinationRule",
        HEAD + "    localityLbSetting:\n      failover:\n      - {from: us-east, to: us-west}\n"
        "      failoverPriority: [app, 'version=v2']\n" + OUTLIER,
    )
    assert isinstance(rule, DestinationRule) and rule.traffic_policy is not None
    assert rule.traffic_policy.load_balancer == LoadBalancer(
        locality_lb_setting=LocalityLbSetting(
            failover=(LocalityFailover(from_="us-east", to="us-west"),), failover_priority=("app", "version=v2")
        )
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [("workloadSelector: {matchLabels: {app: ratings}}\n", {"app": "ratings"}), ("workloadSelector: {}\n", {})],
    ids=["labels", "empty-selects-all"],
)
def test_workload_selector_accepted(istio: IstioDocs, body: str, expected: dict[str, str]) -> None:
    rule = istio.accepted("DestinationRule", "host: reviews\n" + body)
    assert isinstance(rule, DestinationRule) and rule.workload_selector is not None
    assert dict(rule.workload_selector) == expected
