"""Pilot's monitor: /ready, /metrics, /debug/configz, /debug/syncz, /debug/config_dump over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest

from pilot.generate.registry import CLUSTER_TYPE, LISTENER_TYPE
from pilot.monitor import MonitorServer, parse_address
from pilot.xds import DiscoveryServer
from tests.xds_fakes import PRODUCTPAGE, REVIEWS_CLUSTER, AdsStream, fake_generators, wait_until

CONFIGZ = {"version": 1, "accepted": ["ServiceEntry/default/reviews"], "rejected": []}


@pytest.fixture
async def monitor(xds_server: DiscoveryServer) -> AsyncIterator[MonitorServer]:
    server = MonitorServer("127.0.0.1:0", ready=lambda: xds_server.ready, configz=lambda: CONFIGZ, server=xds_server)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _get(monitor: MonitorServer, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(monitor.url + path, timeout=aiohttp.ClientTimeout(5)) as r,
    ):
        return r.status, r.headers.get("Content-Type", ""), await r.text()


async def _json(monitor: MonitorServer, path: str, status: int = 200) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(monitor.url + path, timeout=aiohttp.ClientTimeout(5)) as r,
    ):
        assert r.status == status, await r.text()
        return await r.json()


async def test_ready_when_the_first_snapshot_is_served(monitor: MonitorServer) -> None:
    assert monitor.port != 0
    assert await _get(monitor, "/ready") == (200, "text/plain; charset=utf-8", "ready\n")


async def test_not_ready_before_a_snapshot() -> None:
    server = DiscoveryServer(generators=fake_generators())
    monitor = MonitorServer("127.0.0.1:0", ready=lambda: server.ready, configz=dict, server=server)
    await monitor.start()
    try:
        status, _, body = await _get(monitor, "/ready")
        assert status == 503 and "not ready" in body
    finally:
        await monitor.stop()


async def test_metrics_use_istio_names(
    monitor: MonitorServer, ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer
) -> None:
    stream = AdsStream(ads_channel)
    await stream.request(CLUSTER_TYPE, node=PRODUCTPAGE)
    await stream.recv()
    status, content_type, body = await _get(monitor, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    assert "pilot_xds 1.0" in body.splitlines()
    assert 'pilot_xds_pushes_total{type="cds"} 1.0' in body.splitlines()
    assert 'pilot_xds_push_time_count{type="cds"} 1.0' in body.splitlines()
    assert "pilot_xds_snapshot_build_time_count 1.0" in body.splitlines()
    xds_server.metrics.rejected_config("VirtualService", 2)
    _, _, body = await _get(monitor, "/metrics")
    assert 'pilot_total_rejected_configs_total{kind="VirtualService"} 2.0' in body.splitlines()


async def test_debug_configz_and_syncz(monitor: MonitorServer, ads_channel: grpc.aio.Channel) -> None:
    assert await _json(monitor, "/debug/configz") == CONFIGZ
    stream = AdsStream(ads_channel)
    await stream.request(CLUSTER_TYPE, node=PRODUCTPAGE)
    response = await stream.recv()
    await stream.ack(response)
    syncz = await _json(monitor, "/debug/syncz")
    assert syncz["snapshot_version"] == 1 and syncz["snapshot_error"] is None  # the newest snapshot is served
    [proxy] = syncz["proxies"]
    assert proxy["id"] == PRODUCTPAGE and proxy["types"]["cds"]["sent"] == response.version_info
    assert proxy["snapshot_error"] is None


async def test_debug_config_dump(monitor: MonitorServer, ads_channel: grpc.aio.Channel) -> None:
    stream = AdsStream(ads_channel)
    await stream.request(CLUSTER_TYPE, node=PRODUCTPAGE)
    response = await stream.recv()
    dump = await _json(monitor, "/debug/config_dump?proxy=" + PRODUCTPAGE)
    assert dump["id"] == PRODUCTPAGE and dump["snapshot_version"] == 1
    clusters = dump["types"]["cds"]
    assert clusters["version"] == response.version_info
    names = [c["name"] for c in clusters["resources"]]
    assert REVIEWS_CLUSTER in names and len(names) == len(response.resources)
    assert clusters["resources"][0]["@type"] == CLUSTER_TYPE
    assert (await _json(monitor, "/debug/config_dump", status=400))["error"].startswith("query parameter 'proxy'")
    missing = await _json(monitor, "/debug/config_dump?proxy=nobody", status=404)
    assert missing["connected"] == [PRODUCTPAGE]


async def test_config_dump_merges_the_streams_of_one_node(
    monitor: MonitorServer, ads_channel: grpc.aio.Channel
) -> None:
    """A pod's Envoy and its agent each hold a stream under the same node id (here: one asks for CDS, the other for
    LDS); the dump of that node has what both were sent."""
    clusters, listeners = AdsStream(ads_channel), AdsStream(ads_channel)
    await clusters.request(CLUSTER_TYPE, node=PRODUCTPAGE)
    sent_clusters = await clusters.recv()
    await listeners.request(LISTENER_TYPE, node=PRODUCTPAGE)
    sent_listeners = await listeners.recv()

    dump = await _json(monitor, "/debug/config_dump?proxy=" + PRODUCTPAGE)

    assert dump["id"] == PRODUCTPAGE and set(dump["types"]) == {"cds", "lds"}
    assert dump["types"]["cds"]["version"] == sent_clusters.version_info
    assert dump["types"]["lds"]["version"] == sent_listeners.version_info
    assert len(dump["types"]["lds"]["resources"]) == len(sent_listeners.resources) > 0


async def test_syncz_lists_a_proxy_until_it_disconnects(
    monitor: MonitorServer, ads_channel: grpc.aio.Channel, xds_server: DiscoveryServer
) -> None:
    stream = AdsStream(ads_channel)
    await stream.request(CLUSTER_TYPE, node=PRODUCTPAGE)
    await stream.recv()
    await stream.close()
    await wait_until(lambda: xds_server.syncz()["proxies"] == [])
    assert "pilot_xds 0.0" in (await _get(monitor, "/metrics"))[2].splitlines()


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:15014", ("127.0.0.1", 15014)), ("[::1]:0", ("::1", 0)), ("localhost:1", ("localhost", 1))],
    ids=["ipv4", "ipv6", "name"],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(
    "address", ["15014", ":15014", "host:port", "host:70000"], ids=["no-host", "empty-host", "word", "big"]
)
def test_parse_address_rejects(address: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_address(address)
