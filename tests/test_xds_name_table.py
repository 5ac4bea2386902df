"""NDS over ADS with a real gRPC client: the agent's request for Istio's NameTable (SotW and delta), and a push when
services change (and none when only other kinds do)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse, DiscoveryResponse

from meshplane.nds.v1.nds_pb2 import NameTable
from pilot.generate.registry import NAME_TABLE_TYPE
from pilot.xds import DiscoveryServer
from tests.xds_fakes import PRODUCTPAGE, AdsStream, bookinfo, configs_of, service_entry, serving, wait_until

REVIEWS = "reviews.default.svc.cluster.local"
PRODUCTPAGE_HOST = "productpage.default.svc.cluster.local"
DETAILS = "details.default.svc.cluster.local"


@pytest.fixture
async def nds_server() -> AsyncIterator[DiscoveryServer]:
    """The real generators (``DiscoveryServer()``) serving bookinfo, 10ms debounce."""
    async with serving(bookinfo(), debounce=0.01) as server:
        yield server


@pytest.fixture
async def channel(nds_server: DiscoveryServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{nds_server.port}") as channel:
        yield channel


def _table(response: DiscoveryResponse) -> NameTable:
    [packed] = response.resources
    assert packed.type_url == NAME_TABLE_TYPE
    table = NameTable()
    assert packed.Unpack(table)
    return table


def _ips(server: DiscoveryServer, host: str) -> list[str]:
    assert server.snapshot is not None
    return list(server.snapshot.vips[host])


async def test_sotw_request_gets_the_namespace_table_and_a_push_on_service_change(
    channel: grpc.aio.Channel, nds_server: DiscoveryServer
) -> None:
    stream = AdsStream(channel)
    await stream.request(NAME_TABLE_TYPE, node=PRODUCTPAGE)
    first = await stream.recv()
    assert first.type_url == NAME_TABLE_TYPE and first.version_info and first.nonce
    table = _table(first)
    assert sorted(table.table) == [PRODUCTPAGE_HOST, REVIEWS]
    reviews = table.table[REVIEWS]
    assert (list(reviews.ips), reviews.registry, reviews.shortname, reviews.namespace) == (
        _ips(nds_server, REVIEWS),
        "External",
        "reviews",
        "default",
    )
    await stream.ack(first)
    await stream.assert_silent()

    nds_server.update_config(bookinfo(reviews_subset="v2"), 2)  # a VirtualService only: the table is the same
    await stream.assert_silent()

    nds_server.update_config({**bookinfo(), **configs_of(service_entry("details"))}, 3)
    pushed = await stream.recv()
    assert pushed.version_info != first.version_info
    assert sorted(_table(pushed).table) == [DETAILS, PRODUCTPAGE_HOST, REVIEWS]
    await stream.ack(pushed)
    await wait_until(lambda: _synced(nds_server))
    await stream.close()


def _synced(server: DiscoveryServer) -> bool:
    [proxy] = server.syncz()["proxies"]
    return bool(proxy["types"]["nds"]["acked"]) and proxy["types"]["nds"]["acked"] == proxy["types"]["nds"]["sent"]


async def test_delta_request_gets_the_unnamed_table_and_its_updates(
    channel: grpc.aio.Channel, nds_server: DiscoveryServer
) -> None:
    stream = AdsStream(channel, delta=True)
    await stream.delta_request(NAME_TABLE_TYPE, node=PRODUCTPAGE)
    first: DeltaDiscoveryResponse = await stream.recv()
    [resource] = first.resources
    assert (resource.name, first.removed_resources) == ("", [])
    table = NameTable()
    assert resource.resource.Unpack(table)
    assert sorted(table.table) == [PRODUCTPAGE_HOST, REVIEWS]
    await stream.delta_request(NAME_TABLE_TYPE, nonce=first.nonce)

    without_productpage = {k: v for k, v in bookinfo().items() if (k.kind, k.name) != ("ServiceEntry", "productpage")}
    nds_server.update_config(without_productpage, 2)
    pushed: DeltaDiscoveryResponse = await stream.recv()
    [updated] = pushed.resources
    assert updated.name == "" and updated.version != resource.version
    assert updated.resource.Unpack(table)
    assert sorted(table.table) == [REVIEWS]
    await stream.close()
