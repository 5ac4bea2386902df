"""RateLimit checks: Istio Mixer's in-memory quota (``memquota`` adapter, fixed-window algorithm) over one compiled
RateLimit.

Each request the optional CEL ``match`` accepts is counted against the value of the CEL ``key`` (by default the
caller's principal). A key's window starts at its first request and lasts ``per`` seconds; within it at most
``requests`` requests pass (or the ``overrides`` entry for that key value). The next one is answered 429 with
``retry-after``: the whole seconds until the window ends, at least 1. Requests denied do not count, so a key
recovers exactly when its window ends. A ``match`` that needs an absent value (``mixer.evaluation``) is false: the
request is not counted. A ``key`` that is absent counts in one bucket shared by every request without a value
(not the bucket of the key ``""``), with the policy's ``requests``. A ``match`` or ``key`` that cannot be
evaluated (a type error, a bad function call) denies the request (403, an evaluation error), as an AccessList does.

What ``match`` and ``key`` evaluate to is cached per compiled RateLimit (``mixer.referenced``), keyed by the
request's values of the attributes the two expressions read: a request whose values were seen before is counted
in the bucket found then, without CEL. Only the evaluation is cached, never the decision: every request is counted
(``QuotaCounters.take``), so the quota is exact. Evaluation errors are not cached.

Counters live in memory, in a ``QuotaStore`` keyed by policy and content hash (or, with ``--quota-store``, in Redis,
shared by every Mixer process: ``mixer.shared_quota`` and ``check_shared``): a config reload that leaves a
RateLimit's spec unchanged keeps its counters, a changed spec starts fresh. Expired windows are purged at most
once per window length, on access, so memory stays bounded by the keys seen in one window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from mixer.access_list import Denial, policy_name
from mixer.evaluation import Absent, CompiledExpression, evaluation_text, quoted_value
from mixer.redis_client import RedisError
from mixer.referenced import DecisionCache, Miss, ReferencedAttributes
from mixer.shared_quota import SharedQuota
from pilot.config.types import RateLimit

__all__ = ["Clock", "QuotaCounters", "QuotaKey", "QuotaStore", "RateLimitCheck"]

log = structlog.get_logger(__name__)

Clock = Callable[[], float]  # monotonic seconds


class _Window:
    """One key's current window (mutable: counted in place on every request)."""

    __slots__ = ("count", "ends")

    def __init__(self, ends: float) -> None:
        self.ends = ends
        self.count = 0


QuotaKey = str | None  # a key's value; None: the key is absent (one bucket for every request without a value)
_Bucket = tuple[str | Absent, int]  # the key a matched request is counted in, and its limit


class QuotaCounters:
    """The fixed windows of one RateLimit: key value -> requests counted in its current window."""

    def __init__(self, per: float, clock: Clock) -> None:
        self.per = per
        self._clock = clock
        self._windows: dict[QuotaKey, _Window] = {}
        self._next_purge = clock() + per

    def take(self, key: QuotaKey, limit: int) -> float | None:
        """Count one request of ``key``: None when it is within ``limit``, else the seconds until its window ends
        (the request is then not counted)."""
        now = self._clock()
        if now >= self._next_purge:
            self._purge(now)
        window = self._windows.get(key)
        if window is None or now >= window.ends:
            window = self._windows[key] = _Window(now + self.per)
        if window.count >= limit:
            return window.ends - now
        window.count += 1
        return None

    def __len__(self) -> int:
        return len(self._windows)

    def _purge(self, now: float) -> None:
        expired = [key for key, window in self._windows.items() if now >= window.ends]
        for key in expired:
            del self._windows[key]
        self._next_purge = now + self.per


class QuotaStore:
    """Every RateLimit's counters, by (policy key, content hash), kept across snapshots while the policy is."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._counters: dict[tuple[str, str], QuotaCounters] = {}

    def counters(self, policy: RateLimit) -> QuotaCounters:
        identity = (str(policy.meta.key), policy.meta.content_hash)
        counters = self._counters.get(identity)
        if counters is None or counters.per != policy.per:
            counters = self._counters[identity] = QuotaCounters(policy.per, self.clock)
        return counters

    def retain(self, policies: Iterable[RateLimit]) -> None:
        """Drop the counters of every RateLimit not in ``policies`` (those of the current snapshot)."""
        keep = {(str(p.meta.key), p.meta.content_hash) for p in policies}
        for identity in [identity for identity in self._counters if identity not in keep]:
            del self._counters[identity]


class RateLimitCheck:
    """One RateLimit compiled for checks: its CEL programs (compiled here, once), its counters and the cache of
    which bucket requests go to, by the values of the attributes ``match`` and ``key`` read."""

    def __init__(self, policy: RateLimit, counters: QuotaCounters) -> None:
        self.policy = policy
        self.name = policy_name(policy)
        self.counters = counters
        self.match = CompiledExpression(policy.match) if policy.match else None
        self.key = CompiledExpression(policy.key)
        self.overrides: dict[str, int] = {override.key: override.requests for override in policy.overrides}
        match_paths = self.match.referenced.paths if self.match is not None else ()
        self.referenced = ReferencedAttributes((*match_paths, *self.key.referenced.paths))
        self.buckets: DecisionCache[_Bucket | None] = DecisionCache()
        # the counters' name in a shared store: kept across reloads that leave the spec unchanged, as in memory
        self.identity = f"{policy.meta.key.namespace}/{policy.meta.key.name}|{policy.meta.content_hash}"

    def check(self, attributes: Mapping[str, Any]) -> Denial | None:
        """None when the request passes (and was counted, if it matched); the Denial otherwise."""
        bucket = self._cached_bucket(attributes)
        if bucket is None or isinstance(bucket, Denial):
            return bucket
        return self._take(*bucket)

    def _cached_bucket(self, attributes: Mapping[str, Any]) -> _Bucket | Denial | None:
        """``bucket``, from the cache when the attributes ``match`` and ``key`` read were seen before."""
        key = self.referenced.key(attributes)
        bucket = self.buckets.get(key)
        if bucket is Miss.MISS:
            evaluated = self.bucket(attributes)
            if isinstance(evaluated, Denial):
                return evaluated
            self.buckets.put(key, evaluated)
            return evaluated
        return bucket

    def bucket(self, attributes: Mapping[str, Any]) -> _Bucket | Denial | None:
        """Where ``match`` and ``key`` put the request: its bucket and limit, None when it is not counted, a
        Denial when they cannot be evaluated."""
        policy = self.policy
        if self.match is not None:
            try:
                matched = self.match.evaluate(attributes)
            except Exception as exc:  # CEL raises TypeError, RuntimeError, ZeroDivisionError, ...
                return self._error(f"match {policy.match} failed: {type(exc).__name__} {exc}")
            if isinstance(matched, Absent):
                return None
            if not isinstance(matched, bool):
                return self._error(f"match {policy.match} evaluated to {type(matched).__name__}, expected a bool")
            if not matched:
                return None
        try:
            result = self.key.evaluate(attributes)
            key = result if isinstance(result, Absent) else evaluation_text(result)
        except Exception as exc:
            return self._error(f"key {policy.key} failed: {type(exc).__name__} {exc}")
        limit = policy.requests if isinstance(key, Absent) else self.overrides.get(key, policy.requests)
        return key, limit

    async def check_shared(self, attributes: Mapping[str, Any], quota: SharedQuota) -> Denial | None:
        """``check``, counting in the shared store ``quota`` (``mixer.shared_quota``) instead of this process's
        counters; a store that cannot answer denies (an evaluation error: the limit is never weaker than written)."""
        bucket = self._cached_bucket(attributes)
        if bucket is None or isinstance(bucket, Denial):
            return bucket
        value, limit = bucket
        try:
            wait = await quota.take(self.identity, None if isinstance(value, Absent) else value, limit, self.policy.per)
        except RedisError as exc:
            return self._error(f"the shared quota store cannot count the request: {exc}")
        return None if wait is None else self._denial(value, limit, wait)

    def _take(self, key: str | Absent, limit: int) -> Denial | None:
        """Count the request in ``key``'s bucket (an absent key: the one bucket without a value)."""
        wait = self.counters.take(None if isinstance(key, Absent) else key, limit)
        return None if wait is None else self._denial(key, limit, wait)

    def _denial(self, key: str | Absent, limit: int, wait: float) -> Denial:
        """The 429 of a request over ``limit`` in ``key``'s bucket, ``wait`` seconds before its window ends."""
        retry_after = max(1, math.ceil(wait))
        shown = f"with no value ({key})" if isinstance(key, Absent) else quoted_value(key)
        reason = (
            f"RateLimit {self.name}: {self.policy.key} {shown} exceeded {limit} requests per {self.policy.per:g}s; "
            f"retry after {retry_after}s"
        )
        value = "" if isinstance(key, Absent) else key
        return Denial(result="rate_limited", status=429, reason=reason, value=value, retry_after=retry_after)

    def _error(self, why: str) -> Denial:
        log.warning("rate limit cannot decide, denying", policy=self.name, error=why)
        return Denial(result="error", status=403, reason=f"RateLimit {self.name}: {why}; denied")
