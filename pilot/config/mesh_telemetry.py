"""MeshConfig's telemetry settings (Istio's names), read into ``MeshSettings`` fields.

- ``defaultProviders``: ``accessLogging`` and ``tracing`` (provider names, resolved when a proxy's config is built)
  and ``metrics``: meshplane has one metrics provider, Mixer's ``prometheus`` (Istio's default
  ``metrics: [prometheus]``); any other list is rejected (Mixer, which applies the metrics overrides, does not read
  the MeshConfig).
- ``accessLogFile`` (e.g. ``/dev/stdout``) and ``accessLogFormat`` (an Envoy format string): the file access log of
  every proxy that no Telemetry ``accessLogging`` applies to, as in Istio. ``accessLogEncoding``: ``TEXT`` only
  (``JSON`` is not supported yet).
- ``enableTracing``: accepted. meshplane has no bootstrap tracer (Istio's legacy ``defaultConfig.tracing.zipkin``
  and the like), so it traces only through Telemetry ``tracing`` providers (or ``defaultProviders.tracing``), which
  is also what Istio does when a Telemetry configures tracing (it then ignores ``enableTracing``).
- ``defaultConfig.tracing``: only ``sampling`` (the sampling percentage when no Telemetry sets
  ``randomSamplingPercentage``; Istio's default 1%); the rest of ``defaultConfig`` is read by
  ``pilot.config.mesh_config``.
- ``enableEnvoyAccessLogService`` stays unsupported: meshplane's Envoys always stream their access logs to Mixer,
  which is its telemetry pipeline (``pilot.generate.access_logs``).
"""

from __future__ import annotations

from typing import Any

from pilot.config.validate_common import Fields
from pilot.model.mesh_settings import DefaultProviders

__all__ = ["TELEMETRY_MESH_FIELDS", "read_telemetry_settings"]

TELEMETRY_MESH_FIELDS = (
    "defaultProviders", "accessLogFile", "accessLogFormat", "accessLogEncoding", "enableTracing",
)  # fmt: skip
_TRACING_UNSUPPORTED = (
    "zipkin", "lightstep", "datadog", "stackdriver", "openCensusAgent", "customTags", "maxPathTagLength", "tlsSettings",
)  # fmt: skip
_DEFAULT_SAMPLING = 1.0  # Istio's PILOT_TRACE_SAMPLING default


def read_telemetry_settings(top: Fields, default_config: Fields | None) -> dict[str, Any]:
    """The MeshSettings keyword arguments of the telemetry fields of MeshConfig ``top`` and of its ``defaultConfig``
    (``default_config``, read by ``pilot.config.mesh_config``: its ``tracing`` is read here); problems on them."""
    encoding = top.enum("accessLogEncoding", ("TEXT", "JSON"))
    if encoding == "JSON":
        top.report("accessLogEncoding", "JSON: not supported by meshplane yet (TEXT is; or use a Telemetry with an "
                   "envoyFileAccessLog provider whose logFormat has labels)")  # fmt: skip
    top.boolean("enableTracing")
    return {
        "default_providers": _default_providers(top),
        "access_log_file": top.string("accessLogFile") or "",
        "access_log_format": top.string("accessLogFormat") or "",
        "default_sampling": _default_sampling(default_config),
    }


def _default_providers(top: Fields) -> DefaultProviders:
    fields = top.mapping("defaultProviders", known=("accessLogging", "tracing", "metrics"))
    if fields is None:
        return DefaultProviders()
    metrics = fields.strings("metrics")
    if metrics is not None and metrics != ("prometheus",):
        fields.report(
            "metrics",
            f"{list(metrics)}: not supported by meshplane yet: meshplane's metrics provider is Mixer's 'prometheus', "
            "on by default (Istio's default: [prometheus]); disable metrics with a Telemetry override instead",
        )
    return DefaultProviders(
        access_logging=fields.strings("accessLogging") or (), tracing=fields.strings("tracing") or ()
    )


def _default_sampling(proxy: Fields | None) -> float:
    tracing = proxy.mapping("tracing", known=("sampling",), unsupported=_TRACING_UNSUPPORTED) if proxy else None
    sampling = tracing.number("sampling", minimum=0.0, maximum=100.0) if tracing is not None else None
    return sampling if sampling else _DEFAULT_SAMPLING  # Istio: 0 (unset) is the default
