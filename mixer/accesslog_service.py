"""Mixer's Envoy AccessLogService (``envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs``) and the
pipeline that turns the received HTTP access-log entries into Istio metrics and the service graph.

Envoy's gRPC access logger (``envoy.access_loggers.http_grpc``) opens one client stream per log name per sidecar,
says who it is on the stream's first message only (``identifier: {node, log_name}``) and then sends batches of
entries (``http_logs.log_entry``) as it flushes them (every second, or when its buffer fills). It never waits for
an answer: the stream's single response comes only when the stream ends, and Envoy drops entries locally when
the stream cannot take more. Mixer must therefore never slow a stream down, so:

- the receive loop only reads messages, remembers the stream's node, counts the entries
  (``mixer_log_entries_total``) and hands the batch to the pipeline without waiting;
- the pipeline keeps at most ``capacity`` entries queued; a batch that does not fit is dropped and counted
  (``mixer_log_entries_dropped_total{reason="queue_full"}``) - a burst beyond what Mixer keeps up with costs
  metrics, never the sidecars' streams;
- one worker task drains the queue: it resolves each batch against the registry of the current mesh snapshot
  (config changes while streams stay open), builds a ``RequestRecord`` per entry, and records it in Istio's
  metrics and the service graph; an entry it cannot describe is counted (``reason="unparsable"``) and logged.
  It works in slices of at most ``SLICE_ENTRIES`` entries and yields to the event loop between them: Envoy flushes
  a second's entries at once (hundreds), and the ext_authz checks Mixer answers on the same loop must not wait
  behind a whole batch (a 300-entry batch is about 5 ms of work; a slice about 1 ms).

TCP access logs (``tcp_logs``) are not produced by Pilot's config and are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
import structlog
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry
from envoy.service.accesslog.v3.als_pb2 import StreamAccessLogsMessage, StreamAccessLogsResponse

from mixer.graph import ServiceGraph
from mixer.log_entries import RequestRecord, reporting_workload, request_record
from mixer.metric_overrides import MetricOverrides
from mixer.metrics import MixerMetrics
from mixer.registry import WorkloadInfo, WorkloadRegistry
from mixer.telemetry import IstioTelemetry
from pilot.model import NodeIdError, parse_node_id
from pilot.model.types import ProxyNode

__all__ = [
    "ACCESS_LOG_SERVICE",
    "DEFAULT_QUEUE_ENTRIES",
    "SLICE_ENTRIES",
    "AccessLogService",
    "TelemetryPipeline",
    "add_access_log_service",
]

log = structlog.get_logger(__name__)

ACCESS_LOG_SERVICE = "envoy.service.accesslog.v3.AccessLogService"
DEFAULT_QUEUE_ENTRIES = 10_000
DROPPED_QUEUE_FULL = "queue_full"
DROPPED_UNPARSABLE = "unparsable"
SLICE_ENTRIES = 50  # entries processed between two yields to the event loop

_Batch = tuple[ProxyNode | None, Sequence[HTTPAccessLogEntry]]


class TelemetryPipeline:
    """Queued access-log batches -> Istio metrics and the service graph, processed by one worker task.

    ``registry`` is called for every batch, so records are always resolved against the current snapshot.
    """

    def __init__(
        self,
        *,
        metrics: MixerMetrics,
        registry: Callable[[], WorkloadRegistry],
        graph: ServiceGraph | None = None,
        telemetry: IstioTelemetry | None = None,
        capacity: int = DEFAULT_QUEUE_ENTRIES,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1 entry, got {capacity}")
        self.metrics = metrics
        self.graph = graph if graph is not None else ServiceGraph()
        self.telemetry = telemetry if telemetry is not None else IstioTelemetry()
        metrics.add_producer(self.telemetry.metrics)
        self.capacity = capacity
        self._registry = registry
        self._queue: asyncio.Queue[_Batch] = asyncio.Queue()
        self._queued_entries = 0
        self._worker: asyncio.Task[None] | None = None
        self._reporters: dict[str, WorkloadInfo | None] = {}  # node id -> its workload, for _reporters_of
        self._reporters_of: WorkloadRegistry | None = None
        self._overrides: MetricOverrides | None = None

    @property
    def queued_entries(self) -> int:
        """Entries received and not yet processed."""
        return self._queued_entries

    def start(self) -> None:
        """Start the worker (on the running event loop)."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="mixer-telemetry")

    async def stop(self) -> None:
        """Stop the worker; entries still queued are not processed. Idempotent."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    def offer(self, node: ProxyNode | None, entries: Sequence[HTTPAccessLogEntry]) -> bool:
        """Queue a batch without waiting; False (and the entries counted dropped) when it does not fit."""
        count = len(entries)
        if not count:
            return True
        if self._queued_entries + count > self.capacity:
            self.metrics.log_entries_dropped(count, DROPPED_QUEUE_FULL)
            return False
        self._queued_entries += count
        self._queue.put_nowait((node, entries))
        return True

    async def drain(self) -> None:
        """Wait until every batch queued so far has been processed (the worker must be running)."""
        await self._queue.join()

    def process(self, node: ProxyNode | None, entries: Sequence[HTTPAccessLogEntry]) -> int:
        """Record one batch now (what the worker does for each queued batch); the number of entries recorded."""
        registry = self._registry()
        reporter = self._reporter(node, registry)
        plan = self._overrides_of(registry).plan(reporter)
        records: list[RequestRecord] = []
        for entry in entries:
            try:
                record = request_record(entry, reporter, registry)
            except Exception as exc:  # a malformed entry must not stop the pipeline
                self.metrics.log_entries_dropped(1, DROPPED_UNPARSABLE)
                log.warning("access-log entry dropped", reason=DROPPED_UNPARSABLE, node=_node_id(node), error=str(exc))
                continue
            records.append(record)
        self.graph.observe_all(records)
        self.telemetry.record_all(records, plan)
        return len(records)

    def _overrides_of(self, registry: WorkloadRegistry) -> MetricOverrides:
        """The Telemetry metrics overrides of the registry's snapshot, compiled once per snapshot."""
        if self._overrides is None or self._overrides.snapshot is not registry.snapshot:
            self._overrides = MetricOverrides(registry.snapshot)
        return self._overrides

    def _reporter(self, node: ProxyNode | None, registry: WorkloadRegistry) -> WorkloadInfo | None:
        if node is None:
            return None
        if registry is not self._reporters_of:
            self._reporters.clear()
            self._reporters_of = registry
        if node.id not in self._reporters:
            self._reporters[node.id] = reporting_workload(node, registry)
        return self._reporters[node.id]

    async def _work(self) -> None:
        while True:
            node, entries = await self._queue.get()
            try:
                for start in range(0, len(entries), SLICE_ENTRIES):
                    part = entries[start : start + SLICE_ENTRIES]
                    try:
                        self.process(node, part)
                    except Exception:  # e.g. the registry callable failed: this slice is lost, the pipeline goes on
                        self.metrics.log_entries_dropped(len(part), DROPPED_UNPARSABLE)
                        log.exception("access-log batch dropped", node=_node_id(node), entries=len(part))
                    self._queued_entries -= len(part)
                    await asyncio.sleep(0)  # let checks and the streams' reads run between slices
            finally:
                self._queue.task_done()


class AccessLogService:
    """The StreamAccessLogs handler: reads a stream's messages and offers their entries to the pipeline."""

    def __init__(self, pipeline: TelemetryPipeline) -> None:
        self.pipeline = pipeline

    async def stream_access_logs(
        self, messages: AsyncIterator[StreamAccessLogsMessage], context: grpc.aio.ServicerContext[Any, Any]
    ) -> StreamAccessLogsResponse:
        node: ProxyNode | None = None
        node_id = ""
        metrics = self.pipeline.metrics
        async for message in messages:
            if message.HasField("identifier") and message.identifier.node.id != node_id:
                node_id = message.identifier.node.id
                node = _parse_node(node_id, context)
                log.debug("access-log stream", node=node_id, log_name=message.identifier.log_name, peer=context.peer())
            entries = message.http_logs.log_entry
            if entries:
                metrics.log_entries_received(len(entries))
                self.pipeline.offer(node, entries)
        return StreamAccessLogsResponse()


def add_access_log_service(server: grpc.aio.Server, pipeline: TelemetryPipeline) -> AccessLogService:
    """Serve ``envoy.service.accesslog.v3.AccessLogService`` on ``server`` (before it starts), into ``pipeline``."""
    service = AccessLogService(pipeline)
    handlers = {
        "StreamAccessLogs": grpc.stream_unary_rpc_method_handler(
            service.stream_access_logs,
            request_deserializer=StreamAccessLogsMessage.FromString,
            response_serializer=StreamAccessLogsResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ACCESS_LOG_SERVICE, handlers),))
    return service


def _parse_node(node_id: str, context: grpc.aio.ServicerContext[Any, Any]) -> ProxyNode | None:
    """The stream's node; None (its entries then have an unknown reporting workload) when the id is not Istio's."""
    try:
        return parse_node_id(node_id)
    except NodeIdError as exc:
        log.warning("access-log stream from an unknown node", node=node_id, peer=context.peer(), error=str(exc))
        return None


def _node_id(node: ProxyNode | None) -> str:
    return node.id if node is not None else ""
