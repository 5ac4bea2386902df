"""The shared stream loop without gRPC, serving an in-memory producer: what any xDS server built on it gets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from xdscore import (
    Nack,
    PayloadMemo,
    ProxyResources,
    Resource,
    ResourceChanges,
    ResourceGroup,
    Sent,
    StreamSettings,
    WatchedResource,
    XdsStream,
    make_resource,
)

NAMED = "type.googleapis.com/test.Named"
WAIT = 5.0


def _resource(name: str, seconds: int = 1) -> Resource:
    cluster = Cluster(name=name)
    cluster.connect_timeout.seconds = seconds
    return make_resource(cluster)


class MemoryProducer:
    """A named type served from a dict: the smallest ResourceProducer."""

    wildcard = False
    every_watched = False

    def __init__(self, *resources: Resource) -> None:
        self.set(*resources)

    def set(self, *resources: Resource) -> None:
        self.current = ProxyResources.of([ResourceGroup.of(resources)])

    async def resources(self, watch: WatchedResource) -> ProxyResources:
        return self.current

    def changes(self, since: ProxyResources, current: ProxyResources) -> ResourceChanges | None:
        return None


class Client:
    """The client side and the stream's owner: requests in, responses out, NACKs and sends observed."""

    def __init__(
        self,
        producer: MemoryProducer,
        *,
        send_timeout: float = WAIT,
        stall_timeout: float = WAIT,
        payloads: PayloadMemo | None = None,
        nonce_prefix: str = "n",
    ) -> None:
        self.requests: asyncio.Queue[DiscoveryRequest | None] = asyncio.Queue()
        self.written: asyncio.Queue[DiscoveryResponse] = asyncio.Queue()
        self.payloads: list[bytes] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.nacks: list[Nack] = []
        self.sends: list[Sent] = []
        self.notices: list[Hashable] = []
        nonces = iter(f"{nonce_prefix}{i}" for i in range(1, 100))
        settings = StreamSettings(
            nonce=nonces.__next__,
            payloads=payloads,
            send_timeout=send_timeout,
            stall_timeout=stall_timeout,
            default_type_url=NAMED,
        )
        self.stream = XdsStream(
            mode="sotw", producers={NAMED: producer}, write=self._write, owner=self, settings=settings
        )

    async def _write(self, payload: bytes) -> None:
        await self.gate.wait()
        self.payloads.append(payload)
        self.written.put_nowait(DiscoveryResponse.FromString(payload))

    async def noticed(self, notice: Hashable) -> None:
        self.notices.append(notice)
        await self.stream.respond(NAMED, requested=False, force=False)

    def rejected(self, type_url: str, nack: Nack) -> None:
        self.nacks.append(nack)

    def sent(self, type_url: str, sent: Sent) -> None:
        self.sends.append(sent)

    async def incoming(self) -> AsyncIterator[DiscoveryRequest]:
        while (request := await self.requests.get()) is not None:
            yield request

    def serve(self, first: DiscoveryRequest) -> asyncio.Task[None]:
        return asyncio.create_task(self.stream.serve(first, self.incoming()))

    async def recv(self) -> DiscoveryResponse:
        return await asyncio.wait_for(self.written.get(), WAIT)

    async def silent(self) -> None:
        await asyncio.sleep(0.05)
        assert self.written.empty()

    async def close(self, task: asyncio.Task[None]) -> None:
        await self.requests.put(None)
        await asyncio.wait_for(task, WAIT)


def _names(response: DiscoveryResponse) -> list[str]:
    return [Cluster.FromString(any_.value).name for any_ in response.resources]


def _request(names: list[str], response: DiscoveryResponse | None = None, *, error: str = "") -> DiscoveryRequest:
    request = DiscoveryRequest(type_url=NAMED, resource_names=names)
    if response is not None:
        request.version_info, request.response_nonce = response.version_info, response.nonce
    if error:
        request.error_detail.message = error
    return request


async def test_a_request_is_answered_an_ack_is_not_and_a_nack_is_observed_once() -> None:
    producer = MemoryProducer(_resource("a"), _resource("b"))
    client = Client(producer)
    task = client.serve(_request(["a"]))
    first = await client.recv()
    assert _names(first) == ["a"] and first.nonce == "n1" and first.type_url == NAMED
    assert client.sends[0].version == first.version_info and client.sends[0].size == first.ByteSize()

    await client.requests.put(_request(["a"], first))
    await client.silent()
    assert client.stream.acked

    producer.set(_resource("a", 2), _resource("b"))
    client.stream.notify("changed")
    pushed = await client.recv()
    await client.requests.put(_request(["a"], pushed, error="bad a"))
    await client.requests.put(_request(["a"], pushed, error="bad a"))
    await client.silent()
    assert [(n.version, n.error) for n in client.nacks] == [(pushed.version_info, "bad a")] * 2
    assert client.stream.watches[NAMED].last_nack is not None and not client.stream.acked
    await client.close(task)


async def test_streams_that_send_an_equal_response_share_its_bytes_and_its_nonce() -> None:
    producer = MemoryProducer(_resource("a"), _resource("b"))
    memo = PayloadMemo()
    one, two = Client(producer, payloads=memo, nonce_prefix="x"), Client(producer, payloads=memo, nonce_prefix="y")
    tasks = [one.serve(_request(["a"]))]
    first = await one.recv()
    tasks.append(two.serve(_request(["a"])))
    second = await two.recv()
    assert first.nonce == second.nonce == "x1" and _names(second) == ["a"]
    assert one.payloads[0] is two.payloads[0], "concatenated once"
    assert two.stream.watches[NAMED].nonce_sent == "x1"
    for client, response in ((one, first), (two, second)):
        await client.requests.put(_request(["a"], response))
        await client.silent()
        assert client.stream.acked, "the shared nonce ACKs the response on each stream"

    producer.set(_resource("a", 2), _resource("b"))
    for client in (one, two):
        client.stream.notify("changed")
    pushed = [await one.recv(), await two.recv()]
    assert pushed[0].nonce == pushed[1].nonce != "x1" and pushed[0].version_info != first.version_info
    assert one.payloads[1] is two.payloads[1]

    await two.requests.put(_request(["a", "b"], pushed[1]))  # another set of names: another response
    other = await two.recv()
    assert _names(other) == ["a", "b"] and other.nonce not in (first.nonce, pushed[1].nonce)
    assert memo.hits == 2 and len(memo) == 3
    for client, task in zip((one, two), tasks, strict=True):
        await client.close(task)


def test_a_payload_memo_forgets_the_least_recently_used_first() -> None:
    memo = PayloadMemo(size=2)
    memo.put("a", None, b"A", "n1")
    memo.put("b", None, b"B", "n2")
    assert memo.get("a") == (b"A", "n1")
    memo.put("c", None, b"C", "n3")
    assert memo.get("b") is None and memo.get("a") == (b"A", "n1") and memo.get("c") == (b"C", "n3")
    with pytest.raises(ValueError, match="size must be >= 1"):
        PayloadMemo(size=0)


async def test_a_request_naming_no_type_is_the_default_type_and_another_type_is_not_answered() -> None:
    client = Client(MemoryProducer(_resource("a")))
    task = client.serve(DiscoveryRequest(type_url="type.googleapis.com/other.Type", resource_names=["a"]))
    await client.silent()
    await client.requests.put(DiscoveryRequest(resource_names=["a"]))
    assert _names(await client.recv()) == ["a"]
    await client.close(task)


async def test_equal_notices_coalesce_while_queued() -> None:
    producer = MemoryProducer(_resource("a"))
    client = Client(producer)
    task = client.serve(_request(["a"]))
    await client.recv()
    client.gate.clear()  # the client stops reading...
    producer.set(_resource("a", 2))
    client.stream.notify("changed")
    await asyncio.sleep(0.05)  # ...while that push is being written, three more changes
    for seconds in (3, 4, 5):
        producer.set(_resource("a", seconds))
        client.stream.notify("changed")
    client.gate.set()
    await client.recv()
    last = await client.recv()
    await client.silent()
    assert client.notices == ["changed", "changed"], "the three queued notices were one"
    assert Cluster.FromString(last.resources[0].value).connect_timeout.seconds == 5
    await client.close(task)


async def test_a_client_that_stops_reading_loses_its_stream() -> None:
    producer = MemoryProducer(_resource("a"))
    client = Client(producer, send_timeout=0.1, stall_timeout=0.2)
    task = client.serve(_request(["a"]))
    await client.recv()
    client.gate.clear()
    producer.set(_resource("a", 2))
    client.stream.notify("changed")
    await asyncio.wait_for(task, WAIT)  # ended by the send timeout, not by the client


async def test_a_slow_client_is_waited_for_and_gets_the_latest_state() -> None:
    producer = MemoryProducer(_resource("a"))
    client = Client(producer, send_timeout=0.05, stall_timeout=WAIT)
    task = client.serve(_request(["a"]))
    await client.recv()
    client.gate.clear()  # the client stops taking responses for longer than the send timeout
    producer.set(_resource("a", 2))
    client.stream.notify("changed")
    await asyncio.sleep(0.2)
    for seconds in (3, 4, 5):  # states while its write waits: only the latest is kept
        producer.set(_resource("a", seconds))
        client.stream.notify("changed")
    assert not task.done(), "a slow client keeps its stream"
    client.gate.set()
    slowed = await client.recv()
    latest = await client.recv()
    await client.silent()
    assert Cluster.FromString(slowed.resources[0].value).connect_timeout.seconds == 2
    assert Cluster.FromString(latest.resources[0].value).connect_timeout.seconds == 5
    assert client.stream.slow_writes == 1
    await client.close(task)
