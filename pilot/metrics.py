"""Pilot's metrics in Prometheus format, with Istio's metric names.

The instruments are ``meshplane.prometheus_metrics``'s plain accumulators: a push is counted in about 1 us, and
nothing is built until ``/metrics`` is read. Every ``PilotMetrics`` has its own registry, so several Pilots (tests,
benchmarks) can live in one process. The monitor server serves ``exposition()`` on ``/metrics``.

Exported (Prometheus names):

- ``pilot_xds``: connected xDS streams (gauge);
- ``pilot_xds_pushes_total{type}``: responses sent, by type (cds, eds, lds, rds);
- ``pilot_total_xds_rejects_total{type}``: NACKs received, by type;
- ``pilot_xds_push_time{type}``: seconds to build and send one response (histogram);
- ``pilot_proxy_convergence_time``: seconds from a config change to a proxy having been sent all of it;
- ``pilot_total_rejected_configs_total{kind}``: config resources rejected by validation, counted each time the
  directory source reads a rejected version (``kind`` is ``file`` for a file that is not valid YAML);
- ``pilot_xds_snapshot_build_time``: seconds to build a snapshot and generate its resources;
- ``pilot_xds_inconsistent_snapshots_total{scope}``: snapshots not served because resources reference EDS/RDS
  names that do not exist: ``scope="snapshot"`` when a built snapshot was rejected whole (the previous one stays),
  ``scope="proxy"`` when one served snapshot was withheld from one proxy (checked when that proxy connected later).
"""

from __future__ import annotations

from meshplane.prometheus_metrics import MetricSet

__all__ = ["PilotMetrics"]

# Seconds: from a sub-millisecond response to a push stuck behind a slow stream.
_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PilotMetrics:
    """The instruments of one Pilot, and the Prometheus registry that exposes them."""

    def __init__(self) -> None:
        self._set = metrics = MetricSet()
        self.registry = metrics.registry
        self._connections = metrics.gauge("pilot_xds", "Number of endpoints connected to this pilot using XDS.")
        self._pushes = metrics.counter(
            "pilot_xds_pushes", "xDS responses sent to proxies, by type (cds, eds, lds, rds).", labels=("type",)
        )
        self._push_time = metrics.histogram(
            "pilot_xds_push_time",
            "Total time in seconds Pilot takes to push lds, rds, cds and eds.",
            _SECONDS_BUCKETS,
            labels=("type",),
        )
        self._rejects = metrics.counter(
            "pilot_total_xds_rejects", "Total number of XDS responses from pilot rejected by proxy.", labels=("type",)
        )
        self._convergence = metrics.histogram(
            "pilot_proxy_convergence_time",
            "Delays in seconds between config change and a proxy receiving all required configuration.",
            _SECONDS_BUCKETS,
        )
        self._rejected_configs = metrics.counter(
            "pilot_total_rejected_configs", "Total number of configs that Pilot had to reject or ignore.", ("kind",)
        )
        self._inconsistent = metrics.counter(
            "pilot_xds_inconsistent_snapshots",
            "Snapshots not served because resources reference EDS/RDS names that do not exist.",
            labels=("scope",),
        )
        self._build_time = metrics.histogram(
            "pilot_xds_snapshot_build_time",
            "Seconds to build a mesh snapshot and generate its resources for the connected proxies.",
            _SECONDS_BUCKETS,
        )
        self._admission_wait = metrics.histogram(
            "pilot_xds_stream_admission_wait_time",
            "Seconds a new xDS stream waited for admission (--max-new-streams-per-second).",
            _SECONDS_BUCKETS,
        )

    def connection_opened(self) -> None:
        self._connections.add(1)

    def connection_closed(self) -> None:
        self._connections.add(-1)

    def pushed(self, type_short: str, seconds: float) -> None:
        """One response of ``type_short`` (cds, eds, lds, rds) built and written in ``seconds``."""
        self._pushes.add(1, type_short)
        self._push_time.record(seconds, type_short)

    def rejected(self, type_short: str) -> None:
        """A proxy NACKed a response of ``type_short``."""
        self._rejects.add(1, type_short)

    def converged(self, seconds: float) -> None:
        self._convergence.record(seconds)

    def admission_waited(self, seconds: float) -> None:
        """A new stream waited ``seconds`` for its admission token."""
        self._admission_wait.record(seconds)

    def snapshot_built(self, seconds: float) -> None:
        self._build_time.record(seconds)

    def inconsistent_snapshot(self, scope: str) -> None:
        """A snapshot was not served: ``snapshot`` (rejected whole) or ``proxy`` (withheld from one proxy)."""
        self._inconsistent.add(1, scope)

    def rejected_config(self, kind: str, count: int = 1) -> None:
        """Hook for the config layer: ``count`` resources of ``kind`` failed validation and were not accepted."""
        self._rejected_configs.add(count, kind)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every instrument (served by ``metrics_response``)."""
        return self._set.exposition()
