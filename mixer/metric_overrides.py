"""Telemetry ``metrics`` overrides, compiled for Mixer: which of Istio's metrics a request record counts in, and
with which labels.

``pilot.model.telemetry.metrics_plan`` says, for the workload that reported a request (the source for
``reporter=source``, Istio's CLIENT side; the destination for ``reporter=destination``, the SERVER side), which
metrics are on and their tag overrides. :func:`compile_plan` turns that into one :class:`MetricLabels` per metric
that is on: the label names (Istio's standard labels, ``mixer.log_entries.LABEL_NAMES``, less those REMOVEd, with
those UPSERTed replaced in place or appended in tag order) and, for each, how its value is read from a record. A
value expression (``pilot.config.telemetry_expressions``) reads a request attribute of the record, a label of the
peer the reporting side knows (``upstream_peer``: the destination workload, on the client side;
``downstream_peer``: the source workload, on the server side), or is a literal; what cannot be computed is
``unknown``, as Istio's stats filter writes.

Plans are compiled once per (config version, reporting workload): ``MetricOverrides`` keeps them per registry
(one per snapshot), so the per-record cost is one getter call per label, and none at all when no Telemetry
overrides metrics (``DEFAULT_PLAN``: the record's own label tuple is used as it is).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

from meshplane.mixer_names import REPORTER_SOURCE
from mixer.log_entries import LABEL_NAMES, UNKNOWN, RequestRecord
from mixer.registry import WorkloadInfo
from pilot.config.telemetry_expressions import TagValue, parse_tag_value
from pilot.config.types import EMPTY_LABELS, MetricTagOverride
from pilot.config.validate_telemetry import HTTP_METRICS
from pilot.model.telemetry import MetricsPlan, SideMetrics, metrics_plan
from pilot.model.types import MeshSnapshot

__all__ = [
    "DEFAULT_PLAN",
    "CompiledPlan",
    "CompiledSide",
    "MetricLabels",
    "MetricOverrides",
    "compile_plan",
    "record_side",
]

REQUESTS = HTTP_METRICS["REQUEST_COUNT"]
DURATION = HTTP_METRICS["REQUEST_DURATION"]
REQUEST_SIZE = HTTP_METRICS["REQUEST_SIZE"]
RESPONSE_SIZE = HTTP_METRICS["RESPONSE_SIZE"]

Getter = Callable[[RequestRecord], str]
_ATTRIBUTE_FIELDS = {
    "request.method": "request_method",
    "request.host": "request_host",
    "request.path": "request_path",
    "request.url_path": "request_url_path",
    "request.scheme": "request_scheme",
    "request.useragent": "request_useragent",
    "request.id": "request_id",
    "request.protocol": "request_http_protocol",
    "response.code": "response_code",
    "destination.port": "destination_port",
}


@dataclass(frozen=True, slots=True)
class MetricLabels:
    """The labels of one metric: ``names`` and, in the same order, how each value is read from a record."""

    names: tuple[str, ...]
    getters: tuple[Getter, ...]

    def values(self, record: RequestRecord) -> tuple[str, ...]:
        return tuple(getter(record) for getter in self.getters)


@dataclass(frozen=True, slots=True)
class CompiledSide:
    """A side's metrics that are on (metric standard name -> labels); one left out is off."""

    metrics: dict[str, MetricLabels]


@dataclass(frozen=True, slots=True)
class CompiledPlan:
    client: CompiledSide
    server: CompiledSide
    default: bool = False  # no override at all: records keep their own labels


def _standard_getter(name: str) -> Getter:
    get = attrgetter(name)
    return lambda record: str(get(record))


_STANDARD = tuple(_standard_getter(name) for name in LABEL_NAMES)


def _literal(text: str) -> Getter:
    return lambda record: text


def _attribute(field: str) -> Getter:
    get = attrgetter(field)
    return lambda record: str(get(record)) or UNKNOWN


def _peer_label(label: str, *, upstream: bool, client: bool) -> Getter:
    if upstream != client:  # the peer that side does not know (server: no upstream peer; client: no downstream)
        return _literal(UNKNOWN)
    if upstream:
        return lambda record: record.destination_labels.get(label, UNKNOWN)
    return lambda record: record.source_labels.get(label, UNKNOWN)


def _value_getter(value: TagValue, client: bool) -> Getter:
    if value.kind == "literal":
        return _literal(value.text)
    if value.kind == "attribute":
        return _attribute(_ATTRIBUTE_FIELDS[value.name])
    return _peer_label(value.name, upstream=value.peer == "upstream", client=client)


def _metric_labels(overrides: tuple[MetricTagOverride, ...], client: bool) -> MetricLabels:
    names = list(LABEL_NAMES)
    getters = list(_STANDARD)
    for override in overrides:
        index = names.index(override.tag) if override.tag in names else -1
        if override.operation == "REMOVE":
            if index >= 0:
                del names[index], getters[index]
            continue
        parsed = parse_tag_value(override.value)
        getter = _value_getter(parsed, client) if isinstance(parsed, TagValue) else _literal(UNKNOWN)
        if index >= 0:
            getters[index] = getter
        else:
            names.append(override.tag)
            getters.append(getter)
    return MetricLabels(tuple(names), tuple(getters))


def _compile_side(side: SideMetrics, client: bool) -> CompiledSide:
    return CompiledSide({metric: _metric_labels(tags, client) for metric, tags in side.metrics.items()})


def compile_plan(plan: MetricsPlan) -> CompiledPlan:
    """The labels of every metric that is on, per side (see the module doc)."""
    return CompiledPlan(
        client=_compile_side(plan.client, True), server=_compile_side(plan.server, False), default=plan.is_default
    )


_STANDARD_LABELS = MetricLabels(LABEL_NAMES, _STANDARD)
_ALL_STANDARD = CompiledSide(dict.fromkeys(HTTP_METRICS.values(), _STANDARD_LABELS))
DEFAULT_PLAN = CompiledPlan(client=_ALL_STANDARD, server=_ALL_STANDARD, default=True)


def record_side(plan: CompiledPlan, record: RequestRecord) -> CompiledSide:
    """The side of ``plan`` that ``record``'s reporter is on."""
    return plan.client if record.reporter == REPORTER_SOURCE else plan.server


class MetricOverrides:
    """The compiled plans of one snapshot's Telemetries, per reporting workload (namespace, labels)."""

    def __init__(self, snapshot: MeshSnapshot) -> None:
        self.snapshot = snapshot
        self._any = any(t.metrics for by_namespace in snapshot.telemetries.values() for t in by_namespace)
        self._plans: dict[tuple[str, tuple[tuple[str, str], ...]], CompiledPlan] = {}

    def plan(self, reporter: WorkloadInfo | None) -> CompiledPlan:
        """The plan for requests ``reporter`` reports (an unknown reporter: the mesh's and namespace's)."""
        if not self._any:
            return DEFAULT_PLAN
        namespace = reporter.namespace if reporter is not None else self.snapshot.root_namespace
        labels = reporter.labels if reporter is not None else EMPTY_LABELS
        key = (namespace, tuple(sorted(labels.items())))
        compiled = self._plans.get(key)
        if compiled is None:
            compiled = self._plans[key] = compile_plan(metrics_plan(self.snapshot, namespace, labels))
        return compiled
