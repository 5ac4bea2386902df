"""Citadel's metrics: OpenTelemetry instruments exported in Prometheus format (as Pilot's, see pilot/metrics.py).

Every ``CitadelMetrics`` owns its MeterProvider and its own ``prometheus_client`` registry, so several Citadels
(tests, benchmarks) can live in one process. The monitor serves ``exposition()`` on ``/metrics``.

Exported (Prometheus names; counters get ``_total`` from the exporter):

- ``citadel_certificates_issued_total{kind}``: workload certificates signed, ``kind`` ``sds`` (key made by
  Citadel, sent over SDS) or ``csr`` (the workload's own key, through the CSR API);
- ``citadel_certificate_failures_total{reason}``: requests refused or failed, by reason (``unauthenticated``,
  ``permission_denied``, ``invalid_argument``, ``failed_precondition``, ``internal``: the gRPC status given);
- ``citadel_root_cert_expiry_seconds``: seconds until the current root expires (gauge);
- ``citadel_oldest_workload_cert_expiry_seconds``: seconds until the first expiry among the workload certificates
  held by connected SDS streams (gauge; absent while there is none);
- ``citadel_sds_connections``: open SDS streams (gauge);
- ``citadel_token_reviews_total{result}``: Kubernetes service-account tokens judged: ``authenticated``,
  ``refused`` (by the API server's answer), ``failed`` (the API server could not be asked) by a TokenReview, or
  ``cached`` (a recent review's answer reused);
- ``citadel_root_cert_configmap_writes_total{action}``: ``istio-ca-root-cert`` ConfigMaps ``created`` or
  ``updated`` (a write that found nothing to change is not one).

The counts are plain Python numbers that observable instruments hand to the reader when it collects: a
synchronous OpenTelemetry ``Counter.add`` validates and hashes its attributes on every call, 4-5% of the event
loop's time per certificate (``bench.citadel_certs --profile``; Mixer's checks found ~7 us a call,
``mixer/check_metrics.py``). A label set appears from its first count on, as with ``Counter.add``. Every
count is made on the event loop, and the Prometheus reader collects there too (the monitor), so no lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

__all__ = ["CitadelMetrics", "ExpirySource"]

ExpirySource = Callable[[], float | None]  # seconds until an expiry, None when there is nothing to report


def _no_expiry() -> float | None:
    return None


class CitadelMetrics:
    """The instruments of one Citadel, and the Prometheus registry that exposes them.

    The two expiry gauges are read when scraped, from the functions given to ``observe_expiries``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._reader = PrometheusMetricReader(registry=self.registry, scope_info_enabled=False)
        self._provider = MeterProvider(
            metric_readers=[self._reader],
            resource=Resource.create({"service.name": "citadel"}),
            shutdown_on_exit=False,
        )
        self._root_expiry: ExpirySource = _no_expiry
        self._oldest_workload_expiry: ExpirySource = _no_expiry
        self._issued: dict[str, int] = {}  # kind -> certificates
        self._failures: dict[str, int] = {}  # reason -> refusals
        self._token_reviews: dict[str, int] = {}  # result -> tokens judged
        self._configmap_writes: dict[str, int] = {}  # action -> writes
        self._connections = 0
        self._connections_counted = False  # the gauge appears with the first stream, as an up-down counter's would
        meter = self._provider.get_meter("meshplane.citadel")
        meter.create_observable_counter(
            "citadel_certificates_issued",
            callbacks=[_counts(self._issued, "kind")],
            description="Workload certificates issued, by kind (sds or csr).",
        )
        meter.create_observable_counter(
            "citadel_certificate_failures",
            callbacks=[_counts(self._failures, "reason")],
            description="Certificate requests refused or failed, by reason (the gRPC status answered).",
        )
        meter.create_observable_counter(
            "citadel_token_reviews",
            callbacks=[_counts(self._token_reviews, "result")],
            description="Kubernetes service-account tokens judged, by result (authenticated, refused, failed, cached).",
        )
        meter.create_observable_counter(
            "citadel_root_cert_configmap_writes",
            callbacks=[_counts(self._configmap_writes, "action")],
            description="istio-ca-root-cert ConfigMaps written, by action (created, updated).",
        )
        meter.create_observable_up_down_counter(
            "citadel_sds_connections", callbacks=[self._observe_connections], description="Open SDS streams."
        )
        meter.create_observable_gauge(
            "citadel_root_cert_expiry_seconds",
            callbacks=[self._observe_root],
            description="Seconds until the current root certificate expires.",
        )
        meter.create_observable_gauge(
            "citadel_oldest_workload_cert_expiry_seconds",
            callbacks=[self._observe_oldest_workload],
            description="Seconds until the first expiry among the workload certificates of connected SDS streams.",
        )

    def observe_expiries(self, *, root: ExpirySource, oldest_workload: ExpirySource) -> None:
        self._root_expiry = root
        self._oldest_workload_expiry = oldest_workload

    def issued(self, kind: str) -> None:
        """One workload certificate signed; ``kind`` is ``sds`` or ``csr``."""
        self._issued[kind] = self._issued.get(kind, 0) + 1

    def failed(self, reason: str) -> None:
        self._failures[reason] = self._failures.get(reason, 0) + 1

    def token_reviewed(self, result: str) -> None:
        self._token_reviews[result] = self._token_reviews.get(result, 0) + 1

    def configmap_written(self, action: str) -> None:
        self._configmap_writes[action] = self._configmap_writes.get(action, 0) + 1

    def connection_opened(self) -> None:
        self._connections += 1
        self._connections_counted = True

    def connection_closed(self) -> None:
        self._connections -= 1

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every instrument (served by ``metrics_response``)."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        self._provider.shutdown()

    def _observe_connections(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._connections)] if self._connections_counted else []

    def _observe_root(self, options: CallbackOptions) -> Iterable[Observation]:
        return _observation(self._root_expiry())

    def _observe_oldest_workload(self, options: CallbackOptions) -> Iterable[Observation]:
        return _observation(self._oldest_workload_expiry())


def _observation(seconds: float | None) -> list[Observation]:
    return [] if seconds is None else [Observation(seconds)]


def _counts(counts: dict[str, int], label: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """The observable counter's callback: the running total of each label value counted so far."""

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {label: value}) for value, count in list(counts.items())]

    return observe
