"""The benchmarks' simulated sidecar (``bench._ads_clients``) against a real DiscoveryServer over gRPC: on a delta
stream it follows VHDS as Envoy does, and sees a VirtualService change as the VirtualHost push it is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from bench._ads_clients import ClientStream
from pilot.xds import DiscoveryServer
from tests.xds_fakes import PRODUCTPAGE, WAIT, bookinfo, serving, wait_until
from xdscore.types import VIRTUAL_HOST_TYPE

_ADS = "envoy.service.discovery.v3.AggregatedDiscoveryService"


@pytest.fixture
async def pilot() -> AsyncIterator[DiscoveryServer]:
    """A DiscoveryServer with the real generators (listeners that name route tables), serving ``bookinfo()``."""
    async with serving(bookinfo(), debounce=0.01, debounce_max=0.2) as server:
        yield server


async def _change_bytes(stream: ClientStream, server: DiscoveryServer, version: int) -> int:
    stream.start()
    try:
        await asyncio.wait_for(stream.synced.wait(), WAIT)
        stream.expect_change()
        server.update_config(bookinfo(reviews_subset="v2"), version)
        await asyncio.wait_for(stream.changed.wait(), WAIT)
        await asyncio.sleep(0.2)
        return stream.change_bytes
    finally:
        await stream.stop()


async def test_a_delta_client_follows_vhds_and_sees_the_change_as_one_virtual_host(pilot: DiscoveryServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pilot.port}") as channel:
        delta = ClientStream(channel, PRODUCTPAGE, delta=True)
        vhds_bytes = await _change_bytes(delta, pilot, 2)
        assert delta.uses_vhds and VIRTUAL_HOST_TYPE in delta.acked
        pilot.update_config(bookinfo(), 3)
        await wait_until(lambda: pilot.snapshot is not None and pilot.snapshot.version == 3)
        sotw_bytes = await _change_bytes(ClientStream(channel, PRODUCTPAGE, delta=False), pilot, 4)

    assert 0 < vhds_bytes < sotw_bytes, (vhds_bytes, sotw_bytes)  # one virtual host, against the whole table


async def test_a_stream_the_server_closes_before_it_synced_is_opened_again_as_envoy_does() -> None:
    """A control plane that ends the first ADS call with OK (an EOF to the client) gets a second one, with the
    node again; the client counts it as a retry instead of waiting for a sync that cannot come."""
    calls: list[str] = []

    async def ads(requests: AsyncIterator[DiscoveryRequest], _context: grpc.aio.ServicerContext[Any, Any]) -> None:
        first = await anext(aiter(requests))
        calls.append(first.node.id)
        if len(calls) > 1:
            await asyncio.sleep(WAIT)  # the second call stays open, unanswered

    handler = grpc.stream_stream_rpc_method_handler(
        ads, request_deserializer=DiscoveryRequest.FromString, response_serializer=DiscoveryResponse.SerializeToString
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(_ADS, {"StreamAggregatedResources": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stream = ClientStream(channel, PRODUCTPAGE, delta=False)
    try:
        stream.start()
        await wait_until(lambda: len(calls) == 2)
        assert calls == [PRODUCTPAGE, PRODUCTPAGE]
        assert stream.retries == 1 and not stream.synced.is_set()
    finally:
        await stream.stop()
        await channel.close()
        await server.stop(None)
