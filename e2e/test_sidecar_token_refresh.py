"""A sidecar keeps getting certificates after its token is refreshed, with no restart and no dropped connection.

A real Citadel issues 4 s certificates (re-issued every 2 s) and refuses a token after its ``exp``; a real Envoy
starts from the bootstrap ``meshplane-agent sidecar`` writes (``write_sidecar_bootstrap(follow_token=True)``: the
token in a file-based SDS secret, sent by the credential_injector filter) with a first token valid 6 s, while
``agent.token_follower.follow_token`` watches the token file, as the sidecar does. The token file is then replaced
by a new token (as the kubelet refreshes a projected token), and the old one expires: Envoy must still get new
certificates, over a stream opened with the new token, from the same Envoy process, while a TCP connection opened
through it before the refresh still works after. The control case leaves the first token in place: renewals stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest_asyncio
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format

from agent.sidecar_files import write_sidecar_bootstrap
from agent.token_follower import follow_token, token_expiry
from e2e.control_plane import CitadelProcess
from envoy_bootstrap.runner import EnvoyProcess
from meshplane.identity import SDS_WORKLOAD_CERT
from pilot.generate._tls import sds_secret_config

IDENTITY = "spiffe://cluster.local/ns/bookinfo/sa/reviews"
FIRST_TOKEN_TTL_SECONDS = 6
RENEWAL_SECONDS = 2  # --cert-ttl 4s at --rotation-fraction 0.5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _mint(ca_dir: Path, ttl: str) -> str:
    answer = subprocess.run(
        [sys.executable, "-m", "citadel", "token", "--ca-dir", str(ca_dir), "--namespace", "bookinfo",
         "--service-account", "reviews", "--ttl", ttl],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return answer.stdout.strip()


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(text + "\n")
    temporary.replace(path)  # as the kubelet swaps a projected token: the reader sees old or new, never half


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(b"echo " + line)
        await writer.drain()
    writer.close()


def _with_test_resources(bootstrap: bootstrap_pb2.Bootstrap, *, admin: int, listener: int, echo: int) -> None:
    """What Pilot would add: a cluster that holds the workload certificate (SDS ``default`` from ``sds-grpc``), and
    a TCP listener to an echo server, to keep a connection open through Envoy, in place of ADS."""
    bootstrap.admin.address.socket_address.port_value = admin
    bootstrap.ClearField("dynamic_resources")  # no Pilot here: Envoy goes LIVE on its static resources
    holder = cluster_pb2.Cluster(name="certificate-holder", type=cluster_pb2.Cluster.STATIC)
    holder.connect_timeout.FromSeconds(1)
    tls = tls_pb2.UpstreamTlsContext()
    tls.common_tls_context.tls_certificate_sds_secret_configs.append(sds_secret_config(SDS_WORKLOAD_CERT))
    holder.transport_socket.name = "envoy.transport_sockets.tls"
    holder.transport_socket.typed_config.Pack(tls)
    echo_cluster = cluster_pb2.Cluster(name="echo", type=cluster_pb2.Cluster.STATIC)
    echo_cluster.connect_timeout.FromSeconds(1)
    endpoint = echo_cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address.socket_address
    endpoint.address, endpoint.port_value = "127.0.0.1", echo
    echo_cluster.load_assignment.cluster_name = "echo"
    bootstrap.static_resources.clusters.extend([holder, echo_cluster])
    proxy = listener_pb2.Listener(name="echo")
    proxy.address.socket_address.address, proxy.address.socket_address.port_value = "127.0.0.1", listener
    tcp = tcp_proxy_pb2.TcpProxy(stat_prefix="echo", cluster="echo")
    proxy.filter_chains.add().filters.add(name="envoy.filters.network.tcp_proxy").typed_config.Pack(tcp)
    bootstrap.static_resources.listeners.append(proxy)


@dataclass
class Sidecar:
    citadel: CitadelProcess
    envoy: EnvoyProcess
    token_file: Path
    directory: Path  # the sidecar's own files (bootstrap, token document), as meshplane-agent sidecar writes them
    first_token_expiry: datetime
    listener: int

    async def serial(self) -> str | None:
        """The serial of the workload certificate Envoy holds now (admin ``/certs``)."""
        answer = await self.envoy.admin_get("/certs")
        for entry in answer.json().get("certificates", []):
            for cert in entry.get("cert_chain", []):
                if any(san.get("uri") == IDENTITY for san in cert.get("subject_alt_names", [])):
                    return _serial_number(str(cert["serial_number"]))
        return None

    async def citadel_stream(self) -> dict[str, str] | None:
        streams = (await self.citadel.get_json("/debug/sdsz"))["streams"]
        return next((stream for stream in streams if stream["identity"] == IDENTITY and stream["serial"]), None)


@pytest_asyncio.fixture
async def sidecar(tmp_path: Path) -> AsyncIterator[Sidecar]:
    ca_dir, sds = tmp_path / "ca", f"127.0.0.1:{_free_port()}"
    citadel = CitadelProcess(
        ca_dir=ca_dir, workdir=tmp_path, sds_address=sds, monitor_address=f"127.0.0.1:{_free_port()}",
        cert_ttl="4s", extra_arguments=("--rotation-fraction", "0.5"),
    )  # fmt: skip
    await citadel.start()
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    envoy: EnvoyProcess | None = None
    try:
        token_file = tmp_path / "token"
        _replace(token_file, _mint(ca_dir, f"{FIRST_TOKEN_TTL_SECONDS}s"))
        path = write_sidecar_bootstrap(
            tmp_path / "sidecar", workload="reviews-v1", namespace="bookinfo", address="127.0.0.1",
            domain_suffix="cluster.local", pilot=f"127.0.0.1:{_free_port()}", mixer=None, xds_mode="sotw",
            service_account="reviews", labels={"app": "reviews"}, citadel=sds, token_file=token_file,
            root_cert=ca_dir / "trust-bundle.pem", follow_token=True,
        )  # fmt: skip
        assert "Bearer" not in path.read_text(), "the token is in the bootstrap"
        bootstrap = json_format.Parse(path.read_text(), bootstrap_pb2.Bootstrap())
        listener = _free_port()
        _with_test_resources(bootstrap, admin=_free_port(), listener=listener, echo=echo.sockets[0].getsockname()[1])
        envoy = EnvoyProcess(name="reviews", bootstrap=bootstrap, workdir=tmp_path, log_level="warning")
        expiry = token_expiry(token_file.read_text().strip())
        assert expiry is not None
        await envoy.start()
        await envoy.wait_ready()
        yield Sidecar(citadel, envoy, token_file, path.parent, expiry, listener)
    finally:
        if envoy is not None:
            await envoy.stop()
        echo.close()
        await citadel.stop()


async def _until_after(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def _serial_number(text: str) -> str:
    """A certificate serial as one form: Envoy's admin writes leading zeros, Citadel's ``/debug/sdsz`` does not."""
    return format(int(text, 16), "x")


async def _serials(sidecar: Sidecar, seconds: float) -> list[str]:
    """Every distinct serial Envoy held over ``seconds``, in order."""
    seen: list[str] = []
    for _ in range(int(seconds / 0.2)):
        serial = await sidecar.serial()
        if serial is not None and serial not in seen:
            seen.append(serial)
        await asyncio.sleep(0.2)
    return seen


async def _first_certificate(sidecar: Sidecar) -> str:
    async with asyncio.timeout(15):
        while (serial := await sidecar.serial()) is None:
            await asyncio.sleep(0.1)
    return serial


async def test_a_refreshed_token_keeps_the_certificates_coming_with_no_restart(sidecar: Sidecar) -> None:
    follower = asyncio.create_task(follow_token(sidecar.token_file, sidecar.directory, interval=0.2))
    writer: asyncio.StreamWriter | None = None
    try:
        first = await _first_certificate(sidecar)
        pid = sidecar.envoy.pid
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.listener)
        writer.write(b"before\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"echo before\n"

        new_token = _mint(sidecar.citadel.ca_dir, "1h")
        _replace(sidecar.token_file, new_token)
        await _until_after(sidecar.first_token_expiry)
        after_expiry = await _serials(sidecar, 4 * RENEWAL_SECONDS)
        assert first not in after_expiry[1:]
        assert len(after_expiry) >= 3, f"renewals stopped after the first token expired: {after_expiry}"

        stream = await sidecar.citadel_stream()
        new_expiry = token_expiry(new_token)
        assert stream is not None and new_expiry is not None
        assert stream["token_expires_at"] == new_expiry.isoformat()  # the stream Envoy opened with the new token
        assert _serial_number(stream["serial"]) == await sidecar.serial()
        assert sidecar.envoy.pid == pid, "Envoy was restarted"
        writer.write(b"after\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"echo after\n"  # the same connection
        assert new_token not in sidecar.envoy.log_path.read_text()
        dump = (await sidecar.envoy.admin_get("/config_dump?resource=dynamic_active_secrets")).body
        assert new_token not in dump and "[redacted]" in dump
    finally:
        follower.cancel()
        if writer is not None:  # also when an assertion failed: an open socket would be reported in a later test
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def test_without_the_refresh_renewals_stop_when_the_token_expires(sidecar: Sidecar) -> None:
    """The control case: the same sidecar whose token file is left alone gets no certificate after its token's
    ``exp`` (so the scenario above shows the refresh working, not a lenient Citadel)."""
    await _first_certificate(sidecar)
    await _until_after(sidecar.first_token_expiry)
    await asyncio.sleep(RENEWAL_SECONDS)  # the renewal due at expiry is refused
    assert len(await _serials(sidecar, 3 * RENEWAL_SECONDS)) == 1
    assert "expired" in sidecar.citadel.log_path.read_text()
