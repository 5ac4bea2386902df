"""Kubernetes service-account tokens checked with the TokenReview API (``authentication.k8s.io/v1``), as Istio's CA
checks them: ``spec.audiences=[<audience>]``, the answer judged by ``kube_tokens.identity_from_review``.

The official client is synchronous: every review runs in a worker thread, never on the event loop. Successful
reviews are cached (by the token's sha256, never the token) for ``--token-review-cache-ttl`` and never past the
token's ``exp``; concurrent requests with the same token share one review. So an SDS reconnect storm of N streams
with one pod's token asks the API server once. Refusals are not cached (a review that failed to reach the API
server must not stick); the early refusals of ``KubeTokenClaims.precheck`` never reach it at all.

What Citadel needs from RBAC for this: ``create`` on ``tokenreviews`` (group ``authentication.k8s.io``, cluster
scope), which the ``system:auth-delegator`` ClusterRole grants.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import structlog
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from citadel.errors import KubeApiError
from citadel.kube_tokens import DEFAULT_TOKEN_AUDIENCE, KubeTokenClaims, ReviewResult, identity_from_review
from citadel.metrics import CitadelMetrics
from citadel.tokens import Identity

__all__ = ["DEFAULT_REVIEW_CACHE_TTL", "Clock", "Review", "ReviewCache", "TokenReviewer", "kube_token_review"]

log = structlog.get_logger(__name__)

Clock: TypeAlias = Callable[[], datetime]
Review: TypeAlias = Callable[[str, str], ReviewResult]  # (token, audience) -> the API server's answer; blocking

DEFAULT_REVIEW_CACHE_TTL = timedelta(minutes=1)
_REVIEW_TIMEOUT_SECONDS = 5.0
_MAX_CACHED = 16384


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def kube_token_review(api: client.ApiClient, *, timeout: float = _REVIEW_TIMEOUT_SECONDS) -> Review:
    """A blocking ``Review`` through ``api``: POST a TokenReview, return its status. KubeApiError when the API
    server cannot answer (its reason never holds the token)."""
    authentication = client.AuthenticationV1Api(api)

    def review(token: str, audience: str) -> ReviewResult:
        body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=[audience]))
        try:
            answer = authentication.create_token_review(body, _request_timeout=timeout)
        except ApiException as exc:
            hint = (
                ": Citadel's service account needs create on tokenreviews (bind ClusterRole system:auth-delegator)"
                if exc.status == 403
                else ""
            )
            raise KubeApiError(f"TokenReview failed: {exc.status} {exc.reason}{hint}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeApiError(
                f"TokenReview failed: cannot reach the Kubernetes API server ({type(exc).__name__})"
            ) from None
        return _review_result(answer.status)

    return review


def _review_result(status: client.V1TokenReviewStatus | None) -> ReviewResult:
    if status is None:
        return ReviewResult(authenticated=False, error="the TokenReview answer has no status")
    user = status.user
    return ReviewResult(
        authenticated=bool(status.authenticated),
        error=status.error or "",
        audiences=tuple(status.audiences or ()),
        username=(user.username if user is not None else None) or "",
    )


class ReviewCache:
    """Identities of reviewed tokens, by the token's sha256, each until ``min(exp, reviewed + ttl)``."""

    def __init__(self, *, ttl: timedelta, clock: Clock = _utcnow, max_entries: int = _MAX_CACHED) -> None:
        if ttl < timedelta(0) or max_entries < 1:
            raise ValueError(f"ttl must not be negative and max_entries positive, got {ttl}, {max_entries}")
        self.ttl = ttl
        self.clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, tuple[Identity, datetime]] = {}  # insertion order: oldest first

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Identity | None:
        key = _digest(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock() >= entry[1]:
            del self._entries[key]
            return None
        return entry[0]

    def put(self, token: str, identity: Identity) -> None:
        now = self.clock()
        until = min(identity.expires_at, now + self.ttl)
        if until <= now:
            return
        if len(self._entries) >= self._max_entries:
            self._evict(now)
        self._entries[_digest(token)] = (identity, until)

    def _evict(self, now: datetime) -> None:
        for key in [key for key, (_, until) in self._entries.items() if until <= now]:
            del self._entries[key]
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]


class TokenReviewer:
    """The identity of a Kubernetes service-account token: early refusals, the cache, one review per token."""

    def __init__(
        self,
        review: Review,
        *,
        trust_domain: str,
        audience: str = DEFAULT_TOKEN_AUDIENCE,
        cache: ReviewCache | None = None,
        metrics: CitadelMetrics | None = None,
    ) -> None:
        if not audience:
            raise ValueError("audience must not be empty")
        self.audience = audience
        self.trust_domain = trust_domain
        self._review = review
        self._cache = cache if cache is not None else ReviewCache(ttl=DEFAULT_REVIEW_CACHE_TTL)
        self._metrics = metrics
        self._pending: dict[str, asyncio.Task[Identity]] = {}

    async def identity(self, token: str, claims: dict[str, Any]) -> Identity:
        """The identity ``token`` (whose unverified ``claims`` are given) proves. TokenError when it proves none,
        KubeApiError when the API server could not be asked."""
        expires_at = KubeTokenClaims.from_claims(claims).precheck(audience=self.audience, now=self._cache.clock())
        cached = self._cache.get(token)
        if cached is not None:
            self._count("cached")
            return cached
        key = _digest(token)
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.create_task(self._reviewed(token, expires_at), name="token-review")
            self._pending[key] = pending
            pending.add_done_callback(lambda task: self._finished(key, task))
        return await asyncio.shield(pending)

    async def _reviewed(self, token: str, expires_at: datetime) -> Identity:
        try:
            result = await asyncio.to_thread(self._review, token, self.audience)
        except KubeApiError:
            self._count("failed")
            raise
        try:
            identity = identity_from_review(
                result, audience=self.audience, trust_domain=self.trust_domain, expires_at=expires_at
            )
        except Exception:
            self._count("refused")
            raise
        self._count("authenticated")
        self._cache.put(token, identity)
        log.info(
            "service-account token reviewed",
            spiffe_id=identity.spiffe_id,
            token_expires_at=expires_at.isoformat(),
            cached_for=str(min(self._cache.ttl, expires_at - self._cache.clock())),
        )
        return identity

    def _finished(self, key: str, task: asyncio.Task[Identity]) -> None:
        if self._pending.get(key) is task:
            del self._pending[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone (their RPCs cancelled)

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.token_reviewed(result)
