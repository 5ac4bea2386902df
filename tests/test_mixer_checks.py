"""The policy engine (mixer/checks.py): selection of the destination workload's policies, order, compile-once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest

from mixer.access_list import AccessListCheck
from mixer.attributes import check_attributes
from mixer.checks import ALLOWED, Decision, PolicyEngine, header_value
from mixer.rate_limit import RateLimitCheck
from pilot.config.types import AccessList, AccessListMode, ConfigMeta, RateLimit
from pilot.model import MeshSnapshot
from tests.conftest import MIXER_PRODUCTPAGE_IP, MIXER_RATINGS_IP
from tests.mixer_builders import FakeClock

MakeMeta = Callable[..., ConfigMeta]
MakeRequest = Callable[..., CheckRequest]
MakeMesh = Callable[..., MeshSnapshot]
REVIEWS = MappingProxyType({"app": "reviews"})


def blocked_users(make_meta: MakeMeta, *users: str, namespace: str = "default", **fields: Any) -> AccessList:
    return AccessList(
        meta=make_meta("AccessList", "blocked-users", namespace),
        selector=fields.pop("selector", REVIEWS),
        value='"x-user" in request.headers ? request.headers["x-user"] : ""',
        entries=users,
        mode="deny",
        **fields,
    )


def quota(make_meta: MakeMeta, requests: int = 1, **fields: Any) -> RateLimit:
    return RateLimit(meta=make_meta("RateLimit", "quota"), selector=REVIEWS, requests=requests, per=60.0, **fields)


def decide(engine: PolicyEngine, request: CheckRequest) -> Decision:
    return engine.check(check_attributes(request, engine.registry))


def test_no_policies_allows(mixer_mesh: MakeMesh, make_check_request: MakeRequest) -> None:
    engine = PolicyEngine(mixer_mesh())
    assert decide(engine, make_check_request()) is ALLOWED


def test_access_list_denial_decision(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    engine = PolicyEngine(mixer_mesh(blocked_users(make_meta, "jason")))
    assert decide(engine, make_check_request(headers={"x-user": "bob"})) is ALLOWED
    decision = decide(engine, make_check_request(headers={"x-user": "jason"}))
    reason = (
        'AccessList default/blocked-users: "x-user" in request.headers ? request.headers["x-user"] : "" '
        '"jason" is listed (mode deny)'
    )
    assert decision == Decision(
        allowed=False,
        result="denied",
        status=403,
        reason=reason,
        headers=(("x-mixer-reason", reason),),
        policy="AccessList/default/blocked-users",
        value="jason",
    )


_NO_USER = 'request.headers["x-user"] has no value (no such key "x-user"), not listed (mode allow)'
_NO_APP = 'source.labels["app"] has no value (no such key "app"), not listed (mode allow)'


@pytest.mark.parametrize(
    ("mode", "value", "request_fields", "reason"),
    [
        ("deny", 'request.headers["x-user"]', {}, None),
        ("allow", 'request.headers["x-user"]', {}, _NO_USER),
        ("deny", 'request.headers["x-user"]', {"headers": {"x-user": "jason"}}, 'request.headers["x-user"] "jason" is'),
        ("allow", 'request.headers["x-user"]', {"headers": {"x-user": "jason"}}, None),
        ("deny", 'source.labels["app"]', {"source_ip": "10.9.9.9"}, None),
        ("allow", 'source.labels["app"]', {"source_ip": "10.9.9.9"}, _NO_APP),
        ("allow", "source.principal", {"principal": ""}, 'source.principal "" is not listed (mode allow)'),
    ],
    ids=[
        "deny-header-not-sent",
        "allow-header-not-sent",
        "deny-header-listed",
        "allow-header-listed",
        "deny-label-of-an-unknown-caller",
        "allow-label-of-an-unknown-caller",
        "allow-principal-without-mtls-is-empty-not-absent",
    ],
)
def test_access_list_on_a_value_the_request_may_not_have(
    make_meta: MakeMeta,
    mixer_mesh: MakeMesh,
    make_check_request: MakeRequest,
    mode: AccessListMode,
    value: str,
    request_fields: dict[str, Any],
    reason: str | None,
) -> None:
    policy = AccessList(
        meta=make_meta("AccessList", "users"), selector=REVIEWS, value=value, entries=("jason", "x"), mode=mode
    )
    decision = decide(PolicyEngine(mixer_mesh(policy)), make_check_request(**request_fields))
    if reason is None:
        assert decision is ALLOWED
    else:
        assert (decision.result, decision.status) == ("denied", 403)
        assert decision.reason.startswith(f"AccessList default/users: {reason}"), decision.reason


def test_rate_limit_on_a_header_the_request_may_not_carry(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    limited = quota(make_meta, match='request.headers["x-tier"] == "free"', key='request.headers["x-user"]')
    engine = PolicyEngine(mixer_mesh(limited), clock=FakeClock())
    assert all(decide(engine, make_check_request()) is ALLOWED for _ in range(3))  # no match: not counted
    free = {"x-tier": "free"}
    assert decide(engine, make_check_request(headers=free)) is ALLOWED
    decision = decide(engine, make_check_request(headers=free, principal=""))
    assert decision.result == "rate_limited"
    assert decision.reason == (
        'RateLimit default/quota: request.headers["x-user"] with no value (no such key "x-user") exceeded 1 requests '
        "per 60s; retry after 60s"
    )
    assert decide(engine, make_check_request(headers={**free, "x-user": "jason"})) is ALLOWED


def test_policies_apply_only_to_selected_workloads(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    engine = PolicyEngine(mixer_mesh(blocked_users(make_meta, "jason")))
    to_ratings = make_check_request(headers={"x-user": "jason"}, destination_ip=MIXER_RATINGS_IP)
    assert decide(engine, to_ratings) is ALLOWED
    unknown = make_check_request(headers={"x-user": "jason"}, destination_ip="10.1.1.1")
    assert decide(engine, unknown) is ALLOWED


def test_root_namespace_policy_applies_to_every_workload(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    policy = blocked_users(make_meta, "jason", namespace="istio-system", selector=None)
    engine = PolicyEngine(mixer_mesh(policy))
    for destination in (MIXER_RATINGS_IP, MIXER_PRODUCTPAGE_IP):
        decision = decide(engine, make_check_request(headers={"x-user": "jason"}, destination_ip=destination))
        assert decision.result == "denied"
        assert decision.policy == "AccessList/istio-system/blocked-users"


def test_rate_limit_decision_and_access_lists_first(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    clock = FakeClock()
    engine = PolicyEngine(mixer_mesh(quota(make_meta), blocked_users(make_meta, "jason")), clock=clock)
    assert decide(engine, make_check_request(headers={"x-user": "jason"})).result == "denied"  # no quota used
    assert decide(engine, make_check_request()) is ALLOWED
    clock.now += 20.5
    decision = decide(engine, make_check_request())
    reason = (
        'RateLimit default/quota: source.principal "cluster.local/ns/default/sa/bookinfo-productpage" '
        "exceeded 1 requests per 60s; retry after 40s"
    )
    assert decision == Decision(
        allowed=False,
        result="rate_limited",
        status=429,
        reason=reason,
        headers=(("x-mixer-reason", reason), ("retry-after", "40")),
        policy="RateLimit/default/quota",
        value="cluster.local/ns/default/sa/bookinfo-productpage",
    )


def test_policies_compile_once_per_version(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    snapshot = mixer_mesh(blocked_users(make_meta, "jason"), quota(make_meta, requests=100))
    engine = PolicyEngine(snapshot)
    first = engine.policies_for("127.0.0.21")
    assert [type(c) for c in first] == [AccessListCheck, RateLimitCheck]
    access, limit = first
    assert isinstance(access, AccessListCheck) and isinstance(limit, RateLimitCheck)
    programs = (access.expression.program, limit.key.program)
    for _ in range(3):
        decide(engine, make_check_request())
        again = engine.policies_for("127.0.0.21")
        assert again is first
        assert isinstance(again[0], AccessListCheck) and isinstance(again[1], RateLimitCheck)
        assert again[0].expression.program is programs[0] and again[1].key.program is programs[1]
    engine.update(mixer_mesh(blocked_users(make_meta, "jason"), quota(make_meta, requests=100), version=2))
    assert engine.version == 2
    recompiled = engine.policies_for("127.0.0.21")
    assert recompiled is not first
    assert isinstance(recompiled[0], AccessListCheck) and recompiled[0].expression.program is not programs[0]


def test_quota_survives_an_update_with_unchanged_content(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    engine = PolicyEngine(mixer_mesh(quota(make_meta)), clock=FakeClock())
    assert decide(engine, make_check_request()) is ALLOWED
    engine.update(mixer_mesh(quota(make_meta), version=2))
    assert decide(engine, make_check_request()).result == "rate_limited"
    engine.update(mixer_mesh(version=3))  # removed: counters dropped
    engine.update(mixer_mesh(quota(make_meta), version=4))
    assert decide(engine, make_check_request()) is ALLOWED


def test_uncompilable_policy_denies_every_check(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest
) -> None:
    broken = RateLimit(meta=make_meta("RateLimit", "broken"), selector=REVIEWS, key="nope.x", requests=1, per=1.0)
    decision = decide(PolicyEngine(mixer_mesh(broken)), make_check_request())
    assert (decision.allowed, decision.result, decision.status) == (False, "error", 403)
    assert decision.reason.startswith("RateLimit default/broken: unknown attribute 'nope' in CEL expression 'nope.x'")


def test_entries_files_follow_the_snapshot(
    make_meta: MakeMeta, mixer_mesh: MakeMesh, make_check_request: MakeRequest, tmp_path: Path
) -> None:
    path = tmp_path / "users.txt"
    path.write_text("jason\n")
    engine = PolicyEngine(mixer_mesh(blocked_users(make_meta, entries_file=str(path))))
    assert engine.entries_files.paths == (str(path),)
    assert decide(engine, make_check_request(headers={"x-user": "jason"})).result == "denied"
    engine.update(mixer_mesh(version=2))
    assert not engine.entries_files.paths


def test_header_value_is_printable_ascii() -> None:
    assert header_value('a "b" c') == 'a "b" c'
    assert header_value("straße\n") == "stra\\xdfe\\x0a"


def test_engine_without_snapshot_allows_and_is_not_ready(make_check_request: MakeRequest) -> None:
    engine = PolicyEngine()
    assert not engine.ready
    assert decide(engine, make_check_request()) is ALLOWED
