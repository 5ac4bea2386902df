"""Kubernetes service-account tokens as workload identity: which kind a bearer token is, and what a TokenReview
answer proves (pure: no API calls here; ``token_review.py`` makes them).

The rule that tells the two token kinds apart, on the token's (unverified) ``iss`` claim:

- ``iss: citadel``: a meshplane token (``citadel token``), verified with Citadel's token key and nothing else: a
  meshplane token that fails verification is refused, never tried as a Kubernetes token;
- any other issuer: a Kubernetes service-account token, verified by the API server (TokenReview with
  ``spec.audiences=[<audience>]``, ``istio-ca`` by default, as Istio's CA). Without ``--kubeconfig``/``--in-cluster``
  it is refused, saying so.

Before a review, what the token says about itself may refuse it early (never accept it): a legacy token (a
Secret's, issuer ``kubernetes/serviceaccount``, no audience, no expiry: Istio's ``third-party-jwt`` policy refuses
them too), an audience list without ``istio-ca``, a passed ``exp``. The review is the only thing that accepts: it
must say ``authenticated``, return the audience (an empty ``status.audiences`` means "valid for the API server
only"), and name a user ``system:serviceaccount:<namespace>:<name>``; the identity is then
``spiffe://<trust-domain>/ns/<namespace>/sa/<name>`` until the token's ``exp`` (the API server verified the
signature over those claims).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from citadel.errors import TokenError
from citadel.tokens import ISSUER, Identity
from meshplane.identity import parse_spiffe_id, spiffe_id

__all__ = [
    "DEFAULT_TOKEN_AUDIENCE",
    "LEGACY_ISSUER",
    "KubeTokenClaims",
    "ReviewResult",
    "TokenKind",
    "identity_from_review",
    "token_kind",
]

DEFAULT_TOKEN_AUDIENCE = "istio-ca"  # Istio's default (its CA's TOKEN_AUDIENCES)
LEGACY_ISSUER = "kubernetes/serviceaccount"  # the issuer of the tokens in service-account Secrets
_SERVICE_ACCOUNT_USER = "system:serviceaccount"
_NEED_PROJECTED = (
    "Citadel needs a projected service-account token with audience {audience} (a serviceAccountToken volume "
    "source with audience: {audience})"
)

TokenKind = Literal["meshplane", "kubernetes"]


def token_kind(claims: dict[str, Any]) -> TokenKind:
    """``meshplane`` for a token issued by Citadel (``iss: citadel``), ``kubernetes`` for any other."""
    return "meshplane" if claims.get("iss") == ISSUER else "kubernetes"


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeTokenClaims:
    """What a Kubernetes token says about itself, unverified (a review verifies it)."""

    issuer: str
    audiences: tuple[str, ...]
    expires_at: datetime | None

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> KubeTokenClaims:
        issuer = claims.get("iss")
        audience = claims.get("aud", ())
        audiences = (audience,) if isinstance(audience, str) else audience
        if not isinstance(issuer, str) or not isinstance(audiences, Sequence):
            raise TokenError("malformed token: claims 'iss' and 'aud' must be strings")
        if not all(isinstance(a, str) for a in audiences):
            raise TokenError("malformed token: claim 'aud' must be a string or a list of strings")
        exp = claims.get("exp")
        if exp is not None and (not isinstance(exp, int | float) or isinstance(exp, bool)):
            raise TokenError("malformed token: claim 'exp' must be a number of seconds since the epoch")
        try:
            expires_at = None if exp is None else datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise TokenError("malformed token: claim 'exp' is out of range") from exc
        return cls(issuer=issuer, audiences=tuple(audiences), expires_at=expires_at)

    @property
    def legacy(self) -> bool:
        return self.issuer == LEGACY_ISSUER or not self.audiences

    def precheck(self, *, audience: str, now: datetime) -> datetime:
        """Refuse (TokenError) what no review could accept; the token's expiry otherwise."""
        if self.legacy:
            raise TokenError(
                "legacy service-account token (a Secret's token, without audience): "
                + _NEED_PROJECTED.format(audience=audience)
            )
        if audience not in self.audiences:
            raise TokenError(
                f"token audiences {list(self.audiences)} do not include {audience!r}: "
                + _NEED_PROJECTED.format(audience=audience)
            )
        if self.expires_at is None:
            raise TokenError(
                "the service-account token has no expiry ('exp'): " + _NEED_PROJECTED.format(audience=audience)
            )
        if now >= self.expires_at:
            raise TokenError(f"service-account token expired at {self.expires_at.isoformat()}")
        return self.expires_at


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewResult:
    """A TokenReview's ``status``, as plain values."""

    authenticated: bool
    error: str = ""
    audiences: tuple[str, ...] = ()
    username: str = ""


def identity_from_review(result: ReviewResult, *, audience: str, trust_domain: str, expires_at: datetime) -> Identity:
    """The identity a TokenReview answer proves; TokenError with the API server's reason when it proves none."""
    if not result.authenticated:
        raise TokenError(f"the Kubernetes API server refused the token: {result.error or 'not authenticated'}")
    if audience not in result.audiences:
        raise TokenError(
            f"the Kubernetes API server did not confirm audience {audience!r} (status.audiences "
            f"{list(result.audiences)}): the token is not for Citadel"
        )
    prefix, _, rest = result.username.partition(":")
    kind, _, rest = rest.partition(":")
    namespace, _, name = rest.partition(":")
    if f"{prefix}:{kind}" != _SERVICE_ACCOUNT_USER or not namespace or not name or ":" in name:
        raise TokenError(
            f"the token's user {result.username[:200]!r} is not a service account "
            f"({_SERVICE_ACCOUNT_USER}:<namespace>:<name>)"
        )
    subject = spiffe_id(trust_domain, namespace, name)
    try:
        parse_spiffe_id(subject)
    except ValueError as exc:
        raise TokenError(f"the service account {namespace}/{name} does not form a SPIFFE ID: {exc}") from exc
    return Identity(trust_domain=trust_domain, namespace=namespace, service_account=name, expires_at=expires_at)
