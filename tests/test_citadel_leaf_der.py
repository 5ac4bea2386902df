"""The workload certificates ``leaf_der.LeafTemplate`` encodes are the builder's, byte for byte (the
TBSCertificate: the signatures are randomized), and verify as Citadel's always did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from citadel import ca as ca_module
from citadel.ca import PrivateKey, SigningCA, create_root, issue_workload_certificate, verify_workload_certificate
from tests.citadel_builders import WORKLOAD_ID, CAChain, make_intermediate, rsa_key

NOW = datetime(2026, 12, 3, 12, 30, 15, 987654, tzinfo=UTC)  # a fraction of a second: both drop it
SERIALS = (1, 0x7F, 0x80, 0xFF00, x509.random_serial_number(), (1 << 159) - 1)


def _both(
    signer: SigningCA, public_key: ca_module.PublicKey, *, spiffe_id: str, ttl: timedelta, now: datetime, serial: int
) -> tuple[x509.Certificate, x509.Certificate]:
    """(the template's certificate, the builder's) for the same inputs and serial."""
    template = signer.workload_template
    assert template is not None
    not_before, not_after = ca_module._validity(signer, ttl, now)
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)])
    encoded = template.sign(serial=serial, not_before=not_before, not_after=not_after, public_key=public_key, san=san)
    original = x509.random_serial_number
    try:
        x509.random_serial_number = lambda: serial  # type: ignore[assignment]  # the builder's serial, for this call
        built = ca_module._sign_leaf(
            signer, public_key=public_key, san=san, usages=ca_module._WORKLOAD_USAGES, ttl=ttl, now=now
        )
    finally:
        x509.random_serial_number = original
    return encoded, built


def _signer(kind: str) -> SigningCA:
    if kind == "self-signed-p256":
        root, key = create_root("cluster.local", now=NOW - timedelta(days=1))
        return SigningCA(root, key)
    curve: dict[str, ec.EllipticCurve] = {"intermediate-p384": ec.SECP384R1(), "intermediate-p521": ec.SECP521R1()}
    chain = CAChain(2, signer_key=ec.generate_private_key(curve[kind]))
    return SigningCA(chain.signer, chain.signer_key, chain.above_signer)


def _workload_key(kind: str) -> PrivateKey:
    return rsa_key() if kind == "rsa" else ec.generate_private_key(ec.SECP256R1() if kind == "p256" else ec.SECP384R1())


@pytest.mark.parametrize("signer_kind", ["self-signed-p256", "intermediate-p384", "intermediate-p521"])
@pytest.mark.parametrize("key_kind", ["p256", "p384", "rsa"])
def test_the_template_encodes_what_the_builder_encodes(signer_kind: str, key_kind: str) -> None:
    signer = _signer(signer_kind)
    public_key = _workload_key(key_kind).public_key()
    now = datetime.now(UTC) if signer_kind != "self-signed-p256" else NOW
    for serial in SERIALS:
        encoded, built = _both(
            signer, public_key, spiffe_id=WORKLOAD_ID, ttl=timedelta(hours=24), now=now, serial=serial
        )
        assert encoded.tbs_certificate_bytes == built.tbs_certificate_bytes
        assert encoded.signature_algorithm_oid == built.signature_algorithm_oid
        encoded.verify_directly_issued_by(signer.cert)


@pytest.mark.parametrize(
    ("ttl", "spiffe_id"),
    [
        (timedelta(seconds=1), "spiffe://cluster.local/ns/a/sa/b"),
        (timedelta(days=40 * 365), "spiffe://cluster.local/ns/default/sa/" + "s" * 200),  # to 2066: GeneralizedTime
        (timedelta(hours=24), "spiffe://example.org/ns/bookinfo/sa/reviews-v2"),
    ],
    ids=["one-second", "past-2050-long-id", "other-trust-domain"],
)
def test_validity_in_both_time_encodings_and_long_ids_match_the_builder(ttl: timedelta, spiffe_id: str) -> None:
    root, key = create_root("cluster.local", ttl=timedelta(days=50 * 365), now=NOW - timedelta(days=1))
    signer = SigningCA(root, key)
    encoded, built = _both(
        signer, ec.generate_private_key(ec.SECP256R1()).public_key(), spiffe_id=spiffe_id, ttl=ttl, now=NOW, serial=7
    )
    assert encoded.tbs_certificate_bytes == built.tbs_certificate_bytes
    assert encoded.not_valid_after_utc == (NOW + ttl).replace(microsecond=0)


def test_an_rsa_signer_has_no_template_and_still_issues() -> None:
    root, root_key = create_root("cluster.local")
    cert, key = make_intermediate(root, root_key, name="rsa intermediate", key=rsa_key())
    signer = SigningCA(cert, key, (root,))
    assert signer.workload_template is None
    leaf = issue_workload_certificate(
        signer, spiffe_id=WORKLOAD_ID, public_key=ec.generate_private_key(ec.SECP256R1()).public_key(), ttl=timedelta(1)
    )
    assert verify_workload_certificate(leaf, [cert], [root]) == WORKLOAD_ID


def test_issued_workload_certificates_verify_up_to_the_root() -> None:
    chain = CAChain(2)
    signer = SigningCA(chain.signer, chain.signer_key, chain.above_signer)
    leaf = issue_workload_certificate(
        signer, spiffe_id=WORKLOAD_ID, public_key=ec.generate_private_key(ec.SECP256R1()).public_key(), ttl=timedelta(1)
    )
    assert verify_workload_certificate(leaf, chain.intermediates[::-1], [chain.root]) == WORKLOAD_ID
