"""Citadel's SDS server over real TLS gRPC: secret contents, authentication, and the xDS protocol (SotW and delta)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest
from envoy.service.secret.v3 import sds_pb2_grpc

from citadel.ca import verify_workload_certificate
from citadel.ca_dir import TRUST_BUNDLE
from citadel.sds_resources import CONTROL_PLANE_ID, SECRET_TYPE, SecretProducer, root_ca_secret, workload_secret
from tests.citadel_sds_client import SdsClient, Secrets, decode_secrets, decode_workload
from tests.conftest import CitadelUnderTest, StartCitadel
from xdscore import Resource, WatchedResource

REVIEWS_ID = "spiffe://cluster.local/ns/default/sa/reviews"
QUIET = 0.3  # how long "nothing more is sent" is watched for


def _check_workload(secrets: Secrets, citadel: CitadelUnderTest, spiffe_id: str) -> None:
    """The chain verifies up to ROOTCA for ``spiffe_id``, and the key is the certificate's."""
    assert secrets.roots, "ROOTCA missing"
    assert verify_workload_certificate(secrets.leaf, secrets.chain[1:], secrets.roots) == spiffe_id
    key = serialization.load_pem_private_key(secrets.key_pem, password=None)
    assert key.public_key() == secrets.leaf.public_key()
    assert (citadel.ca_dir / TRUST_BUNDLE).read_bytes() == citadel.trust_bundle_pem


async def test_sotw_stream_gets_default_and_rootca_for_the_tokens_identity(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel
) -> None:
    client = SdsClient(citadel_channel, token=citadel.token("default", "reviews"))
    client.subscribe("default", "ROOTCA")

    response = await client.recv()

    assert response.type_url == SECRET_TYPE
    assert response.version_info and response.nonce
    assert response.control_plane.identifier == CONTROL_PLANE_ID
    assert sorted(decode_secrets(response)) == ["ROOTCA", "default"]
    secrets = decode_workload(response)
    _check_workload(secrets, citadel, REVIEWS_ID)
    assert isinstance(secrets.leaf.public_key(), ec.EllipticCurvePublicKey)
    await client.close()


async def test_delta_stream_gets_versioned_resources_and_removed_for_unknown_names(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel
) -> None:
    client = SdsClient(citadel_channel, token=citadel.token("bookinfo", "ratings"), delta=True)
    client.subscribe("default", "ROOTCA", "no-such-secret")

    response = await client.recv()

    assert response.type_url == SECRET_TYPE and response.nonce
    assert {r.name for r in response.resources} == {"default", "ROOTCA"}
    assert all(r.version for r in response.resources)
    assert list(response.removed_resources) == ["no-such-secret"]
    _check_workload(decode_workload(response), citadel, "spiffe://cluster.local/ns/bookinfo/sa/ratings")
    client.ack(response)
    await client.silent_for(QUIET)
    await client.close()


async def test_delta_reconnect_with_current_versions_gets_only_what_differs(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel
) -> None:
    first = SdsClient(citadel_channel, token=citadel.token(), delta=True)
    first.subscribe("ROOTCA")
    rootca = (await first.recv()).resources[0]
    await first.close()

    again = SdsClient(citadel_channel, token=citadel.token(), delta=True)
    again.send(
        DeltaDiscoveryRequest(
            type_url=SECRET_TYPE,
            resource_names_subscribe=["ROOTCA", "default"],
            initial_resource_versions={"ROOTCA": rootca.version},
        )
    )
    response = await again.recv()

    assert [r.name for r in response.resources] == ["default"], "ROOTCA is unchanged: not sent again"
    await again.close()


async def test_rsa_key_type_gives_rsa_workload_keys(start_citadel: StartCitadel) -> None:
    citadel: CitadelUnderTest = await start_citadel(key_type="rsa")
    async with citadel.channel() as channel:
        client = SdsClient(channel, token=citadel.token())
        client.subscribe("default", "ROOTCA")
        secrets = decode_workload(await client.recv())
        await client.close()

    assert isinstance(secrets.leaf.public_key(), rsa.RSAPublicKey)
    assert secrets.leaf.public_key().key_size == 2048
    _check_workload(secrets, citadel, REVIEWS_ID)


async def test_ack_is_recorded_and_nothing_is_resent(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel
) -> None:
    client = SdsClient(citadel_channel, token=citadel.token())
    client.subscribe("default", "ROOTCA")
    response = await client.recv()

    client.ack(response, "default", "ROOTCA")
    await client.silent_for(QUIET)

    assert citadel.server.sds is not None
    [stream] = citadel.server.sds.sdsz()["streams"]
    assert stream["acked"] and stream["version_acked"] == response.version_info
    assert stream["serial"] == f"{decode_workload(response).serial:x}"
    await client.close()


async def test_nack_is_recorded_and_the_rejected_secrets_are_not_resent(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel
) -> None:
    client = SdsClient(citadel_channel, token=citadel.token())
    client.subscribe("default", "ROOTCA")
    response = await client.recv()

    with structlog.testing.capture_logs() as logs:
        client.nack(response, "default", "ROOTCA", message="bad certificate chain")
        await client.silent_for(QUIET)

    assert citadel.server.sds is not None
    [stream] = citadel.server.sds.sdsz()["streams"]
    assert not stream["acked"]
    assert stream["last_nack"]["error"] == "bad certificate chain"
    assert stream["last_nack"]["version"] == response.version_info
    assert any(e["event"] == "workload rejected secrets (NACK)" for e in logs)
    await client.close()


async def test_stale_nonce_is_ignored_and_new_names_are_answered(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel
) -> None:
    client = SdsClient(citadel_channel, token=citadel.token())
    client.subscribe("ROOTCA")
    response = await client.recv()
    assert sorted(decode_secrets(response)) == ["ROOTCA"]

    client.send(DiscoveryRequest(type_url=SECRET_TYPE, resource_names=["ROOTCA", "default"], response_nonce="old"))
    await client.silent_for(QUIET)
    client.ack(response, "ROOTCA", "default")  # an ACK that subscribes to one more name
    more = await client.recv()

    assert sorted(decode_secrets(more)) == ["ROOTCA", "default"]
    await client.close()


@pytest.mark.parametrize(
    "names",
    [("no-such-secret",), ()],
    ids=["unknown-name", "no-names"],
)
async def test_sotw_request_for_nothing_citadel_serves_gets_no_response(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel, names: tuple[str, ...]
) -> None:
    client = SdsClient(citadel_channel, token=citadel.token())
    client.subscribe(*names)
    await client.silent_for(QUIET)
    await client.close()


async def test_request_for_another_type_is_not_answered(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel
) -> None:
    client = SdsClient(citadel_channel, token=citadel.token())
    client.subscribe("default", type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster")
    await client.silent_for(QUIET)
    client.subscribe("default", type_url="")  # SDS is not aggregated: an empty type means Secret
    assert sorted(decode_secrets(await client.recv())) == ["default"]
    await client.close()


async def test_fetch_secrets_answers_once(citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel) -> None:
    stub = sds_pb2_grpc.SecretDiscoveryServiceStub(citadel_channel)
    request = DiscoveryRequest(type_url=SECRET_TYPE, resource_names=["default", "ROOTCA", "unknown"])

    response = await stub.FetchSecrets(request, metadata=(("authorization", f"Bearer {citadel.token()}"),), timeout=10)

    assert sorted(decode_secrets(response)) == ["ROOTCA", "default"]
    _check_workload(decode_workload(response), citadel, REVIEWS_ID)


# ------------------------------------------------------------------------------------------------ authentication

_LONG_AGO = datetime.now(UTC) - timedelta(days=2)


@pytest.mark.parametrize(
    ("token_kind", "reason"),
    [
        ("missing", "no workload token"),
        ("not-bearer", "must be 'Bearer <token>'"),
        ("garbage", "malformed token"),
        ("expired", "token expired"),
        ("other-key", "bad signature"),
        ("other-trust-domain", "wrong trust domain"),
    ],
    ids=["missing", "not-bearer", "garbage", "expired", "other-key", "other-trust-domain"],
)
@pytest.mark.parametrize("rpc", ["sotw", "delta", "fetch"])
async def test_bad_tokens_are_refused_unauthenticated_with_a_reason_and_logged_without_the_token(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel, token_kind: str, reason: str, rpc: str
) -> None:
    tokens = {
        "missing": None,
        "not-bearer": None,
        "garbage": "Bearer not.a.token",
        "expired": "Bearer " + citadel.token(ttl=timedelta(hours=1), now=_LONG_AGO),
        "other-key": "Bearer " + citadel.token(key=ec.generate_private_key(ec.SECP256R1())),
        "other-trust-domain": "Bearer " + citadel.token(trust_domain="example.org"),
    }
    header = tokens[token_kind] if token_kind != "not-bearer" else "Basic dXNlcjpwYXNz"
    metadata = (("authorization", header),) if header is not None else ()
    stub = sds_pb2_grpc.SecretDiscoveryServiceStub(citadel_channel)

    with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as refused:
        if rpc == "fetch":
            await stub.FetchSecrets(DiscoveryRequest(resource_names=["default"]), metadata=metadata, timeout=10)
        else:
            method = stub.StreamSecrets if rpc == "sotw" else stub.DeltaSecrets
            call = method(iter(()), metadata=metadata, timeout=10)
            async for _ in call:
                pass

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason in (refused.value.details() or "")
    [event] = [e for e in logs if e["event"] == "certificate request refused"]
    assert event["log_level"] == "warning" and reason in event["reason"] and event["peer"]
    if header is not None and " " in header:
        secret = header.split(" ", 1)[1]
        assert all(secret not in str(value) for e in logs for value in e.values())
    assert (
        'citadel_certificate_failures_total{reason="unauthenticated"} 1.0'
        in citadel.server.metrics.exposition().decode()
    )


async def test_token_expiring_before_a_rotation_ends_the_stream_unauthenticated(start_citadel: StartCitadel) -> None:
    # The token (>= 1 s, whole seconds) expires before 75% of the 4 s certificate lifetime: no re-issue.
    citadel: CitadelUnderTest = await start_citadel(cert_ttl=timedelta(seconds=4), rotation_fraction=0.75)
    async with citadel.channel() as channel:
        client = SdsClient(channel, token=citadel.token(ttl=timedelta(seconds=2)))
        client.subscribe("default")
        response = await client.recv()
        client.ack(response, "default")

        error = await client.error(timeout=10)

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "token expired" in (error.details() or "")


async def test_the_secret_producer_returns_the_same_set_while_its_secrets_are_the_same() -> None:
    rootca, default = root_ca_secret(b"roots"), workload_secret(b"chain", b"key")
    current = {"workload": default}

    async def workload() -> Resource:
        return current["workload"]

    producer = SecretProducer(workload=workload, root_ca=lambda: rootca)
    both = WatchedResource(type_url=SECRET_TYPE, wildcard=False, names=frozenset({"default", "ROOTCA", "other"}))
    first = await producer.resources(both)
    assert sorted(first.resources) == ["ROOTCA", "default"]
    assert await producer.resources(both) is first, "nothing new: the same set, so a push costs nothing"
    current["workload"] = workload_secret(b"new chain", b"key")
    rotated = await producer.resources(both)
    assert rotated is not first and rotated.resources["default"] is current["workload"]
    only_roots = replace(both, names=frozenset({"ROOTCA"}))
    assert list((await producer.resources(only_roots)).resources) == ["ROOTCA"]
