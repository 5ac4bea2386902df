"""Workload tokens: a compact JWS (ES256) that Citadel signs and later accepts as proof of a workload's identity.

``citadel token`` prints one; a sidecar's bootstrap sends it to Citadel as ``authorization: Bearer <token>``.

    header  {"alg": "ES256", "typ": "JWT", "kid": <sha256 hex of the public key's DER SubjectPublicKeyInfo>}
    claims  {"iss": "citadel", "sub": <SPIFFE ID>, "ns": <namespace>, "sa": <service account>, "iat": .., "exp": ..}

Parts are base64url without padding; the signature is the raw 64-byte ``r || s`` of RFC 7518 3.4, not DER. No JWT
library: only ES256 is ever accepted, so ``alg: none`` and algorithm confusion cannot happen. A refusal is a
TokenError whose reason names what is wrong and never quotes the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from citadel.errors import TokenError
from meshplane.identity import parse_spiffe_id, spiffe_id

__all__ = [
    "ISSUER",
    "Identity",
    "UnverifiedToken",
    "issue_token",
    "key_id",
    "parse_token",
    "unverified_jwt",
    "verify_parsed_token",
    "verify_token",
]

ISSUER = "citadel"
_ALG = "ES256"
_COORDINATE_BYTES = 32  # P-256
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_MAX_TOKEN_CHARS = 8192
_CLOCK_SKEW = timedelta(minutes=1)  # a token may be issued this far in the future (another host's clock)
_ES256 = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True, slots=True)
class Identity:
    """The workload identity a valid token proves, and when the token stops proving it."""

    trust_domain: str
    namespace: str
    service_account: str
    expires_at: datetime

    @property
    def spiffe_id(self) -> str:
        return spiffe_id(self.trust_domain, self.namespace, self.service_account)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(part: str, what: str) -> bytes:
    if not _BASE64URL.match(part):
        raise TokenError(f"malformed token: the {what} is not base64url without padding")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError(f"malformed token: the {what} is not base64url without padding") from exc


def _json_object(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(part, what))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenError(f"malformed token: the {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise TokenError(f"malformed token: the {what} is not a JSON object")
    return value


def _check_key(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> None:
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"ES256 needs a P-256 key, got curve {key.curve.name}")


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The ``kid`` of tokens signed with the matching private key: sha256 hex of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    return now


def issue_token(
    key: ec.EllipticCurvePrivateKey,
    *,
    trust_domain: str,
    namespace: str,
    service_account: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> str:
    """A token proving ``spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`` until ``now + ttl``.

    ValueError, naming the argument, for an identity that is not of Istio's form or a non-positive ``ttl``."""
    _check_key(key)
    if ttl < timedelta(seconds=1):
        raise ValueError(f"ttl must be at least one second, got {ttl}")
    subject = spiffe_id(trust_domain, namespace, service_account)
    try:
        parsed = parse_spiffe_id(subject)
    except ValueError as exc:
        raise ValueError(f"trust_domain, namespace and service_account do not form a SPIFFE ID: {exc}") from exc
    if parsed != (trust_domain, namespace, service_account):
        raise ValueError(f"namespace and service_account must be single path segments, got {subject!r}")
    issued_at = int(_now(now).timestamp())
    header = {"alg": _ALG, "typ": "JWT", "kid": key_id(key.public_key())}
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "ns": namespace,
        "sa": service_account,
        "iat": issued_at,
        "exp": issued_at + int(ttl.total_seconds()),
    }
    signing_input = ".".join(_b64encode(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    r, s = decode_dss_signature(key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")
    return f"{signing_input}.{_b64encode(signature)}"


def _verify_signature(public_key: ec.EllipticCurvePublicKey, token: UnverifiedToken) -> None:
    raw = token.signature
    if len(raw) != 2 * _COORDINATE_BYTES:
        raise TokenError(f"malformed token: an ES256 signature has 64 bytes, this one {len(raw)}")
    r = int.from_bytes(raw[:_COORDINATE_BYTES], "big")
    s = int.from_bytes(raw[_COORDINATE_BYTES:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), token.signing_input, _ES256)
    except InvalidSignature as exc:
        kid = token.header.get("kid")
        other_key = isinstance(kid, str) and kid != key_id(public_key)
        raise TokenError(
            "bad signature: the token was signed by another key than this Citadel's token key"
            if other_key
            else "bad signature: the token was not signed by this Citadel's token key, or was altered"
        ) from exc


def _claim(claims: dict[str, Any], name: str) -> Any:
    if name not in claims:
        raise TokenError(f"missing claim {name!r}")
    return claims[name]


def _string(claims: dict[str, Any], name: str) -> str:
    value = _claim(claims, name)
    if not isinstance(value, str):
        raise TokenError(f"malformed token: claim {name!r} must be a string")
    return value


def _time(claims: dict[str, Any], name: str) -> datetime:
    """A NumericDate claim (seconds since the epoch, RFC 7519 2) as an aware datetime."""
    value = _claim(claims, name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TokenError(f"malformed token: claim {name!r} must be a number of seconds since the epoch")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise TokenError(f"malformed token: claim {name!r} is out of range") from exc


@dataclass(frozen=True, slots=True)
class UnverifiedToken:
    """A compact JWS split and decoded once, NOT verified: what it claims, and what its signature covers."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes  # ``<header>.<claims>`` as sent, the bytes the signature signs
    signature: bytes


def parse_token(token: str) -> UnverifiedToken:
    """``token`` decoded but NOT verified: to tell what kind of token it is, to refuse early, and to verify without
    decoding it again. TokenError when it is empty, too long, or not three base64url parts (two JSON objects)."""
    token = token.strip()
    if not token:
        raise TokenError("missing token")
    if len(token) > _MAX_TOKEN_CHARS:
        raise TokenError(f"malformed token: longer than {_MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token: expected three base64url parts separated by '.'")
    header = _json_object(parts[0], "header")
    claims = _json_object(parts[1], "claims")
    signature = _b64decode(parts[2], "signature")
    signing_input = token[: len(parts[0]) + 1 + len(parts[1])].encode("ascii")  # base64url: ASCII already checked
    return UnverifiedToken(header=header, claims=claims, signing_input=signing_input, signature=signature)


def unverified_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, decoded but NOT verified (``parse_token``'s, for callers that need
    nothing else)."""
    parsed = parse_token(token)
    return parsed.header, parsed.claims


def verify_token(
    public_key: ec.EllipticCurvePublicKey, token: str, *, trust_domain: str, now: datetime | None = None
) -> Identity:
    """The identity ``token`` proves, if it is a well-formed ES256 token signed by ``public_key``, unexpired at
    ``now``, issued by Citadel for ``trust_domain``. TokenError with the precise reason otherwise."""
    _check_key(public_key)
    return verify_parsed_token(public_key, parse_token(token), trust_domain=trust_domain, now=now)


def verify_parsed_token(
    public_key: ec.EllipticCurvePublicKey, token: UnverifiedToken, *, trust_domain: str, now: datetime | None = None
) -> Identity:
    """``verify_token`` of a token already parsed (``parse_token``); ``public_key`` must be P-256."""
    header, claims = token.header, token.claims
    if header.get("alg") != _ALG:
        raise TokenError(f"malformed token: alg must be {_ALG}")
    _verify_signature(public_key, token)
    if _string(claims, "iss") != ISSUER:
        raise TokenError(f"the token was not issued by {ISSUER}")
    subject = _string(claims, "sub")
    namespace = _string(claims, "ns")
    service_account = _string(claims, "sa")
    issued_at = _time(claims, "iat")
    expires_at = _time(claims, "exp")
    try:
        token_domain, sub_namespace, sub_service_account = parse_spiffe_id(subject)
    except ValueError as exc:
        raise TokenError(f"malformed token: claim 'sub' is not a SPIFFE ID: {exc}") from exc
    if (sub_namespace, sub_service_account) != (namespace, service_account):
        raise TokenError("malformed token: claims 'ns' and 'sa' do not match 'sub'")
    if token_domain != trust_domain:
        raise TokenError(f"wrong trust domain: the token is for {token_domain!r}, this Citadel serves {trust_domain!r}")
    moment = _now(now)
    if moment >= expires_at:
        raise TokenError(f"token expired at {expires_at.isoformat()}")
    if issued_at > moment + _CLOCK_SKEW:
        raise TokenError(f"token issued in the future, at {issued_at.isoformat()}")
    return Identity(
        trust_domain=token_domain, namespace=namespace, service_account=service_account, expires_at=expires_at
    )
