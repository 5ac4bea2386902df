"""citadel.kube_tokens: which kind a token is, what a Kubernetes token says about itself, what a review proves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from citadel.errors import TokenError
from citadel.kube_tokens import KubeTokenClaims, ReviewResult, identity_from_review, token_kind
from citadel.tokens import issue_token, unverified_jwt
from tests.citadel_builders import kube_claims, kube_jwt

NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
EXP = NOW + timedelta(hours=1)
KEY = ec.generate_private_key(ec.SECP256R1())


def meshplane_token() -> str:
    return issue_token(
        KEY, trust_domain="cluster.local", namespace="vm", service_account="db", ttl=timedelta(hours=1), now=NOW
    )


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        (meshplane_token(), "meshplane"),
        (kube_jwt(), "kubernetes"),
        (kube_jwt(kube_claims(iss="kubernetes/serviceaccount")), "kubernetes"),
        (kube_jwt({"sub": "x"}), "kubernetes"),
        (kube_jwt({"iss": "citadel"}), "meshplane"),  # verified with Citadel's key, so refused there
    ],
    ids=["citadel-token", "projected-token", "legacy-token", "no-issuer", "claims-citadel-issuer"],
)
def test_the_issuer_alone_tells_the_token_kind(token: str, kind: str) -> None:
    _, claims = unverified_jwt(token)
    assert token_kind(claims) == kind


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b", "a.b.c.d", "!!.e30.c2ln", "e30.bm90anNvbg.c2ln", "W10.W10.c2ln"],
    ids=["empty", "one-part", "two-parts", "four-parts", "not-base64url", "claims-not-json", "not-objects"],
)
def test_what_is_not_a_jws_is_malformed_before_anyone_is_asked(token: str) -> None:
    with pytest.raises(TokenError, match=r"missing token|malformed token"):
        unverified_jwt(token)


def claims_of(**changes: Any) -> KubeTokenClaims:
    claims = kube_claims(exp=EXP)
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return KubeTokenClaims.from_claims(claims)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "kubernetes/serviceaccount", "aud": None, "exp": None}, "legacy service-account token"),
        ({"aud": None}, "legacy service-account token"),
        ({"aud": []}, "legacy service-account token"),
        ({"aud": ["vault", "https://kubernetes.default.svc"]}, "do not include 'istio-ca'"),
        ({"exp": None}, "no expiry"),
        ({"exp": int((NOW - timedelta(seconds=1)).timestamp())}, "expired at 2030-06-01T11:59:59"),
        ({"exp": int(NOW.timestamp())}, "expired at 2030-06-01T12:00:00"),
    ],
    ids=["secret-token", "no-audience", "empty-audience", "other-audiences", "no-exp", "expired", "expires-now"],
)
def test_tokens_no_review_could_accept_are_refused_early(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenError, match=reason) as refused:
        claims_of(**changes).precheck(audience="istio-ca", now=NOW)
    if "legacy" in reason or "include" in reason:
        assert "projected service-account token with audience istio-ca" in refused.value.reason


@pytest.mark.parametrize(
    "changes",
    [{}, {"aud": "istio-ca"}, {"aud": ["https://kubernetes.default.svc", "istio-ca"]}],
    ids=["istio-ca", "audience-as-string", "one-of-several"],
)
def test_a_projected_token_for_istio_ca_goes_to_review_with_its_expiry(changes: dict[str, Any]) -> None:
    assert claims_of(**changes).precheck(audience="istio-ca", now=NOW) == EXP


def test_the_audience_is_citadels_flag_not_a_constant() -> None:
    assert claims_of(aud=["meshplane-ca"]).precheck(audience="meshplane-ca", now=NOW) == EXP
    with pytest.raises(TokenError, match="do not include 'meshplane-ca'"):
        claims_of().precheck(audience="meshplane-ca", now=NOW)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"iss": ["a"]}, "'iss' and 'aud' must be strings"),
        ({"aud": {"x": 1}}, "'iss' and 'aud' must be strings"),
        ({"aud": ["istio-ca", 7]}, "'aud' must be a string or a list of strings"),
        ({"exp": "tomorrow"}, "'exp' must be a number"),
        ({"exp": True}, "'exp' must be a number"),
        ({"exp": 10**20}, "'exp' is out of range"),
    ],
    ids=["issuer-list", "audience-object", "audience-number", "exp-string", "exp-bool", "exp-huge"],
)
def test_malformed_claims_are_refused_naming_the_claim(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(TokenError, match=message):
        claims_of(**changes)


GOOD = ReviewResult(authenticated=True, audiences=("istio-ca",), username="system:serviceaccount:bookinfo:reviews")


def test_an_authenticated_review_proves_the_spiffe_id_of_its_service_account() -> None:
    identity = identity_from_review(GOOD, audience="istio-ca", trust_domain="cluster.local", expires_at=EXP)
    assert identity.spiffe_id == "spiffe://cluster.local/ns/bookinfo/sa/reviews"
    assert (identity.trust_domain, identity.namespace, identity.service_account) == (
        "cluster.local",
        "bookinfo",
        "reviews",
    )
    assert identity.expires_at == EXP


def test_the_identity_is_in_citadels_trust_domain() -> None:
    identity = identity_from_review(GOOD, audience="istio-ca", trust_domain="prod.example.com", expires_at=EXP)
    assert identity.spiffe_id == "spiffe://prod.example.com/ns/bookinfo/sa/reviews"


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (
            ReviewResult(authenticated=False, error='[invalid bearer token, serviceaccounts "reviews" not found]'),
            'refused the token: [invalid bearer token, serviceaccounts "reviews" not found]',
        ),
        (ReviewResult(authenticated=False), "refused the token: not authenticated"),
        (
            ReviewResult(authenticated=True, username="system:serviceaccount:bookinfo:reviews"),
            "did not confirm audience 'istio-ca'",
        ),
        (
            ReviewResult(authenticated=True, audiences=("other",), username="system:serviceaccount:a:b"),
            "did not confirm audience 'istio-ca'",
        ),
        (ReviewResult(authenticated=True, audiences=("istio-ca",), username="alice"), "'alice' is not a service"),
        (
            ReviewResult(authenticated=True, audiences=("istio-ca",), username="system:node:worker-1"),
            "is not a service account",
        ),
        (
            ReviewResult(authenticated=True, audiences=("istio-ca",), username="system:serviceaccount:bookinfo"),
            "is not a service account",
        ),
        (
            ReviewResult(authenticated=True, audiences=("istio-ca",), username="system:serviceaccount:a:b:c"),
            "is not a service account",
        ),
        (
            ReviewResult(authenticated=True, audiences=("istio-ca",), username="system:serviceaccount:Bad_NS:x"),
            "does not form a SPIFFE ID",
        ),
    ],
    ids=[
        "deleted-account",
        "refused-without-error",
        "no-audiences-returned",
        "other-audience-returned",
        "a-user",
        "a-node",
        "no-account-name",
        "extra-segment",
        "not-a-spiffe-name",
    ],
)
def test_a_review_that_proves_no_service_account_is_a_refusal_with_the_reason(
    result: ReviewResult, reason: str
) -> None:
    with pytest.raises(TokenError) as refused:
        identity_from_review(result, audience="istio-ca", trust_domain="cluster.local", expires_at=EXP)
    assert reason in refused.value.reason
