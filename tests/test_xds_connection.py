"""One stream's sender without gRPC: coalesced snapshot notices, and a stalled proxy that never holds others up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from pilot.generate.registry import ROUTE_TYPE
from pilot.metrics import PilotMetrics
from pilot.model import build_snapshot, parse_node_id
from pilot.xds import Connection, ResourceCache
from tests.xds_fakes import DEFAULT_ROUTES, PRODUCTPAGE, REVIEWS_V1, REVIEWS_V2_CLUSTER, bookinfo, fake_generators
from tests.xds_fakes import unpack_route as route_of
from xdscore import StreamSettings

GENERATORS = fake_generators()


def _cache(version: int, subset: str, previous: ResourceCache | None = None) -> ResourceCache:
    snapshot = build_snapshot(bookinfo(subset), version, previous.snapshot if previous else None)
    return ResourceCache(snapshot, GENERATORS, previous=previous)


class FakeStream:
    """The proxy side: requests it sends, responses the connection wrote (optionally held back)."""

    def __init__(self, node_id: str) -> None:
        self.node = parse_node_id(node_id)
        self.requests: asyncio.Queue[DiscoveryRequest | None] = asyncio.Queue()
        self.written: asyncio.Queue[DiscoveryResponse] = asyncio.Queue()
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, payload: bytes) -> None:
        await self.gate.wait()
        self.written.put_nowait(DiscoveryResponse.FromString(payload))

    async def incoming(self) -> AsyncIterator[DiscoveryRequest]:
        while (request := await self.requests.get()) is not None:
            yield request

    def connect(
        self, cache: ResourceCache, metrics: PilotMetrics, send_timeout: float = 5.0, stall_timeout: float = 5.0
    ) -> Connection:
        return Connection(
            node=self.node,
            mode="sotw",
            write=self.write,
            generators=GENERATORS,
            cache=cache,
            metrics=metrics,
            settings=StreamSettings(
                nonce=iter(f"n{i}" for i in range(1, 1000)).__next__,
                send_timeout=send_timeout,
                stall_timeout=stall_timeout,
                throttle=asyncio.Semaphore(10),
            ),
        )

    async def next(self) -> DiscoveryResponse:
        return await asyncio.wait_for(self.written.get(), 5.0)


async def test_notices_coalesce_into_the_latest_snapshot() -> None:
    metrics = PilotMetrics()
    first = _cache(1, "v1")
    proxy = FakeStream(PRODUCTPAGE)
    connection = proxy.connect(first, metrics)
    serving = asyncio.create_task(
        connection.serve(DiscoveryRequest(type_url=ROUTE_TYPE, resource_names=[DEFAULT_ROUTES]), proxy.incoming())
    )
    initial = await proxy.next()
    proxy.gate.clear()  # the proxy stops reading for a while...
    second = _cache(2, "v2", first)
    connection.notify(second)
    await asyncio.sleep(0.05)
    third = _cache(3, "v1", second)
    fourth = _cache(4, "v2", third)
    connection.notify(third)
    connection.notify(fourth)  # ...and three snapshots go by
    proxy.gate.set()
    pushed = [await proxy.next()]
    await asyncio.sleep(0.1)
    while not proxy.written.empty():
        pushed.append(proxy.written.get_nowait())
    # Snapshot 2 (v2) was being written; then straight to snapshot 4, whose routes equal what the proxy has: the
    # v1 of snapshot 3 never went out. Without coalescing the proxy would have seen v2, v1, v2.
    assert [route_of(p, DEFAULT_ROUTES).virtual_hosts[1].routes[0].route.cluster for p in pushed] == [
        REVIEWS_V2_CLUSTER
    ]
    assert pushed[0].version_info != initial.version_info
    assert connection.cache is fourth and connection.synced(4) is False  # pushed, not yet ACKed
    await proxy.requests.put(None)
    await asyncio.wait_for(serving, 5.0)


async def test_a_stalled_proxy_loses_its_stream_and_never_delays_another() -> None:
    metrics = PilotMetrics()
    first = _cache(1, "v1")
    stalled, healthy = FakeStream(PRODUCTPAGE), FakeStream(REVIEWS_V1)
    request = DiscoveryRequest(type_url=ROUTE_TYPE, resource_names=[DEFAULT_ROUTES])
    slow = stalled.connect(first, metrics, send_timeout=0.1, stall_timeout=0.3)
    fast = healthy.connect(first, metrics)
    stalled_serving = asyncio.create_task(slow.serve(request, stalled.incoming()))
    healthy_serving = asyncio.create_task(fast.serve(request, healthy.incoming()))
    await stalled.next(), await healthy.next()
    stalled.gate.clear()
    second = _cache(2, "v2", first)
    slow.notify(second)
    fast.notify(second)
    pushed = await asyncio.wait_for(healthy.written.get(), 0.2)  # well before the stalled write times out
    assert route_of(pushed, DEFAULT_ROUTES).virtual_hosts[1].routes[0].route.cluster == REVIEWS_V2_CLUSTER
    await asyncio.wait_for(stalled_serving, 2.0)  # the stall timeout ended the stalled stream
    assert not healthy_serving.done()
    await healthy.requests.put(None)
    await asyncio.wait_for(healthy_serving, 5.0)
