"""Gateway credentials over Citadel's SDS (real TLS gRPC streams): ``kubernetes://<name>`` and ``-cacert`` from a
credentials directory, pushed when they change, held back while missing, and only within the caller's namespace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from citadel.sds_resources import SECRET_TYPE
from tests.citadel_sds_client import SdsClient, decode_secrets
from tests.conftest import CitadelUnderTest, StartCitadel
from tests.credential_builders import TestCA, write_credential

QUIET = 0.5  # longer than the credentials directory's poll
POLL = 0.1


@pytest.fixture
def credentials_dir(tmp_path: Path) -> Path:
    return tmp_path / "credentials"


@pytest.fixture
async def gateway_citadel(start_citadel: StartCitadel, credentials_dir: Path) -> CitadelUnderTest:
    return await start_citadel(credentials_dir=credentials_dir, credentials_poll_interval=POLL)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
@pytest.mark.parametrize("sds_name", ["kubernetes://mycred", "mycred"], ids=["prefixed", "bare"])
async def test_a_gateway_gets_its_namespaces_credential(
    gateway_citadel: CitadelUnderTest, credentials_dir: Path, ca: TestCA, sds_name: str, delta: bool
) -> None:
    credential = ca.issue(["httpbin.example.com"])
    write_credential(credentials_dir, "istio-system", "mycred", credential.files())
    await asyncio.sleep(2 * POLL)
    async with gateway_citadel.channel() as channel:
        client = SdsClient(channel, token=gateway_citadel.token("istio-system", "istio-ingressgateway"), delta=delta)
        client.subscribe(sds_name)

        response = await client.recv()

        assert response.type_url == SECRET_TYPE and response.nonce
        secrets = decode_secrets(response)
        assert list(secrets) == [sds_name]
        secret = secrets[sds_name]
        assert secret.WhichOneof("type") == "tls_certificate"
        assert secret.tls_certificate.certificate_chain.inline_bytes == credential.chain_pem
        assert secret.tls_certificate.private_key.inline_bytes == credential.key_pem
        await client.close()


async def test_the_cacert_name_gets_the_validation_context(
    gateway_citadel: CitadelUnderTest, credentials_dir: Path, ca: TestCA
) -> None:
    write_credential(credentials_dir, "istio-system", "mycred", ca.issue(["httpbin.example.com"]).files())
    await asyncio.sleep(2 * POLL)
    async with gateway_citadel.channel() as channel:
        client = SdsClient(channel, token=gateway_citadel.token("istio-system", "istio-ingressgateway"))
        client.subscribe("kubernetes://mycred-cacert")

        secret = decode_secrets(await client.recv())["kubernetes://mycred-cacert"]

        assert secret.WhichOneof("type") == "validation_context"
        assert secret.validation_context.trusted_ca.inline_bytes == ca.pem
        assert not secret.validation_context.HasField("crl")
        await client.close()


async def test_a_missing_credential_is_held_back_until_it_is_written_then_rotated(
    gateway_citadel: CitadelUnderTest, credentials_dir: Path, ca: TestCA
) -> None:
    async with gateway_citadel.channel() as channel:
        client = SdsClient(channel, token=gateway_citadel.token("istio-system", "istio-ingressgateway"))
        client.subscribe("kubernetes://mycred", "ROOTCA")
        first = await client.recv()
        assert list(decode_secrets(first)) == ["ROOTCA"], "ROOTCA now; the missing credential is not sent"
        client.ack(first, "kubernetes://mycred", "ROOTCA")
        await client.silent_for(QUIET)

        credential = ca.issue(["httpbin.example.com"])
        write_credential(credentials_dir, "istio-system", "mycred", credential.files())
        pushed = await client.recv()
        assert sorted(decode_secrets(pushed)) == ["ROOTCA", "kubernetes://mycred"], "SDS SotW: every watched secret"
        tls = decode_secrets(pushed)["kubernetes://mycred"].tls_certificate
        assert tls.certificate_chain.inline_bytes == credential.chain_pem
        client.ack(pushed, "kubernetes://mycred", "ROOTCA")
        await client.silent_for(QUIET)

        rotated = ca.issue(["httpbin.example.com"])
        write_credential(credentials_dir, "istio-system", "mycred", rotated.files())
        again = decode_secrets(await client.recv())["kubernetes://mycred"].tls_certificate
        assert again.certificate_chain.inline_bytes == rotated.chain_pem
        assert again.private_key.inline_bytes == rotated.key_pem
        await client.close()


async def test_another_namespaces_credential_is_never_sent(
    gateway_citadel: CitadelUnderTest, credentials_dir: Path, ca: TestCA
) -> None:
    write_credential(credentials_dir, "istio-system", "mycred", ca.issue(["httpbin.example.com"]).files())
    await asyncio.sleep(2 * POLL)
    async with gateway_citadel.channel() as channel:
        for name in ("kubernetes://mycred", "kubernetes://istio-system/mycred"):
            client = SdsClient(channel, token=gateway_citadel.token("default", "sleep"))
            client.subscribe(name)
            await client.silent_for(QUIET)
            await client.close()


async def test_a_credential_that_envoy_would_nack_is_not_served(
    gateway_citadel: CitadelUnderTest, credentials_dir: Path, ca: TestCA
) -> None:
    files = ca.issue(["httpbin.example.com"]).files() | {"tls.key": ca.issue(["other.example.com"]).key_pem}
    write_credential(credentials_dir, "istio-system", "mycred", files)
    await asyncio.sleep(2 * POLL)
    async with gateway_citadel.channel() as channel:
        client = SdsClient(channel, token=gateway_citadel.token("istio-system", "istio-ingressgateway"))
        client.subscribe("kubernetes://mycred")
        await client.silent_for(QUIET)
        await client.close()


async def test_without_a_credentials_source_nothing_is_served_and_nothing_breaks(
    citadel: CitadelUnderTest, citadel_channel: grpc.aio.Channel
) -> None:
    client = SdsClient(citadel_channel, token=citadel.token("istio-system", "istio-ingressgateway"))
    client.subscribe("kubernetes://mycred", "default")
    response = await client.recv()
    assert list(decode_secrets(response)) == ["default"]
    await client.close()


async def test_fetch_secrets_serves_credentials_of_the_callers_namespace_only(
    gateway_citadel: CitadelUnderTest, credentials_dir: Path, ca: TestCA
) -> None:
    credential = ca.issue(["httpbin.example.com"])
    write_credential(credentials_dir, "istio-system", "mycred", credential.files())
    await asyncio.sleep(2 * POLL)
    request = DiscoveryRequest(
        type_url=SECRET_TYPE, resource_names=["kubernetes://mycred", "kubernetes://mycred-cacert"]
    )
    async with gateway_citadel.channel() as channel:
        fetch = channel.unary_unary(
            "/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets",
            request_serializer=DiscoveryRequest.SerializeToString,
            response_deserializer=DiscoveryResponse.FromString,
        )
        own = decode_secrets(await fetch(request, metadata=_bearer(gateway_citadel.token("istio-system", "gw"))))
        other = decode_secrets(await fetch(request, metadata=_bearer(gateway_citadel.token("default", "gw"))))

    assert own["kubernetes://mycred"].tls_certificate.certificate_chain.inline_bytes == credential.chain_pem
    assert own["kubernetes://mycred-cacert"].validation_context.trusted_ca.inline_bytes == ca.pem
    assert other == {}


def _bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)
