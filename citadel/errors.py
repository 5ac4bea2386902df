"""Citadel's errors: each knows the gRPC status it becomes and a reason that is safe to send to the client.

``reason`` never holds a key, a token or any other secret: the SDS and CSR servers send it as the status details
and log it. The hierarchy::

    CitadelError (INTERNAL)
      CAError (FAILED_PRECONDITION)            the CA directory is missing, unreadable, inconsistent or unsafe
      TokenError (UNAUTHENTICATED)             token missing, malformed, badly signed, expired, other trust domain
      IdentityMismatchError (PERMISSION_DENIED) the CSR asks for another identity than the token proves
      CSRError (INVALID_ARGUMENT)              unparsable CSR, bad signature, wrong SAN count, bad validity
      CertificateVerificationError (UNAUTHENTICATED) a certificate does not chain to the trust bundle
      KubeApiError (UNAVAILABLE)               the Kubernetes API server could not review a token (retry later)
"""

from __future__ import annotations

from typing import ClassVar

import grpc

__all__ = [
    "CAError",
    "CSRError",
    "CertificateVerificationError",
    "CitadelError",
    "IdentityMismatchError",
    "KubeApiError",
    "TokenError",
]


class CitadelError(Exception):
    """Base of Citadel's errors. ``grpc_status`` is the status a server answers with, ``reason`` its details."""

    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CAError(CitadelError):
    """The CA directory is absent, incomplete, inconsistent (cert and key differ) or unsafe (loose key mode)."""

    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.FAILED_PRECONDITION


class TokenError(CitadelError):
    """The workload token is missing, malformed, badly signed, expired, or for another trust domain."""

    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNAUTHENTICATED


class IdentityMismatchError(CitadelError):
    """The CSR's SPIFFE ID is not the identity the token proves."""

    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.PERMISSION_DENIED


class CSRError(CitadelError):
    """The CSR cannot be parsed, its signature is bad, it has the wrong SANs or key, or the validity is bad."""

    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.INVALID_ARGUMENT


class CertificateVerificationError(CitadelError):
    """A certificate does not verify up to the given roots, or carries no single SPIFFE ID."""

    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNAUTHENTICATED


class KubeApiError(CitadelError):
    """The Kubernetes API server could not be asked (unreachable, timed out, or Citadel may not create
    TokenReviews): the token is neither accepted nor judged; the workload retries."""

    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNAVAILABLE
