"""Citadel's CSR API (meshplane.citadel.v1.CertificateService) over real TLS gRPC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from citadel.ca import load_certs_pem, verify_workload_certificate
from citadel.v1 import ca_pb2, ca_pb2_grpc
from tests.citadel_builders import CAChain, make_csr, write_cacerts
from tests.conftest import CitadelUnderTest, StartCitadel

REVIEWS_ID = "spiffe://cluster.local/ns/default/sa/reviews"


async def _create(
    channel: grpc.aio.Channel, token: str | None, csr_pem: bytes | str, validity_seconds: int = 0
) -> ca_pb2.CreateCertificateResponse:
    stub = ca_pb2_grpc.CertificateServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    csr = csr_pem.decode() if isinstance(csr_pem, bytes) else csr_pem
    request = ca_pb2.CreateCertificateRequest(csr_pem=csr, validity_seconds=validity_seconds)
    return await stub.CreateCertificate(request, metadata=metadata, timeout=10)


def _lifetime(response: ca_pb2.CreateCertificateResponse) -> timedelta:
    leaf = load_certs_pem(response.cert_chain[0].encode())[0]
    return leaf.not_valid_after_utc - leaf.not_valid_before_utc


async def test_a_csr_for_the_tokens_identity_is_signed_and_the_chain_ends_with_the_root(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())

    response = await _create(citadel_channel, citadel.token(), make_csr(key, uris=(REVIEWS_ID,)))

    leaf, root = (load_certs_pem(pem.encode())[0] for pem in response.cert_chain)
    assert all(pem.count("BEGIN CERTIFICATE") == 1 for pem in response.cert_chain)
    assert leaf.public_key() == key.public_key(), "signed for the workload's own key"
    assert citadel.server.authority is not None
    assert root == citadel.server.authority.trust_bundle[0], "the root comes last"
    assert verify_workload_certificate(leaf, [], [root]) == REVIEWS_ID
    assert 'citadel_certificates_issued_total{kind="csr"} 1.0' in citadel.server.metrics.exposition().decode()


async def test_a_plugged_in_ca_answers_leaf_intermediates_and_root(start_citadel: StartCitadel, tmp_path: Path) -> None:
    chain = CAChain(2)
    citadel = await start_citadel(ca_dir=write_cacerts(tmp_path / "cacerts", chain))
    key = ec.generate_private_key(ec.SECP256R1())

    async with citadel.channel() as channel:
        response = await _create(channel, citadel.token(), make_csr(key, uris=(REVIEWS_ID,)))

    certs = [load_certs_pem(pem.encode())[0] for pem in response.cert_chain]
    assert certs[1:] == [chain.intermediates[1], chain.intermediates[0], chain.root]
    assert verify_workload_certificate(certs[0], certs[1:-1], [chain.root]) == REVIEWS_ID


@pytest.mark.parametrize(
    ("validity_seconds", "expected"),
    [(0, timedelta(hours=1)), (600, timedelta(seconds=600)), (10 * 86400, timedelta(hours=1))],
    ids=["zero-means-cert-ttl", "shorter-is-kept", "longer-is-cut-to-cert-ttl"],
)
async def test_validity_is_the_requested_one_at_most_cert_ttl(
    start_citadel: StartCitadel, validity_seconds: int, expected: timedelta
) -> None:
    citadel = await start_citadel(cert_ttl=timedelta(hours=1))
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), uris=(REVIEWS_ID,))

    async with citadel.channel() as channel:
        response = await _create(channel, citadel.token(), csr, validity_seconds)

    assert _lifetime(response) == expected + timedelta(minutes=1)  # not-before is backdated a minute (clock skew)


@pytest.mark.parametrize(
    ("csr", "validity", "token", "status", "reason"),
    [
        (
            "other-identity",
            0,
            "valid",
            grpc.StatusCode.PERMISSION_DENIED,
            "the token is for 'spiffe://cluster.local/ns/default/sa/reviews'",
        ),
        ("garbage", 0, "valid", grpc.StatusCode.INVALID_ARGUMENT, "not a PEM-encoded certificate signing request"),
        ("no-uri", 0, "valid", grpc.StatusCode.INVALID_ARGUMENT, "exactly one URI SAN"),
        ("good", -5, "valid", grpc.StatusCode.INVALID_ARGUMENT, "validity_seconds must be 0"),
        ("good", 0, "missing", grpc.StatusCode.UNAUTHENTICATED, "no workload token"),
        ("good", 0, "expired", grpc.StatusCode.UNAUTHENTICATED, "token expired"),
    ],
    ids=["mismatched-identity", "bad-csr", "csr-without-spiffe-id", "negative-validity", "no-token", "expired-token"],
)
async def test_refusals_carry_status_and_reason_and_are_counted(
    citadel: CitadelUnderTest,
    citadel_channel: grpc.aio.Channel,
    csr: str,
    validity: int,
    token: str,
    status: grpc.StatusCode,
    reason: str,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csrs = {
        "good": make_csr(key, uris=(REVIEWS_ID,)).decode(),
        "other-identity": make_csr(key, uris=("spiffe://cluster.local/ns/default/sa/admin",)).decode(),
        "garbage": "-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n",
        "no-uri": make_csr(key, uris=(), dns_names=("reviews.default.svc",)).decode(),
    }
    tokens = {
        "valid": citadel.token(),
        "missing": None,
        "expired": citadel.token(ttl=timedelta(hours=1), now=datetime.now(UTC) - timedelta(days=1)),
    }

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _create(citadel_channel, tokens[token], csrs[csr], validity)

    assert refused.value.code() == status
    assert reason in (refused.value.details() or "")
    metric = f'citadel_certificate_failures_total{{reason="{status.name.lower()}"}} 1.0'
    assert metric in citadel.server.metrics.exposition().decode()
