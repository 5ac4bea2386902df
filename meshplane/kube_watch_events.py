"""The pure parts of list+watch: what a watch stream's line means, what a relist changed, how long to back off.

- ``read_event``: one line of a watch stream (``{"type": ..., "object": ...}``) as an ``Event`` (ADDED, MODIFIED,
  DELETED), a ``Bookmark`` (only its ``resourceVersion`` counts), ``Expired`` (an ERROR event with code 410: the
  version watched from is older than the server keeps, a relist is needed) or ``Failed`` (any other ERROR event, or a
  line that is not an event).
- ``list_diff``: a relist compared to the objects known before it, by namespace/name and ``resourceVersion``: what
  was added, modified and deleted meanwhile (what the watch would have delivered, had it not expired). What is
  known of an object is its ``identity`` (apiVersion, kind, name, namespace, resourceVersion), not the whole of it:
  a watcher of every pod of a large cluster keeps only that.
- ``Backoff``: exponential, capped, with jitter (each delay drawn in ``[d/2, d]``, so that many watchers that failed
  together do not retry together), reset after a watch that worked.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "GONE",
    "Backoff",
    "Bookmark",
    "Event",
    "Expired",
    "Failed",
    "ListDiff",
    "ObjectKey",
    "StreamItem",
    "identity",
    "list_diff",
    "object_key",
    "read_event",
    "resource_version",
]

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for a cluster-scoped object
KubeDict = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    object: KubeDict


@dataclass(frozen=True, slots=True)
class Bookmark:
    resource_version: str


@dataclass(frozen=True, slots=True)
class Expired:
    message: str


@dataclass(frozen=True, slots=True)
class Failed:
    message: str


StreamItem = Event | Bookmark | Expired | Failed
_EVENT_TYPES: frozenset[str] = frozenset({"ADDED", "MODIFIED", "DELETED"})
GONE = 410


def _metadata(obj: KubeDict) -> KubeDict:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def object_key(obj: KubeDict) -> ObjectKey:
    metadata = _metadata(obj)
    namespace, name = metadata.get("namespace"), metadata.get("name")
    return (namespace if isinstance(namespace, str) else "", name if isinstance(name, str) else "")


def resource_version(obj: KubeDict) -> str:
    version = _metadata(obj).get("resourceVersion")
    return version if isinstance(version, str) else ""


def identity(obj: KubeDict) -> KubeDict:
    """What a watcher keeps of an object: enough to name it (and to deliver its deletion) and tell it changed."""
    namespace, name = object_key(obj)
    metadata = {"name": name, "resourceVersion": resource_version(obj)}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": metadata}


def read_event(line: bytes | str) -> StreamItem:
    """One line of a watch response."""
    try:
        raw = json.loads(line)
    except ValueError as exc:
        return Failed(f"watch stream line is not JSON: {exc}")
    if not isinstance(raw, Mapping) or not isinstance(raw.get("object"), Mapping):
        return Failed(f"watch stream line is not an event: {str(line)[:200]}")
    kind, obj = raw.get("type"), raw["object"]
    if kind in _EVENT_TYPES:
        return Event(type=kind, object=obj)
    if kind == "BOOKMARK":
        return Bookmark(resource_version(obj))
    if kind == "ERROR":
        message = f"{obj.get('reason', 'error')} ({obj.get('code')}): {obj.get('message', '')}"
        return Expired(message) if obj.get("code") == GONE else Failed(message)
    return Failed(f"unknown watch event type {kind!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ListDiff:
    """A relist against what was known: each as the watch events that would have said it (deleted objects by their
    last known ``identity``)."""

    added: tuple[KubeDict, ...] = ()
    modified: tuple[KubeDict, ...] = ()
    deleted: tuple[KubeDict, ...] = ()

    @property
    def events(self) -> tuple[Event, ...]:
        return (
            *(Event("DELETED", obj) for obj in self.deleted),
            *(Event("ADDED", obj) for obj in self.added),
            *(Event("MODIFIED", obj) for obj in self.modified),
        )

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.deleted)

    def describe(self) -> dict[str, int]:
        return {"added": len(self.added), "modified": len(self.modified), "deleted": len(self.deleted)}


def list_diff(known: Mapping[ObjectKey, KubeDict], listed: Iterable[KubeDict]) -> ListDiff:
    """What ``listed`` (a whole listing) changed against ``known`` (key -> last known object, or its identity)."""
    added: list[KubeDict] = []
    modified: list[KubeDict] = []
    seen: set[ObjectKey] = set()
    for obj in listed:
        key = object_key(obj)
        seen.add(key)
        before = known.get(key)
        if before is None:
            added.append(obj)
        elif resource_version(before) != resource_version(obj):
            modified.append(obj)
    deleted = tuple(known[key] for key in sorted(known.keys() - seen))
    return ListDiff(added=tuple(added), modified=tuple(modified), deleted=deleted)


class Backoff:
    """Delays between failed attempts: ``initial``, doubling up to ``cap``, each drawn in ``[d/2, d]``."""

    def __init__(
        self, *, initial: float = 0.5, cap: float = 30.0, uniform: Callable[[float, float], float] = random.uniform
    ) -> None:
        if initial <= 0 or cap < initial:
            raise ValueError(f"backoff needs 0 < initial <= cap, got initial={initial} cap={cap}")
        self._initial = initial
        self._cap = cap
        self._uniform = uniform
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures

    def next_delay(self) -> float:
        """The delay before the next attempt (one more failure counted)."""
        ceiling = min(self._cap, self._initial * 2 ** min(self._failures, 62))
        self._failures += 1
        return self._uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._failures = 0
