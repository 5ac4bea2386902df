"""Mesh-wide settings from Istio's MeshConfig that the generators read (``pilot.config.mesh_config`` parses the file).

Frozen and hashable: the snapshot carries one, a change of it is a ``MeshConfig`` change (``changed_kinds``), and
the route cache keys the parts that read it on its values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pilot.config.mesh_extension_providers import ExtensionProvider, extension_provider
from pilot.config.mesh_telemetry_providers import BUILTIN_PROVIDERS
from pilot.model.proxy_config import NO_PROXY_DEFAULTS, ProxyDefaults

__all__ = ["DEFAULT_MESH_SETTINGS", "MESH_CONFIG_KIND", "DefaultProviders", "MeshSettings", "OutboundTrafficPolicy"]

MESH_CONFIG_KIND = "MeshConfig"  # the "kind" a change of the mesh settings counts as in ``changed_kinds``


class OutboundTrafficPolicy(enum.StrEnum):
    """Istio ``MeshConfig.outboundTrafficPolicy.mode``: where a captured sidecar sends traffic to a destination that
    no service of the registry has."""

    ALLOW_ANY = "ALLOW_ANY"  # on to the original destination (PassthroughCluster)
    REGISTRY_ONLY = "REGISTRY_ONLY"  # nowhere (BlackHoleCluster: a reset for TCP, 502 for HTTP)


@dataclass(frozen=True, slots=True, kw_only=True)
class DefaultProviders:
    """MeshConfig ``defaultProviders``: the providers of a workload no Telemetry names providers for (Istio's
    default: ``metrics: [prometheus]``)."""

    metrics: tuple[str, ...] = ("prometheus",)
    tracing: tuple[str, ...] = ()
    access_logging: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshSettings:
    outbound_traffic_policy: OutboundTrafficPolicy = OutboundTrafficPolicy.ALLOW_ANY  # Istio's default
    extension_providers: tuple[ExtensionProvider, ...] = ()  # MeshConfig extensionProviders, in file order
    default_providers: DefaultProviders = DefaultProviders()
    # MeshConfig accessLogFile / accessLogFormat: the access log of a proxy no Telemetry accessLogging applies to
    access_log_file: str = ""
    access_log_format: str = ""  # empty: Istio's default text format
    # defaultConfig.tracing.sampling: the sampling percentage when no Telemetry sets randomSamplingPercentage
    default_sampling: float = 1.0
    proxy_defaults: ProxyDefaults = NO_PROXY_DEFAULTS  # MeshConfig defaultConfig (what of it meshplane applies)

    def extension_provider(self, name: str) -> ExtensionProvider | None:
        """The ``extensionProviders`` entry named ``name``, else Istio's built-in one of that name
        (``prometheus``, ``envoy``); None: there is none."""
        return extension_provider(self.extension_providers, name) or extension_provider(BUILTIN_PROVIDERS, name)


DEFAULT_MESH_SETTINGS = MeshSettings()
