"""Real Envoy serving HTTPS with a gateway credential that Citadel reads from ``--credentials-dir`` and serves over
SDS as ``kubernetes://mycred``: the listener waits while the credential is missing, serves its certificate once it
is written, follows a rotation without a restart, and (MUTUAL) validates clients with ``kubernetes://mycred-cacert``.
Certificates are made by the test (``tests.credential_builders``)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from e2e.gateway_tls import GATEWAY_BODY, credential_gateway, served_certificate, wait_served
from tests.credential_builders import TestCA, write_credential

HOST = "httpbin.example.com"
NAMESPACE = "istio-system"


async def test_a_gateway_serves_its_credential_from_the_directory_and_follows_its_rotation(
    tmp_path: Path, envoy_binary: Path
) -> None:
    credentials = tmp_path / "credentials"
    ca = TestCA()
    async with credential_gateway(
        tmp_path,
        envoy_binary=envoy_binary,
        namespace=NAMESPACE,
        citadel_arguments=("--credentials-dir", str(credentials)),
    ) as gateway:
        with pytest.raises((OSError, ssl.SSLError)):  # no credential yet: the listener is warming, not bound
            await served_certificate(gateway.port, server_name=HOST, ca_pem=ca.pem)

        first = ca.issue([HOST])
        write_credential(credentials, NAMESPACE, "mycred", first.files())
        leaf, response = await wait_served(
            gateway.port, server_name=HOST, ca_pem=ca.pem, serial=first.leaf.serial_number
        )
        assert leaf == first.leaf
        assert response.startswith("HTTP/1.1 200") and response.endswith(GATEWAY_BODY)

        rotated = ca.issue([HOST])
        write_credential(credentials, NAMESPACE, "mycred", rotated.files())
        leaf, _ = await wait_served(gateway.port, server_name=HOST, ca_pem=ca.pem, serial=rotated.leaf.serial_number)
        assert leaf == rotated.leaf
        assert gateway.envoy.running


async def test_another_namespaces_credential_is_not_served(tmp_path: Path, envoy_binary: Path) -> None:
    credentials = tmp_path / "credentials"
    ca = TestCA()
    write_credential(credentials, "default", "mycred", ca.issue([HOST]).files())
    async with credential_gateway(
        tmp_path,
        envoy_binary=envoy_binary,
        namespace=NAMESPACE,
        citadel_arguments=("--credentials-dir", str(credentials)),
    ) as gateway:
        with pytest.raises((OSError, ssl.SSLError)):  # default's mycred is not the gateway's: still warming
            await served_certificate(gateway.port, server_name=HOST, ca_pem=ca.pem)
        own = ca.issue([HOST])
        write_credential(credentials, NAMESPACE, "mycred", own.files())
        leaf, _ = await wait_served(gateway.port, server_name=HOST, ca_pem=ca.pem, serial=own.leaf.serial_number)
        assert leaf == own.leaf  # its own namespace's


async def test_mutual_tls_validates_clients_with_the_cacert_secret(tmp_path: Path, envoy_binary: Path) -> None:
    credentials = tmp_path / "credentials"
    ca = TestCA()
    server = ca.issue([HOST])
    write_credential(credentials, NAMESPACE, "mycred", server.files())
    client = ca.issue(["client.example.com"], client=True)
    chain, key = tmp_path / "client.crt", tmp_path / "client.key"
    chain.write_bytes(client.chain_pem)
    key.write_bytes(client.key_pem)
    async with credential_gateway(
        tmp_path,
        envoy_binary=envoy_binary,
        namespace=NAMESPACE,
        citadel_arguments=("--credentials-dir", str(credentials)),
        mutual=True,
    ) as gateway:
        _, response = await wait_served(
            gateway.port, server_name=HOST, ca_pem=ca.pem, serial=server.leaf.serial_number, client_cert=(chain, key)
        )
        assert response.startswith("HTTP/1.1 200")

        stranger = TestCA("stranger.example.com").issue(["client.example.com"], client=True)
        chain.write_bytes(stranger.chain_pem)
        key.write_bytes(stranger.key_pem)
        with pytest.raises((OSError, ssl.SSLError)):
            await served_certificate(gateway.port, server_name=HOST, ca_pem=ca.pem, client_cert=(chain, key))
        with pytest.raises((OSError, ssl.SSLError)):
            await served_certificate(gateway.port, server_name=HOST, ca_pem=ca.pem)
