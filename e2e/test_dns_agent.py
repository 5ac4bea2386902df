"""The sidecar agent's DNS proxy against a real Pilot process: a ServiceEntry written into Pilot's config directory
resolves through ``meshplane-agent dns`` to its VIP (short name, ``name.ns``, FQDN, an external host), other names
go to the upstream resolver, and a config change reaches the answers. No Envoy: the name table is all it needs."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from e2e.control_plane import PilotProcess
from e2e.dns_world import world_dns
from envoy_bootstrap.processes import start_logged_process, stop_process
from pilot.model.vips import AUTO_VIP_NETWORK

NODE = "sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local"
WAIT = 15.0

REVIEWS = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
"""
EXTERNAL = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: default
spec:
  hosts: [{host}]
  location: MESH_EXTERNAL
  ports: [{{number: 443, name: https, protocol: TLS}}]
  resolution: DNS
"""


def _free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 (for Pilot's listeners and the agent's DNS)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port for UDP and TCP")


async def _query(port: int, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    return await dns.asyncquery.udp(query, "127.0.0.1", timeout=1.0, port=port)


def _addresses(response: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for r in rrset)


async def _eventually(port: int, name: str, expected: list[str], rcode: int = dns.rcode.NOERROR) -> None:
    """Query until the answer is ``expected`` (the agent may not have the newest table yet), within WAIT."""
    last = "no answer"
    async with asyncio.timeout(WAIT):
        while True:
            with contextlib.suppress(dns.exception.Timeout):
                response = await _query(port, name)
                if (response.rcode(), _addresses(response)) == (rcode, expected):
                    return
                last = f"{dns.rcode.to_text(response.rcode())} {_addresses(response)}"
            await asyncio.sleep(0.1)
    raise AssertionError(f"{name}: expected {expected}, last answer {last}")  # pragma: no cover


@pytest.fixture
async def pilot(tmp_path: Path) -> AsyncIterator[PilotProcess]:
    config = tmp_path / "config"
    config.mkdir()
    (config / "reviews.yaml").write_text(REVIEWS)
    process = PilotProcess(
        config_dir=config,
        workdir=tmp_path,
        xds_address=f"127.0.0.1:{_free_port()}",
        monitor_address=f"127.0.0.1:{_free_port()}",
        debounce="50ms",
    )
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def _served_vips(pilot: PilotProcess, host: str) -> list[str]:
    """The VIPs of ``host`` in the name table Pilot last sent the agent (``/debug/config_dump``), once there."""
    async with asyncio.timeout(WAIT):
        while True:
            status, body = await pilot.get(f"/debug/config_dump?proxy={NODE}")
            if status == 200:
                resources = json.loads(body)["types"].get("nds", {}).get("resources", [])
                table = resources[0].get("table", {}) if resources else {}
                if host in table:
                    ips = sorted(table[host]["ips"])
                    assert all(ipaddress.ip_address(ip) in AUTO_VIP_NETWORK for ip in ips), ips
                    return ips
            await asyncio.sleep(0.1)


async def test_agent_answers_mesh_names_from_pilot_and_follows_config_changes(
    pilot: PilotProcess, tmp_path: Path
) -> None:
    async with world_dns({"www.example.org.": ("203.0.113.7",)}) as world:
        port = _free_port()
        agent = await start_logged_process(
            [
                *(sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main())", "dns"),
                *("--pilot", pilot.xds_address, "--node-id", NODE, "--listen", f"127.0.0.1:{port}"),
                *("--upstream", f"127.0.0.1:{world.port}", "--resolv-conf", str(tmp_path / "resolv.conf")),
            ],
            tmp_path / "agent.log",
        )
        try:
            reviews = await _served_vips(pilot, "reviews.default.svc.cluster.local")
            for name in ("reviews.", "reviews.default.", "reviews.default.svc.", "reviews.default.svc.cluster.local."):
                await _eventually(port, name, reviews)
            await _eventually(port, "www.example.org.", ["203.0.113.7"])  # forwarded
            await _eventually(port, "api.example.com.", [], dns.rcode.NXDOMAIN)  # not in the mesh yet
            assert not any(name.startswith("reviews") for _, name in world.queries)

            (pilot.config_dir / "api.yaml").write_text(EXTERNAL.format(name="api", host="api.example.com"))
            await _eventually(port, "api.example.com.", await _served_vips(pilot, "api.example.com"))

            (pilot.config_dir / "reviews.yaml").unlink()
            await _eventually(port, "reviews.", [], dns.rcode.NXDOMAIN)  # gone from the mesh: forwarded
        finally:
            await stop_process(agent, name="meshplane-agent", timeout=5.0)
        assert ("udp", "reviews.") in world.queries
