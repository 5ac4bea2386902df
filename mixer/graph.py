"""The service graph behind Mixer's ``GET /graph``: who calls which service, served by which workload, over the
last ``window_seconds`` (Kiali's versioned-app graph, computed in Mixer from the same access logs as the metrics).

Nodes are workloads (``workload:<namespace>/<name>``, or ``workload:unknown`` for callers outside the mesh)
and services (``service:<fqdn>``). A request adds to two edges: source workload -> destination service, and
destination service -> destination workload (the second only when the destination workload is known).

Both sidecars of a mesh request report it, so counting every record would count each request twice. The rule:
a ``reporter="destination"`` record is always counted (it alone knows the caller's mTLS identity); a
``reporter="source"`` record only when its destination workload is ``unknown``, i.e. when the request never reached
a mesh workload's sidecar (no healthy upstream, no route, a service outside the mesh) and so has no destination
report. A source record of a request that did reach a workload is left to that workload's report.

Each edge keeps one bucket per second of arrival (Mixer's clock when the record is observed, not the request's
start time: sidecars flush access logs about once a second, so the two differ by about that): request, error and
mTLS counts and a log-scale latency histogram (about 5% wide buckets, fine enough for p50/p99). Buckets older
than the window are dropped as it slides, and an edge without buckets is dropped with them, so memory is bounded
by edges x window x histogram buckets; ``max_edges`` bounds the edges (a flood of distinct Host headers
reporting to unknown services must not grow it without limit).

Rates are over the window, or over the time since the graph started when that is shorter (a Mixer started 5 s
ago has seen 5 s of traffic, not 60).
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from meshplane.mixer_names import REPORTER_DESTINATION
from mixer.log_entries import UNKNOWN, RequestRecord

__all__ = ["ServiceGraph"]

log = structlog.get_logger(__name__)

_LATENCY_BASE_MS = 0.01  # bucket 0 holds everything up to 10 microseconds
_LATENCY_GROWTH = 1.1  # each bucket is 10% wider than the one before: about +-5% around its midpoint
_LOG_GROWTH = math.log(_LATENCY_GROWTH)
_DEFAULT_MAX_EDGES = 10_000


def _latency_bucket(ms: float) -> int:
    if ms <= _LATENCY_BASE_MS:
        return 0
    return max(1, math.ceil(math.log(ms / _LATENCY_BASE_MS) / _LOG_GROWTH))


def _latency_value(bucket: int) -> float:
    """The geometric midpoint of a bucket (0 for the first)."""
    if bucket == 0:
        return 0.0
    return float(_LATENCY_BASE_MS * _LATENCY_GROWTH ** (bucket - 0.5))


@dataclass(slots=True)
class _Second:
    """What one edge carried during one second."""

    second: int
    requests: int = 0
    errors: int = 0
    mtls: int = 0
    latency: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Node:
    id: str
    kind: str
    name: str
    namespace: str
    app: str = ""
    version: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "app": self.app,
            "version": self.version,
        }


@dataclass(slots=True)
class _Edge:
    source: _Node
    target: _Node
    seconds: deque[_Second] = field(default_factory=deque)

    def add(self, second: int, records: Sequence[RequestRecord]) -> None:
        """Add ``records`` of one series (the same labels: the same error and mTLS outcome) to ``second``."""
        if not self.seconds or self.seconds[-1].second != second:
            self.seconds.append(_Second(second))
        bucket = self.seconds[-1]
        first = records[0]
        bucket.requests += len(records)
        if first.is_error:
            bucket.errors += len(records)
        if first.mtls:
            bucket.mtls += len(records)
        latency = bucket.latency
        for record in records:
            latency[_latency_bucket(record.duration_ms)] += 1

    def expire(self, oldest: int) -> None:
        while self.seconds and self.seconds[0].second < oldest:
            self.seconds.popleft()


class ServiceGraph:
    """Edges between workloads and services over a sliding window; ``observe`` records, ``snapshot`` reads."""

    def __init__(
        self,
        window_seconds: int = 60,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_edges: int = _DEFAULT_MAX_EDGES,
    ) -> None:
        if window_seconds < 1:
            raise ValueError(f"window_seconds must be at least 1, got {window_seconds}")
        self.window_seconds = window_seconds
        self._clock = clock
        self._started = clock()
        self._max_edges = max_edges
        self._edges: dict[tuple[str, str], _Edge] = {}
        self._edges_refused = 0

    @staticmethod
    def counts(record: RequestRecord) -> bool:
        """Whether ``record`` is the report that counts for its request (see the module docstring)."""
        return record.reporter == REPORTER_DESTINATION or record.destination_workload == UNKNOWN

    def observe(self, record: RequestRecord) -> bool:
        """Add ``record`` to its edges if it is the report that counts; True when it was counted."""
        return self.observe_all((record,)) == 1

    def observe_all(self, records: Iterable[RequestRecord]) -> int:
        """``observe`` each of ``records``, grouped by series (the labels decide the edges, the error and the mTLS
        counts: only the latency differs within a series); the number counted."""
        by_series: dict[tuple[str, ...], list[RequestRecord]] = {}
        for record in records:
            if (group := by_series.get(values := record.label_values)) is None:
                by_series[values] = [record]
            else:
                group.append(record)
        second = int(self._clock())
        counted = 0
        for group in by_series.values():
            record = group[0]
            if not self.counts(record):
                continue
            counted += len(group)
            service = _Node(
                id=f"service:{record.destination_service}",
                kind="service",
                name=record.destination_service_name,
                namespace=record.destination_service_namespace,
            )
            self._edge(_source_node(record), service, second, group)
            if record.destination_workload != UNKNOWN:
                self._edge(service, _destination_node(record), second, group)
        return counted

    def snapshot(self) -> dict[str, Any]:
        """The graph over the window, as JSON-ready data (nodes and edges sorted by id)."""
        now = self._clock()
        self._expire(int(now))
        span = max(1.0, min(float(self.window_seconds), now - self._started))
        nodes: dict[str, _Node] = {}
        edges: list[dict[str, Any]] = []
        for (source_id, target_id), edge in sorted(self._edges.items()):
            nodes[source_id] = edge.source
            nodes[target_id] = edge.target
            requests = sum(s.requests for s in edge.seconds)
            errors = sum(s.errors for s in edge.seconds)
            mtls = sum(s.mtls for s in edge.seconds)
            latency: Counter[int] = Counter()
            for s in edge.seconds:
                latency.update(s.latency)
            edges.append(
                {
                    "source": source_id,
                    "target": target_id,
                    "requests": requests,
                    "requests_per_second": round(requests / span, 3),
                    "error_rate": round(errors / requests, 4),
                    "p50_ms": round(_percentile(latency, requests, 0.50), 3),
                    "p99_ms": round(_percentile(latency, requests, 0.99), 3),
                    "mtls": mtls == requests,
                    "mtls_ratio": round(mtls / requests, 4),
                }
            )
        return {
            "window_seconds": self.window_seconds,
            "nodes": [nodes[node_id].as_json() for node_id in sorted(nodes)],
            "edges": edges,
        }

    def _edge(self, source: _Node, target: _Node, second: int, records: Sequence[RequestRecord]) -> None:
        key = (source.id, target.id)
        edge = self._edges.get(key)
        if edge is None:
            if len(self._edges) >= self._max_edges:
                self._expire(second)  # only when full: expiring scans every edge
            if len(self._edges) >= self._max_edges:
                self._edges_refused += 1
                if self._edges_refused == 1 or self._edges_refused % 10_000 == 0:
                    log.warning(
                        "service graph full: new edges ignored",
                        max_edges=self._max_edges,
                        refused=self._edges_refused,
                        source=source.id,
                        target=target.id,
                    )
                return
            edge = self._edges[key] = _Edge(source, target)
        else:
            # node labels (app, version) follow the latest report
            edge.source, edge.target = source, target
            edge.expire(second - self.window_seconds + 1)
        edge.add(second, records)

    def _expire(self, now: int) -> None:
        oldest = now - self.window_seconds + 1
        for key in [key for key, edge in self._edges.items() if _expire_edge(edge, oldest)]:
            del self._edges[key]


def _expire_edge(edge: _Edge, oldest: int) -> bool:
    """Drop the edge's seconds before ``oldest``; True when nothing is left."""
    edge.expire(oldest)
    return not edge.seconds


def _percentile(latency: Counter[int], total: int, quantile: float) -> float:
    """The latency (ms) of the request at rank ceil(quantile x total)."""
    rank = max(1, math.ceil(quantile * total))
    seen = 0
    for bucket in sorted(latency):
        seen += latency[bucket]
        if seen >= rank:
            return _latency_value(bucket)
    return 0.0


_UNKNOWN_WORKLOAD = _Node(id="workload:unknown", kind="workload", name=UNKNOWN, namespace=UNKNOWN)


def _workload_node(name: str, namespace: str, app: str, version: str) -> _Node:
    """The node of a workload (``workload:unknown`` for a caller outside the mesh)."""
    if name == UNKNOWN:
        return _UNKNOWN_WORKLOAD
    return _Node(
        id=f"workload:{namespace}/{name}", kind="workload", name=name, namespace=namespace, app=app, version=version
    )


def _source_node(record: RequestRecord) -> _Node:
    return _workload_node(
        record.source_workload, record.source_workload_namespace, record.source_app, record.source_version
    )


def _destination_node(record: RequestRecord) -> _Node:
    return _workload_node(
        record.destination_workload,
        record.destination_workload_namespace,
        record.destination_app,
        record.destination_version,
    )
