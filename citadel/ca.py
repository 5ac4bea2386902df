"""The certificate authority's crypto, pure: roots, workload and serving certificates, CSRs, PEM, verification.

Nothing here touches the disk (``citadel.ca_dir`` does) or logs key material. Certificates follow Istio's:

- the self-signed root has subject ``O=<trust domain>``, is a CA (BasicConstraints critical), may sign certificates
  and CRLs, and carries a Subject Key Identifier;
- a workload certificate has an empty subject and the SPIFFE ID as its only SAN, a URI, in a *critical*
  subjectAltName (RFC 5280 4.2.1.6 requires that when the subject is empty; Istio's ``BuildSANExtension`` does
  the same), key usages digitalSignature + keyEncipherment, extended key usages serverAuth + clientAuth, is not a
  CA, and is valid from one minute ago (clock skew) for ``ttl``, never past any certificate above it.

A :class:`SigningCA` is the certificate that signs plus the certificates above it up to the root. With a
self-signed root it is just the root (``chain == ()``); with a plugged-in CA (Istio's ``cacerts``) it is the
intermediate, and :func:`chain_pem` sends the leaf, the intermediate and every certificate between it and the root,
which is what Envoy's ``certificate_chain`` must hold for a peer that trusts only the root.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from citadel.errors import CAError, CertificateVerificationError, CSRError, IdentityMismatchError
from citadel.leaf_der import LeafTemplate
from meshplane.identity import parse_spiffe_id

__all__ = [
    "CLOCK_SKEW",
    "ROOT_TTL",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "SigningCA",
    "bundle_pem",
    "cert_pem",
    "certificate_fingerprint",
    "chain_pem",
    "create_root",
    "generate_key",
    "issue_serving_certificate",
    "issue_workload_certificate",
    "key_pem",
    "load_certs_pem",
    "load_key_pem",
    "sign_csr",
    "verify_workload_certificate",
]

KeyType = Literal["ecdsa", "rsa"]
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

ROOT_TTL = timedelta(days=3650)  # Istio's self-signed root lives 10 years
CLOCK_SKEW = timedelta(minutes=1)  # issued certificates start this long before "now"
RSA_KEY_SIZE = 2048
_MIN_RSA_BITS = 2048
_CURVES: tuple[type[ec.EllipticCurve], ...] = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_ACCEPTED_KEYS = "ECDSA P-256, P-384 or P-521, or RSA of at least 2048 bits"
_WORKLOAD_USAGES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


@dataclass(frozen=True, slots=True)
class SigningCA:
    """The certificate that signs workload certificates, its key, and the certificates above it.

    ``chain`` runs from the signer's issuer up to and including the root; it is empty when ``cert`` is itself the
    self-signed root."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()
    # what its workload certificates share, encoded once (``leaf_der.py``); None for an RSA signer
    workload_template: LeafTemplate | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.cert.public_key() != self.key.public_key():
            raise CAError("the signing key does not belong to the signing certificate")
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            template = LeafTemplate.for_signer(self.key, self.cert.subject, _workload_extensions(self))
            object.__setattr__(self, "workload_template", template)

    @property
    def root(self) -> x509.Certificate:
        """The trust anchor this CA's certificates chain up to."""
        return self.chain[-1] if self.chain else self.cert


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    return now


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, ec.SECP384R1):
            return hashes.SHA384()
        if isinstance(key.curve, ec.SECP521R1):
            return hashes.SHA512()
    return hashes.SHA256()


def _key_usage(*, digital_signature: bool = False, key_encipherment: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def generate_key(key_type: KeyType = "ecdsa") -> PrivateKey:
    """A new private key: ECDSA P-256 (``"ecdsa"``, the default) or RSA 2048 (``"rsa"``)."""
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    raise ValueError(f"key_type must be 'ecdsa' or 'rsa', got {key_type!r}")


def create_root(
    trust_domain: str, *, ttl: timedelta = ROOT_TTL, now: datetime | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed ECDSA P-256 root for ``trust_domain`` (subject ``O=<trust domain>``, as Istio's) and its key."""
    if not trust_domain:
        raise ValueError("trust_domain must not be empty")
    if ttl <= timedelta(0):
        raise ValueError(f"ttl must be positive, got {ttl}")
    moment = _now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - CLOCK_SKEW)
        .not_valid_after(moment + ttl)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _check_public_key(public_key: object, whose: str) -> PublicKey:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, _CURVES):
            return public_key
        raise CSRError(f"{whose} is ECDSA on curve {public_key.curve.name}; Citadel signs {_ACCEPTED_KEYS}")
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size >= _MIN_RSA_BITS:
            return public_key
        raise CSRError(f"{whose} is RSA {public_key.key_size}; Citadel signs {_ACCEPTED_KEYS}")
    raise CSRError(f"{whose} is a {type(public_key).__name__}; Citadel signs {_ACCEPTED_KEYS}")


def _authority_key_identifier(ca: SigningCA) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _validity(ca: SigningCA, ttl: timedelta, now: datetime | None) -> tuple[datetime, datetime]:
    """(not_before, not_after): from one minute ago for ``ttl``, cut at the first expiry above the leaf."""
    if ttl <= timedelta(0):
        raise CSRError(f"the requested validity must be positive, got {ttl}")
    moment = _now(now)
    signer = ca.cert
    if moment >= signer.not_valid_after_utc:
        raise CAError(f"the signing certificate expired at {signer.not_valid_after_utc.isoformat()}")
    if moment < signer.not_valid_before_utc:
        raise CAError(f"the signing certificate is not valid before {signer.not_valid_before_utc.isoformat()}")
    ceiling = min(cert.not_valid_after_utc for cert in (signer, *ca.chain))
    return moment - CLOCK_SKEW, min(moment + ttl, ceiling)


def _sign_leaf(
    ca: SigningCA,
    *,
    public_key: PublicKey,
    san: x509.SubjectAlternativeName,
    usages: Sequence[x509.ObjectIdentifier],
    ttl: timedelta,
    now: datetime | None,
) -> x509.Certificate:
    not_before, not_after = _validity(ca, ttl, now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(san, critical=True)  # the subject is empty: the SAN must be critical
    )
    for extension in _leaf_extensions(ca, usages):
        builder = builder.add_extension(extension.value, critical=extension.critical)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    return builder.sign(ca.key, _signature_hash(ca.key))


def _leaf_extensions(
    ca: SigningCA, usages: Sequence[x509.ObjectIdentifier]
) -> tuple[x509.Extension[x509.ExtensionType], ...]:
    """The extensions of every leaf ``ca`` signs for ``usages``, between the SAN (first) and the SKI (last)."""
    values: tuple[tuple[x509.ExtensionType, bool], ...] = (
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(digital_signature=True, key_encipherment=True), True),
        (x509.ExtendedKeyUsage(list(usages)), False),
        (_authority_key_identifier(ca), False),
    )
    return tuple(x509.Extension(value.oid, critical, value) for value, critical in values)


def _workload_extensions(ca: SigningCA) -> tuple[x509.Extension[x509.ExtensionType], ...]:
    return _leaf_extensions(ca, _WORKLOAD_USAGES)


def issue_workload_certificate(
    ca: SigningCA, *, spiffe_id: str, public_key: PublicKey, ttl: timedelta, now: datetime | None = None
) -> x509.Certificate:
    """A workload certificate for ``public_key`` whose only SAN is ``spiffe_id`` (serverAuth + clientAuth).

    CSRError for an ID not of Istio's form, an unaccepted key or a non-positive ``ttl``; CAError when the signer
    is not valid now."""
    try:
        parse_spiffe_id(spiffe_id)
    except ValueError as exc:
        raise CSRError(str(exc)) from exc
    key = _check_public_key(public_key, "the workload's public key")
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)])
    template = ca.workload_template
    if template is None:
        return _sign_leaf(ca, public_key=key, san=san, usages=_WORKLOAD_USAGES, ttl=ttl, now=now)
    not_before, not_after = _validity(ca, ttl, now)
    serial = x509.random_serial_number()
    return template.sign(serial=serial, not_before=not_before, not_after=not_after, public_key=key, san=san)


def sign_csr(
    ca: SigningCA, csr_pem: bytes, *, expected_spiffe_id: str, ttl: timedelta, now: datetime | None = None
) -> x509.Certificate:
    """Sign a PEM CSR whose one URI SAN is ``expected_spiffe_id`` (the identity the caller's token proves).

    Only the CSR's public key and that SAN are used; its subject, other SANs and extensions are ignored, so the
    certificate is exactly what :func:`issue_workload_certificate` makes. CSRError when the CSR does not parse,
    its signature fails, it has no URI SAN or several, or its key is not accepted; IdentityMismatchError when
    the URI SAN is another identity."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CSRError("the CSR is not a PEM-encoded certificate signing request") from exc
    if not csr.is_signature_valid:
        raise CSRError("the CSR's signature does not verify with its own public key")
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise CSRError("the CSR has no subjectAltName: it must carry the workload's SPIFFE ID as a URI SAN") from exc
    except ValueError as exc:
        raise CSRError(f"the CSR's extensions do not parse: {exc}") from exc
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise CSRError(f"the CSR must carry exactly one URI SAN, the workload's SPIFFE ID; it has {len(uris)}")
    if uris[0] != expected_spiffe_id:
        raise IdentityMismatchError(f"the CSR asks for {uris[0][:200]!r} but the token is for {expected_spiffe_id!r}")
    key = _check_public_key(csr.public_key(), "the CSR's public key")
    return issue_workload_certificate(ca, spiffe_id=expected_spiffe_id, public_key=key, ttl=ttl, now=now)


def issue_serving_certificate(
    ca: SigningCA,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    ttl: timedelta,
    now: datetime | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A TLS server certificate (serverAuth) and its new P-256 key, for Citadel's own SDS/CSR endpoint."""
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    for address in ip_addresses:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError as exc:
            raise ValueError(f"ip_addresses: {address!r} is not an IP address") from exc
    if not names:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(names)
    cert = _sign_leaf(
        ca, public_key=key.public_key(), san=san, usages=(ExtendedKeyUsageOID.SERVER_AUTH,), ttl=ttl, now=now
    )
    return cert, key


def chain_pem(leaf: x509.Certificate, ca: SigningCA) -> bytes:
    """PEM of the chain a workload presents (Envoy's ``certificate_chain``): the leaf, then every CA certificate
    between it and the root, without the root itself.

    Self-signed root (``ca.chain == ()``): the leaf alone. Plugged-in intermediate: the leaf, ``ca.cert``, then
    ``ca.chain`` without its last certificate (the root), so a peer holding only the root can verify it."""
    intermediates = (ca.cert, *ca.chain[:-1]) if ca.chain else ()
    return b"".join(cert_pem(cert) for cert in (leaf, *intermediates))


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def bundle_pem(roots: Sequence[x509.Certificate]) -> bytes:
    """The trust bundle (Istio's ``ROOTCA``): every root, in order, as concatenated PEM."""
    if not roots:
        raise ValueError("a trust bundle needs at least one root")
    return b"".join(cert_pem(root) for root in roots)


def key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``), what Envoy and Istio read."""
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def load_certs_pem(data: bytes) -> list[x509.Certificate]:
    """Every certificate in PEM ``data``, in order; ValueError when there is none or one does not parse."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"no valid PEM certificate: {exc}") from exc
    return certs


def load_key_pem(data: bytes) -> PrivateKey:
    """An unencrypted PEM private key (PKCS#8, SEC1 or PKCS#1), ECDSA or RSA; ValueError otherwise.

    The message never quotes ``data``."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise ValueError("the private key is encrypted; Citadel needs an unencrypted PEM key") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError("not a PEM private key Citadel can read") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"the private key is {type(key).__name__}; Citadel uses ECDSA or RSA keys")
    return key


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex: how logs and metrics name a certificate."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def verify_workload_certificate(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    now: datetime | None = None,
) -> str:
    """Verify ``leaf`` up to one of ``roots`` through ``intermediates`` and return its SPIFFE ID.

    Uses ``cryptography``'s RFC 5280 / Web PKI path validation as a client-certificate verifier (which takes the
    leaf's SANs as they are, so an empty subject with a URI SAN is fine and the clientAuth usage is required).
    CertificateVerificationError when the path does not verify or the leaf has not exactly one SPIFFE URI SAN."""
    if not roots:
        raise CertificateVerificationError("no roots to verify against")
    verifier = PolicyBuilder().store(Store(list(roots))).time(_now(now)).build_client_verifier()
    try:
        verified = verifier.verify(leaf, list(intermediates))
    except VerificationError as exc:
        raise CertificateVerificationError(f"the certificate does not verify: {exc}") from exc
    uris = [name.value for name in verified.subjects or () if isinstance(name, x509.UniformResourceIdentifier)]
    if len(uris) != 1 or not uris[0].startswith("spiffe://"):
        raise CertificateVerificationError(f"the certificate must carry exactly one SPIFFE URI SAN, it has {uris}")
    return str(uris[0])
