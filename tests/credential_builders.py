"""Test builders for gateway credentials: a CA and server certificates for hosts (what ``kubectl create secret tls``
is given), written as a credentials directory or as a Kubernetes Secret's data. Made fresh in each test; never
committed."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from citadel.ca import cert_pem, key_pem

__all__ = ["GatewayCredential", "TestCA", "secret_data_b64", "write_credential"]


@dataclass(frozen=True, slots=True)
class GatewayCredential:
    """``tls.crt`` (leaf, then the CA), ``tls.key``, ``ca.crt``, and the leaf itself."""

    leaf: x509.Certificate
    chain_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    def files(self, *, generic: bool = False, ca: bool = True) -> dict[str, bytes]:
        """The Secret's keys: kubernetes.io/tls names, or Istio's generic ones (``cert``, ``key``, ``cacert``)."""
        names = ("cert", "key", "cacert") if generic else ("tls.crt", "tls.key", "ca.crt")
        files = {names[0]: self.chain_pem, names[1]: self.key_pem}
        if ca:
            files[names[2]] = self.ca_pem
        return files


class TestCA:
    """An operator's CA (``O=example Inc., CN=example.com``, as Istio's ingress tasks make it)."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str = "example.com") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "example Inc."),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = cert_pem(self.cert)

    def issue(self, hosts: Sequence[str], *, client: bool = False) -> GatewayCredential:
        """A certificate for ``hosts`` (DNS SANs; CN the first), for a server or (``client``) a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return GatewayCredential(leaf=leaf, chain_pem=cert_pem(leaf) + self.pem, key_pem=key_pem(key), ca_pem=self.pem)

    def crl_pem(self, revoked: Sequence[x509.Certificate] = ()) -> bytes:
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - timedelta(minutes=5))
            .next_update(now + timedelta(days=1))
        )
        for cert in revoked:
            entry = x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now).build()
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(Encoding.PEM)


def write_credential(root: Path, namespace: str, name: str, files: Mapping[str, bytes]) -> Path:
    """``root/<namespace>/<name>/<key>`` for each file (the credentials-directory layout); replaced whole."""
    directory = root / namespace / name
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.name not in files:
            old.unlink()
    for key, data in files.items():
        (directory / key).write_bytes(data)
    return directory


def secret_data_b64(files: Mapping[str, bytes]) -> dict[str, str]:
    """A Kubernetes Secret's ``data``: each value base64."""
    return {key: base64.b64encode(value).decode() for key, value in files.items()}
