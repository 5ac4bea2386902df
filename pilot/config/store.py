"""The set of config in force, aggregated from every source (Istio's ``config/aggregate``) with last-good semantics.

The store holds the latest parse of every unit of every source: a file of a directory source, an object of an
in-memory (later: Kubernetes) source. Sources are named and ranked when the store is made (``sources``: the first
one wins a duplicate). Rules, per resource key (kind/namespace/name):

- The first document defining a key (by source rank, then file path or unit name, then line) is its definition;
  later ones are rejected as duplicates, naming the first's origin (``file:line``, or an object reference), also
  when they come from another source.
- A valid definition is in force. An invalid one keeps the key's last good version in force (what was in force
  before), or nothing if it never was valid. A key gone from every source is removed.
- A file with a YAML syntax error keeps what it held before (its last parse that was YAML) and its error is listed.
- Cross-resource checks (``cross_checks``) run over the set about to be accepted. A VirtualService in force must
  not break because another resource changed: a new or edited DestinationRule or ServiceEntry that would make it
  fail (a subset or port it still uses removed) is rejected instead, with the VirtualService named, and its last
  good version stays in force. This is repeated until nothing more is blamed (putting a change back changes what
  the others are checked against); each change is put back at most once. Then a new or edited VirtualService
  failing the checks (perhaps one relying on a change put back) is rejected like an invalid one (its last good
  version stays, if that one passes). A VirtualService still failing (what it needs was deleted: nothing holds a
  deleted resource) is not kept.
- Conflicts between resources of one kind that are each valid: DestinationRules for one host whose merge would drop
  part of one (``destination_rule_merge``; checked first, as the VirtualService checks read the merged rules),
  VirtualServices for one host (``virtual_service_conflicts``) and Gateway servers on one port
  (``gateway_conflicts``). Of each pair the one that
  changed (the later by namespace/name when both or neither did) is rejected with an error naming the other and its
  origin, its last good version kept if it had one; the other stays in force.

The checks see every source's resources together: a VirtualService from one source is checked against the
DestinationRules and ServiceEntries of all of them.

``apply`` recomputes what the change can reach from every unit's latest parse (no parsing happens here) and
reports which keys' content changed. What it can reach (``store_scope``): the keys the changed units define or
defined, and every key tied to one of them through the hosts the checks compare, transitively; the rules above are
applied to those keys only, exactly as to the whole set (the others cannot change), with the versions in force
before as ``previous``. A DestinationRule for a wildcard host, or a change that reaches most keys (the first load),
makes it resolve everything. As a resolve's decisions depend on what was in force before it (a change put back is
blamed again, a rejected one's last good version is kept), the keys with a rejection are resolved again on the
apply after one that replaced a version in force, as a resolve of everything would. At 1000 services one
VirtualService edit takes about 2 ms instead of 100-250 (``tests/test_config_store_incremental.py`` compares both
ways on random sequences of edits). ``accepted`` is a new read-only mapping after every apply, never edited in
place.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from pilot.config.cross_checks import Blame, CrossIndex, blame_changes, build_cross_index, check_virtual_service
from pilot.config.destination_rule_merge import destination_rule_conflicts
from pilot.config.errors import ConfigError, FieldPath, format_path
from pilot.config.gateway_conflicts import GatewayConflict, gateway_conflicts
from pilot.config.hosts import DEFAULT_DOMAIN_SUFFIX
from pilot.config.origin import Origin
from pilot.config.parse import ParsedFile, Rejected, field_origin
from pilot.config.store_scope import CrossScope
from pilot.config.types import (
    ConfigKey,
    DestinationRule,
    Gateway,
    Resource,
    VirtualService,
    key_order,
    sorted_by_key,
)
from pilot.config.virtual_service_conflicts import virtual_service_conflicts

__all__ = [
    "FILES",
    "ConfigStore",
    "Rejection",
    "StoreChange",
]

_Conflicting = TypeVar("_Conflicting", VirtualService, DestinationRule, Gateway)


class _Conflict(Protocol[_Conflicting]):
    """Two resources of one kind that cannot both be in force (``virtual_service_conflicts``,
    ``destination_rule_conflicts``, ``gateway_conflicts``)."""

    @property
    def earlier(self) -> _Conflicting: ...
    @property
    def later(self) -> _Conflicting: ...
    def message(self, named: _Conflicting, /) -> str: ...
    def path_in(self, named: _Conflicting, /) -> FieldPath: ...


_Unit = tuple[int, str]  # (source rank, unit name): a file of a directory source, an object of another
FILES = "files"  # the name of the directory source (the only source of a store made without ``sources``)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreChange:
    """The store moved to ``version``; ``changed`` are the keys added, removed or with different content."""

    version: int
    changed: frozenset[ConfigKey]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A document that is not in force as written, and what is in force for its key instead (if anything)."""

    key: ConfigKey | None
    source: str  # the name of the source it came from
    unit: str  # what that source read it in (a file)
    origin: Origin
    errors: tuple[ConfigError, ...]
    in_force: str | None = None  # "last good version from ORIGIN", "version from ORIGIN", or None


@dataclass(slots=True)
class _Document:
    key: ConfigKey | None
    source: str
    unit: str
    origin: Origin
    resource: Resource | None
    errors: list[ConfigError] = field(default_factory=list)
    field_lines: Mapping[FieldPath, int] = field(default_factory=dict)


class ConfigStore:
    """What is in force, from the latest parse of every unit of every source. Not thread-safe: call it from one
    thread (the loop).

    ``domain_suffix`` completes short host names in the cross-resource checks, as in the model (``--domain-suffix``).
    ``sources`` names the sources that may apply, highest precedence first.
    """

    def __init__(self, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX, *, sources: Sequence[str] = (FILES,)) -> None:
        if not sources or len(set(sources)) != len(sources):
            raise ValueError(f"a config store needs distinct source names, got {list(sources)}")
        self._domain_suffix = domain_suffix
        self._sources = tuple(sources)
        self._units: dict[_Unit, ParsedFile] = {}  # (source rank, unit) -> its latest usable parse
        # key -> the units defining it (in their latest usable parse) -> its valid resources there
        self._definitions: dict[ConfigKey, dict[_Unit, tuple[Resource, ...]]] = {}
        self._scope = CrossScope(domain_suffix)
        # resolve everything when a change reaches more than this share of the keys (0: always; inf: only when
        # no closure can be taken; the tests compare both)
        self.whole_above = 0.5
        # what the next apply resolves again even if no change reaches it (``_unsettled``)
        self._unsettled: set[ConfigKey] = set()
        self._file_errors: dict[tuple[int, str], ConfigError] = {}
        self._accepted: Mapping[ConfigKey, Resource] = MappingProxyType({})
        self._rejections: tuple[Rejection, ...] = ()
        self._version = 0

    @property
    def sources(self) -> tuple[str, ...]:
        return self._sources

    @property
    def accepted(self) -> Mapping[ConfigKey, Resource]:
        return self._accepted

    @property
    def version(self) -> int:
        return self._version

    @property
    def rejections(self) -> tuple[Rejection, ...]:
        return self._rejections

    @property
    def file_errors(self) -> tuple[ConfigError, ...]:
        return tuple(self._file_errors[unit] for unit in sorted(self._file_errors))

    @property
    def unit_errors(self) -> dict[tuple[str, str], ConfigError]:
        """``file_errors`` by (source, unit): the units unusable as a whole (a file that is not YAML)."""
        errors = self._file_errors
        return {(self._sources[rank], unit): errors[(rank, unit)] for rank, unit in sorted(errors)}

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for unit in sorted(self._units) for w in self._units[unit].warnings)

    def apply(
        self, parsed: Iterable[ParsedFile], removed_files: Iterable[str] = (), *, source: str = FILES
    ) -> StoreChange | None:
        """Take new parses of some units (files) of ``source`` and drop its removed ones; None when nothing in force
        changed."""
        if source not in self._sources:
            raise ValueError(f"unknown config source {source!r}: this store reads {', '.join(self._sources)}")
        rank = self._sources.index(source)
        units: set[_Unit] = set()  # the units whose documents changed
        keys: set[ConfigKey] = set()  # the keys they define, or defined before
        for name in removed_files:
            units.add((rank, name))
            keys |= self._set_unit((rank, name), None)
            self._file_errors.pop((rank, name), None)
        for result in parsed:
            unit = (rank, result.file)
            if result.file_error is not None:
                self._file_errors[unit] = result.file_error  # keep its previous parse, if any
            else:
                units.add(unit)
                keys |= self._set_unit(unit, result)
                self._file_errors.pop(unit, None)
        previous = self._accepted
        scope = self._scope_of(keys | self._unsettled)
        accepted, changed = self._resolve_whole(previous) if scope is None else self._resolve_scope(scope, units)
        self._accepted = MappingProxyType(accepted)
        resolved = (previous.keys() | accepted.keys() | self._definitions.keys()) if scope is None else scope
        moved = any(previous.get(key) is not accepted.get(key) for key in resolved)
        self._unsettled = {r.key for r in self._rejections if r.key is not None} if moved else set()
        for key in resolved:
            if self._scope.indexed(key):
                self._scope.update(key, self._versions(key))
        if not changed:
            return None
        self._version += 1
        return StoreChange(version=self._version, changed=frozenset(changed))

    def _scope_of(self, keys: set[ConfigKey]) -> set[ConfigKey] | None:
        """The keys to resolve for a change of ``keys``; None: all of them (most of the set would be resolved,
        which costs as much, or no closure can be taken)."""
        limit = self.whole_above * len(self._definitions)
        if len(keys) > limit:
            return None
        for key in keys:  # what the changed keys meet now, besides what they met before
            if self._scope.indexed(key):
                self._scope.add(key, self._versions(key))
        scope = self._scope.closure(keys)
        return None if scope is None or len(scope) > limit else scope

    def _set_unit(self, unit: _Unit, parsed: ParsedFile | None) -> set[ConfigKey]:
        """Replace (or, with None, drop) the parse of ``unit``; the keys it defined before or defines now."""
        keys: set[ConfigKey] = set()
        old = self._units.pop(unit, None)
        for parse in (old, parsed):
            if parse is not None:
                keys.update(r.meta.key for r in parse.resources)
                keys.update(r.key for r in parse.rejected if r.key is not None)
        for key in keys:
            self._definitions.get(key, {}).pop(unit, None)
        if parsed is not None:
            parsed = _kept_identical(parsed, old)
            self._units[unit] = parsed
            found: dict[ConfigKey, list[Resource]] = {r.key: [] for r in parsed.rejected if r.key is not None}
            for resource in parsed.resources:
                found.setdefault(resource.meta.key, []).append(resource)
            for key, resources in found.items():
                self._definitions.setdefault(key, {})[unit] = tuple(resources)
        for key in keys:
            if not self._definitions.get(key, True):
                del self._definitions[key]
        return keys

    def _versions(self, key: ConfigKey) -> list[Resource]:
        """Every version of ``key`` that may be in force after the next resolve: each valid definition, and the
        version in force now (it may be kept as the last good one)."""
        versions = [r for found in self._definitions.get(key, {}).values() for r in found]
        if key in self._accepted:
            versions.append(self._accepted[key])
        return versions

    def _resolve_whole(
        self, previous: Mapping[ConfigKey, Resource]
    ) -> tuple[dict[ConfigKey, Resource], set[ConfigKey]]:
        """Resolve every key (the first load, or a change that reaches most of them)."""
        accepted, self._rejections = self._resolve(previous, self._documents())
        changed = {
            key
            for key in previous.keys() | accepted.keys()
            if key not in previous
            or key not in accepted
            or previous[key].meta.content_hash != accepted[key].meta.content_hash
        }
        return sorted_by_key(accepted), changed

    def _resolve_scope(
        self, scope: set[ConfigKey], units: set[_Unit]
    ) -> tuple[dict[ConfigKey, Resource], set[ConfigKey]]:
        """Resolve only the keys of ``scope`` (a closure of ``CrossScope``: nothing outside it can change, nothing
        inside depends on what is outside) and the keyless documents of ``units``; keep everything else."""
        previous = self._accepted
        resolved, rejections = self._resolve(
            {k: previous[k] for k in scope if k in previous}, self._documents(scope, units)
        )
        accepted = dict(previous)
        for key in scope:
            if key in accepted and key not in resolved:
                del accepted[key]
        added = any(key not in accepted for key in resolved)
        accepted.update(resolved)
        kept = [
            r
            for r in self._rejections
            if (r.key not in scope if r.key is not None else (self._sources.index(r.source), r.unit) not in units)
        ]
        self._rejections = tuple(sorted((*kept, *rejections), key=self._rejection_order))
        changed = {
            key
            for key in scope
            if (key in previous) != (key in resolved)
            or (key in resolved and previous[key].meta.content_hash != resolved[key].meta.content_hash)
        }
        return (sorted_by_key(accepted) if added else accepted), changed

    def _rejection_order(self, rejection: Rejection) -> tuple[int, str, int]:
        return self._sources.index(rejection.source), rejection.unit, rejection.origin.line

    def configz(self) -> dict[str, Any]:
        """The store as JSON-able data for /debug/configz, sorted deterministically."""
        return {
            "version": self._version,
            "accepted": [
                {
                    "kind": key.kind,
                    "namespace": key.namespace,
                    "name": key.name,
                    **_origin_fields(resource.meta.origin),
                    "hash": resource.meta.content_hash,
                }
                for key, resource in sorted(self._accepted.items())
            ],
            "rejected": [
                {
                    "kind": r.key.kind if r.key else None,
                    "namespace": r.key.namespace if r.key else None,
                    "name": r.key.name if r.key else None,
                    "source": r.source,
                    **_origin_fields(r.origin),
                    "errors": [str(e) for e in r.errors],
                    "in_force": r.in_force,
                }
                for r in self._rejections
            ],
            "file_errors": [str(e) for e in self.file_errors],
            "warnings": list(self.warnings),
        }

    def _documents(self, keys: set[ConfigKey] | None = None, units: set[_Unit] | None = None) -> list[_Document]:
        """Every document of every unit, in definition order: source rank, unit (file path), then line. With
        ``keys``: only the documents defining one of them, and the keyless ones of ``units``."""
        documents: list[_Document] = []
        if keys is None:
            chosen = sorted(self._units)
        else:
            found = {unit for key in keys for unit in self._definitions.get(key, ())}
            chosen = sorted(found | {unit for unit in units or () if unit in self._units})
        for unit in chosen:
            source, parsed = self._sources[unit[0]], self._units[unit]
            in_unit = [
                _Document(key=r.meta.key, source=source, unit=unit[1], origin=r.meta.origin, resource=r)
                for r in parsed.resources
                if keys is None or r.meta.key in keys
            ] + [
                _rejected_document(r, source, unit[1])
                for r in parsed.rejected
                if keys is None or (r.key in keys if r.key is not None else unit in (units or ()))
            ]
            for document in sorted(in_unit, key=lambda d: d.origin.line):
                document.field_lines = parsed.field_lines.get(document.origin.line, {})
                documents.append(document)
        return documents

    def _resolve(
        self, previous: Mapping[ConfigKey, Resource], documents: Iterable[_Document]
    ) -> tuple[dict[ConfigKey, Resource], tuple[Rejection, ...]]:
        """What is in force for every key ``documents`` define, and every one of them not in force as written."""
        first: dict[ConfigKey, _Document] = {}
        rejected: list[_Document] = []
        for document in documents:
            if document.key is None:
                rejected.append(document)
            elif document.key in first:
                original = first[document.key]
                document.errors.append(_duplicate_error(document, original))
                document.resource = None
                rejected.append(document)
            else:
                first[document.key] = document
                if document.resource is None:
                    rejected.append(document)
        current = {key: d.resource for key, d in first.items() if d.resource is not None}
        accepted: dict[ConfigKey, Resource] = {
            key: current[key] if key in current else previous[key] for key in first if key in current or key in previous
        }
        conflict_args = (accepted, current, previous, first, rejected)
        self._reject_conflicts(DestinationRule, destination_rule_conflicts, *conflict_args)
        self._check_virtual_services(accepted, current, previous, first, rejected)
        self._reject_conflicts(VirtualService, virtual_service_conflicts, *conflict_args)
        self._reject_conflicts(Gateway, _gateway_conflicts, *conflict_args)
        rejections = tuple(
            Rejection(
                key=d.key,
                source=d.source,
                unit=d.unit,
                origin=d.origin,
                errors=tuple(d.errors),
                in_force=_in_force(accepted.get(d.key) if d.key else None, current),
            )
            for d in sorted(rejected, key=lambda d: (self._sources.index(d.source), d.unit, d.origin.line))
        )
        return accepted, rejections

    def _check_virtual_services(
        self,
        accepted: dict[ConfigKey, Resource],
        current: Mapping[ConfigKey, Resource],
        previous: Mapping[ConfigKey, Resource],
        first: Mapping[ConfigKey, _Document],
        rejected: list[_Document],
    ) -> None:
        """Reject the changes that break VirtualServices in force, then VirtualServices whose destinations dangle
        (falling back to their last good version if it passes)."""
        self._reject_breaking_changes(accepted, current, previous, first, rejected)
        index = build_cross_index(_without_virtual_services(accepted), self._domain_suffix)
        for key, resource in list(accepted.items()):
            if not isinstance(resource, VirtualService):
                continue
            document = first[key]
            is_current = resource is current.get(key)
            errors = check_virtual_service(resource, index, document.field_lines if is_current else {})
            if not errors:
                continue
            del accepted[key]
            if is_current:
                document.errors.extend(errors)
                rejected.append(document)
                fallback = previous.get(key)
                if isinstance(fallback, VirtualService) and not check_virtual_service(fallback, index, {}):
                    accepted[key] = fallback
            else:
                where = resource.meta.origin
                document.errors.extend(
                    ConfigError(
                        origin=e.origin,
                        key=e.key,
                        path=e.path,
                        message=f"{e.message} (so the last good version from {where} is not kept either)",
                    )
                    for e in errors
                )

    def _reject_conflicts(
        self,
        kind: type[_Conflicting],
        conflicts: Callable[[Iterable[_Conflicting], str], Iterator[_Conflict[_Conflicting]]],
        accepted: dict[ConfigKey, Resource],
        current: Mapping[ConfigKey, Resource],
        previous: Mapping[ConfigKey, Resource],
        first: Mapping[ConfigKey, _Document],
        rejected: list[_Document],
    ) -> None:
        """Reject one resource of ``kind`` of each conflicting pair (``conflicts``: VirtualServices for one host,
        DestinationRules that merge, Gateways' servers): the one that changed (the later one if both or neither
        did), putting back its last good version if it had one. Repeated until no conflict is left: each round
        removes or reverts one changed resource."""
        while True:
            candidates = [r for r in accepted.values() if isinstance(r, kind)]
            conflict = next(conflicts(candidates, self._domain_suffix), None)
            if conflict is None:
                return
            culprit = conflict.later
            if _unchanged(culprit, previous) and not _unchanged(conflict.earlier, previous):
                culprit = conflict.earlier
            key = culprit.meta.key
            document = first[key]
            is_current = culprit is current.get(key)
            path = conflict.path_in(culprit)
            message = conflict.message(culprit)
            if not is_current:
                message += f" (so the last good version from {culprit.meta.origin} is not kept either)"
            lines = document.field_lines if is_current else {}
            document.errors.append(
                ConfigError(
                    origin=field_origin(culprit.meta.origin, lines, path),
                    key=key,
                    path=format_path(path),
                    message=message,
                )
            )
            if document not in rejected:
                rejected.append(document)
            fallback = previous.get(key)
            if is_current and isinstance(fallback, kind) and fallback is not culprit:
                accepted[key] = fallback
            else:
                del accepted[key]

    def _reject_breaking_changes(
        self,
        accepted: dict[ConfigKey, Resource],
        current: Mapping[ConfigKey, Resource],
        previous: Mapping[ConfigKey, Resource],
        first: Mapping[ConfigKey, _Document],
        rejected: list[_Document],
    ) -> None:
        """Put back the last good version of (or drop, if new) every changed DestinationRule or ServiceEntry that
        breaks a VirtualService version in force before, and report it on the change. Repeated until nothing is
        blamed: a change put back is no longer a change, so this ends; keys are visited in order, so it is
        deterministic."""
        before = build_cross_index(_without_virtual_services(previous), self._domain_suffix)

        def changed(key: ConfigKey) -> bool:
            resource = accepted.get(key)
            old = previous.get(key)
            return resource is not None and (old is None or old.meta.content_hash != resource.meta.content_hash)

        while True:
            index = build_cross_index(_without_virtual_services(accepted), self._domain_suffix)
            blamed: dict[ConfigKey, list[Blame]] = {}
            for key in sorted((k for k, r in accepted.items() if isinstance(r, VirtualService)), key=key_order):
                kept = _version_to_keep(accepted[key], previous.get(key), index)
                if kept is None:
                    continue
                field_lines = first[key].field_lines if kept is current.get(key) else {}
                for blame in blame_changes(kept, index, before, changed, field_lines):
                    blamed.setdefault(blame.key, []).append(blame)
            if not blamed:
                return
            for key, blames in sorted(blamed.items()):
                document = first[key]
                if key in previous:
                    accepted[key] = previous[key]
                else:
                    del accepted[key]
                for blame in dict.fromkeys(blames):  # one error per distinct message, in order
                    document.errors.append(
                        ConfigError(
                            origin=field_origin(document.origin, document.field_lines, blame.path),
                            key=key,
                            path=format_path(blame.path),
                            message=blame.message,
                        )
                    )
                rejected.append(document)


def _kept_identical(parsed: ParsedFile, old: ParsedFile | None) -> ParsedFile:
    """``parsed`` with each resource equal to one of the unit's previous parse (same key, content and origin) replaced
    by that one: a file re-read for an edit of one of its documents keeps the others as the same objects, and what is
    derived from them downstream (the model's registry state) is reused."""
    if old is None or not old.resources:
        return parsed
    before = {(r.meta.key, r.meta.content_hash, r.meta.origin): r for r in old.resources}
    resources = tuple(before.get((r.meta.key, r.meta.content_hash, r.meta.origin), r) for r in parsed.resources)
    if all(map(operator.is_, resources, parsed.resources)):
        return parsed
    return dataclasses.replace(parsed, resources=resources)


def _version_to_keep(resource: Resource, last_good: Resource | None, index: CrossIndex) -> VirtualService | None:
    """The VirtualService version in force before that must keep working, when ``resource`` (what would be in force
    for its key) fails the checks: ``resource`` itself if unchanged, else its last good version unless that one
    passes (it is then simply kept). None when nothing was in force (a new VirtualService is rejected itself)."""
    assert isinstance(resource, VirtualService)
    if not isinstance(last_good, VirtualService) or not check_virtual_service(resource, index, {}):
        return None
    if last_good.meta.content_hash == resource.meta.content_hash:
        return resource
    return last_good if check_virtual_service(last_good, index, {}) else None  # it fails too: it must keep working


def _unchanged(resource: Resource, previous: Mapping[ConfigKey, Resource]) -> bool:
    old = previous.get(resource.meta.key)
    return old is not None and old.meta.content_hash == resource.meta.content_hash


def _gateway_conflicts(gateways: Iterable[Gateway], _domain_suffix: str) -> Iterator[GatewayConflict]:
    return gateway_conflicts(gateways)  # a Gateway's hosts are matched as written: no short names to resolve


def _without_virtual_services(resources: Mapping[ConfigKey, Resource]) -> dict[ConfigKey, Resource]:
    return {k: r for k, r in resources.items() if not isinstance(r, VirtualService)}


def _rejected_document(rejected: Rejected, source: str, unit: str) -> _Document:
    return _Document(
        key=rejected.key,
        source=source,
        unit=unit,
        origin=rejected.origin,
        resource=None,
        errors=list(rejected.errors),
    )


def _duplicate_error(document: _Document, original: _Document) -> ConfigError:
    assert document.key is not None
    key = document.key
    return ConfigError(
        origin=field_origin(document.origin, document.field_lines, ("metadata", "name")),
        key=key,
        path="metadata.name",
        message=f"{key.kind} {key.namespace}/{key.name} is already defined at {original.origin}; "
        "this definition is ignored",
    )


def _origin_fields(origin: Origin) -> dict[str, Any]:
    """An origin in /debug/configz: ``origin`` as messages show it, and its file and line ("" and 0 without a file)."""
    return {"origin": str(origin), "file": origin.file, "line": origin.line}


def _in_force(resource: Resource | None, current: Mapping[ConfigKey, Resource]) -> str | None:
    if resource is None:
        return None
    where = str(resource.meta.origin)
    if resource is current.get(resource.meta.key):
        return f"version from {where}"
    return f"last good version from {where}"
