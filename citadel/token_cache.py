"""Meshplane tokens already verified, remembered until they expire, so the same token is not verified twice.

A sidecar's Envoy opens one SDS stream per secret (``default``, ``ROOTCA``, each gateway credential), all with
the same token, and opens them again on every reconnect; the ES256 verification (~50-100 us of the ~0.6 ms a
certificate costs Citadel) is the one part of a token check that is not cheap. A token whose exact bytes were
verified before proves the same identity again until its ``exp``: a hit needs the same header, claims and
signature, so a forged or altered token (another signature, another claim, another key's ``kid``) misses and is
verified, and refused, in full. Expiry is checked again on every hit against the caller's ``now``; an expired
entry is dropped and the token verified again, which refuses it with the usual reason.

Entries are keyed by the token's sha256, never the token, as the TokenReview cache (``token_review.py``); the
cache is bounded (the oldest entry leaves first) and belongs to one Authenticator, so one token key and one trust
domain. Kubernetes service-account tokens are not kept here: their reviews have their own cache.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from citadel.tokens import Identity

__all__ = ["DEFAULT_MAX_TOKENS", "VerifiedTokens"]

DEFAULT_MAX_TOKENS = 20_000  # a few hundred bytes each (digest, Identity): thousands of sidecars' tokens


class VerifiedTokens:
    """Identities of verified tokens by the sha256 of the token, each until it expires, at most ``max_tokens``."""

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        self.max_tokens = max_tokens
        self._identities: dict[bytes, Identity] = {}  # insertion-ordered: the first is the oldest

    def __len__(self) -> int:
        return len(self._identities)

    def get(self, token: str, now: datetime) -> Identity | None:
        """The identity ``token`` was verified to prove, if it was and has not expired at ``now``; else None."""
        key = _digest(token)
        identity = self._identities.get(key)
        if identity is None:
            return None
        if now >= identity.expires_at:
            del self._identities[key]
            return None
        return identity

    def put(self, token: str, identity: Identity) -> None:
        """Remember that ``token`` (verified in full just now) proves ``identity``."""
        identities = self._identities
        while len(identities) >= self.max_tokens:
            del identities[next(iter(identities))]
        identities[_digest(token)] = identity


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.strip().encode()).digest()
