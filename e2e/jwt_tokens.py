"""JSON Web Keys and signed tokens for tests: an RSA key made per process (never a key on disk or in the
repository), its public JWKS, and RS256 tokens signed with it (the JWS compact form, RFC 7515, by hand with
``cryptography``: no JWT library needed)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["SigningKey", "b64url", "new_signing_key", "signing_key"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An RSA key and the ``kid`` its JWKS names it by."""

    private: rsa.RSAPrivateKey
    kid: str

    @property
    def jwks(self) -> str:
        """The public key as a JSON Web Key Set (what RequestAuthentication's ``jwks`` / a ``jwksUri`` serves)."""
        numbers = self.private.public_key().public_numbers()
        key = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": _int(numbers.n), "e": _int(numbers.e)}
        return json.dumps({"keys": [key]})

    def token(self, claims: dict[str, Any], *, lifetime: int = 3600) -> str:
        """An RS256 token with ``claims`` (``exp`` added unless given)."""
        payload = {"iat": int(time.time()), "exp": int(time.time()) + lifetime, **claims}
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
        signature = self.private.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"


def new_signing_key(kid: str = "test-key") -> SigningKey:
    return SigningKey(private=rsa.generate_private_key(public_exponent=65537, key_size=2048), kid=kid)


@cache
def signing_key(kid: str = "test-key") -> SigningKey:
    """One key per ``kid`` for this test process (RSA generation costs tens of milliseconds)."""
    return new_signing_key(kid)
