"""Checks that need more than one resource, run by the store over the set of resources about to be accepted.

A VirtualService destination (route or mirror) must name:

- a subset that exists in the DestinationRule for the destination's host (resolved like the model does:
  ``resolve_host(host, namespace)``, then the exact DestinationRule host, else the most specific wildcard);
- when the host is a ServiceEntry host: a port of that service, and a port at all if the service has several.

A destination that is not a known ServiceEntry host is not an error (Istio allows routing to hosts it learns
later); only what would surely produce a dangling Envoy reference is rejected.

``pilot.model`` is imported as a module and its functions looked up at call time: ``pilot.model`` itself imports
``pilot.config.types``, so this keeps either package importable first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from pilot.config.errors import ConfigError, FieldPath, format_path
from pilot.config.types import (
    ConfigKey,
    Destination,
    DestinationRule,
    Mirror,
    Resource,
    ServiceEntry,
    VirtualService,
)
from pilot.config.yaml_source import line_of
from pilot.model import build as model_build  # a module: pilot.model imports pilot.config.types (see resolve)

__all__ = [
    "CrossIndex",
    "build_cross_index",
    "check_virtual_service",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossIndex:
    """What the checks look up: first ServiceEntry per host, first DestinationRule per resolved host."""

    services: Mapping[str, ServiceEntry]
    rules: Mapping[str, DestinationRule]

    def rule_for(self, host: str) -> DestinationRule | None:
        exact = self.rules.get(host)
        if exact is not None:
            return exact
        best: tuple[int, DestinationRule] | None = None
        for pattern, rule in self.rules.items():
            wildcard = pattern.startswith("*") and model_build.host_matches(pattern, host)
            if wildcard and (best is None or len(pattern) > best[0]):
                best = (len(pattern), rule)
        return best[1] if best else None


def build_cross_index(resources: Mapping[ConfigKey, Resource]) -> CrossIndex:
    """Index in ConfigKey order, the first one winning, as ``pilot.model.build_snapshot`` does."""
    services: dict[str, ServiceEntry] = {}
    rules: dict[str, DestinationRule] = {}
    for _, resource in sorted(resources.items()):
        if isinstance(resource, ServiceEntry):
            for host in resource.hosts:
                services.setdefault(host, resource)
        elif isinstance(resource, DestinationRule):
            rules.setdefault(model_build.resolve_host(resource.host, resource.meta.key.namespace), resource)
    return CrossIndex(services=services, rules=rules)


def check_virtual_service(
    service: VirtualService, index: CrossIndex, field_lines: Mapping[FieldPath, int]
) -> tuple[ConfigError, ...]:
    """Every cross-resource problem of ``service``; ``field_lines`` (may be empty) places them on their lines."""
    errors: list[ConfigError] = []

    def report(path: FieldPath, message: str) -> None:
        errors.append(
            ConfigError(
                file=service.meta.file,
                line=line_of(field_lines, path, service.meta.line),
                key=service.meta.key,
                path=format_path(path),
                message=message,
            )
        )

    namespace = service.meta.key.namespace
    for destination, path in _destinations(service, field_lines):
        host = model_build.resolve_host(destination.host, namespace)
        if destination.subset:
            message = _subset_problem(destination.subset, host, index.rule_for(host))
            if message is not None:
                report((*path, "subset"), message)
        entry = index.services.get(host)
        if entry is not None:
            numbers = [p.number for p in entry.ports]
            listed = ", ".join(map(str, numbers)) or "none"
            source = f"ServiceEntry {entry.meta.key.namespace}/{entry.meta.key.name}"
            if destination.port is not None and destination.port not in numbers:
                message = f"port {destination.port} is not a port of {host} ({source} has {listed})"
                report((*path, "port", "number"), message)
            elif destination.port is None and len(numbers) > 1:
                report(path, f"port.number is required: {host} has several ports ({listed}, from {source})")
    return tuple(errors)


def _subset_problem(subset: str, host: str, rule: DestinationRule | None) -> str | None:
    if rule is None:
        return f"subset {subset!r} is not defined: there is no DestinationRule for {host}"
    names = [s.name for s in rule.subsets]
    if subset in names:
        return None
    return (
        f"subset {subset!r} is not defined in DestinationRule {rule.meta.key.namespace}/{rule.meta.key.name} "
        f"(its subsets: {', '.join(names) or 'none'})"
    )


def _destinations(
    service: VirtualService, field_lines: Mapping[FieldPath, int]
) -> Iterator[tuple[Destination, FieldPath]]:
    """Every destination with its field path: ``route[].destination``, then ``mirror`` or ``mirrors[].destination``."""
    for i, route in enumerate(service.http):
        for j, weighted in enumerate(route.route):
            yield weighted.destination, ("spec", "http", i, "route", j, "destination")
        single_mirror = ("spec", "http", i, "mirror")
        if len(route.mirrors) == 1 and single_mirror in field_lines:
            yield route.mirrors[0].destination, single_mirror
        else:
            yield from _mirror_destinations(route.mirrors, ("spec", "http", i, "mirrors"))


def _mirror_destinations(mirrors: Iterable[Mirror], base: FieldPath) -> Iterator[tuple[Destination, FieldPath]]:
    for k, mirror in enumerate(mirrors):
        yield mirror.destination, (*base, k, "destination")
