"""citadel.tokens: ES256 workload tokens, issued and verified, and every way a token is refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from citadel.errors import TokenError
from citadel.tokens import Identity, issue_token, key_id, verify_token

NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC = KEY.public_key()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def token_for(namespace: str = "bookinfo", service_account: str = "reviews", **kwargs: Any) -> str:
    args: dict[str, Any] = {"trust_domain": "cluster.local", "ttl": HOUR, "now": NOW} | kwargs
    key = args.pop("key", KEY)
    return issue_token(key, namespace=namespace, service_account=service_account, **args)


def signed(header: object, claims: object, key: ec.EllipticCurvePrivateKey = KEY) -> str:
    """A token with exactly this header and claims, correctly ES256-signed: for claims issue_token never writes."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def good_claims(**changes: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": "citadel",
        "sub": "spiffe://cluster.local/ns/bookinfo/sa/reviews",
        "ns": "bookinfo",
        "sa": "reviews",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + HOUR).timestamp()),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


HEADER = {"alg": "ES256", "typ": "JWT"}


def test_token_round_trip() -> None:
    token = token_for()
    identity = verify_token(PUBLIC, token, trust_domain="cluster.local", now=NOW + timedelta(minutes=59))
    assert identity == Identity(
        trust_domain="cluster.local", namespace="bookinfo", service_account="reviews", expires_at=NOW + HOUR
    )
    assert identity.spiffe_id == "spiffe://cluster.local/ns/bookinfo/sa/reviews"


def test_token_format() -> None:
    token = token_for()
    header, claims, signature = token.split(".")
    assert "=" not in token
    assert json.loads(unb64(header)) == {"alg": "ES256", "typ": "JWT", "kid": key_id(PUBLIC)}
    assert len(key_id(PUBLIC)) == 64
    assert json.loads(unb64(claims)) == good_claims()
    assert len(unb64(signature)) == 64  # raw r || s, not DER


def test_a_token_verifies_with_its_own_signing_code() -> None:
    """Our test signer and issue_token agree, so the crafted tokens below differ only where each test says."""
    assert verify_token(PUBLIC, signed(HEADER, good_claims()), trust_domain="cluster.local", now=NOW)


def _tampered_claims() -> str:
    header, _, signature = token_for().split(".")
    return f"{header}.{b64(json.dumps(good_claims(sa='admin', sub='spiffe://cluster.local/ns/bookinfo/sa/admin')).encode())}.{signature}"


def _flipped_signature() -> str:
    header, claims, signature = token_for().split(".")
    raw = bytearray(unb64(signature))
    raw[-1] ^= 1
    return f"{header}.{claims}.{b64(bytes(raw))}"


OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: "", "missing token"),
        (lambda: "   ", "missing token"),
        (lambda: "abc", "malformed token: expected three base64url parts"),
        (lambda: "a.b", "malformed token: expected three base64url parts"),
        (lambda: "a.b.c.d", "malformed token: expected three base64url parts"),
        (lambda: "a" * 9000, "malformed token: longer than 8192 characters"),
        (lambda: "!!.e30.sig", "malformed token: the header is not base64url without padding"),
        (lambda: f"{b64(b'{}')}=.e30.sig", "malformed token: the header is not base64url without padding"),
        (lambda: f"{b64(b'not json')}.e30.sig", "malformed token: the header is not JSON"),
        (lambda: f"{b64(b'[1]')}.e30.sig", "malformed token: the header is not a JSON object"),
        (lambda: signed({"alg": "none"}, good_claims()), "malformed token: alg must be ES256"),
        (lambda: signed({"alg": "HS256"}, good_claims()), "malformed token: alg must be ES256"),
        (lambda: token_for().rsplit(".", 1)[0] + "." + b64(b"short"), "an ES256 signature has 64 bytes, this one 5"),
        (_flipped_signature, "bad signature: the token was not signed by this Citadel's token key, or was altered"),
        (_tampered_claims, "bad signature: the token was not signed by this Citadel's token key, or was altered"),
        (lambda: token_for(key=OTHER_KEY), "bad signature: the token was signed by another key"),
        (lambda: token_for(trust_domain="other.domain"),
         "wrong trust domain: the token is for 'other.domain', this Citadel serves 'cluster.local'"),
        (lambda: token_for(now=NOW - 2 * HOUR), f"token expired at {(NOW - HOUR).isoformat()}"),
        (lambda: token_for(now=NOW - HOUR), f"token expired at {NOW.isoformat()}"),  # exactly at exp: expired
        (lambda: token_for(now=NOW + timedelta(minutes=2)), "token issued in the future"),
        (lambda: signed(HEADER, [1, 2]), "malformed token: the claims is not a JSON object"),
        (lambda: signed(HEADER, good_claims(exp=None)), "missing claim 'exp'"),
        (lambda: signed(HEADER, good_claims(sub=None)), "missing claim 'sub'"),
        (lambda: signed(HEADER, good_claims(iss=None)), "missing claim 'iss'"),
        (lambda: signed(HEADER, good_claims(iss="someone")), "the token was not issued by citadel"),
        (lambda: signed(HEADER, good_claims(exp="tomorrow")), "claim 'exp' must be a number of seconds"),
        (lambda: signed(HEADER, good_claims(exp=True)), "claim 'exp' must be a number of seconds"),
        (lambda: signed(HEADER, good_claims(exp=10**20)), "claim 'exp' is out of range"),
        (lambda: signed(HEADER, good_claims(ns=7)), "claim 'ns' must be a string"),
        (lambda: signed(HEADER, good_claims(exp=NOW.timestamp() - 0.5)), "token expired at"),
        (lambda: signed(HEADER, good_claims(sub="reviews")), "claim 'sub' is not a SPIFFE ID"),
        (lambda: signed(HEADER, good_claims(sa="admin")), "claims 'ns' and 'sa' do not match 'sub'"),
    ],
    ids=[
        "empty", "blank", "one-part", "two-parts", "four-parts", "huge", "bad-base64", "padded", "header-not-json",
        "header-array", "alg-none", "alg-hs256", "short-signature", "flipped-signature", "tampered-claims",
        "other-key", "wrong-trust-domain", "expired", "expired-at-exp", "issued-in-future", "claims-array",
        "no-exp", "no-sub", "no-iss", "other-issuer", "exp-string", "exp-bool", "exp-huge", "ns-number",
        "exp-fraction-past", "sub-not-spiffe", "sa-mismatch",
    ],
)  # fmt: skip
def test_token_refusals(make: Any, reason: str) -> None:
    token = make()
    with pytest.raises(TokenError) as raised:
        verify_token(PUBLIC, token, trust_domain="cluster.local", now=NOW)
    assert reason in raised.value.reason
    assert raised.value.grpc_status is grpc.StatusCode.UNAUTHENTICATED
    if len(token) > 10:
        for part in token.split("."):  # never quotes the token
            assert len(part) < 10 or part not in raised.value.reason


def test_token_arrives_with_surrounding_whitespace() -> None:
    """A token read from a file keeps its newline; the identity is the same."""
    assert verify_token(PUBLIC, token_for() + "\n", trust_domain="cluster.local", now=NOW).namespace == "bookinfo"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"namespace": "a/b"}, "do not form a SPIFFE ID"),
        ({"namespace": "Bookinfo"}, "do not form a SPIFFE ID"),
        ({"service_account": ""}, "must be single path segments"),
        ({"ttl": timedelta(0)}, "ttl must be at least one second"),
        ({"key": ec.generate_private_key(ec.SECP384R1())}, "ES256 needs a P-256 key"),
        ({"now": datetime(2030, 1, 1)}, "timezone-aware"),
    ],
    ids=["slash", "uppercase", "empty-sa", "zero-ttl", "p384", "naive-now"],
)
def test_issue_token_refusals(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        token_for(**kwargs)


def test_verify_needs_a_p256_key() -> None:
    with pytest.raises(ValueError, match="P-256"):
        verify_token(ec.generate_private_key(ec.SECP384R1()).public_key(), token_for(), trust_domain="cluster.local")
