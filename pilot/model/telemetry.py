"""Which Telemetry applies to a workload, and what it says for access logs, tracing and metrics (Istio
``pilot/pkg/model/telemetry.go``: ``applicableTelemetries``, ``mergeLogs``, ``mergeTracing``, ``mergeMetrics``).

Selection, as Istio's: at most one Telemetry per scope, applied in this order (the later overrides the earlier):
the root namespace's namespace-wide one (no selector: mesh-wide), the workload's namespace's namespace-wide one,
and the first of the workload's namespace whose ``selector`` matches the workload's labels. Istio takes the oldest
when several qualify in one scope; files have no creation time, so meshplane takes the first by name (ConfigKey
order), as for its other kinds.

Merging (per side: CLIENT is the outbound side and gateways, SERVER the inbound side; an entry with
``match.mode`` applies to its side only):

- providers: an entry without providers inherits its parent's (MeshConfig ``defaultProviders`` at the top); the
  last entry naming providers decides which are in scope. Access logging: a provider's last entry decides whether
  it is ``disabled``; a ``filter`` sticks to the providers its entry names. No access-logging entry at all and no
  ``defaultProviders.accessLogging``: MeshConfig ``accessLogFile`` applies (``None`` from ``access_logs``).
- tracing: the first provider in scope (Istio supports one); the last ``randomSamplingPercentage`` (else
  ``defaultConfig.tracing.sampling``), ``disableSpanReporting`` and non-empty ``customTags`` win.
- metrics (for Mixer, ``mixer.metric_overrides``): overrides apply in order per metric and side; ``ALL_METRICS``
  with ``disabled: true`` turns the side's metrics off, a later ``ALL_METRICS`` without it on again; the tag
  overrides of a metric accumulate, the later winning per tag.

A provider name MeshConfig does not have (or of the wrong type) configures nothing, as in Istio, with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import structlog

from pilot.config.mesh_extension_providers import ExtensionProvider
from pilot.config.mesh_telemetry_providers import (
    FileAccessLogProvider,
    OpenTelemetryTracingProvider,
    ZipkinTracingProvider,
)
from pilot.config.types import (
    Labels,
    MetricTagOverride,
    StatusCodeFilter,
    Telemetry,
    TelemetryMetrics,
    TracingCustomTag,
    WorkloadMode,
)
from pilot.config.validate_telemetry import HTTP_METRICS
from pilot.model.registry_service_entry import labels_match
from pilot.model.types import MeshSnapshot

__all__ = [
    "AccessLogChoice",
    "MetricsPlan",
    "SideMetrics",
    "TracingChoice",
    "TracingProvider",
    "access_logs",
    "applicable_telemetries",
    "metrics_plan",
    "tracing",
]

log = structlog.get_logger(__name__)
_warned: set[tuple[str, str]] = set()  # (provider, reason) already warned about

TracingProvider = OpenTelemetryTracingProvider | ZipkinTracingProvider


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLogChoice:
    provider: FileAccessLogProvider
    filter: StatusCodeFilter | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TracingChoice:
    provider: TracingProvider
    sampling: float  # percent
    custom_tags: tuple[TracingCustomTag, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SideMetrics:
    """One side's metrics: ``metrics`` maps each produced metric's standard name to its tag overrides (a metric
    left out is disabled); ``all_disabled``: none at all."""

    metrics: Mapping[str, tuple[MetricTagOverride, ...]] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def all_disabled(self) -> bool:
        return not self.metrics


_ALL_ON = SideMetrics(metrics=MappingProxyType(dict.fromkeys(HTTP_METRICS.values(), ())))


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsPlan:
    client: SideMetrics = _ALL_ON  # reporter=source
    server: SideMetrics = _ALL_ON  # reporter=destination

    @property
    def is_default(self) -> bool:
        return self.client is _ALL_ON and self.server is _ALL_ON


DEFAULT_METRICS_PLAN = MetricsPlan()


def applicable_telemetries(snapshot: MeshSnapshot, namespace: str, labels: Labels) -> tuple[Telemetry, ...]:
    """The Telemetries of a workload in ``namespace`` with ``labels``, root first (see the module doc)."""
    root = snapshot.root_namespace
    chosen: list[Telemetry] = []
    for scope in (root, namespace) if namespace != root else (root,):
        wide = next((t for t in snapshot.telemetries.get(scope, ()) if not t.selector), None)
        if wide is not None:
            chosen.append(wide)
    workload = next(
        (t for t in snapshot.telemetries.get(namespace, ()) if t.selector and labels_match(t.selector, labels)), None
    )
    if workload is not None:
        chosen.append(workload)
    return tuple(chosen)


def _applies(mode: WorkloadMode, side: WorkloadMode) -> bool:
    return mode is WorkloadMode.CLIENT_AND_SERVER or mode is side


def _provider(
    snapshot: MeshSnapshot, name: str, kinds: tuple[type[ExtensionProvider], ...]
) -> ExtensionProvider | None:
    provider = snapshot.mesh.extension_provider(name)
    if provider is None or not isinstance(provider, kinds):
        reason = "not found" if provider is None else f"a {provider.kind} provider"
        if (name, reason) not in _warned:  # once: every proxy's every push would repeat it
            _warned.add((name, reason))
            log.warning("telemetry_provider_unusable", provider=name, reason=reason)
        return None
    return provider


def access_logs(
    snapshot: MeshSnapshot, namespace: str, labels: Labels, side: WorkloadMode
) -> tuple[AccessLogChoice, ...] | None:
    """The file access logs of one side of a workload; None: no Telemetry configures access logging (MeshConfig
    ``accessLogFile`` applies)."""
    every = [e for t in applicable_telemetries(snapshot, namespace, labels) for e in t.access_logging]
    defaults = snapshot.mesh.default_providers.access_logging
    if not every and not defaults:
        return None
    entries = [e for e in every if _applies(e.mode, side)]
    in_scope = defaults
    filters: dict[str, StatusCodeFilter | None] = {}
    for entry in entries:
        if entry.providers:
            in_scope = entry.providers
        if entry.filter is not None:
            filters.update(dict.fromkeys(entry.providers, entry.filter))
    disabled: dict[str, bool] = dict.fromkeys(in_scope, False) if not every else {}
    parent = defaults
    for entry in entries:
        names = entry.providers or parent
        parent = names
        for name in names:
            if name in in_scope:
                disabled[name] = bool(entry.disabled)
    choices = []
    for name, off in disabled.items():
        provider = None if off else _provider(snapshot, name, (FileAccessLogProvider,))
        if isinstance(provider, FileAccessLogProvider):
            choices.append(AccessLogChoice(provider=provider, filter=filters.get(name)))
    return tuple(choices)


def tracing(snapshot: MeshSnapshot, namespace: str, labels: Labels, side: WorkloadMode) -> TracingChoice | None:
    """The tracer of one side of a workload; None: no tracing (no provider, or span reporting disabled)."""
    entries = [e for t in applicable_telemetries(snapshot, namespace, labels) for e in t.tracing]
    names = snapshot.mesh.default_providers.tracing
    sampling: float | None = None
    disabled = False
    tags: tuple[TracingCustomTag, ...] = ()
    for entry in entries:
        if not _applies(entry.mode, side):
            continue
        names = entry.providers or names
        sampling = entry.random_sampling_percentage if entry.random_sampling_percentage is not None else sampling
        disabled = entry.disable_span_reporting if entry.disable_span_reporting is not None else disabled
        tags = entry.custom_tags or tags
    if not names or disabled:
        return None
    provider = _provider(snapshot, names[0], (OpenTelemetryTracingProvider, ZipkinTracingProvider))
    if not isinstance(provider, OpenTelemetryTracingProvider | ZipkinTracingProvider):
        return None
    chosen = snapshot.mesh.default_sampling if sampling is None else sampling
    return TracingChoice(provider=provider, sampling=chosen, custom_tags=tags)


def metrics_plan(snapshot: MeshSnapshot, namespace: str, labels: Labels) -> MetricsPlan:
    """The metrics Mixer produces for requests a workload reports, per side (see the module doc)."""
    entries = [e for t in applicable_telemetries(snapshot, namespace, labels) for e in t.metrics]
    if not any(entry.overrides for entry in entries):
        return DEFAULT_METRICS_PLAN
    return MetricsPlan(
        client=_side_metrics(entries, WorkloadMode.CLIENT), server=_side_metrics(entries, WorkloadMode.SERVER)
    )


def _side_metrics(entries: list[TelemetryMetrics], side: WorkloadMode) -> SideMetrics:
    all_disabled = False
    disabled: dict[str, bool] = {}
    tags: dict[str, dict[str, MetricTagOverride]] = {}
    for entry in entries:
        for override in entry.overrides:
            if not _applies(override.mode, side):
                continue
            every = override.metric == "ALL_METRICS"
            if every and override.disabled:
                all_disabled = True
                continue
            if every:
                all_disabled = False
            for metric in HTTP_METRICS.values() if every else (HTTP_METRICS.get(override.metric, override.metric),):
                if override.disabled is not None:
                    disabled[metric] = override.disabled
                tags.setdefault(metric, {}).update({t.tag: t for t in override.tag_overrides})
    if all_disabled:
        return SideMetrics()
    return SideMetrics(
        metrics=MappingProxyType(
            {
                metric: tuple(sorted(tags.get(metric, {}).values(), key=lambda t: t.tag))
                for metric in HTTP_METRICS.values()
                if not disabled.get(metric, False)
            }
        )
    )
