"""The benchmarks' simulated sidecar (``bench._ads_clients``) against a real DiscoveryServer over gRPC: on a delta
stream it follows VHDS as Envoy does, and sees a VirtualService change as the VirtualHost push it is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from bench._ads_clients import ClientStream
from pilot.xds import DiscoveryServer
from tests.xds_fakes import PRODUCTPAGE, WAIT, bookinfo, serving, wait_until
from xdscore.types import VIRTUAL_HOST_TYPE


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
