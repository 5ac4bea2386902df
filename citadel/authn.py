"""Who is calling: the workload token in the gRPC metadata, and how a refusal reaches the caller and the log.

Every Citadel RPC (SDS and CSR) carries ``authorization: Bearer <token>`` (Envoy's bootstrap puts it on the SDS
gRPC stream). Two kinds of token are accepted, told apart by their ``iss`` claim (``kube_tokens.py``): a meshplane
token (``iss: citadel``) is verified with the public half of Citadel's token key; with Kubernetes access
(``--kubeconfig``/``--in-cluster``) any other token is a Kubernetes service-account token, verified by a
TokenReview (``token_review.py``). The identity a token proves is the only one a certificate is issued for. A
refusal answers the ``citadel.errors`` status and reason, counts a failure and is logged with the peer and the
reason, never with the token.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NoReturn

import grpc
import structlog
from cryptography.hazmat.primitives.asymmetric import ec

from citadel.errors import CitadelError, TokenError
from citadel.kube_tokens import token_kind
from citadel.metrics import CitadelMetrics
from citadel.token_review import TokenReviewer
from citadel.tokens import ISSUER, Identity, unverified_jwt, verify_token

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
    ) -> None:
        self._public_key = public_key
        self.trust_domain = trust_domain
        self._kubernetes = kubernetes

    async def identity(
        self, metadata: Iterable[tuple[str, str | bytes]] | None, *, now: datetime | None = None
    ) -> Identity:
        """The identity the caller's token proves; TokenError (UNAUTHENTICATED) otherwise, KubeApiError
        (UNAVAILABLE) when a Kubernetes token could not be reviewed."""
        token = bearer_token(metadata)
        _, claims = unverified_jwt(token)
        if token_kind(claims) == "meshplane":
            return verify_token(self._public_key, token, trust_domain=self.trust_domain, now=now)
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
