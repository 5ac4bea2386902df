"""Which AuthorizationPolicies and Mixer policies apply to a workload (pilot.model.policies, Istio's selection rules),
and the snapshot fields that hold them (pilot.model.build)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from pilot.config.parse import parse_config_text
from pilot.config.types import (
    AccessList,
    AuthorizationAction,
    AuthorizationPolicy,
    AuthorizationRule,
    ConfigKey,
    ConfigMeta,
    RateLimit,
    Resource,
    WorkloadEntry,
    frozen_labels,
)
from pilot.model import DEFAULT_ROOT_NAMESPACE, MeshSnapshot, build_snapshot
from pilot.model.policies import MIXER_PROVIDER, WorkloadPolicies, policy_selects, workload_policies

MakeMeta = Callable[..., ConfigMeta]
Snapshot = Callable[..., MeshSnapshot]
ROOT = DEFAULT_ROOT_NAMESPACE


def authz(
    make_meta: MakeMeta,
    name: str,
    namespace: str,
    action: AuthorizationAction = "ALLOW",
    selector: Mapping[str, str] | None = None,
) -> AuthorizationPolicy:
    return AuthorizationPolicy(
        meta=make_meta("AuthorizationPolicy", name, namespace),
        selector=frozen_labels(selector) if selector is not None else None,
        action=action,
        provider=MIXER_PROVIDER if action == "CUSTOM" else None,
        rules=(AuthorizationRule(),),
    )


def access_list(
    make_meta: MakeMeta,
    name: str,
    namespace: str,
    selector: Mapping[str, str] | None = None,
    fail_open: bool = False,
) -> AccessList:
    return AccessList(
        meta=make_meta("AccessList", name, namespace),
        selector=frozen_labels(selector) if selector is not None else None,
        value="source.principal",
        entries=("cluster.local/ns/shop/sa/bad",),
        mode="deny",
        fail_open=fail_open,
    )


def rate_limit(
    make_meta: MakeMeta,
    name: str,
    namespace: str,
    selector: Mapping[str, str] | None = None,
    fail_open: bool = False,
) -> RateLimit:
    return RateLimit(
        meta=make_meta("RateLimit", name, namespace),
        selector=frozen_labels(selector) if selector is not None else None,
        requests=10,
        per=1.0,
        fail_open=fail_open,
    )


def workload(make_meta: MakeMeta, name: str, namespace: str, address: str, **labels: str) -> WorkloadEntry:
    return WorkloadEntry(
        meta=make_meta("WorkloadEntry", name, namespace), address=address, labels=frozen_labels(labels)
    )


def names(policies: tuple[AuthorizationPolicy | AccessList | RateLimit, ...]) -> list[str]:
    return [f"{p.meta.key.namespace}/{p.meta.key.name}" for p in policies]


@pytest.fixture
def mesh(make_meta: MakeMeta) -> dict[str, WorkloadEntry]:
    """Workloads in two namespaces and the root namespace."""
    return {
        "reviews-v1": workload(make_meta, "reviews-v1", "shop", "127.0.0.21", app="reviews", version="v1"),
        "reviews-v2": workload(make_meta, "reviews-v2", "shop", "127.0.0.22", app="reviews", version="v2"),
        "ratings": workload(make_meta, "ratings", "shop", "127.0.0.23", app="ratings"),
        "billing": workload(make_meta, "billing", "finance", "127.0.0.24", app="reviews"),
        "gateway": workload(make_meta, "gateway", ROOT, "127.0.0.25", app="gateway"),
    }


def applying(snapshot: MeshSnapshot, workload: WorkloadEntry) -> list[str]:
    found = workload_policies(snapshot, workload)
    return names(found.custom + found.deny + found.allow + found.audit) + names(found.mixer)


def test_root_namespace_policy_without_selector_is_mesh_wide(
    make_meta: MakeMeta, mesh_snapshot: Snapshot, mesh: dict[str, WorkloadEntry]
) -> None:
    snapshot = mesh_snapshot(*mesh.values(), authz(make_meta, "mesh-allow", ROOT))
    for name, entry in mesh.items():
        assert applying(snapshot, entry) == [f"{ROOT}/mesh-allow"], name


def test_root_namespace_policy_with_selector_applies_in_every_namespace(
    make_meta: MakeMeta, mesh_snapshot: Snapshot, mesh: dict[str, WorkloadEntry]
) -> None:
    snapshot = mesh_snapshot(*mesh.values(), authz(make_meta, "reviews-only", ROOT, "DENY", {"app": "reviews"}))
    selected = {name for name, entry in mesh.items() if applying(snapshot, entry)}
    assert selected == {"reviews-v1", "reviews-v2", "billing"}


def test_namespace_policy_without_selector_is_namespace_wide(
    make_meta: MakeMeta, mesh_snapshot: Snapshot, mesh: dict[str, WorkloadEntry]
) -> None:
    snapshot = mesh_snapshot(*mesh.values(), authz(make_meta, "shop-allow", "shop"))
    selected = {name for name, entry in mesh.items() if applying(snapshot, entry)}
    assert selected == {"reviews-v1", "reviews-v2", "ratings"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"app": "reviews"}, {"reviews-v1", "reviews-v2"}),
        ({"app": "reviews", "version": "v2"}, {"reviews-v2"}),
        ({"app": "reviews", "version": "v3"}, set()),
        ({"app": "details"}, set()),
        ({"version": "v1"}, {"reviews-v1"}),
    ],
    ids=["one-label", "two-labels", "one-label-differs", "no-such-app", "label-subset"],
)
def test_namespace_policy_with_selector(
    make_meta: MakeMeta,
    mesh_snapshot: Snapshot,
    mesh: dict[str, WorkloadEntry],
    selector: dict[str, str],
    expected: set[str],
) -> None:
    snapshot = mesh_snapshot(*mesh.values(), authz(make_meta, "p", "shop", "ALLOW", selector))
    selected = {name for name, entry in mesh.items() if applying(snapshot, entry)}
    assert selected == expected


def test_policy_of_another_namespace_never_applies(
    make_meta: MakeMeta, mesh_snapshot: Snapshot, mesh: dict[str, WorkloadEntry]
) -> None:
    snapshot = mesh_snapshot(
        *mesh.values(),
        authz(make_meta, "finance-wide", "finance"),
        authz(make_meta, "finance-reviews", "finance", "DENY", {"app": "reviews"}),  # labels match shop's reviews
        access_list(make_meta, "finance-list", "finance"),
    )
    assert applying(snapshot, mesh["reviews-v1"]) == []
    assert workload_policies(snapshot, mesh["reviews-v1"]) == WorkloadPolicies()
    assert workload_policies(snapshot, mesh["reviews-v1"]).empty
    assert applying(snapshot, mesh["billing"]) == [
        "finance/finance-reviews",
        "finance/finance-wide",
        "finance/finance-list",
    ]


def test_a_custom_root_namespace(make_meta: MakeMeta, mesh: dict[str, WorkloadEntry]) -> None:
    resources: list[Resource] = [*mesh.values(), authz(make_meta, "in-mesh-root", "mesh-root")]
    resources.append(authz(make_meta, "in-istio-system", ROOT))
    snapshot = build_snapshot({r.meta.key: r for r in resources}, version=1, root_namespace="mesh-root")
    assert snapshot.root_namespace == "mesh-root"
    assert applying(snapshot, mesh["ratings"]) == ["mesh-root/in-mesh-root"]
    assert applying(snapshot, mesh["gateway"]) == ["mesh-root/in-mesh-root", f"{ROOT}/in-istio-system"]


def test_policies_are_grouped_by_action_root_namespace_first(
    make_meta: MakeMeta, mesh_snapshot: Snapshot, mesh: dict[str, WorkloadEntry]
) -> None:
    snapshot = mesh_snapshot(
        *mesh.values(),
        authz(make_meta, "b-allow", "shop", "ALLOW"),
        authz(make_meta, "a-allow", "shop", "ALLOW", {"app": "reviews"}),
        authz(make_meta, "z-mesh-allow", ROOT, "ALLOW"),
        authz(make_meta, "deny", "shop", "DENY"),
        authz(make_meta, "mesh-deny", ROOT, "DENY", {"version": "v1"}),
        authz(make_meta, "audit", "shop", "AUDIT"),
        authz(make_meta, "ext", "shop", "CUSTOM", {"app": "reviews"}),
        rate_limit(make_meta, "limit", "shop"),
        access_list(make_meta, "list", "shop", {"app": "reviews"}),
        access_list(make_meta, "mesh-list", ROOT),
    )
    found = workload_policies(snapshot, mesh["reviews-v1"])
    assert names(found.custom) == ["shop/ext"]
    assert names(found.deny) == [f"{ROOT}/mesh-deny", "shop/deny"]
    assert names(found.allow) == [f"{ROOT}/z-mesh-allow", "shop/a-allow", "shop/b-allow"]
    assert names(found.audit) == ["shop/audit"]
    assert names(found.mixer) == [f"{ROOT}/mesh-list", "shop/list", "shop/limit"]  # AccessList sorts before RateLimit
    assert all(p.action == "ALLOW" for p in found.allow)
    ratings = workload_policies(snapshot, mesh["ratings"])
    assert names(ratings.custom) == []
    assert names(ratings.deny) == ["shop/deny"]
    assert names(ratings.mixer) == [f"{ROOT}/mesh-list", "shop/limit"]


def test_workload_in_the_root_namespace_gets_each_policy_once(
    make_meta: MakeMeta, mesh_snapshot: Snapshot, mesh: dict[str, WorkloadEntry]
) -> None:
    snapshot = mesh_snapshot(*mesh.values(), authz(make_meta, "mesh", ROOT), rate_limit(make_meta, "rl", ROOT))
    assert applying(snapshot, mesh["gateway"]) == [f"{ROOT}/mesh", f"{ROOT}/rl"]


@pytest.mark.parametrize(
    ("actions", "mixer", "checks"),
    [
        ((), 0, False),
        (("ALLOW", "DENY", "AUDIT"), 0, False),
        (("CUSTOM",), 0, True),
        ((), 1, True),
        (("ALLOW",), 2, True),
    ],
    ids=["nothing", "rbac-only", "custom", "mixer-policy", "rbac-and-mixer"],
)
def test_checks_with_mixer(
    make_meta: MakeMeta,
    mesh_snapshot: Snapshot,
    mesh: dict[str, WorkloadEntry],
    actions: tuple[AuthorizationAction, ...],
    mixer: int,
    checks: bool,
) -> None:
    policies: list[Resource] = [authz(make_meta, f"p{i}", "shop", action) for i, action in enumerate(actions)]
    policies += [rate_limit(make_meta, f"rl{i}", "shop") for i in range(mixer)]
    snapshot = mesh_snapshot(*mesh.values(), *policies)
    assert workload_policies(snapshot, mesh["ratings"]).checks_with_mixer is checks
    assert workload_policies(snapshot, mesh["billing"]).checks_with_mixer is False  # other namespace


@pytest.mark.parametrize(
    ("fail_open", "custom", "expected"),
    [
        ((), False, False),
        ((True,), False, True),
        ((True, True), False, True),
        ((True, False), False, False),
        ((False,), False, False),
        ((True,), True, False),
        ((), True, False),
    ],
    ids=["no-mixer-policy", "one-open", "all-open", "one-closed", "closed", "open-but-custom", "custom-only"],
)
def test_mixer_fail_open(
    make_meta: MakeMeta,
    mesh_snapshot: Snapshot,
    mesh: dict[str, WorkloadEntry],
    fail_open: tuple[bool, ...],
    custom: bool,
    expected: bool,
) -> None:
    policies: list[Resource] = [
        (access_list if i % 2 else rate_limit)(make_meta, f"m{i}", "shop", fail_open=value)
        for i, value in enumerate(fail_open)
    ]
    if custom:
        policies.append(authz(make_meta, "ext", "shop", "CUSTOM"))
    snapshot = mesh_snapshot(*mesh.values(), *policies)
    assert workload_policies(snapshot, mesh["ratings"]).mixer_fail_open is expected


@pytest.mark.parametrize(
    ("policy_namespace", "selector", "workload_namespace", "expected"),
    [
        (ROOT, None, "shop", True),
        (ROOT, {"app": "db"}, "shop", True),
        (ROOT, {"app": "web"}, "shop", False),
        ("shop", None, "shop", True),
        ("shop", {}, "shop", True),
        ("shop", {"app": "db"}, "shop", True),
        ("shop", {"app": "db", "tier": "x"}, "shop", False),
        ("other", None, "shop", False),
        ("other", {"app": "db"}, "shop", False),
    ],
)
def test_policy_selects(
    make_meta: MakeMeta,
    policy_namespace: str,
    selector: dict[str, str] | None,
    workload_namespace: str,
    expected: bool,
) -> None:
    entry = workload(make_meta, "db-1", workload_namespace, "127.0.0.31", app="db")
    labels = frozen_labels(selector) if selector is not None else None
    assert policy_selects(labels, policy_namespace, entry, ROOT) is expected


# ----------------------------------------------------------------------------------------------------------------
# snapshot fields (pilot.model.build)
# ----------------------------------------------------------------------------------------------------------------


def test_snapshot_indexes_policies_by_namespace_in_key_order(make_meta: MakeMeta, mesh_snapshot: Snapshot) -> None:
    b_allow, a_deny = authz(make_meta, "b", "shop"), authz(make_meta, "a", "shop", "DENY")
    mesh_allow = authz(make_meta, "mesh", ROOT)
    limit, acl = rate_limit(make_meta, "a-limit", "shop"), access_list(make_meta, "z-list", "shop")
    root_acl = access_list(make_meta, "acl", ROOT)
    snapshot = mesh_snapshot(limit, b_allow, acl, mesh_allow, a_deny, root_acl)
    assert dict(snapshot.authorization_policies) == {ROOT: (mesh_allow,), "shop": (a_deny, b_allow)}
    assert dict(snapshot.mixer_policies) == {ROOT: (root_acl,), "shop": (acl, limit)}
    assert list(snapshot.authorization_policies) == [ROOT, "shop"]
    assert snapshot.root_namespace == ROOT


def test_snapshot_changed_kinds_follow_policy_changes(make_meta: MakeMeta) -> None:
    allow, limit = authz(make_meta, "p", "shop"), rate_limit(make_meta, "rl", "shop")
    first = build_snapshot({allow.meta.key: allow}, version=1)
    assert "AuthorizationPolicy" in first.changed_kinds
    second = build_snapshot({allow.meta.key: allow, limit.meta.key: limit}, version=2, previous=first)
    assert second.changed_kinds == frozenset({"RateLimit"})
    third = build_snapshot({limit.meta.key: limit}, version=3, previous=second)
    assert third.changed_kinds == frozenset({"AuthorizationPolicy"})
    assert third.authorization_policies == {}


def test_parsed_policies_reach_the_snapshot() -> None:
    text = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  action: CUSTOM
  provider: {name: mixer}
  rules: [{}]
---
apiVersion: mixer.meshplane.io/v1
kind: RateLimit
metadata: {name: per-user, namespace: shop}
spec:
  limit: {requests: 5, per: 1s}
  failOpen: true
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec:
  address: 127.0.0.21
  labels: {app: reviews}
"""
    parsed = parse_config_text(text, "policies.yaml")
    assert not parsed.rejected, parsed.rejected
    snapshot = build_snapshot({r.meta.key: r for r in parsed.resources}, version=1)
    reviews = snapshot.workloads[ConfigKey(kind="WorkloadEntry", namespace="shop", name="reviews-v1")]
    found = workload_policies(snapshot, reviews)
    assert names(found.custom) == ["shop/ext"]
    assert found.custom[0].provider == MIXER_PROVIDER
    assert names(found.mixer) == ["shop/per-user"]
    assert found.checks_with_mixer
    assert not found.mixer_fail_open  # the CUSTOM policy always fails closed
