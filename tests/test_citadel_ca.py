"""citadel.ca: certificate contents, chains under a self-signed root and under plugged-in intermediates, CSRs.

Every issued certificate is checked with cryptography's own path validation (``verify_workload_certificate``)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from citadel.ca import (
    CLOCK_SKEW,
    SigningCA,
    bundle_pem,
    cert_pem,
    certificate_fingerprint,
    chain_pem,
    create_root,
    generate_key,
    issue_serving_certificate,
    issue_workload_certificate,
    key_pem,
    load_certs_pem,
    load_key_pem,
    sign_csr,
    verify_workload_certificate,
)
from citadel.errors import (
    CAError,
    CertificateVerificationError,
    CitadelError,
    CSRError,
    IdentityMismatchError,
    TokenError,
)
from meshplane.identity import CITADEL_SERVER_NAME
from tests.citadel_builders import TRUST_DOMAIN, WORKLOAD_ID, CAChain, make_csr, rsa_key

E = TypeVar("E", bound=x509.ExtensionType)
NOW = datetime.now(UTC).replace(microsecond=0)  # X.509 times have whole seconds
DAY = timedelta(hours=24)


@pytest.fixture(scope="module")
def root_ca() -> SigningCA:
    cert, key = create_root(TRUST_DOMAIN, now=NOW - timedelta(days=1))
    return SigningCA(cert=cert, key=key)


@pytest.fixture(scope="module")
def two_level() -> CAChain:
    return CAChain(2)


def ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


# ---------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (CitadelError, grpc.StatusCode.INTERNAL),
        (CAError, grpc.StatusCode.FAILED_PRECONDITION),
        (TokenError, grpc.StatusCode.UNAUTHENTICATED),
        (IdentityMismatchError, grpc.StatusCode.PERMISSION_DENIED),
        (CSRError, grpc.StatusCode.INVALID_ARGUMENT),
        (CertificateVerificationError, grpc.StatusCode.UNAUTHENTICATED),
    ],
    ids=lambda v: getattr(v, "__name__", getattr(v, "name", "")),
)
def test_error_knows_its_grpc_status_and_reason(error: type[CitadelError], status: grpc.StatusCode) -> None:
    raised = error("the reason")
    assert raised.grpc_status is status
    assert raised.reason == "the reason" == str(raised)
    assert isinstance(raised, CitadelError)


# ---------------------------------------------------------------------------------------------------------------
# roots and keys
# ---------------------------------------------------------------------------------------------------------------


def test_root_is_a_self_signed_p256_ca_for_the_trust_domain() -> None:
    cert, key = create_root("example.org", now=NOW)
    assert isinstance(key.curve, ec.SECP256R1)
    assert cert.public_key() == key.public_key()
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "O=example.org"
    cert.verify_directly_issued_by(cert)
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    assert cert.not_valid_before_utc == NOW - CLOCK_SKEW
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)


def test_root_refuses_an_empty_trust_domain_and_naive_time() -> None:
    with pytest.raises(ValueError, match="trust_domain"):
        create_root("")
    with pytest.raises(ValueError, match="timezone-aware"):
        create_root(TRUST_DOMAIN, now=datetime(2030, 1, 1))


@pytest.mark.parametrize(
    ("key_type", "kind", "size"),
    [("ecdsa", ec.EllipticCurvePrivateKey, 256), ("rsa", rsa.RSAPrivateKey, 2048)],
    ids=["ecdsa-p256", "rsa-2048"],
)
def test_generate_key(key_type: str, kind: type, size: int) -> None:
    key = generate_key(key_type)  # type: ignore[arg-type]
    assert isinstance(key, kind)
    assert key.key_size == size


def test_generate_key_names_the_accepted_types() -> None:
    with pytest.raises(ValueError, match="'ecdsa' or 'rsa'"):
        generate_key("ed25519")  # type: ignore[arg-type]


def test_signing_ca_refuses_a_key_of_another_certificate(root_ca: SigningCA) -> None:
    with pytest.raises(CAError, match="does not belong"):
        SigningCA(cert=root_ca.cert, key=generate_key())
    assert root_ca.root is root_ca.cert
    assert "key=" not in repr(root_ca)


# ---------------------------------------------------------------------------------------------------------------
# workload certificates
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"], ids=["ecdsa", "rsa"])
def test_workload_certificate_contents(root_ca: SigningCA, key_type: str) -> None:
    key = generate_key(key_type)  # type: ignore[arg-type]
    cert = issue_workload_certificate(root_ca, spiffe_id=WORKLOAD_ID, public_key=key.public_key(), ttl=DAY, now=NOW)

    assert cert.public_key() == key.public_key()
    assert cert.subject == x509.Name([])
    assert cert.issuer == root_ca.cert.subject
    san = ext(cert, x509.SubjectAlternativeName)
    assert san.critical  # the subject is empty
    assert list(san.value) == [x509.UniformResourceIdentifier(WORKLOAD_ID)]
    usage = ext(cert, x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    assert not usage.key_cert_sign and not usage.crl_sign
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    root_ski = ext(root_ca.cert, x509.SubjectKeyIdentifier).value
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski.digest
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=1)
    assert cert.not_valid_after_utc == NOW + DAY
    assert cert.serial_number > 0

    assert verify_workload_certificate(cert, [], [root_ca.cert], now=NOW) == WORKLOAD_ID
    assert chain_pem(cert, root_ca) == cert_pem(cert)  # under the root itself, the chain is the leaf alone


def test_workload_certificates_get_random_serials(root_ca: SigningCA) -> None:
    key = generate_key()
    serials = {
        issue_workload_certificate(
            root_ca, spiffe_id=WORKLOAD_ID, public_key=key.public_key(), ttl=DAY, now=NOW
        ).serial_number
        for _ in range(3)
    }
    assert len(serials) == 3


def test_workload_certificate_never_outlives_the_certificates_above_it() -> None:
    chain = CAChain(1)
    ca = SigningCA(cert=chain.signer, key=chain.signer_key, chain=chain.above_signer)
    now = datetime.now(UTC)
    cert = issue_workload_certificate(
        ca, spiffe_id=WORKLOAD_ID, public_key=generate_key().public_key(), ttl=timedelta(days=5000), now=now
    )
    assert cert.not_valid_after_utc == chain.signer.not_valid_after_utc
    assert verify_workload_certificate(cert, [chain.signer], [chain.root], now=now) == WORKLOAD_ID


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ttl": timedelta(0)}, CSRError, "validity must be positive"),
        ({"spiffe_id": "spiffe://cluster.local/bookinfo"}, CSRError, "is not a SPIFFE ID"),
        ({"now": NOW + timedelta(days=4000)}, CAError, "signing certificate expired at"),
        ({"now": NOW - timedelta(days=30)}, CAError, "not valid before"),
        ({"public_key": rsa_key(1024).public_key()}, CSRError, "RSA 1024"),
        ({"public_key": ec.generate_private_key(ec.SECP256K1()).public_key()}, CSRError, "secp256k1"),
    ],
    ids=["zero-ttl", "not-a-spiffe-id", "signer-expired", "signer-not-yet-valid", "rsa-1024", "secp256k1"],
)
def test_workload_certificate_refusals(
    root_ca: SigningCA, kwargs: dict[str, object], error: type[CitadelError], message: str
) -> None:
    args: dict[str, object] = {"spiffe_id": WORKLOAD_ID, "public_key": generate_key().public_key(), "ttl": DAY}
    args["now"] = NOW
    args.update(kwargs)
    with pytest.raises(error, match=message):
        issue_workload_certificate(root_ca, **args)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# plugged-in intermediates: the chain a workload sends is complete
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 3], ids=["root-int", "root-int-int", "root-int-int-int"])
def test_chain_under_plugged_in_intermediates_is_complete(depth: int) -> None:
    chain = CAChain(depth)
    ca = SigningCA(cert=chain.signer, key=chain.signer_key, chain=chain.above_signer)
    assert ca.root == chain.root
    leaf = issue_workload_certificate(ca, spiffe_id=WORKLOAD_ID, public_key=generate_key().public_key(), ttl=DAY)

    sent = load_certs_pem(chain_pem(leaf, ca))
    # leaf, then the signer, then every intermediate up to (not including) the root, nearest first
    assert sent == [leaf, *reversed(chain.intermediates)]
    assert chain.root not in sent
    for child, parent in zip(sent, [*sent[1:], chain.root], strict=True):
        child.verify_directly_issued_by(parent)
    # a peer that holds only the root verifies the chain as sent
    assert verify_workload_certificate(sent[0], sent[1:], [chain.root]) == WORKLOAD_ID


def test_chain_missing_an_intermediate_does_not_verify(two_level: CAChain) -> None:
    ca = SigningCA(cert=two_level.signer, key=two_level.signer_key, chain=two_level.above_signer)
    leaf = issue_workload_certificate(ca, spiffe_id=WORKLOAD_ID, public_key=generate_key().public_key(), ttl=DAY)
    with pytest.raises(CertificateVerificationError, match="does not verify"):
        verify_workload_certificate(leaf, [two_level.signer], [two_level.root])
    with pytest.raises(CertificateVerificationError, match="does not verify"):
        verify_workload_certificate(leaf, [], [two_level.root])


def test_chain_does_not_verify_under_another_root(two_level: CAChain, root_ca: SigningCA) -> None:
    ca = SigningCA(cert=two_level.signer, key=two_level.signer_key, chain=two_level.above_signer)
    leaf = issue_workload_certificate(ca, spiffe_id=WORKLOAD_ID, public_key=generate_key().public_key(), ttl=DAY)
    sent = load_certs_pem(chain_pem(leaf, ca))
    with pytest.raises(CertificateVerificationError):
        verify_workload_certificate(sent[0], sent[1:], [root_ca.cert])


def test_rsa_intermediate_signs_with_sha256() -> None:
    chain = CAChain(1, signer_key=rsa_key())
    ca = SigningCA(cert=chain.signer, key=chain.signer_key, chain=chain.above_signer)
    leaf = issue_workload_certificate(ca, spiffe_id=WORKLOAD_ID, public_key=generate_key().public_key(), ttl=DAY)
    assert leaf.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
    assert verify_workload_certificate(leaf, [chain.signer], [chain.root]) == WORKLOAD_ID


def test_verification_checks_time_and_client_usage(root_ca: SigningCA) -> None:
    leaf = issue_workload_certificate(root_ca, spiffe_id=WORKLOAD_ID, public_key=generate_key().public_key(), ttl=DAY)
    with pytest.raises(CertificateVerificationError, match="does not verify"):
        verify_workload_certificate(leaf, [], [root_ca.cert], now=datetime.now(UTC) + 2 * DAY)
    serving, _ = issue_serving_certificate(root_ca, dns_names=["citadel"], ip_addresses=[], ttl=DAY)
    with pytest.raises(CertificateVerificationError):  # serverAuth only: not a client certificate
        verify_workload_certificate(serving, [], [root_ca.cert])
    with pytest.raises(CertificateVerificationError, match="no roots"):
        verify_workload_certificate(leaf, [], [])


# ---------------------------------------------------------------------------------------------------------------
# CSRs
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"], ids=["ecdsa", "rsa"])
def test_csr_signed_with_only_the_spiffe_id(root_ca: SigningCA, key_type: str) -> None:
    key = generate_key(key_type)  # type: ignore[arg-type]
    csr = make_csr(key, dns_names=["evil.example.com"], common_name="admin")
    cert = sign_csr(root_ca, csr, expected_spiffe_id=WORKLOAD_ID, ttl=DAY, now=NOW)
    assert cert.public_key() == key.public_key()
    assert cert.subject == x509.Name([])  # the CSR's subject is ignored
    assert list(ext(cert, x509.SubjectAlternativeName).value) == [x509.UniformResourceIdentifier(WORKLOAD_ID)]
    assert cert.not_valid_after_utc == NOW + DAY
    assert verify_workload_certificate(cert, [], [root_ca.cert], now=NOW) == WORKLOAD_ID


def _bad_signature_csr() -> bytes:
    der = x509.load_pem_x509_csr(make_csr(generate_key())).public_bytes(serialization.Encoding.DER)
    tampered = der[:-1] + bytes([der[-1] ^ 0x01])  # the last byte of the signature's s
    return x509.load_der_x509_csr(tampered).public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: make_csr(generate_key(), uris=["spiffe://cluster.local/ns/bookinfo/sa/admin"]),
         IdentityMismatchError, "asks for 'spiffe://cluster.local/ns/bookinfo/sa/admin' but the token is for"),
        (lambda: make_csr(generate_key(), uris=[WORKLOAD_ID, "spiffe://cluster.local/ns/x/sa/y"]),
         CSRError, "exactly one URI SAN.*it has 2"),
        (lambda: make_csr(generate_key(), uris=[], dns_names=["reviews"]), CSRError, "exactly one URI SAN.*it has 0"),
        (lambda: make_csr(generate_key(), uris=[]), CSRError, "no subjectAltName"),
        (_bad_signature_csr, CSRError, "signature does not verify"),
        (lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
         CSRError, "not a PEM-encoded"),
        (lambda: b"not pem at all", CSRError, "not a PEM-encoded"),
        (lambda: make_csr(rsa_key(1024)), CSRError, "RSA 1024"),
    ],
    ids=["other-identity", "two-uri-sans", "dns-san-only", "no-san", "bad-signature", "bad-der", "not-pem", "rsa-1024"],
)  # fmt: skip
def test_csr_refusals(root_ca: SigningCA, make: object, error: type[CitadelError], message: str) -> None:
    csr = make()  # type: ignore[operator]
    with pytest.raises(error, match=message) as raised:
        sign_csr(root_ca, csr, expected_spiffe_id=WORKLOAD_ID, ttl=DAY, now=NOW)
    assert raised.value.grpc_status is error.grpc_status


def test_csr_with_a_bad_validity_is_refused(root_ca: SigningCA) -> None:
    with pytest.raises(CSRError, match="validity must be positive"):
        sign_csr(root_ca, make_csr(generate_key()), expected_spiffe_id=WORKLOAD_ID, ttl=-DAY, now=NOW)


# ---------------------------------------------------------------------------------------------------------------
# Citadel's serving certificate
# ---------------------------------------------------------------------------------------------------------------


def test_serving_certificate_for_citadels_endpoint(root_ca: SigningCA) -> None:
    cert, key = issue_serving_certificate(
        root_ca, dns_names=[CITADEL_SERVER_NAME, "localhost"], ip_addresses=["127.0.0.1", "::1"], ttl=DAY
    )
    assert cert.public_key() == key.public_key()
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [CITADEL_SERVER_NAME, "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    verifier = PolicyBuilder().store(Store([root_ca.cert])).build_server_verifier(x509.DNSName(CITADEL_SERVER_NAME))
    assert verifier.verify(cert, []) == [cert, root_ca.cert]


@pytest.mark.parametrize(
    ("dns", "ips", "message"),
    [([], [], "at least one"), (["citadel"], ["not-an-ip"], "'not-an-ip' is not an IP address")],
    ids=["no-names", "bad-ip"],
)
def test_serving_certificate_refusals(root_ca: SigningCA, dns: list[str], ips: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        issue_serving_certificate(root_ca, dns_names=dns, ip_addresses=ips, ttl=DAY)


# ---------------------------------------------------------------------------------------------------------------
# PEM
# ---------------------------------------------------------------------------------------------------------------


def test_pem_round_trips(root_ca: SigningCA, two_level: CAChain) -> None:
    roots = [root_ca.cert, two_level.root]
    assert load_certs_pem(bundle_pem(roots)) == roots
    for key in (generate_key("ecdsa"), generate_key("rsa")):
        pem = key_pem(key)
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
        assert load_key_pem(pem).private_numbers() == key.private_numbers()
    sec1 = generate_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert isinstance(load_key_pem(sec1), ec.EllipticCurvePrivateKey)
    assert len(certificate_fingerprint(root_ca.cert)) == 64
    assert root_ca.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == TRUST_DOMAIN


def test_pem_refusals() -> None:
    with pytest.raises(ValueError, match="at least one root"):
        bundle_pem([])
    with pytest.raises(ValueError, match="no valid PEM certificate"):
        load_certs_pem(b"garbage")
    encrypted = generate_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    with pytest.raises(ValueError, match="encrypted"):
        load_key_pem(encrypted)
    with pytest.raises(ValueError, match="not a PEM private key"):
        load_key_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
