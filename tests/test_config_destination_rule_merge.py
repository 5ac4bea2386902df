"""Several DestinationRules for one host of a namespace: merged as Istio merges them, a later rule rejected naming
the earlier where merging would drop part of it (``pilot.config.destination_rule_merge``)."""

from __future__ import annotations

import pytest

from pilot.config.store import ConfigStore
from pilot.config.types import ConfigKey, DestinationRule
from pilot.model import build_snapshot
from pilot.model.destination_rules import visible_destination_rule
from tests.test_config_store import doc, files, key, rejected, service

SUBSETS_V1 = "  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: v1}\n"
SUBSETS_V2 = "  host: reviews.bookinfo.svc.cluster.local\n  subsets:\n  - name: v2\n    labels: {version: v2}\n"
TLS = "  host: reviews\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n"
ROUND_ROBIN = "  host: reviews\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n"
PRIVATE_V2 = SUBSETS_V2 + "  exportTo: ['.']\n"
SELECTED_V2 = SUBSETS_V2 + "  workloadSelector:\n    matchLabels: {app: productpage}\n"

CASES = [
    # (id, earlier spec "a", later spec "b", the later's error or "" when both merge)
    ("subsets-and-policy-merge", SUBSETS_V1, TLS, ""),
    ("subsets-of-both-merge", SUBSETS_V1, SUBSETS_V2, ""),
    (
        "both-traffic-policies",
        TLS,
        ROUND_ROBIN,
        "a.yaml:18: DestinationRule bookinfo/b: spec.trafficPolicy: conflicts with DestinationRule bookinfo/a "
        "(a.yaml:1: spec.trafficPolicy) for host reviews.bookinfo.svc.cluster.local: both set a trafficPolicy; "
        "merged, only the earlier one's would apply",
    ),
    (
        "same-subset-name",
        SUBSETS_V1,
        SUBSETS_V1.replace("version: v1", "version: v9"),
        "a.yaml:20: DestinationRule bookinfo/b: spec.subsets[0].name: conflicts with DestinationRule bookinfo/a "
        "(a.yaml:1: spec.subsets[0].name) for host reviews.bookinfo.svc.cluster.local: both define subset 'v1'; "
        "merged, only the earlier one's would apply",
    ),
    (
        "different-export-to",
        SUBSETS_V1,
        PRIVATE_V2,
        "a.yaml:22: DestinationRule bookinfo/b: spec.exportTo: conflicts with DestinationRule bookinfo/a "
        "(a.yaml:1: spec.exportTo) for host reviews.bookinfo.svc.cluster.local: DestinationRules for one host with "
        "different exportTo are not supported by meshplane yet (they are merged only when exported alike)",
    ),
    ("export-to-dot-is-own-namespace", SUBSETS_V1 + "  exportTo: [bookinfo]\n", PRIVATE_V2, ""),
    ("a-selector-keeps-them-apart", TLS, SELECTED_V2 + "  trafficPolicy:\n    tls: {mode: DISABLE}\n", ""),
]


@pytest.mark.parametrize(("earlier", "later", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_conflicts(earlier: str, later: str, error: str) -> None:
    store = ConfigStore()
    store.apply(files(a_yaml=doc("DestinationRule", "a", earlier) + "---\n" + doc("DestinationRule", "b", later)))
    assert key("DestinationRule", "a") in store.accepted
    if not error:
        assert key("DestinationRule", "b") in store.accepted and rejected(store) == []
        return
    assert key("DestinationRule", "b") not in store.accepted
    (entry,) = rejected(store)
    assert entry["errors"] == [error]


def _rule_seen_by(store: ConfigStore, namespace: str = "bookinfo") -> DestinationRule | None:
    snapshot = build_snapshot(dict(store.accepted), version=1)
    return visible_destination_rule(
        snapshot.destination_rule_index,
        "reviews.bookinfo.svc.cluster.local",
        service_namespace="bookinfo",
        proxy_namespace=namespace,
    )


def test_the_model_sees_one_rule_with_the_subsets_of_both_and_the_policy_of_either() -> None:
    store = ConfigStore()
    store.apply(
        files(
            a_yaml=doc("DestinationRule", "a", SUBSETS_V1),
            b_yaml=doc("DestinationRule", "b", SUBSETS_V2),
            c_yaml=doc("DestinationRule", "c", TLS),
        )
    )
    rule = _rule_seen_by(store)
    assert rule is not None and rule.meta.key == key("DestinationRule", "a")
    assert [subset.name for subset in rule.subsets] == ["v1", "v2"]
    assert rule.traffic_policy is not None and rule.traffic_policy.tls is not None
    assert rule.traffic_policy.tls.mode == "ISTIO_MUTUAL"
    assert _rule_seen_by(store, "shop") == rule  # exported alike: merged for every namespace


def test_a_virtual_service_may_name_a_subset_of_any_merged_rule() -> None:
    store = ConfigStore()
    store.apply(
        files(
            a_yaml=doc("DestinationRule", "a", SUBSETS_V1),
            b_yaml=doc("DestinationRule", "b", SUBSETS_V2),
            vs_yaml=service(subset="v2"),
        )
    )
    assert rejected(store) == [] and key("VirtualService") in store.accepted


def test_removing_a_used_subset_from_the_later_rule_rejects_that_rule() -> None:
    """The VirtualService in force routes to v2, defined by b (merged into a): b dropping v2 is rejected, naming the
    VirtualService, and b's last good version stays."""
    store = ConfigStore()
    store.apply(
        files(
            a_yaml=doc("DestinationRule", "a", SUBSETS_V1),
            b_yaml=doc("DestinationRule", "b", SUBSETS_V2),
            vs_yaml=service(subset="v2"),
        )
    )
    store.apply(files(b_yaml=doc("DestinationRule", "b", SUBSETS_V2.replace("v2", "v3"))))
    (entry,) = rejected(store)
    assert entry["name"] == "b" and entry["in_force"] == "last good version from b.yaml:1"
    assert "subset 'v2' is still used by VirtualService bookinfo/reviews" in entry["errors"][0]
    assert key("VirtualService") in store.accepted


def test_the_changed_rule_is_rejected_and_the_one_in_force_stays() -> None:
    """b (later in name order) was in force with a policy; a, new, sets one too: a is the one rejected."""
    store = ConfigStore()
    store.apply(files(b_yaml=doc("DestinationRule", "b", TLS)))
    store.apply(files(a_yaml=doc("DestinationRule", "a", ROUND_ROBIN), b_yaml=doc("DestinationRule", "b", TLS)))
    (entry,) = rejected(store)
    assert entry["name"] == "a" and entry["in_force"] is None
    assert "conflicts with DestinationRule bookinfo/b (b.yaml:1: spec.trafficPolicy)" in entry["errors"][0]
    assert store.accepted.keys() == {ConfigKey(kind="DestinationRule", namespace="bookinfo", name="b")}
