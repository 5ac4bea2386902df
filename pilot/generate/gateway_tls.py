"""The DownstreamTlsContext of a gateway server that terminates TLS (Istio ``buildGatewayListenerTLSContext``).

- SIMPLE / MUTUAL / OPTIONAL_MUTUAL with files: Envoy reads ``serverCertificate``/``privateKey`` (and, mutual,
  ``caCertificates``) itself (DataSource ``filename``: Envoy watches nothing, a rotated file needs a new push).
- with ``credentialName``: SDS secrets from the proxy's ``sds-grpc`` cluster, Istio's names: the key pair
  ``kubernetes://<credentialName>``, the client CA (mutual) ``kubernetes://<credentialName>-cacert``.
- ISTIO_MUTUAL: the proxy's own workload certificate (``default``) and the mesh root (``ROOTCA``), as a sidecar's
  inbound mTLS, any SPIFFE ID of the trust domain unless ``subjectAltNames`` names them.

``subjectAltNames`` (mutual) become exact SAN matchers (URI, IP or DNS by their form); ``caCrl`` (mutual, with files
or ISTIO_MUTUAL) the validation context's ``crl`` file, read by Envoy: a client certificate it lists is refused (and,
as Envoy checks CRLs, every CA of the client's chain then needs one in the file). TLS versions: Istio's
gateway default is TLS 1.2 to 1.3; ``cipherSuites`` as given. HTTPS servers offer ALPN ``h2`` and ``http/1.1``.
A server whose certificates need SDS on a proxy without it (no ``--citadel``) cannot be built: ``None``.
"""

from __future__ import annotations

from envoy.extensions.transport_sockets.tls.v3.common_pb2 import (
    CertificateValidationContext,
    TlsCertificate,
    TlsParameters,
)
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import CommonTlsContext, DownstreamTlsContext

from meshplane.identity import SDS_ROOT_CA, SDS_WORKLOAD_CERT
from pilot.config.types import ServerTLSSettings, TlsProtocolVersion
from pilot.generate._tls import has_sds, sds_secret_config, trust_domain_uri_san, typed_sans
from pilot.model.types import Proxy

__all__ = [
    "CREDENTIAL_PREFIX",
    "GATEWAY_HTTP_ALPN",
    "build_gateway_tls_context",
    "credential_ca_secret_name",
    "credential_secret_name",
]

CREDENTIAL_PREFIX = "kubernetes://"  # Istio's SDS resource names for Kubernetes secrets
GATEWAY_HTTP_ALPN = ("h2", "http/1.1")
_VERSIONS = {
    "TLS_AUTO": TlsParameters.TlsProtocol.TLS_AUTO,
    "TLSV1_0": TlsParameters.TlsProtocol.TLSv1_0,
    "TLSV1_1": TlsParameters.TlsProtocol.TLSv1_1,
    "TLSV1_2": TlsParameters.TlsProtocol.TLSv1_2,
    "TLSV1_3": TlsParameters.TlsProtocol.TLSv1_3,
}
_MUTUAL = ("MUTUAL", "OPTIONAL_MUTUAL", "ISTIO_MUTUAL")


def credential_secret_name(credential_name: str) -> str:
    return f"{CREDENTIAL_PREFIX}{credential_name}"


def credential_ca_secret_name(credential_name: str) -> str:
    return f"{CREDENTIAL_PREFIX}{credential_name}-cacert"


def _tls_params(tls: ServerTLSSettings) -> TlsParameters:
    low: TlsProtocolVersion = "TLSV1_2" if tls.min_protocol_version == "TLS_AUTO" else tls.min_protocol_version
    high: TlsProtocolVersion = "TLSV1_3" if tls.max_protocol_version == "TLS_AUTO" else tls.max_protocol_version
    return TlsParameters(
        tls_minimum_protocol_version=_VERSIONS[low],
        tls_maximum_protocol_version=_VERSIONS[high],
        cipher_suites=list(tls.cipher_suites),
    )


def _validation(tls: ServerTLSSettings, trust_domain: str) -> CertificateValidationContext:
    if tls.subject_alt_names:
        validation = CertificateValidationContext(match_typed_subject_alt_names=typed_sans(tls.subject_alt_names))
    elif tls.mode == "ISTIO_MUTUAL":
        validation = CertificateValidationContext(match_typed_subject_alt_names=[trust_domain_uri_san(trust_domain)])
    else:
        validation = CertificateValidationContext()
    if tls.ca_crl:
        validation.crl.filename = tls.ca_crl
    return validation


def build_gateway_tls_context(
    tls: ServerTLSSettings, proxy: Proxy, trust_domain: str, *, http: bool
) -> DownstreamTlsContext | None:
    """The context of a SIMPLE / MUTUAL / OPTIONAL_MUTUAL / ISTIO_MUTUAL server (see the module doc); ``http``:
    the server speaks HTTP inside TLS (ALPN). None: the server needs SDS the proxy does not have."""
    sds = tls.mode == "ISTIO_MUTUAL" or bool(tls.credential_name)
    if sds and not has_sds(proxy):
        return None
    common = CommonTlsContext(tls_params=_tls_params(tls), alpn_protocols=list(GATEWAY_HTTP_ALPN) if http else [])
    mutual = tls.mode in _MUTUAL
    if tls.mode == "ISTIO_MUTUAL":
        common.tls_certificate_sds_secret_configs.append(sds_secret_config(SDS_WORKLOAD_CERT))
        ca_secret = SDS_ROOT_CA
    elif tls.credential_name:
        common.tls_certificate_sds_secret_configs.append(sds_secret_config(credential_secret_name(tls.credential_name)))
        ca_secret = credential_ca_secret_name(tls.credential_name)
    else:
        common.tls_certificates.append(
            TlsCertificate(
                certificate_chain={"filename": tls.server_certificate},
                private_key={"filename": tls.private_key},
            )
        )
        ca_secret = ""
    if mutual:
        validation = _validation(tls, trust_domain)
        if ca_secret:
            combined = common.combined_validation_context
            combined.default_validation_context.CopyFrom(validation)
            combined.validation_context_sds_secret_config.CopyFrom(sds_secret_config(ca_secret))
        else:
            validation.trusted_ca.filename = tls.ca_certificates
            common.validation_context.CopyFrom(validation)
    context = DownstreamTlsContext(common_tls_context=common)
    if mutual:
        context.require_client_certificate.value = tls.mode != "OPTIONAL_MUTUAL"
    return context
