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


def attributes(principal: str = "cluster.local/ns/default/sa/productpage", method: str = "GET") -> dict[str, Any]:
    return {
        "source": {"principal": principal, "ip": "127.0.0.11"},
        "destination": {"ip": "127.0.0.21"},
        "request": {"method": method, "headers": {}},
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


def test_evaluation_errors_deny(rate_limit: Callable[..., RateLimitCheck]) -> None:
    denial = rate_limit(key='request.headers["x-api-key"]').check(attributes())
    assert denial is not None
    assert (denial.result, denial.status) == ("error", 403)
    assert denial.reason.startswith('RateLimit default/quota: key request.headers["x-api-key"] failed: KeyError')
    denial = rate_limit(match="request.method").check(attributes())
    assert denial is not None
    assert denial.reason == "RateLimit default/quota: match request.method evaluated to str, expected a bool; denied"


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
