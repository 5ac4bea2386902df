"""RateLimit quota semantics (mixer/rate_limit.py): fixed windows, overrides, match, retry-after, purging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mixer.access_list import Denial
from mixer.rate_limit import QuotaCounters, QuotaStore, RateLimitCheck
from pilot.config.origin import Origin
from pilot.config.types import ConfigKey, ConfigMeta, RateLimit, RateLimitOverride
from tests.mixer_builders import FakeClock

MakeMeta = Callable[..., ConfigMeta]


def attributes(
    principal: str = "cluster.local/ns/default/sa/productpage", method: str = "GET", api_key: str | None = None
) -> dict[str, Any]:
    return {
        "source": {"principal": principal, "ip": "127.0.0.11"},
        "destination": {"ip": "127.0.0.21"},
        "request": {"method": method, "headers": {} if api_key is None else {"x-api-key": api_key}},
        "connection": {"mtls": bool(principal)},
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rate_limit(make_meta: MakeMeta, clock: FakeClock) -> Callable[..., RateLimitCheck]:
    """``rate_limit(requests=2, per=10.0, ...)``: RateLimit default/quota compiled on its own QuotaStore."""

    def make(*, requests: int = 2, per: float = 10.0, **fields: Any) -> RateLimitCheck:
        policy = RateLimit(meta=make_meta("RateLimit", "quota"), requests=requests, per=per, **fields)
        return RateLimitCheck(policy, QuotaStore(clock).counters(policy))

    return make


def test_limit_per_window_then_429(rate_limit: Callable[..., RateLimitCheck], clock: FakeClock) -> None:
    check = rate_limit(requests=2, per=10.0)
    assert check.check(attributes()) is None
    clock.now += 3.2
    assert check.check(attributes()) is None
    denial = check.check(attributes())
    assert denial == Denial(
        result="rate_limited",
        status=429,
        reason=(
            'RateLimit default/quota: source.principal "cluster.local/ns/default/sa/productpage" exceeded 2 requests '
            "per 10s; retry after 7s"
        ),
        value="cluster.local/ns/default/sa/productpage",
        retry_after=7,  # the window started at the first request: 10 - 3.2 = 6.8 -> 7
    )


def test_window_recovers_when_it_ends(rate_limit: Callable[..., RateLimitCheck], clock: FakeClock) -> None:
    check = rate_limit(requests=1, per=5.0)
    assert check.check(attributes()) is None
    assert check.check(attributes()) is not None
    clock.now += 4.99
    assert check.check(attributes()) is not None  # denied requests do not extend or count
    clock.now += 0.01
    assert check.check(attributes()) is None
    assert check.check(attributes()) is not None


def test_retry_after_is_at_least_one_second(rate_limit: Callable[..., RateLimitCheck], clock: FakeClock) -> None:
    check = rate_limit(requests=1, per=1.0)
    check.check(attributes())
    clock.now += 0.9999
    denial = check.check(attributes())
    assert denial is not None and denial.retry_after == 1
    check = rate_limit(requests=1, per=60.0)
    check.check(attributes())
    clock.now += 59.999
    denial = check.check(attributes())
    assert denial is not None and denial.retry_after == 1


def test_keys_are_counted_separately(rate_limit: Callable[..., RateLimitCheck]) -> None:
    check = rate_limit(requests=1)
    assert check.check(attributes("cluster.local/ns/a/sa/x")) is None
    assert check.check(attributes("cluster.local/ns/b/sa/y")) is None
    assert check.check(attributes("cluster.local/ns/a/sa/x")) is not None
    assert check.check(attributes("")) is None  # plaintext callers share the key ""
    assert check.check(attributes("")) is not None


def test_override_for_one_key(rate_limit: Callable[..., RateLimitCheck]) -> None:
    vip = "cluster.local/ns/default/sa/vip"
    check = rate_limit(requests=1, overrides=(RateLimitOverride(key=vip, requests=3),))
    assert [check.check(attributes(vip)) is None for _ in range(4)] == [True, True, True, False]
    denial = check.check(attributes(vip))
    assert denial is not None and "exceeded 3 requests" in denial.reason
    assert [check.check(attributes()) is None for _ in range(2)] == [True, False]


def test_override_to_zero_blocks_a_key(rate_limit: Callable[..., RateLimitCheck]) -> None:
    check = rate_limit(requests=5, overrides=(RateLimitOverride(key="blocked", requests=0),), key='"blocked"')
    assert check.check(attributes()) is not None


def test_match_limits_only_matching_requests(rate_limit: Callable[..., RateLimitCheck]) -> None:
    check = rate_limit(requests=1, match='request.method == "POST"')
    assert check.check(attributes(method="POST")) is None
    assert check.check(attributes(method="POST")) is not None
    assert all(check.check(attributes(method="GET")) is None for _ in range(5))


def test_custom_key_expression(rate_limit: Callable[..., RateLimitCheck]) -> None:
    check = rate_limit(requests=1, key="source.ip")
    assert check.check(attributes("a")) is None
    denial = check.check(attributes("b"))  # same source.ip
    assert denial is not None and denial.value == "127.0.0.11"


@pytest.mark.parametrize(
    ("match", "counted"),
    [
        ('request.headers["x-tier"] == "free"', False),
        ('!(request.headers["x-tier"] == "paid")', False),
        ('request.headers["x-tier"] == "free" || request.method == "GET"', True),
        ('request.method == "POST" && request.headers["x-tier"] == "free"', False),
        ('"x-tier" in request.headers && request.headers["x-tier"] == "free"', False),
        ("!has(request.headers.x_tier)", True),
    ],
    ids=[
        "absent-is-not-a-match",
        "negated-absent-is-not-a-match",
        "or-decided-by-the-other-side",
        "and-decided-by-the-other-side",
        "guarded",
        "presence-test",
    ],
)
def test_match_on_an_absent_attribute(rate_limit: Callable[..., RateLimitCheck], match: str, counted: bool) -> None:
    check = rate_limit(requests=1, match=match)
    assert check.check(attributes()) is None
    assert (check.check(attributes()) is None) is not counted
    assert len(check.counters) == int(counted)


def test_absent_key_counts_in_one_shared_bucket(rate_limit: Callable[..., RateLimitCheck]) -> None:
    key = 'request.headers["x-api-key"]'
    check = rate_limit(requests=1, key=key, overrides=(RateLimitOverride(key="", requests=5),))
    assert check.check(attributes()) is None
    assert check.check(attributes(principal="cluster.local/ns/other/sa/x")) == Denial(
        result="rate_limited",
        status=429,
        reason=(
            f'RateLimit default/quota: {key} with no value (no such key "x-api-key") exceeded 1 requests per 10s; '
            "retry after 10s"
        ),
        value="",
        retry_after=10,
    )
    assert all(check.check(attributes(api_key="")) is None for _ in range(5))  # the key "" is another bucket
    assert check.check(attributes(api_key="k1")) is None
    assert len(check.counters) == 3


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"key": "request.method + 1"}, "key request.method + 1 failed: TypeError Unsupported operation: string + int"),
        ({"key": "[source.ip][1]"}, "key [source.ip][1] failed: IndexError index out of bounds: 1"),
        ({"key": "request.headers"}, "key request.headers failed: TypeError evaluated to dict, expected a string"),
        ({"match": "request.method + 1 == 2"}, "match request.method + 1 == 2 failed: TypeError Unsupported operation"),
        ({"match": "int(request.method) == 1"}, "match int(request.method) == 1 failed: RuntimeError Function 'int'"),
        ({"match": "request.method"}, "match request.method evaluated to str, expected a bool; denied"),
    ],
    ids=[
        "key-type-error",
        "key-index-out-of-range",
        "key-not-a-string",
        "match-type-error",
        "match-bad-call",
        "match-not-a-bool",
    ],
)
def test_evaluation_errors_deny(rate_limit: Callable[..., RateLimitCheck], fields: dict[str, str], reason: str) -> None:
    denial = rate_limit(**fields).check(attributes())
    assert denial is not None
    assert (denial.result, denial.status) == ("error", 403)
    assert denial.reason.startswith(f"RateLimit default/quota: {reason}"), denial.reason
    assert denial.reason.endswith("; denied")


def test_expired_windows_are_purged(clock: FakeClock) -> None:
    counters = QuotaCounters(10.0, clock)
    for n in range(100):
        counters.take(f"k{n}", 5)
    assert len(counters) == 100
    clock.now += 10.0
    counters.take("fresh", 5)
    assert len(counters) == 1


def test_counters_survive_reloads_with_the_same_content(make_meta: MakeMeta, clock: FakeClock) -> None:
    store = QuotaStore(clock)
    policy = RateLimit(meta=make_meta("RateLimit", "quota"), requests=1, per=10.0)
    first = RateLimitCheck(policy, store.counters(policy))
    assert first.check(attributes()) is None
    store.retain([policy])
    again = RateLimitCheck(policy, store.counters(policy))
    assert again.check(attributes()) is not None
    key = ConfigKey(kind="RateLimit", namespace="default", name="quota")
    meta = ConfigMeta(key=key, origin=Origin(file="quota.yaml", line=1), content_hash="other")
    changed = RateLimit(meta=meta, requests=1, per=10.0)
    store.retain([changed])
    fresh = RateLimitCheck(changed, store.counters(changed))
    assert fresh.check(attributes()) is None
