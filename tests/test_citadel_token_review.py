"""citadel.token_review and the Authenticator: the review cache (an injected clock), one review per token however
many streams ask at once, refusals never cached, and which verifier a token goes to."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from citadel import token_review
from citadel.authn import Authenticator
from citadel.errors import KubeApiError, TokenError
from citadel.kube_tokens import ReviewResult
from citadel.metrics import CitadelMetrics
from citadel.token_review import ReviewCache, TokenReviewer, kube_token_review
from citadel.tokens import Identity, issue_token, unverified_jwt
from tests.citadel_builders import kube_claims, kube_jwt

NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
KEY = ec.generate_private_key(ec.SECP256R1())


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def identity(expires_at: datetime = NOW + timedelta(hours=1), account: str = "reviews") -> Identity:
    return Identity(trust_domain="cluster.local", namespace="bookinfo", service_account=account, expires_at=expires_at)


# ------------------------------------------------------------------------------------------------ the cache


@pytest.mark.parametrize(
    ("ttl", "token_left", "later", "cached"),
    [
        (MINUTE, timedelta(hours=1), timedelta(seconds=59), True),
        (MINUTE, timedelta(hours=1), MINUTE, False),
        (MINUTE, timedelta(seconds=10), timedelta(seconds=9), True),
        (MINUTE, timedelta(seconds=10), timedelta(seconds=10), False),
        (timedelta(0), timedelta(hours=1), timedelta(0), False),
    ],
    ids=["within-ttl", "ttl-passed", "before-exp", "exp-before-ttl", "ttl-zero-caches-nothing"],
)
def test_a_review_is_reused_until_the_ttl_or_the_tokens_expiry_whichever_is_first(
    ttl: timedelta, token_left: timedelta, later: timedelta, cached: bool
) -> None:
    clock = Clock()
    cache = ReviewCache(ttl=ttl, clock=clock)
    proven = identity(expires_at=NOW + token_left)
    cache.put("token", proven)
    clock.now = NOW + later
    assert (cache.get("token") == proven) is cached
    assert cache.get("another token") is None


def test_a_full_cache_drops_expired_entries_then_the_oldest() -> None:
    clock = Clock()
    cache = ReviewCache(ttl=MINUTE, clock=clock, max_entries=3)
    cache.put("short", identity(expires_at=NOW + timedelta(seconds=5)))
    cache.put("a", identity())
    cache.put("b", identity())
    clock.now = NOW + timedelta(seconds=6)
    cache.put("c", identity(expires_at=NOW + timedelta(hours=1)))  # "short" has expired: dropped
    assert len(cache) == 3 and cache.get("a") is not None
    cache.put("d", identity())  # full of live entries: the oldest ("a") goes
    assert cache.get("a") is None
    assert [cache.get(t) is not None for t in ("b", "c", "d")] == [True, True, True]


def test_the_cache_holds_no_token() -> None:
    cache = ReviewCache(ttl=MINUTE)
    cache.put("secret-token-text", identity())
    assert "secret-token-text" not in repr(vars(cache))


# ------------------------------------------------------------------------------------------------ the reviewer


@dataclass
class FakeApiServer:
    """A blocking ``Review`` that answers ``results`` in turn (or raises them), counting calls; ``gate`` holds every
    review until set (so concurrent requests pile up)."""

    results: list[ReviewResult | Exception] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    def __call__(self, token: str, audience: str) -> ReviewResult:
        self.calls.append((token, audience))
        self.gate.wait(5)
        result = self.results[min(len(self.calls), len(self.results)) - 1]
        if isinstance(result, Exception):
            raise result
        return result


AUTHENTICATED = ReviewResult(
    authenticated=True, audiences=("istio-ca",), username="system:serviceaccount:bookinfo:reviews"
)
REFUSED = ReviewResult(authenticated=False, error="invalid bearer token")


def reviewer(api: FakeApiServer, **kwargs: Any) -> tuple[TokenReviewer, CitadelMetrics]:
    metrics = CitadelMetrics()
    kwargs.setdefault("cache", ReviewCache(ttl=MINUTE))
    return TokenReviewer(api, trust_domain="cluster.local", metrics=metrics, **kwargs), metrics


def reviews(metrics: CitadelMetrics) -> dict[str, float]:
    text = metrics.exposition().decode()
    return {
        m["result"]: float(m["value"])
        for m in re.finditer(r'token_reviews_total\{result="(?P<result>\w+)"\} (?P<value>\S+)', text)
    }


async def test_a_token_is_reviewed_with_citadels_audience_then_answered_from_the_cache() -> None:
    api = FakeApiServer([AUTHENTICATED])
    judge, metrics = reviewer(api)
    token = kube_jwt()

    first = await judge.identity(token, unverified_jwt(token)[1])
    second = await judge.identity(token, unverified_jwt(token)[1])

    assert first == second
    assert first.spiffe_id == "spiffe://cluster.local/ns/bookinfo/sa/reviews"
    assert first.expires_at == datetime.fromtimestamp(kube_claims_exp(token), UTC)
    assert api.calls == [(token, "istio-ca")]
    assert reviews(metrics) == {"authenticated": 1.0, "cached": 1.0}


def kube_claims_exp(token: str) -> int:
    exp: int = unverified_jwt(token)[1]["exp"]
    return exp


async def test_streams_arriving_together_with_one_token_share_one_review() -> None:
    api = FakeApiServer([AUTHENTICATED])
    api.gate.clear()
    judge, metrics = reviewer(api)
    token = kube_jwt()
    waiting = [asyncio.create_task(judge.identity(token, unverified_jwt(token)[1])) for _ in range(50)]
    await asyncio.sleep(0.05)
    api.gate.set()
    identities = await asyncio.gather(*waiting)
    assert len(set(identities)) == 1
    assert len(api.calls) == 1
    assert reviews(metrics) == {"authenticated": 1.0}


async def test_a_waiter_that_goes_away_does_not_cancel_the_review_for_the_others() -> None:
    api = FakeApiServer([AUTHENTICATED])
    api.gate.clear()
    judge, _ = reviewer(api)
    token = kube_jwt()
    leaving = asyncio.create_task(judge.identity(token, unverified_jwt(token)[1]))
    staying = asyncio.create_task(judge.identity(token, unverified_jwt(token)[1]))
    await asyncio.sleep(0.05)
    leaving.cancel()
    api.gate.set()
    assert (await staying).service_account == "reviews"
    assert len(api.calls) == 1


@pytest.mark.parametrize(
    ("answer", "error", "result"),
    [
        (REFUSED, TokenError, "refused"),
        (KubeApiError("TokenReview failed: 503 Service Unavailable"), KubeApiError, "failed"),
    ],
    ids=["refused", "api-server-unavailable"],
)
async def test_refusals_and_failures_are_not_cached(
    answer: ReviewResult | Exception, error: type[Exception], result: str
) -> None:
    api = FakeApiServer([answer, AUTHENTICATED])
    judge, metrics = reviewer(api)
    token = kube_jwt()
    with pytest.raises(error):
        await judge.identity(token, unverified_jwt(token)[1])
    assert (await judge.identity(token, unverified_jwt(token)[1])).service_account == "reviews"
    assert len(api.calls) == 2
    assert reviews(metrics) == {result: 1.0, "authenticated": 1.0}


async def test_an_early_refusal_never_reaches_the_api_server() -> None:
    api = FakeApiServer([AUTHENTICATED])
    judge, metrics = reviewer(api)
    legacy = kube_jwt({"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:bookinfo:reviews"})
    with pytest.raises(TokenError, match="legacy service-account token"):
        await judge.identity(legacy, unverified_jwt(legacy)[1])
    assert api.calls == []
    assert reviews(metrics) == {}


async def test_a_cached_identity_ends_when_its_token_expires() -> None:
    clock = Clock(datetime.now(UTC))
    api = FakeApiServer([AUTHENTICATED])
    judge, _ = reviewer(api, cache=ReviewCache(ttl=timedelta(hours=2), clock=clock))
    token = kube_jwt(kube_claims(exp=clock.now + timedelta(minutes=10)))
    await judge.identity(token, unverified_jwt(token)[1])
    clock.now += timedelta(minutes=10)
    with pytest.raises(TokenError, match="service-account token expired"):
        await judge.identity(token, unverified_jwt(token)[1])
    assert len(api.calls) == 1


# ------------------------------------------------------------------------------------------------ the API call


class FakeAuthenticationApi:
    answer: client.V1TokenReview | Exception

    def __init__(self, api: object) -> None:
        self.api = api

    def create_token_review(self, body: client.V1TokenReview, **kwargs: Any) -> client.V1TokenReview:
        assert body.spec.audiences == ["istio-ca"]
        assert kwargs["_request_timeout"] > 0
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def authentication_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeAuthenticationApi]]:
    monkeypatch.setattr(token_review.client, "AuthenticationV1Api", FakeAuthenticationApi)
    yield FakeAuthenticationApi


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            client.V1TokenReviewStatus(
                authenticated=True,
                audiences=["istio-ca"],
                user=client.V1UserInfo(username="system:serviceaccount:a:b"),
            ),
            ReviewResult(authenticated=True, audiences=("istio-ca",), username="system:serviceaccount:a:b"),
        ),
        (
            client.V1TokenReviewStatus(error="invalid bearer token"),
            ReviewResult(authenticated=False, error="invalid bearer token"),
        ),
        (None, ReviewResult(authenticated=False, error="the TokenReview answer has no status")),
    ],
    ids=["authenticated", "refused", "no-status"],
)
def test_the_api_servers_answer_becomes_a_review_result(
    authentication_api: type[FakeAuthenticationApi], status: client.V1TokenReviewStatus | None, expected: ReviewResult
) -> None:
    authentication_api.answer = client.V1TokenReview(spec=client.V1TokenReviewSpec(token="t"), status=status)
    assert kube_token_review(object())("t", "istio-ca") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (ApiException(status=403, reason="Forbidden"), "403 Forbidden: Citadel's service account needs create on"),
        (ApiException(status=500, reason="Internal Server Error"), "TokenReview failed: 500 Internal Server Error"),
        (ConnectionRefusedError(111, "refused"), "cannot reach the Kubernetes API server (ConnectionRefusedError)"),
    ],
    ids=["forbidden", "server-error", "unreachable"],
)
def test_an_api_server_that_cannot_answer_is_unavailable_not_a_verdict(
    authentication_api: type[FakeAuthenticationApi], failure: Exception, reason: str
) -> None:
    authentication_api.answer = failure
    with pytest.raises(KubeApiError) as failed:
        kube_token_review(object())("the-token", "istio-ca")  # type: ignore[arg-type]
    assert reason in failed.value.reason
    assert "the-token" not in failed.value.reason


# ------------------------------------------------------------------------------------------------ the authenticator


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def meshplane_token(key: ec.EllipticCurvePrivateKey = KEY) -> str:
    return issue_token(key, trust_domain="cluster.local", namespace="vm", service_account="db", ttl=timedelta(hours=1))


@pytest.mark.parametrize("with_kubernetes", [True, False], ids=["kubernetes-on", "kubernetes-off"])
async def test_a_meshplane_token_is_verified_with_citadels_key_only(with_kubernetes: bool) -> None:
    api = FakeApiServer([AUTHENTICATED])
    judge = reviewer(api)[0] if with_kubernetes else None
    authenticator = Authenticator(KEY.public_key(), trust_domain="cluster.local", kubernetes=judge)
    assert (await authenticator.identity(bearer(meshplane_token()))).spiffe_id == "spiffe://cluster.local/ns/vm/sa/db"
    with pytest.raises(TokenError, match="bad signature"):
        await authenticator.identity(bearer(meshplane_token(ec.generate_private_key(ec.SECP256R1()))))
    assert api.calls == [], "a meshplane token never goes to the API server"


async def test_a_kubernetes_token_goes_to_the_review() -> None:
    api = FakeApiServer([AUTHENTICATED])
    authenticator = Authenticator(KEY.public_key(), trust_domain="cluster.local", kubernetes=reviewer(api)[0])
    proven = await authenticator.identity(bearer(kube_jwt()))
    assert proven.spiffe_id == "spiffe://cluster.local/ns/bookinfo/sa/reviews"
    assert len(api.calls) == 1


async def test_without_kubernetes_access_a_kubernetes_token_is_refused_saying_what_is_missing() -> None:
    authenticator = Authenticator(KEY.public_key(), trust_domain="cluster.local")
    with pytest.raises(TokenError, match="only by a Citadel started with --kubeconfig or --in-cluster"):
        await authenticator.identity(bearer(kube_jwt()))
