"""Mixer's metrics: its own (checks, access-log ingestion) on an OpenTelemetry MeterProvider and, exported by the
same readers, the Istio request metrics that ``mixer.telemetry`` accumulates from access logs. One Prometheus
registry per Mixer (never the global one), so several Mixers (tests, benchmarks) can live in one process. With an
OTLP endpoint the same metrics are also pushed over OTLP/HTTP every ``otlp_interval`` seconds.

The Istio metrics do not go through the SDK's instruments (``mixer.telemetry`` says why): each reader here adds
what its producers (``add_producer``) return to what the SDK collected, as one more scope of the same resource,
before the Prometheus exporter translates it or the OTLP exporter sends it.

Mixer's own (Prometheus names; counters get ``_total`` from the exporter):

- ``mixer_checks_total{result}``: ext_authz checks answered: ``allowed``, ``denied`` (an AccessList),
  ``rate_limited`` (a RateLimit), ``error`` (a policy could not be evaluated: denied, and logged);
- ``mixer_check_duration_seconds``: time to evaluate one check (histogram);
  both counted in plain Python and added at collection like Istio's (``mixer.check_metrics`` says why);
- ``mixer_log_entries_total``: HTTP access-log entries received from sidecars;
- ``mixer_log_entries_dropped_total{reason}``: entries received but not turned into metrics: ``queue_full``
  (a burst beyond what Mixer keeps up with) or ``unparsable``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Metric,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry, generate_latest

from mixer.check_metrics import CheckMetrics

__all__ = ["MetricProducer", "MixerMetrics"]

MetricProducer = Callable[[], Sequence[Metric]]
_SCOPE = "meshplane.mixer"


def _otlp_exporter_class() -> Any:
    """The OTLP/HTTP metric exporter class, imported only when asked for. ``xds-protos`` installs an old copy of
    ``opentelemetry/proto`` over ``opentelemetry-proto``'s (``make`` puts the real one back): say how to mend it."""
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    except ImportError as exc:
        raise RuntimeError(
            f"the OTLP exporter cannot be imported ({exc}): xds-protos overwrote opentelemetry-proto's files; "
            "repair with: pip install --force-reinstall --no-deps opentelemetry-proto=="
            + metadata.version("opentelemetry-proto")
        ) from exc
    return OTLPMetricExporter


class _Producers:
    """The producers whose metrics a reader adds to the SDK's, under the MeterProvider's resource."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.producers: list[MetricProducer] = []

    def merged(self, collected: MetricsData) -> MetricsData:
        produced = [metric for producer in self.producers for metric in producer()]
        if not produced:
            return collected
        if not collected.resource_metrics:
            return MetricsData(
                [ResourceMetrics(self.resource, [ScopeMetrics(InstrumentationScope(_SCOPE), produced, "")], "")]
            )
        first, *rest = collected.resource_metrics
        scopes = list(first.scope_metrics)
        # into the SDK's own scope of that name: the OTLP encoder keeps one of two scopes that compare equal
        for index, scope in enumerate(scopes):
            if scope.scope.name == _SCOPE:
                scopes[index] = ScopeMetrics(scope.scope, [*scope.metrics, *produced], scope.schema_url)
                break
        else:
            scopes.append(ScopeMetrics(InstrumentationScope(_SCOPE), produced, ""))
        return MetricsData([ResourceMetrics(first.resource, scopes, first.schema_url), *rest])


class _PrometheusReader(PrometheusMetricReader):
    def __init__(self, producers: _Producers, registry: CollectorRegistry) -> None:
        super().__init__(registry=registry, scope_info_enabled=False)
        self._producers = producers

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        super()._receive_metrics(self._producers.merged(metrics_data), timeout_millis, **kwargs)


class _PeriodicReader(PeriodicExportingMetricReader):
    def __init__(self, producers: _Producers, exporter: Any, interval_millis: float) -> None:
        super().__init__(exporter, export_interval_millis=interval_millis)
        self._producers = producers

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        super()._receive_metrics(self._producers.merged(metrics_data), timeout_millis, **kwargs)


class MixerMetrics:
    """The instruments of one Mixer, the Prometheus registry that exposes them, and the meter for Istio's."""

    def __init__(self, *, otlp_endpoint: str | None = None, otlp_interval: float = 5.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        resource = Resource.create({"service.name": "mixer"})
        self._producers = _Producers(resource)
        readers: list[MetricReader] = [_PrometheusReader(self._producers, self.registry)]
        if otlp_endpoint:
            exporter_class = _otlp_exporter_class()
            exporter = exporter_class(endpoint=otlp_endpoint)
            readers.append(_PeriodicReader(self._producers, exporter, otlp_interval * 1000))
        self._provider = MeterProvider(metric_readers=readers, resource=resource, shutdown_on_exit=False)
        self.meter: Meter = self._provider.get_meter(_SCOPE)
        self._check_metrics = CheckMetrics()
        self.add_producer(self._check_metrics.metrics)
        self._entries = self.meter.create_counter(
            "mixer_log_entries", description="HTTP access-log entries received from sidecars."
        )
        self._dropped = self.meter.create_counter(
            "mixer_log_entries_dropped",
            description="Access-log entries received but not turned into metrics, by reason.",
        )
        self._entries.add(0)  # a point from the start: the SDK hands readers nothing (not even producers') without

    def add_producer(self, producer: MetricProducer) -> None:
        """Export what ``producer`` returns (cumulative SDK data points) with every collection of every reader."""
        self._producers.producers.append(producer)

    def check_answered(self, result: str, seconds: float) -> None:
        """One check answered with ``result`` (allowed, denied, rate_limited, error) after ``seconds``."""
        self._check_metrics.answered(result, seconds)

    def log_entries_received(self, count: int) -> None:
        self._entries.add(count)

    def log_entries_dropped(self, count: int, reason: str) -> None:
        self._dropped.add(count, {"reason": reason})

    def exposition(self) -> bytes:
        """Prometheus text exposition of every instrument, Istio's included."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        self._provider.shutdown()
