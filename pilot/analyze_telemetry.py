"""``meshplane analyze`` checks of Telemetry resources.

MP0218 (istioctl analyze's ``MultipleTelemetriesWithoutWorkloadSelectors``): several Telemetries without a selector
in one namespace; only the first by name applies (Istio: the oldest), the others do nothing.

MP0217: a provider a Telemetry names that configures nothing, as Pilot would treat it (``pilot.model.telemetry``:
Istio ignores such a provider too):

- no ``extensionProviders`` entry of that name (nor Istio's built-in ``envoy`` / ``prometheus``);
- an entry of a type that section does not use (access logging: ``envoyFileAccessLog``; tracing:
  ``opentelemetry`` or ``zipkin``);
- a tracing provider whose service and port the registry lacks (Pilot gives no tracing, with a warning).
"""

from __future__ import annotations

from collections.abc import Iterator

from pilot.config.mesh_extension_providers import split_provider_service
from pilot.config.mesh_telemetry_providers import (
    FileAccessLogProvider,
    OpenTelemetryTracingProvider,
    ZipkinTracingProvider,
)
from pilot.config.types import Telemetry
from pilot.generate.service_cluster import lookup_cluster
from pilot.model.types import MeshSnapshot

__all__ = ["ignored_namespace_wide", "telemetry_provider_problems"]


def _tracing_problem(snapshot: MeshSnapshot, name: str) -> str | None:
    provider = snapshot.mesh.extension_provider(name)
    if provider is None:
        return f"tracing provider {name!r} is not an extensionProviders entry of the mesh config"
    if not isinstance(provider, OpenTelemetryTracingProvider | ZipkinTracingProvider):
        return f"tracing provider {name!r} is a {provider.kind} provider, not opentelemetry or zipkin"
    namespace, host = split_provider_service(provider.service)
    try:
        lookup_cluster(snapshot, host, provider.port, namespace=namespace)
    except LookupError as exc:
        return f"tracing provider {name!r}: {exc}"
    return None


def _logging_problem(snapshot: MeshSnapshot, name: str) -> str | None:
    provider = snapshot.mesh.extension_provider(name)
    if provider is None:
        return f"access log provider {name!r} is not an extensionProviders entry of the mesh config"
    if not isinstance(provider, FileAccessLogProvider):
        return f"access log provider {name!r} is a {provider.kind} provider, not envoyFileAccessLog"
    return None


def telemetry_provider_problems(snapshot: MeshSnapshot, telemetry: Telemetry) -> Iterator[str]:
    """Why each provider ``telemetry`` names configures nothing (see the module doc), once per name and section."""
    logging = dict.fromkeys(name for entry in telemetry.access_logging for name in entry.providers)
    tracing = dict.fromkeys(name for entry in telemetry.tracing for name in entry.providers)
    for name in logging:
        if (problem := _logging_problem(snapshot, name)) is not None:
            yield problem
    for name in tracing:
        if (problem := _tracing_problem(snapshot, name)) is not None:
            yield problem


def ignored_namespace_wide(snapshot: MeshSnapshot) -> Iterator[tuple[Telemetry, Telemetry]]:
    """(ignored, the one that applies) for each Telemetry without a selector that is not its namespace's first."""
    for telemetries in snapshot.telemetries.values():
        wide = [telemetry for telemetry in telemetries if not telemetry.selector]
        for ignored in wide[1:]:
            yield ignored, wide[0]
