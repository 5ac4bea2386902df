"""The verified-token cache and the Authenticator over it: the same token is verified once until it expires; an
expired, forged, altered or other-key token is never answered from it."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from citadel import authn
from citadel.authn import Authenticator
from citadel.errors import TokenError
from citadel.token_cache import VerifiedTokens
from citadel.tokens import Identity, issue_token
from tests.citadel_builders import kube_jwt

KEY = ec.generate_private_key(ec.SECP256R1())
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
REVIEWS = "spiffe://cluster.local/ns/bookinfo/sa/reviews"


def _token(key: ec.EllipticCurvePrivateKey = KEY, *, service_account: str = "reviews", ttl: float = 3600) -> str:
    return issue_token(
        key,
        trust_domain="cluster.local",
        namespace="bookinfo",
        service_account=service_account,
        ttl=timedelta(seconds=ttl),
        now=NOW,
    )


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return loaded


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full verification the Authenticator makes (the subject of the token it verifies)."""
    made: list[str] = []
    verify = authn.verify_parsed_token

    def counted(*args: Any, **kwargs: Any) -> Identity:
        made.append(args[1].claims.get("sub", ""))
        return verify(*args, **kwargs)

    monkeypatch.setattr(authn, "verify_parsed_token", counted)
    return made


async def test_a_token_is_verified_once_and_then_answered_until_it_expires(verifications: list[str]) -> None:
    authenticator = Authenticator(KEY.public_key(), trust_domain="cluster.local")
    token = _token()

    first = await authenticator.identity(_bearer(token), now=NOW)
    again = await authenticator.identity(_bearer(token), now=NOW + timedelta(minutes=30))

    assert first == again
    assert again.spiffe_id == REVIEWS
    assert verifications == [REVIEWS]


async def test_a_cached_token_is_refused_once_expired_and_leaves_the_cache(verifications: list[str]) -> None:
    authenticator = Authenticator(KEY.public_key(), trust_domain="cluster.local")
    token = _token(ttl=60)
    await authenticator.identity(_bearer(token), now=NOW)

    with pytest.raises(TokenError, match="token expired at"):
        await authenticator.identity(_bearer(token), now=NOW + timedelta(seconds=60))

    assert len(authenticator.verified) == 0
    assert verifications == [REVIEWS, REVIEWS], "the expired token was verified again, not answered"


async def test_a_forged_signature_on_a_cached_tokens_claims_is_refused(verifications: list[str]) -> None:
    authenticator = Authenticator(KEY.public_key(), trust_domain="cluster.local")
    token = _token()
    await authenticator.identity(_bearer(token), now=NOW)
    header, claims, signature = token.split(".")
    flipped = (
        bytes([base64.urlsafe_b64decode(signature + "==")[0] ^ 1]) + base64.urlsafe_b64decode(signature + "==")[1:]
    )

    with pytest.raises(TokenError, match="bad signature"):
        await authenticator.identity(_bearer(f"{header}.{claims}.{_b64(flipped)}"), now=NOW)


async def test_a_cached_tokens_signature_on_altered_claims_is_refused(verifications: list[str]) -> None:
    authenticator = Authenticator(KEY.public_key(), trust_domain="cluster.local")
    token = _token()
    await authenticator.identity(_bearer(token), now=NOW)
    header, _, signature = token.split(".")
    claims = _claims(token) | {"sa": "ratings", "sub": "spiffe://cluster.local/ns/bookinfo/sa/ratings"}
    altered = f"{header}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}.{signature}"

    with pytest.raises(TokenError, match="bad signature"):
        await authenticator.identity(_bearer(altered), now=NOW)
    assert (await authenticator.identity(_bearer(token), now=NOW)).spiffe_id == REVIEWS


async def test_the_same_claims_signed_by_another_key_are_refused_though_cached(verifications: list[str]) -> None:
    authenticator = Authenticator(KEY.public_key(), trust_domain="cluster.local")
    await authenticator.identity(_bearer(_token()), now=NOW)

    with pytest.raises(TokenError, match="signed by another key"):
        await authenticator.identity(_bearer(_token(ec.generate_private_key(ec.SECP256R1()))), now=NOW)


async def test_refused_tokens_are_not_remembered(verifications: list[str]) -> None:
    authenticator = Authenticator(KEY.public_key(), trust_domain="other.domain")
    token = _token()
    for _ in range(2):
        with pytest.raises(TokenError, match="wrong trust domain"):
            await authenticator.identity(_bearer(token), now=NOW)
    assert verifications == [REVIEWS, REVIEWS]
    assert len(authenticator.verified) == 0


async def test_kubernetes_tokens_are_not_kept_in_the_verified_tokens() -> None:
    authenticator = Authenticator(KEY.public_key(), trust_domain="cluster.local")
    with pytest.raises(TokenError, match="only by a Citadel started with --kubeconfig"):
        await authenticator.identity(_bearer(kube_jwt()), now=NOW)
    assert len(authenticator.verified) == 0


def test_a_full_cache_lets_the_oldest_token_go_first() -> None:
    cache = VerifiedTokens(max_tokens=2)
    identities = {
        name: Identity(
            trust_domain="cluster.local", namespace="ns", service_account=name, expires_at=NOW + timedelta(1)
        )
        for name in ("a", "b", "c")
    }
    for name, identity in identities.items():
        cache.put(f"token-{name}", identity)

    assert len(cache) == 2
    assert cache.get("token-a", NOW) is None
    assert cache.get("token-b", NOW) == identities["b"]
    assert cache.get("token-c", NOW) == identities["c"]


def test_the_token_key_must_be_p256() -> None:
    with pytest.raises(ValueError, match="P-256"):
        Authenticator(ec.generate_private_key(ec.SECP384R1()).public_key(), trust_domain="cluster.local")
    with pytest.raises(ValueError, match="max_tokens"):
        VerifiedTokens(max_tokens=0)
