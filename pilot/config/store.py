"""The set of config in force, kept from parsed files with last-good semantics.

Rules, per resource key (kind/namespace/name):

- The first document defining a key (by file path, then line) is its definition; later ones are rejected as
  duplicates, naming the first's file:line.
- A valid definition is in force. An invalid one keeps the key's last good version in force (what was in force
  before), or nothing if it never was valid. A key gone from every file is removed.
- A file with a YAML syntax error keeps what it held before (its last parse that was YAML) and its error is listed.
- Cross-resource checks (``cross_checks``) run over the set about to be accepted. A VirtualService in force must
  not break because another resource changed: a new or edited DestinationRule or ServiceEntry that would make it
  fail (a subset or port it still uses removed) is rejected instead, with the VirtualService named, and its last
  good version stays in force. This is repeated until nothing more is blamed (putting a change back changes what
  the others are checked against); each change is put back at most once. Then a new or edited VirtualService
  failing the checks (perhaps one relying on a change put back) is rejected like an invalid one (its last good
  version stays, if that one passes). A VirtualService still failing (what it needs was deleted: nothing holds a
  deleted resource) is not kept.

``apply`` recomputes the set from every file's latest parse (cheap: no parsing happens here) and reports which
keys' content changed. ``accepted`` is a new read-only mapping after every apply, never edited in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pilot.config.cross_checks import Blame, CrossIndex, blame_changes, build_cross_index, check_virtual_service
from pilot.config.errors import ConfigError, FieldPath, format_path
from pilot.config.hosts import DEFAULT_DOMAIN_SUFFIX
from pilot.config.parse import ParsedFile, Rejected
from pilot.config.types import ConfigKey, Resource, VirtualService
from pilot.config.yaml_source import line_of

__all__ = [
    "ConfigStore",
    "Rejection",
    "StoreChange",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreChange:
    """The store moved to ``version``; ``changed`` are the keys added, removed or with different content."""

    version: int
    changed: frozenset[ConfigKey]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A document that is not in force as written, and what is in force for its key instead (if anything)."""

    key: ConfigKey | None
    file: str
    line: int
    errors: tuple[ConfigError, ...]
    in_force: str | None = None  # "last good version from FILE:LINE", "version from FILE:LINE", or None


@dataclass(slots=True)
class _Document:
    key: ConfigKey | None
    file: str
    line: int
    resource: Resource | None
    errors: list[ConfigError] = field(default_factory=list)
    field_lines: Mapping[FieldPath, int] = field(default_factory=dict)


class ConfigStore:
    """What is in force, from the latest parse of every file. Not thread-safe: call it from one thread (the loop).

    ``domain_suffix`` completes short host names in the cross-resource checks, as in the model (``--domain-suffix``).
    """

    def __init__(self, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> None:
        self._domain_suffix = domain_suffix
        self._files: dict[str, ParsedFile] = {}
        self._file_errors: dict[str, ConfigError] = {}
        self._accepted: Mapping[ConfigKey, Resource] = MappingProxyType({})
        self._rejections: tuple[Rejection, ...] = ()
        self._version = 0

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
        return tuple(self._file_errors[name] for name in sorted(self._file_errors))

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for name in sorted(self._files) for w in self._files[name].warnings)

    def apply(self, parsed: Iterable[ParsedFile], removed_files: Iterable[str] = ()) -> StoreChange | None:
        """Take new parses of some files and drop removed files; None when nothing in force changed."""
        for name in removed_files:
            self._files.pop(name, None)
            self._file_errors.pop(name, None)
        for result in parsed:
            if result.file_error is not None:
                self._file_errors[result.file] = result.file_error  # keep its previous parse, if any
            else:
                self._files[result.file] = result
                self._file_errors.pop(result.file, None)
        previous = self._accepted
        accepted, rejections = self._resolve(previous)
        self._accepted = MappingProxyType(dict(sorted(accepted.items())))
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
                    "file": resource.meta.file,
                    "line": resource.meta.line,
                    "hash": resource.meta.content_hash,
                }
                for key, resource in sorted(self._accepted.items())
            ],
            "rejected": [
                {
                    "kind": r.key.kind if r.key else None,
                    "namespace": r.key.namespace if r.key else None,
                    "name": r.key.name if r.key else None,
                    "file": r.file,
                    "line": r.line,
                    "errors": [str(e) for e in r.errors],
                    "in_force": r.in_force,
                }
                for r in self._rejections
            ],
            "file_errors": [str(e) for e in self.file_errors],
            "warnings": list(self.warnings),
        }

    def _documents(self) -> list[_Document]:
        """Every document of every file, in definition order: file path, then line."""
        documents: list[_Document] = []
        for name in sorted(self._files):
            parsed = self._files[name]
            in_file = [_Document(key=r.meta.key, file=name, line=r.meta.line, resource=r) for r in parsed.resources] + [
                _rejected_document(r) for r in parsed.rejected
            ]
            for document in sorted(in_file, key=lambda d: d.line):
                document.field_lines = parsed.field_lines.get(document.line, {})
                documents.append(document)
        return documents

    def _resolve(
        self, previous: Mapping[ConfigKey, Resource]
    ) -> tuple[dict[ConfigKey, Resource], tuple[Rejection, ...]]:
        """What is in force for every key defined in some file, and every document not in force as written."""
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
        self._check_virtual_services(accepted, current, previous, first, rejected)
        rejections = tuple(
            Rejection(
                key=d.key,
                file=d.file,
                line=d.line,
                errors=tuple(d.errors),
                in_force=_in_force(accepted.get(d.key) if d.key else None, current),
            )
            for d in sorted(rejected, key=lambda d: (d.file, d.line))
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
                where = f"{resource.meta.file}:{resource.meta.line}"
                document.errors.extend(
                    ConfigError(
                        file=e.file,
                        line=e.line,
                        key=e.key,
                        path=e.path,
                        message=f"{e.message} (so the last good version from {where} is not kept either)",
                    )
                    for e in errors
                )

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
            for key in sorted(k for k, r in accepted.items() if isinstance(r, VirtualService)):
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
                            file=document.file,
                            line=line_of(document.field_lines, blame.path, document.line),
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


def _without_virtual_services(resources: Mapping[ConfigKey, Resource]) -> dict[ConfigKey, Resource]:
    return {k: r for k, r in resources.items() if not isinstance(r, VirtualService)}


def _rejected_document(rejected: Rejected) -> _Document:
    return _Document(
        key=rejected.key, file=rejected.file, line=rejected.line, resource=None, errors=list(rejected.errors)
    )


def _duplicate_error(document: _Document, original: _Document) -> ConfigError:
    assert document.key is not None
    key = document.key
    return ConfigError(
        file=document.file,
        line=line_of(document.field_lines, ("metadata", "name"), document.line),
        key=key,
        path="metadata.name",
        message=f"{key.kind} {key.namespace}/{key.name} is already defined at {original.file}:{original.line}; "
        "this definition is ignored",
    )


def _in_force(resource: Resource | None, current: Mapping[ConfigKey, Resource]) -> str | None:
    if resource is None:
        return None
    where = f"{resource.meta.file}:{resource.meta.line}"
    if resource is current.get(resource.meta.key):
        return f"version from {where}"
    return f"last good version from {where}"
