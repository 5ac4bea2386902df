"""Checks that need more than one resource, run by the store over the set of resources about to be accepted.

A VirtualService destination (route or mirror) must name:

- a subset that exists in the DestinationRule for the destination's host (resolved like the model does, with the
  same helpers: ``resolve_host(host, namespace, domain_suffix)``, then ``lookup_host``: the exact DestinationRule
  host, else the most specific wildcard);
- when the host is a ServiceEntry host: a port of that service, and a port at all if the service has several.

A destination that is not a known ServiceEntry host is not an error (Istio allows routing to hosts it learns
later); only what would surely produce a dangling Envoy reference is rejected.

When a VirtualService that was in force fails these checks only because a DestinationRule or ServiceEntry changed,
``blame_changes`` names the changed resources to reject instead (the store keeps their last good versions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pilot.config.destination_rule_merge import merge_destination_rules, merged_groups
from pilot.config.errors import ConfigError, FieldPath, format_path
from pilot.config.hosts import DEFAULT_DOMAIN_SUFFIX, lookup_host, resolve_host
from pilot.config.parse import field_origin
from pilot.config.service_entry_merge import entries_by_host, merged_ports
from pilot.config.types import (
    ConfigKey,
    Destination,
    DestinationRule,
    Mirror,
    Resource,
    ServiceEntry,
    TCPRoute,
    TLSRoute,
    VirtualService,
    sorted_by_key,
)

__all__ = [
    "Blame",
    "CrossIndex",
    "blame_changes",
    "build_cross_index",
    "check_virtual_service",
    "destination_hosts",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossIndex:
    """What the checks look up: the ServiceEntry per host (the first, with the ports of all that merge into it),
    the first DestinationRule per resolved host."""

    services: Mapping[str, ServiceEntry]
    rules: Mapping[str, DestinationRule]
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    # per rule of ``rules`` (by its key): the rules merged into it, itself first (``destination_rule_merge``)
    merged_from: Mapping[ConfigKey, tuple[DestinationRule, ...]] = field(default_factory=dict)

    def rule_for(self, host: str) -> DestinationRule | None:
        return lookup_host(self.rules, host)

    def rules_for(self, host: str) -> tuple[DestinationRule, ...]:
        """The rules that make up ``rule_for(host)``, as written."""
        rule = self.rule_for(host)
        return () if rule is None else self.merged_from.get(rule.meta.key, (rule,))


@dataclass(frozen=True, slots=True, kw_only=True)
class Blame:
    """A changed resource that breaks a VirtualService in force: ``message`` goes on ``path`` of resource ``key``."""

    key: ConfigKey
    path: FieldPath
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Problem:
    path: FieldPath  # in the VirtualService
    message: str
    host: str  # the destination's resolved host
    kind: Literal["subset", "port", "port-required"]
    subset: str = ""
    port: int | None = None


def build_cross_index(
    resources: Mapping[ConfigKey, Resource], domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
) -> CrossIndex:
    """Index in ConfigKey order, the first one winning, as ``pilot.model.build_snapshot`` does."""
    rules: dict[str, DestinationRule] = {}
    ordered = sorted_by_key(resources).values()
    services = {
        host: _merged_entry(entries)
        for host, entries in entries_by_host(r for r in ordered if isinstance(r, ServiceEntry)).items()
    }
    written = [r for r in ordered if isinstance(r, DestinationRule)]
    for rule in merge_destination_rules(written, domain_suffix):
        rules.setdefault(resolve_host(rule.host, rule.meta.key.namespace, domain_suffix), rule)
    merged_from = {group[0].meta.key: tuple(group) for group in merged_groups(written, domain_suffix)}
    return CrossIndex(services=services, rules=rules, domain_suffix=domain_suffix, merged_from=merged_from)


def _merged_entry(entries: Sequence[ServiceEntry]) -> ServiceEntry:
    """The first entry of a host with the ports of all of them (``service_entry_merge``)."""
    if len(entries) == 1:
        return entries[0]
    return dataclasses.replace(entries[0], ports=merged_ports(entries))


def check_virtual_service(
    service: VirtualService, index: CrossIndex, field_lines: Mapping[FieldPath, int]
) -> tuple[ConfigError, ...]:
    """Every cross-resource problem of ``service``; ``field_lines`` (may be empty) places them on their lines."""
    return tuple(
        ConfigError(
            origin=field_origin(service.meta.origin, field_lines, problem.path),
            key=service.meta.key,
            path=format_path(problem.path),
            message=problem.message,
        )
        for problem in _problems(service, index, field_lines)
    )


def blame_changes(
    service: VirtualService,
    index: CrossIndex,
    before: CrossIndex,
    changed: Callable[[ConfigKey], bool],
    field_lines: Mapping[FieldPath, int],
) -> Iterator[Blame]:
    """The changed resources (``changed(key)``) that make ``service`` fail against ``index`` although it is the
    version in force before (``before`` indexes what was in force then): the DestinationRule or ServiceEntry its
    destination's host resolves to now, if changed, and the one it resolved to before, if changed and no longer
    resolved to. A problem with no changed resource behind it (one was deleted) is not blamed on anything."""
    used_by = f"VirtualService {service.meta.key.namespace}/{service.meta.key.name}"
    for problem in _problems(service, index, field_lines):
        at = f"{used_by} ({field_origin(service.meta.origin, field_lines, problem.path)})"
        now: DestinationRule | ServiceEntry | None
        was: DestinationRule | ServiceEntry | None
        if problem.kind == "subset":
            now, was = _subset_owner(problem, index, before, changed)
            here = (("spec", "subsets"), f"subset {problem.subset!r} is still used by {at}")
            there = (("spec", "host"), f"{problem.host} and its subset {problem.subset!r} are still used by {at}")
        else:
            now, was = index.services.get(problem.host), before.services.get(problem.host)
            if problem.kind == "port":
                here = (("spec", "ports"), f"port {problem.port} of {problem.host} is still used by {at}")
            else:
                here = (("spec", "ports"), f"{at} routes to {problem.host} without a port: it must keep a single port")
            there = (("spec", "hosts"), f"host {problem.host} is still used by {at}")
        if now is not None and changed(now.meta.key):
            yield Blame(key=now.meta.key, path=here[0], message=here[1])
        if was is not None and (now is None or now.meta.key != was.meta.key) and changed(was.meta.key):
            yield Blame(key=was.meta.key, path=there[0], message=there[1])


def _subset_owner(
    problem: _Problem, index: CrossIndex, before: CrossIndex, changed: Callable[[ConfigKey], bool]
) -> tuple[DestinationRule | None, DestinationRule | None]:
    """The rule to blame for a subset gone (now) and the one the host resolved to before: of merged rules, the one
    that defined the subset before, if it changed, else the first."""
    was_rules = before.rules_for(problem.host)
    owner = next((r for r in was_rules if any(s.name == problem.subset for s in r.subsets)), None)
    now_rules = index.rules_for(problem.host)
    now_keys = {r.meta.key for r in now_rules}
    if owner is not None and owner.meta.key in now_keys and changed(owner.meta.key):
        return next(r for r in now_rules if r.meta.key == owner.meta.key), owner
    now = now_rules[0] if now_rules else None
    was = owner if owner is not None and owner.meta.key not in now_keys else (was_rules[0] if was_rules else None)
    return now, was


def destination_hosts(service: VirtualService) -> Iterator[str]:
    """The hosts of every destination of ``service`` as written (routes, mirrors, TLS and TCP routes): what its
    checks look up (resolved with ``resolve_host``)."""
    return (destination.host for destination, _ in _destinations(service, {}))


def _problems(service: VirtualService, index: CrossIndex, field_lines: Mapping[FieldPath, int]) -> Iterator[_Problem]:
    namespace = service.meta.key.namespace
    for destination, path in _destinations(service, field_lines):
        host = resolve_host(destination.host, namespace, index.domain_suffix)
        if destination.subset:
            message = _subset_problem(destination.subset, host, index.rule_for(host))
            if message is not None:
                yield _Problem(
                    path=(*path, "subset"), message=message, host=host, kind="subset", subset=destination.subset
                )
        entry = index.services.get(host)
        if entry is not None:
            numbers = [p.number for p in entry.ports]
            listed = ", ".join(map(str, numbers)) or "none"
            source = f"ServiceEntry {entry.meta.key.namespace}/{entry.meta.key.name}"
            if destination.port is not None and destination.port not in numbers:
                message = f"port {destination.port} is not a port of {host} ({source} has {listed})"
                yield _Problem(
                    path=(*path, "port", "number"), message=message, host=host, kind="port", port=destination.port
                )
            elif destination.port is None and len(numbers) > 1:
                message = f"port.number is required: {host} has several ports ({listed}, from {source})"
                yield _Problem(path=path, message=message, host=host, kind="port-required")


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
    """Every destination with its field path: ``http[].route[].destination``, then ``mirror`` or
    ``mirrors[].destination``; then ``tls[].route[].destination`` and ``tcp[].route[].destination``."""
    for i, route in enumerate(service.http):
        for j, weighted in enumerate(route.route):
            yield weighted.destination, ("spec", "http", i, "route", j, "destination")
        single_mirror = ("spec", "http", i, "mirror")
        if len(route.mirrors) == 1 and single_mirror in field_lines:
            yield route.mirrors[0].destination, single_mirror
        else:
            yield from _mirror_destinations(route.mirrors, ("spec", "http", i, "mirrors"))
    yield from _l4_destinations(service.tls, "tls")
    yield from _l4_destinations(service.tcp, "tcp")


def _l4_destinations(routes: Sequence[TLSRoute | TCPRoute], kind: str) -> Iterator[tuple[Destination, FieldPath]]:
    for i, l4_route in enumerate(routes):
        for j, l4_destination in enumerate(l4_route.route):
            yield l4_destination.destination, ("spec", kind, i, "route", j, "destination")


def _mirror_destinations(mirrors: Iterable[Mirror], base: FieldPath) -> Iterator[tuple[Destination, FieldPath]]:
    for k, mirror in enumerate(mirrors):
        yield mirror.destination, (*base, k, "destination")
