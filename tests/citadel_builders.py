"""Test builders for Citadel's CA tests: intermediate CAs (what a plugged-in ``cacerts`` holds), CSRs, cacerts dirs."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from citadel.ca import PrivateKey, cert_pem, create_root, key_pem

__all__ = [
    "TRUST_DOMAIN",
    "WORKLOAD_ID",
    "CAChain",
    "captured_logs",
    "kube_claims",
    "kube_jwt",
    "make_csr",
    "make_intermediate",
    "rsa_key",
    "write_cacerts",
]

TRUST_DOMAIN = "cluster.local"
WORKLOAD_ID = "spiffe://cluster.local/ns/bookinfo/sa/reviews"


def make_intermediate(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    *,
    name: str,
    key: PrivateKey | None = None,
    ttl: timedelta = timedelta(days=365),
) -> tuple[x509.Certificate, PrivateKey]:
    """A CA certificate named ``CN=<name>, O=cluster.local`` signed by ``issuer``, as an operator's PKI makes them."""
    if key is None:
        key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, TRUST_DOMAIN), x509.NameAttribute(NameOID.COMMON_NAME, name)]
    )
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + ttl)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


class CAChain:
    """root -> intermediates[0] -> ... -> intermediates[-1] (the signer), with every key."""

    def __init__(self, depth: int, *, signer_key: PrivateKey | None = None) -> None:
        self.root, self.root_key = create_root(TRUST_DOMAIN)
        self.intermediates: list[x509.Certificate] = []
        self.keys: list[PrivateKey] = []
        issuer: x509.Certificate = self.root
        issuer_key: PrivateKey = self.root_key
        for level in range(depth):
            last = level == depth - 1
            cert, key = make_intermediate(
                issuer, issuer_key, name=f"intermediate {level + 1}", key=signer_key if last else None
            )
            self.intermediates.append(cert)
            self.keys.append(key)
            issuer, issuer_key = cert, key

    @property
    def signer(self) -> x509.Certificate:
        return self.intermediates[-1]

    @property
    def signer_key(self) -> PrivateKey:
        return self.keys[-1]

    @property
    def above_signer(self) -> tuple[x509.Certificate, ...]:
        """What ``SigningCA.chain`` must be: the intermediates above the signer, nearest first, then the root."""
        return (*reversed(self.intermediates[:-1]), self.root)


def write_cacerts(
    directory: Path,
    chain: CAChain,
    *,
    cert_chain: Sequence[x509.Certificate] | None = None,
    roots: Sequence[x509.Certificate] | None = None,
) -> Path:
    """Istio's cacerts layout in ``directory``. ``cert_chain`` defaults to what Istio's tools write: ca-cert.pem,
    the intermediates above it, then the root. ``None`` keeps the default; ``()`` leaves cert-chain.pem out."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    (directory / "ca-cert.pem").write_bytes(cert_pem(chain.signer))
    key_path = directory / "ca-key.pem"
    key_path.write_bytes(key_pem(chain.signer_key))
    key_path.chmod(0o600)
    (directory / "root-cert.pem").write_bytes(b"".join(cert_pem(c) for c in (roots or (chain.root,))))
    certs = (chain.signer, *chain.above_signer) if cert_chain is None else tuple(cert_chain)
    if certs:
        (directory / "cert-chain.pem").write_bytes(b"".join(cert_pem(c) for c in certs))
    return directory


def make_csr(
    key: PrivateKey,
    *,
    uris: Sequence[str] = (WORKLOAD_ID,),
    dns_names: Sequence[str] = (),
    common_name: str | None = None,
) -> bytes:
    """A PEM CSR signed by ``key`` with the given SANs (no SAN extension when there are none)."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.DNSName(d) for d in dns_names]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@contextlib.contextmanager
def captured_logs() -> Iterator[list[structlog.typing.EventDict]]:
    """Every structlog event, whatever an earlier test configured (``meshplane``'s CLI installs a WARNING filter)."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


KUBE_ISSUER = "https://kubernetes.default.svc.cluster.local"


def kube_claims(
    namespace: str = "bookinfo", service_account: str = "reviews", *, exp: datetime | None = None, **claims: Any
) -> dict[str, Any]:
    """The claims of a projected service-account token (TokenRequest, audience istio-ca, an hour from now)."""
    expires = exp or datetime.now(UTC) + timedelta(hours=1)
    return {
        "aud": ["istio-ca"],
        "exp": int(expires.timestamp()),
        "iat": int(expires.timestamp()) - 3600,
        "iss": KUBE_ISSUER,
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account, "uid": "u-1"}},
        "sub": f"system:serviceaccount:{namespace}:{service_account}",
    } | claims


def kube_jwt(claims: dict[str, Any] | None = None) -> str:
    """A compact JWS with ``claims`` (``kube_claims()`` by default) and a meaningless RS256 signature: what the API
    server would judge (only a TokenReview can tell it from a real one)."""

    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part(kube_claims() if claims is None else claims)}.{part('sig')}"
