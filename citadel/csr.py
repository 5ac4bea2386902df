"""The CSR API (``meshplane.citadel.v1.CertificateService``) for workloads that keep their private key local.

``CreateCertificate(csr_pem, validity_seconds) -> cert_chain``: authenticated by the same token as SDS; the CSR's
one URI SAN must be the SPIFFE ID the token proves (else PERMISSION_DENIED); the certificate lives
``min(validity_seconds, --cert-ttl)`` (0: ``--cert-ttl``). The chain is the leaf, the intermediates, then the
root, one PEM certificate per entry, as Istio's ``IstioCertificateService`` answers.

The request and response classes are generated from ``citadel/proto/citadel/v1/ca.proto`` at build time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import structlog

from citadel.authn import Authenticator, refuse
from citadel.authority import Authority
from citadel.errors import CitadelError, CSRError
from citadel.metrics import CitadelMetrics

try:
    from citadel.v1 import ca_pb2
except ImportError as exc:  # pragma: no cover - depends on the build having run
    raise ImportError(
        "citadel.v1 (generated from citadel/proto/citadel/v1/ca.proto) is missing or stale: generate it with "
        "`python citadel/proto/generate.py` (needs grpcio-tools), or reinstall with `make venv` / `pip install -e .`"
    ) from exc

__all__ = ["CSR_SERVICE", "CsrService", "ca_pb2"]

log = structlog.get_logger(__name__)

CSR_SERVICE: str = ca_pb2.DESCRIPTOR.services_by_name["CertificateService"].full_name
_MAX_CSR_BYTES = 64 * 1024


class CsrService:
    """The ``CertificateService`` handlers."""

    def __init__(self, *, authority: Authority, authenticator: Authenticator, metrics: CitadelMetrics) -> None:
        self._authority = authority
        self._authenticator = authenticator
        self._metrics = metrics

    def handler(self) -> grpc.GenericRpcHandler:
        handlers = {
            "CreateCertificate": grpc.unary_unary_rpc_method_handler(
                self._create_certificate,
                request_deserializer=ca_pb2.CreateCertificateRequest.FromString,
                response_serializer=ca_pb2.CreateCertificateResponse.SerializeToString,
            ),
        }
        return grpc.method_handlers_generic_handler(CSR_SERVICE, handlers)

    async def _create_certificate(
        self, request: ca_pb2.CreateCertificateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ca_pb2.CreateCertificateResponse:
        try:
            identity = await self._authenticator.identity(context.invocation_metadata())
            validity = _validity(request.validity_seconds)
            csr_pem = request.csr_pem.encode()
            if len(csr_pem) > _MAX_CSR_BYTES:
                raise CSRError(f"the CSR is larger than {_MAX_CSR_BYTES} bytes")
            chain = await self._authority.signed_csr(csr_pem, spiffe_id=identity.spiffe_id, validity=validity)
        except CitadelError as exc:
            await refuse(context, exc, rpc="CreateCertificate", metrics=self._metrics)
        self._metrics.issued("csr")
        log.info("workload certificate signed (CSR)", spiffe_id=identity.spiffe_id, peer=context.peer())
        return ca_pb2.CreateCertificateResponse(cert_chain=chain)


def _validity(seconds: int) -> timedelta | None:
    if seconds < 0:
        raise CSRError(f"validity_seconds must be 0 (Citadel's --cert-ttl) or positive, got {seconds}")
    if seconds == 0:
        return None
    return timedelta(seconds=min(seconds, 10 * 365 * 86400))
