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
        meter = self._provider.get_meter("meshplane.citadel")
        self._issued = meter.create_counter(
            "citadel_certificates_issued", description="Workload certificates issued, by kind (sds or csr)."
        )
        self._failures = meter.create_counter(
            "citadel_certificate_failures",
            description="Certificate requests refused or failed, by reason (the gRPC status answered).",
        )
        self._token_reviews = meter.create_counter(
            "citadel_token_reviews",
            description="Kubernetes service-account tokens judged, by result (authenticated, refused, failed, cached).",
        )
        self._configmap_writes = meter.create_counter(
            "citadel_root_cert_configmap_writes",
            description="istio-ca-root-cert ConfigMaps written, by action (created, updated).",
        )
        self._connections = meter.create_up_down_counter("citadel_sds_connections", description="Open SDS streams.")
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
        self._issued.add(1, {"kind": kind})

    def failed(self, reason: str) -> None:
        self._failures.add(1, {"reason": reason})

    def token_reviewed(self, result: str) -> None:
        self._token_reviews.add(1, {"result": result})

    def configmap_written(self, action: str) -> None:
        self._configmap_writes.add(1, {"action": action})

    def connection_opened(self) -> None:
        self._connections.add(1)

    def connection_closed(self) -> None:
        self._connections.add(-1)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every instrument (served by ``metrics_response``)."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        self._provider.shutdown()

    def _observe_root(self, options: CallbackOptions) -> Iterable[Observation]:
        return _observation(self._root_expiry())

    def _observe_oldest_workload(self, options: CallbackOptions) -> Iterable[Observation]:
        return _observation(self._oldest_workload_expiry())


def _observation(seconds: float | None) -> list[Observation]:
    return [] if seconds is None else [Observation(seconds)]
