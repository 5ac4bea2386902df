"""Who is calling: the workload token in the gRPC metadata, and how a refusal reaches the caller and the log.

Every Citadel RPC (SDS and CSR) carries ``authorization: Bearer <token>`` (Envoy's bootstrap puts it on the SDS
gRPC stream). Two kinds of token are accepted, told apart by their ``iss`` claim (``kube_tokens.py``): a meshplane
token (``iss: citadel``) is verified with the public half of Citadel's token key; with Kubernetes access
(``--kubeconfig``/``--in-cluster``) any other token is a Kubernetes service-account token, verified by a
TokenReview (``token_review.py``). The identity a token proves is the only one a certificate is issued for. A
refusal answers the ``citadel.errors`` status and reason, counts a failure and is logged with the peer and the
reason, never with the token. A meshplane token verified once is remembered until it expires
(``token_cache.py``): an Envoy's several SDS streams and its reconnects send the same token.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc
import structlog
from cryptography.hazmat.primitives.asymmetric import ec

from citadel.errors import CitadelError, TokenError
from citadel.kube_tokens import token_kind
from citadel.metrics import CitadelMetrics
from citadel.token_cache import VerifiedTokens
from citadel.token_review import TokenReviewer
from citadel.tokens import ISSUER, Identity, parse_token, verify_parsed_token

__all__ = ["Authenticator", "bearer_token", "refuse"]

log = structlog.get_logger(__name__)

_AUTHORIZATION = "authorization"
_BEARER = "bearer"


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The token of the ``authorization: Bearer <token>`` metadata entry; TokenError when there is none."""
    for key, value in metadata or ():
        if key.lower() != _AUTHORIZATION:
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() != _BEARER or not token.strip():
            raise TokenError("the authorization metadata must be 'Bearer <token>'")
        return token.strip()
    raise TokenError("no workload token: send the gRPC metadata 'authorization: Bearer <token>'")


class Authenticator:
    """Verifies workload tokens: meshplane tokens against Citadel's token key and trust domain, Kubernetes
    service-account tokens with ``kubernetes`` (None: Citadel has no Kubernetes access, they are refused)."""

    def __init__(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        trust_domain: str,
        kubernetes: TokenReviewer | None = None,
        verified: VerifiedTokens | None = None,
    ) -> None:
        """``verified``: the meshplane tokens verified so far (a new, default-sized cache when None)."""
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError(f"the token key must be P-256 (ES256), got curve {public_key.curve.name}")
        self._public_key = public_key
        self.trust_domain = trust_domain
        self._kubernetes = kubernetes
        self.verified = VerifiedTokens() if verified is None else verified

    async def identity(
        self, metadata: Iterable[tuple[str, str | bytes]] | None, *, now: datetime | None = None
    ) -> Identity:
        """The identity the caller's token proves; TokenError (UNAUTHENTICATED) otherwise, KubeApiError
        (UNAVAILABLE) when a Kubernetes token could not be reviewed."""
        token = bearer_token(metadata)
        if now is not None and now.tzinfo is None:
            raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
        moment = datetime.now(UTC) if now is None else now
        known = self.verified.get(token, moment)
        if known is not None:
            return known
        parsed = parse_token(token)
        claims = parsed.claims
        if token_kind(claims) == "meshplane":
            identity = verify_parsed_token(self._public_key, parsed, trust_domain=self.trust_domain, now=moment)
            self.verified.put(token, identity)
            return identity
        if self._kubernetes is None:
            raise TokenError(
                f"not a meshplane token (issuer is not {ISSUER!r}): Kubernetes service-account tokens are accepted "
                "only by a Citadel started with --kubeconfig or --in-cluster"
            )
        return await self._kubernetes.identity(token, claims)


async def refuse(
    context: grpc.aio.ServicerContext[Any, Any], error: CitadelError, *, rpc: str, metrics: CitadelMetrics
) -> NoReturn:
    """Answer ``error``'s status and reason, count and log it (warning: peer and reason only). Never returns."""
    status = error.grpc_status
    metrics.failed(status.name.lower())
    log.warning("certificate request refused", rpc=rpc, peer=context.peer(), status=status.name, reason=error.reason)
    await context.abort(status, error.reason)
    raise AssertionError("unreachable: context.abort raises")
