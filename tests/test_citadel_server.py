"""Citadel as a server: its TLS identity, the monitor (/ready, /metrics, /debug/sdsz), the CLI, generated code."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import aiohttp
import grpc
import pytest
from cryptography import x509

from citadel import cli
from citadel.ca import cert_pem, create_root, verify_workload_certificate
from citadel.ca_dir import ROOT_KEY, load_or_create_ca, load_or_create_token_key
from citadel.monitor import CitadelMonitor
from citadel.serving import serving_names
from citadel.tokens import issue_token, verify_token
from meshplane.identity import CITADEL_SERVER_NAME
from tests.citadel_sds_client import SdsClient, decode_workload
from tests.conftest import CitadelUnderTest, StartCitadel

WAIT = 10.0


async def _peer_certificate(citadel: CitadelUnderTest) -> x509.Certificate:
    context = ssl.create_default_context(cadata=citadel.trust_bundle_pem.decode())
    context.set_alpn_protocols(["h2"])
    _, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", citadel.server.port, ssl=context, server_hostname=CITADEL_SERVER_NAME),
        WAIT,
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.transport.abort()  # the server already sent HTTP/2 frames: no TLS close_notify dance
    return x509.load_der_x509_certificate(der)


@pytest.mark.parametrize(
    ("host", "dns_names", "ip_addresses"),
    [
        ("127.0.0.1", (CITADEL_SERVER_NAME,), ("127.0.0.1",)),
        ("0.0.0.0", (CITADEL_SERVER_NAME,), ()),
        ("[::1]", (CITADEL_SERVER_NAME,), ("::1",)),
        ("localhost", (CITADEL_SERVER_NAME, "localhost"), ()),
    ],
    ids=["ip", "wildcard", "ipv6", "host-name"],
)
def test_serving_names_follow_the_listen_address(
    host: str, dns_names: tuple[str, ...], ip_addresses: tuple[str, ...]
) -> None:
    assert serving_names(host) == (dns_names, ip_addresses)


async def test_serving_certificate_names_citadel_and_the_listen_ip_and_chains_to_the_root(
    citadel: CitadelUnderTest,
) -> None:
    cert = await _peer_certificate(citadel)

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [CITADEL_SERVER_NAME]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert citadel.server.authority is not None
    cert.verify_directly_issued_by(citadel.server.authority.trust_bundle[0])


@pytest.mark.parametrize(
    "channel_kind",
    ["plaintext", "wrong-name", "wrong-root"],
    ids=["plaintext", "wrong-name", "wrong-root"],
)
async def test_clients_that_do_not_verify_citadel_get_nothing(citadel: CitadelUnderTest, channel_kind: str) -> None:
    if channel_kind == "plaintext":
        channel = grpc.aio.insecure_channel(citadel.address)
    elif channel_kind == "wrong-name":
        channel = citadel.channel(server_name="other.istio-system.svc")
    else:
        channel = citadel.channel(cert_pem(create_root("cluster.local")[0]))
    async with channel:
        client = SdsClient(channel, token=citadel.token())
        client.subscribe("default")
        error = await client.error()
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_stopped_citadel_refuses_new_streams(start_citadel: StartCitadel) -> None:
    citadel = await start_citadel()
    await citadel.server.stop(grace=0)
    async with citadel.channel() as channel:
        client = SdsClient(channel, token=citadel.token())
        client.subscribe("default")
        error = await client.error()
    assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_monitor_serves_ready_metrics_and_sdsz(citadel: CitadelUnderTest) -> None:
    monitor = CitadelMonitor("127.0.0.1:0", server=citadel.server)
    await monitor.start()
    try:
        async with citadel.channel() as channel:
            client = SdsClient(channel, token=citadel.token())
            client.subscribe("default", "ROOTCA")
            response = await client.recv()
            client.ack(response, "default", "ROOTCA")
            await asyncio.sleep(0.2)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
                async with session.get(f"{monitor.url}/ready") as ready:
                    assert (ready.status, await ready.text()) == (200, "ready\n")
                async with session.get(f"{monitor.url}/metrics") as metrics:
                    exposition = await metrics.text()
                async with session.get(f"{monitor.url}/debug/sdsz") as sdsz:
                    debug = await sdsz.json()
            await client.close()
    finally:
        await monitor.stop()

    for line in (
        'citadel_certificates_issued_total{kind="sds"} 1.0',
        "citadel_sds_connections 1.0",
        "citadel_root_cert_expiry_seconds 3.1",  # ten years: 3.15e8 seconds
        "citadel_oldest_workload_cert_expiry_seconds 8",  # 24 hours: 86399.x seconds
    ):
        assert line in exposition, f"{line!r} not in\n{exposition}"
    [stream] = debug["streams"]
    assert stream["identity"] == "spiffe://cluster.local/ns/default/sa/reviews"
    assert stream["acked"] is True and stream["serial"] and stream["expires_at"]
    assert debug["ca"]["rotation_phase"] == "idle" and len(debug["ca"]["trust_bundle"]) == 1


async def test_monitor_reports_not_ready_once_the_server_stopped(start_citadel: StartCitadel) -> None:
    citadel = await start_citadel()
    monitor = CitadelMonitor("127.0.0.1:0", server=citadel.server)
    await monitor.start()
    try:
        await citadel.server.stop(grace=0)
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
            session.get(f"{monitor.url}/ready") as ready,
        ):
            assert ready.status == 503
    finally:
        await monitor.stop()


# ------------------------------------------------------------------------------------------------ CLI


def test_token_command_prints_a_token_citadel_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca_dir = tmp_path / "ca"

    code = cli.main(["token", "--ca-dir", str(ca_dir), "--namespace", "bookinfo", "--service-account", "ratings"])

    token = capsys.readouterr().out.strip()
    assert code == 0
    identity = verify_token(load_or_create_token_key(ca_dir).public_key(), token, trust_domain="cluster.local")
    assert identity.spiffe_id == "spiffe://cluster.local/ns/bookinfo/sa/ratings"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--cert-ttl", "soon"], "--cert-ttl"),
        (["--rotation-fraction", "1.5"], "between 0 and 1"),
        (["--key-type", "dsa"], "invalid choice"),
        (["--token-review-cache-ttl=-1s"], "must not be negative"),
        (["--kubeconfig", "kc", "--in-cluster"], "not allowed with argument --kubeconfig"),
    ],
    ids=["bad-duration", "bad-fraction", "bad-key-type", "negative-review-cache", "two-clusters"],
)
def test_bad_arguments_are_refused_naming_the_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--ca-dir", str(tmp_path), *arguments])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_key_readable_by_others_stops_citadel_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_dir = tmp_path / "ca"
    load_or_create_ca(ca_dir, "cluster.local")
    (ca_dir / ROOT_KEY).chmod(0o644)

    code = cli.main(["--ca-dir", str(ca_dir), "--sds-address", "127.0.0.1:0", "--monitor-address", "127.0.0.1:0"])

    assert code == 2
    assert "looser than 0600" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_citadel_command_serves_until_sigterm(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    sds_port, monitor_port = _free_port(), _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "citadel",
        *("--ca-dir", str(ca_dir), "--sds-address", f"127.0.0.1:{sds_port}"),
        *("--monitor-address", f"127.0.0.1:{monitor_port}", "--cert-ttl", "1h", "--log-json"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
            async with asyncio.timeout(WAIT):
                while True:
                    try:
                        async with session.get(f"http://127.0.0.1:{monitor_port}/ready") as ready:
                            if ready.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
        token_key = load_or_create_token_key(ca_dir)
        token = issue_token(
            token_key, trust_domain="cluster.local", namespace="default", service_account="cli", ttl=timedelta(hours=1)
        )
        bundle = (ca_dir / "trust-bundle.pem").read_bytes()
        credentials = grpc.ssl_channel_credentials(root_certificates=bundle)
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{sds_port}", credentials, options=(("grpc.ssl_target_name_override", CITADEL_SERVER_NAME),)
        ) as channel:
            client = SdsClient(channel, token=token)
            client.subscribe("default", "ROOTCA")
            secrets = decode_workload(await client.recv())
            await client.close()
        assert (
            verify_workload_certificate(secrets.leaf, [], secrets.roots) == "spiffe://cluster.local/ns/default/sa/cli"
        )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert token not in stderr.decode(), "a token was logged"
    assert b'"event": "citadel stopped"' in stderr


def test_a_missing_generated_module_says_how_to_generate_it() -> None:
    code = (
        "import sys; sys.modules['citadel.v1'] = None\ntry:\n import citadel.csr\nexcept ImportError as e:\n print(e)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, env={**os.environ}
    )
    assert "python citadel/proto/generate.py" in result.stdout
