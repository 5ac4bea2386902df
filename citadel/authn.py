"""Who is calling: the workload token in the gRPC metadata, and how a refusal reaches the caller and the log.

Every Citadel RPC (SDS and CSR) carries ``authorization: Bearer <token>`` (Envoy's bootstrap puts it on the SDS
gRPC stream). The token is verified with the public half of Citadel's token key; the identity it proves is the
only one a certificate is issued for. A refusal answers the ``citadel.errors`` status and reason, counts a
failure and is logged with the peer and the reason, never with the token.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NoReturn

import grpc
import structlog
from cryptography.hazmat.primitives.asymmetric import ec

from citadel.errors import CitadelError, TokenError
from citadel.metrics import CitadelMetrics
from citadel.tokens import Identity, verify_token

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
    """Verifies workload tokens against Citadel's token key and trust domain."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, *, trust_domain: str) -> None:
        self._public_key = public_key
        self.trust_domain = trust_domain

    def identity(self, metadata: Iterable[tuple[str, str | bytes]] | None, *, now: datetime | None = None) -> Identity:
        """The identity the caller's token proves; TokenError (UNAUTHENTICATED) otherwise."""
        return verify_token(self._public_key, bearer_token(metadata), trust_domain=self.trust_domain, now=now)


async def refuse(
    context: grpc.aio.ServicerContext[Any, Any], error: CitadelError, *, rpc: str, metrics: CitadelMetrics
) -> NoReturn:
    """Answer ``error``'s status and reason, count and log it (warning: peer and reason only). Never returns."""
    status = error.grpc_status
    metrics.failed(status.name.lower())
    log.warning("certificate request refused", rpc=rpc, peer=context.peer(), status=status.name, reason=error.reason)
    await context.abort(status, error.reason)
    raise AssertionError("unreachable: context.abort raises")
