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

``apply`` recomputes the set from every unit's latest parse (cheap: no parsing happens here) and reports which
keys' content changed. ``accepted`` is a new read-only mapping after every apply, never edited in place.
"""

from __future__ import annotations

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
        self._units: dict[tuple[int, str], ParsedFile] = {}  # (source rank, unit) -> its latest usable parse
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
        for name in removed_files:
            self._units.pop((rank, name), None)
            self._file_errors.pop((rank, name), None)
        for result in parsed:
            unit = (rank, result.file)
            if result.file_error is not None:
                self._file_errors[unit] = result.file_error  # keep its previous parse, if any
            else:
                self._units[unit] = result
                self._file_errors.pop(unit, None)
        previous = self._accepted
        accepted, rejections = self._resolve(previous)
        self._accepted = MappingProxyType(sorted_by_key(accepted))
        self._rejections = rejections
        changed = frozenset(
            key
            for key in previous.keys() | accepted.keys()
            if key not in previous
            or key not in accepted
            or previous[key].meta.content_hash != accepted[key].meta.content_hash
        )
        if not changed:
            return None
        self._version += 1
        return StoreChange(version=self._version, changed=changed)

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

    def _documents(self) -> list[_Document]:
        """Every document of every unit, in definition order: source rank, unit (file path), then line."""
        documents: list[_Document] = []
        for unit in sorted(self._units):
            source, parsed = self._sources[unit[0]], self._units[unit]
            in_unit = [
                _Document(key=r.meta.key, source=source, unit=unit[1], origin=r.meta.origin, resource=r)
                for r in parsed.resources
            ] + [_rejected_document(r, source, unit[1]) for r in parsed.rejected]
            for document in sorted(in_unit, key=lambda d: d.origin.line):
                document.field_lines = parsed.field_lines.get(document.origin.line, {})
                documents.append(document)
        return documents

    def _resolve(
        self, previous: Mapping[ConfigKey, Resource]
    ) -> tuple[dict[ConfigKey, Resource], tuple[Rejection, ...]]:
        """What is in force for every key defined in some source, and every document not in force as written."""
        first: dict[ConfigKey, _Document] = {}
        rejected: list[_Document] = []
        for document in self._documents():
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
