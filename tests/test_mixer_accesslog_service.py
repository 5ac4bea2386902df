"""Mixer's AccessLogService over real gRPC: a client streams StreamAccessLogsMessages as Envoy's http_grpc logger
does (identifier on the first message only), Mixer counts, queues and turns them into metrics and the graph; a
full queue drops entries (counted) without ever holding the stream up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator

import grpc
import pytest
from envoy.config.core.v3.base_pb2 import Node
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry
from envoy.service.accesslog.v3.als_pb2 import StreamAccessLogsMessage, StreamAccessLogsResponse
from prometheus_client.parser import text_string_to_metric_families

from meshplane.mixer_names import ACCESS_LOG_NAME
from mixer.accesslog_service import ACCESS_LOG_SERVICE, SLICE_ENTRIES, TelemetryPipeline, add_access_log_service
from mixer.graph import ServiceGraph
from mixer.metrics import MixerMetrics
from mixer.registry import WorkloadRegistry
from pilot.model import build_snapshot, parse_node_id
from tests.mixer_builders import (
    REVIEWS,
    http_entry,
    inbound_reviews_entry,
    mesh_registry,
    outbound_productpage_entry,
)

REVIEWS_NODE = "sidecar~127.0.0.21~reviews-v1.default~default.svc.cluster.local"
PRODUCTPAGE_NODE = "sidecar~127.0.0.11~productpage-v1.default~default.svc.cluster.local"
WAIT = 5.0


@pytest.fixture
def metrics() -> Iterator[MixerMetrics]:
    metrics = MixerMetrics()
    yield metrics
    metrics.shutdown()


@pytest.fixture
def registry() -> WorkloadRegistry:
    return mesh_registry()


@pytest.fixture
async def pipeline(metrics: MixerMetrics, registry: WorkloadRegistry) -> AsyncIterator[TelemetryPipeline]:
    pipeline = TelemetryPipeline(metrics=metrics, registry=lambda: registry, graph=ServiceGraph())
    yield pipeline
    await pipeline.stop()


Serve = Callable[[TelemetryPipeline], Awaitable[grpc.aio.Channel]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(pipeline)``: a channel to a real grpc.aio server on 127.0.0.1 (free port) serving it."""
    servers: list[grpc.aio.Server] = []
    channels: list[grpc.aio.Channel] = []

    async def start(pipeline: TelemetryPipeline) -> grpc.aio.Channel:
        server = grpc.aio.server()
        add_access_log_service(server, pipeline)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
        return channels[-1]

    try:
        yield start
    finally:
        for channel in channels:
            await channel.close()
        for server in servers:
            await server.stop(grace=0)


@pytest.fixture
async def channel(serve: Serve, pipeline: TelemetryPipeline) -> grpc.aio.Channel:
    return await serve(pipeline)


def stream_access_logs(
    channel: grpc.aio.Channel,
) -> grpc.aio.StreamUnaryMultiCallable[StreamAccessLogsMessage, StreamAccessLogsResponse]:
    return channel.stream_unary(
        f"/{ACCESS_LOG_SERVICE}/StreamAccessLogs",
        request_serializer=StreamAccessLogsMessage.SerializeToString,
        response_deserializer=StreamAccessLogsResponse.FromString,
    )


def messages(node_id: str, batches: Iterable[list[HTTPAccessLogEntry]]) -> list[StreamAccessLogsMessage]:
    """One message per batch; only the first says who is sending (as Envoy does)."""
    result = []
    for index, batch in enumerate(batches):
        message = StreamAccessLogsMessage()
        if index == 0:
            message.identifier.node.CopyFrom(Node(id=node_id, cluster="reviews"))
            message.identifier.log_name = ACCESS_LOG_NAME
        message.http_logs.log_entry.extend(batch)
        result.append(message)
    return result


async def send(channel: grpc.aio.Channel, stream: list[StreamAccessLogsMessage]) -> StreamAccessLogsResponse:
    async def requests() -> AsyncIterator[StreamAccessLogsMessage]:
        for message in stream:
            yield message

    async with asyncio.timeout(WAIT):
        response: StreamAccessLogsResponse = await stream_access_logs(channel)(requests())
    return response


def counter(metrics: MixerMetrics, family: str, **labels: str) -> float:
    """The summed value of the ``<family>_total`` samples whose labels include ``labels``."""
    total = 0.0
    for metric in text_string_to_metric_families(metrics.exposition().decode()):
        if metric.name == family:
            for sample in metric.samples:
                if sample.name.endswith("_total") and labels.items() <= sample.labels.items():
                    total += sample.value
    return total


async def test_a_stream_of_access_logs_becomes_istio_metrics_and_graph_edges(
    channel: grpc.aio.Channel, pipeline: TelemetryPipeline, metrics: MixerMetrics
) -> None:
    pipeline.start()
    inbound = messages(
        REVIEWS_NODE,
        [
            [inbound_reviews_entry(), inbound_reviews_entry(code=503)],
            [inbound_reviews_entry(peer_uri="", local_uri=""), http_entry(reporter="")],  # 2nd: unparsable
        ],
    )
    outbound = messages(PRODUCTPAGE_NODE, [[outbound_productpage_entry(), outbound_productpage_entry()]])

    responses = await asyncio.gather(send(channel, inbound), send(channel, outbound))
    assert list(responses) == [StreamAccessLogsResponse(), StreamAccessLogsResponse()]
    async with asyncio.timeout(WAIT):
        await pipeline.drain()

    assert counter(metrics, "mixer_log_entries") == 6.0
    assert counter(metrics, "mixer_log_entries_dropped", reason="unparsable") == 1.0
    assert counter(metrics, "mixer_log_entries_dropped", reason="queue_full") == 0.0
    assert counter(metrics, "istio_requests", reporter="destination") == 3.0
    assert counter(metrics, "istio_requests", reporter="destination", connection_security_policy="mutual_tls") == 2.0
    assert counter(metrics, "istio_requests", reporter="destination", response_code="503") == 1.0
    assert (
        counter(
            metrics,
            "istio_requests",
            reporter="source",
            source_workload="productpage-v1",
            destination_workload="reviews-v1",
            destination_service=REVIEWS,
            connection_security_policy="unknown",
        )
        == 2.0
    )
    edges = {(e["source"], e["target"]): e for e in pipeline.graph.snapshot()["edges"]}
    assert set(edges) == {
        ("workload:default/productpage-v1", f"service:{REVIEWS}"),
        (f"service:{REVIEWS}", "workload:default/reviews-v1"),
    }
    to_service = edges[("workload:default/productpage-v1", f"service:{REVIEWS}")]
    assert (to_service["requests"], to_service["error_rate"], to_service["mtls_ratio"]) == (3, 0.3333, 0.6667)
    assert pipeline.queued_entries == 0


async def test_a_full_queue_drops_entries_without_holding_the_stream(
    serve: Serve, metrics: MixerMetrics, registry: WorkloadRegistry
) -> None:
    small = TelemetryPipeline(metrics=metrics, registry=lambda: registry, capacity=3)
    channel = await serve(small)
    stream = messages(REVIEWS_NODE, [[inbound_reviews_entry(), inbound_reviews_entry()]] * 4)

    response = await send(channel, stream)  # the worker is not running: nothing is drained, nothing blocks

    assert response == StreamAccessLogsResponse()
    assert counter(metrics, "mixer_log_entries") == 8.0
    assert counter(metrics, "mixer_log_entries_dropped", reason="queue_full") == 6.0
    assert small.queued_entries == 2
    assert counter(metrics, "istio_requests") == 0.0

    small.start()
    try:
        async with asyncio.timeout(WAIT):
            await small.drain()
    finally:
        await small.stop()
    assert counter(metrics, "istio_requests") == 2.0
    assert small.queued_entries == 0


async def test_entries_are_resolved_against_the_current_registry(metrics: MixerMetrics) -> None:
    empty = WorkloadRegistry(build_snapshot({}, version=2))
    current = [mesh_registry()]
    pipeline = TelemetryPipeline(metrics=metrics, registry=lambda: current[0])
    node = parse_node_id(REVIEWS_NODE)

    assert pipeline.process(node, [inbound_reviews_entry()]) == 1
    current[0] = empty  # config changed: productpage-v1 is gone
    assert pipeline.process(node, [inbound_reviews_entry()]) == 1

    assert counter(metrics, "istio_requests", source_workload="productpage-v1", destination_app="reviews") == 1.0
    assert counter(metrics, "istio_requests", source_workload="unknown", destination_workload="reviews-v1") == 1.0


async def test_a_stream_from_a_node_id_that_is_not_istios_still_counts(
    channel: grpc.aio.Channel, pipeline: TelemetryPipeline, metrics: MixerMetrics
) -> None:
    pipeline.start()
    await send(channel, messages("not-a-sidecar", [[inbound_reviews_entry()]]))
    async with asyncio.timeout(WAIT):
        await pipeline.drain()

    assert counter(metrics, "istio_requests", source_workload="productpage-v1", destination_workload="unknown") == 1.0


def test_queue_capacity_must_hold_an_entry(metrics: MixerMetrics, registry: WorkloadRegistry) -> None:
    with pytest.raises(ValueError, match="capacity"):
        TelemetryPipeline(metrics=metrics, registry=lambda: registry, capacity=0)


async def test_a_large_batch_is_worked_in_slices_with_the_loop_free_between_them(pipeline: TelemetryPipeline) -> None:
    # Envoy flushes a second's entries at once: checks on the same loop must not wait behind all of them
    node = parse_node_id(REVIEWS_NODE)
    assert pipeline.offer(node, [inbound_reviews_entry() for _ in range(2 * SLICE_ENTRIES + 10)])
    pipeline.start()
    seen: list[int] = []
    async with asyncio.timeout(WAIT):
        while pipeline.queued_entries:
            await asyncio.sleep(0)  # another task on the loop, as a check would be
            seen.append(pipeline.queued_entries)
        await pipeline.drain()
    assert SLICE_ENTRIES + 10 in seen and 10 in seen  # it ran between the slices
    assert counter(pipeline.metrics, "istio_requests") == 2 * SLICE_ENTRIES + 10
