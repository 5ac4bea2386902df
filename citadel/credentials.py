"""Gateway credentials: what a Secret's keys hold (Istio's formats), checked, and as the Envoy Secret SDS serves.

Istio's key names, looked up in this order (``pilot/pkg/credentials/kube``):
    certificate and key   ``cert`` + ``key`` (generic), else ``tls.crt`` + ``tls.key`` (kubernetes.io/tls)
    CA certificates       ``cacert`` (generic), else ``ca.crt``; a CRL in ``crl`` / ``ca.crl`` beside it
A ``-cacert`` name reads the Secret ``<name>-cacert`` when it exists, else ``<name>`` itself. The same keys are the
file names of a credentials directory (``credential_dir.py``). Everything is checked before it is served (the
PEM parses, the key is the leaf's), so Envoy never NACKs a credential: one that fails is not served, and why is
returned to be logged. ``tls.ocsp-staple`` is not supported by meshplane yet: such a Secret is not served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from envoy.config.core.v3.base_pb2 import DataSource
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import CertificateValidationContext, TlsCertificate
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret

from citadel.ca import load_certs_pem, load_key_pem
from xdscore import Resource, make_resource

__all__ = [
    "CACertificates",
    "CertificateKeyPair",
    "CredentialError",
    "SecretData",
    "ca_certificates",
    "ca_secret_resource",
    "certificate_key_pair",
    "tls_secret_resource",
]

SecretData = Mapping[str, bytes]  # a Secret's data (decoded) or a credentials directory's files

_CERT_KEYS = (("cert", "key"), ("tls.crt", "tls.key"))
_CA_KEYS = (("cacert", "crl"), ("ca.crt", "ca.crl"))
_UNSUPPORTED_KEYS = ("tls.ocsp-staple",)


class CredentialError(ValueError):
    """A credential that cannot be served; the message says why (never quoting a key)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateKeyPair:
    chain_pem: bytes
    key_pem: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CACertificates:
    roots_pem: bytes
    crl_pem: bytes = b""


def certificate_key_pair(data: SecretData) -> CertificateKeyPair:
    """The certificate chain and key of ``data``, checked; CredentialError otherwise."""
    unsupported = [key for key in _UNSUPPORTED_KEYS if key in data]
    if unsupported:
        raise CredentialError(f"{', '.join(unsupported)}: not supported by meshplane yet")
    pair = next(((data[c], data[k]) for c, k in _CERT_KEYS if data.get(c) and data.get(k)), None)
    if pair is None:
        found = ", ".join(sorted(data)) or "none"
        raise CredentialError(f"no certificate and key: expected keys (cert, key) or (tls.crt, tls.key); found {found}")
    chain_pem, key_pem = pair
    try:
        leaf = load_certs_pem(chain_pem)[0]
    except ValueError as exc:
        raise CredentialError(f"the certificate chain does not parse: {exc}") from exc
    try:
        key = load_key_pem(key_pem)
    except ValueError as exc:
        raise CredentialError(f"the private key does not parse: {exc}") from exc
    if key.public_key() != leaf.public_key():
        raise CredentialError("the private key is not the key of the first certificate of the chain")
    return CertificateKeyPair(chain_pem=chain_pem, key_pem=key_pem)


def ca_certificates(data: SecretData) -> CACertificates:
    """The CA certificates (and CRL) of ``data``, checked; CredentialError otherwise."""
    found = next(((data[c], data.get(crl, b"")) for c, crl in _CA_KEYS if data.get(c)), None)
    if found is None:
        raise CredentialError(
            f"no CA certificate: expected key cacert or ca.crt; found {', '.join(sorted(data)) or 'none'}"
        )
    roots_pem, crl_pem = found
    try:
        load_certs_pem(roots_pem)
    except ValueError as exc:
        raise CredentialError(f"the CA certificates do not parse: {exc}") from exc
    if crl_pem:
        _check_crls(crl_pem)
    return CACertificates(roots_pem=roots_pem, crl_pem=crl_pem)


def _check_crls(crl_pem: bytes) -> None:
    marker = b"-----BEGIN X509 CRL-----"
    blocks = [marker + block for block in crl_pem.split(marker)[1:]]
    if not blocks:
        raise CredentialError("the CRL is not PEM (-----BEGIN X509 CRL-----)")
    for block in blocks:
        try:
            x509.load_pem_x509_crl(block)
        except ValueError as exc:
            raise CredentialError(f"the CRL does not parse: {exc}") from exc


def tls_secret_resource(sds_name: str, pair: CertificateKeyPair) -> Resource:
    """The Envoy Secret ``sds_name`` (as requested) holding the chain and key inline."""
    return make_resource(
        Secret(
            name=sds_name,
            tls_certificate=TlsCertificate(
                certificate_chain=DataSource(inline_bytes=pair.chain_pem),
                private_key=DataSource(inline_bytes=pair.key_pem),
            ),
        )
    )


def ca_secret_resource(sds_name: str, ca: CACertificates) -> Resource:
    """The Envoy Secret ``sds_name`` holding the validation context: the roots (and CRL) inline."""
    context = CertificateValidationContext(trusted_ca=DataSource(inline_bytes=ca.roots_pem))
    if ca.crl_pem:
        context.crl.inline_bytes = ca.crl_pem
    return make_resource(Secret(name=sds_name, validation_context=context))
