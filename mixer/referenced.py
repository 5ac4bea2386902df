"""Referenced attributes: the values one request has for exactly the attributes a policy reads, as a cache key
(Istio Mixer's referenced-attributes check cache, ``mixer/pkg/checkcache``, is the model).

A CEL expression can read an attribute only through a name that starts at one of the four roots, so the paths
``pilot.config.expressions.attribute_paths`` finds in its source (``request.headers["end-user"]`` reads
``("request", "headers", "end-user")``; ``request.path.startsWith("/a")`` reads ``("request", "path")``;
``request.headers[k]`` reads the whole ``("request", "headers")``) cover every value the expression can see, and
CEL has no clock or randomness: two requests with equal values at those paths get the same result. ``key`` is those
values as a hashable tuple:

- a path's value is the plain value (string, number, bool) found there; a map on the way or at the end (a whole
  ``request.headers``, a workload) is frozen into a sorted tuple of its items;
- an entry the request does not have (a header not sent, a label the workload lacks) is ``ABSENT``, distinct from
  every value, ``""`` included; a path that goes on below a plain value keys that value.

A path step written with an escape (``request.headers["a\\"b"]``) is cut off there: the scan does not unescape
CEL strings, so the map above it is keyed whole instead, which is never wrong, only less shared.

``DecisionCache`` is the bounded map from such keys to what a policy decided or evaluated; it is emptied when full
and never outlives the compiled policy that owns it, so a new snapshot starts with empty caches. Memory stays
bounded against a caller who sends a new value each time (or a header of tens of kilobytes, which Envoy allows):
at most ``max_entries`` keys per policy, and a key longer than ``max_key_chars`` characters is not cached (that
request is decided without the cache).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Final, Generic, TypeVar

__all__ = [
    "ABSENT",
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_KEY_CHARS",
    "DecisionCache",
    "Miss",
    "ReferencedAttributes",
    "covering_paths",
    "key_chars",
]

DEFAULT_MAX_ENTRIES = 4096
DEFAULT_MAX_KEY_CHARS = 1024
V = TypeVar("V")


class _Absent:
    """The value of an attribute path the request does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final[_Absent] = _Absent()


class Miss(enum.Enum):
    """What ``DecisionCache.get`` answers for a key it does not hold (None can be a cached value)."""

    MISS = "miss"


def _frozen(value: object) -> Hashable:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    return value if isinstance(value, Hashable) else repr(value)


def covering_paths(paths: Iterable[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    """``paths`` without repeats and without those below another one (``request.headers`` covers
    ``request.headers.x``), each cut at its first escaped step; sorted, so equal sets give equal keys."""
    cut = {_unescaped(path) for path in paths}
    return tuple(sorted(path for path in cut if not any(_below(path, other) for other in cut)))


def _unescaped(path: tuple[str, ...]) -> tuple[str, ...]:
    for index, part in enumerate(path):
        if "\\" in part:
            return path[: max(1, index)]
    return path


def _below(path: tuple[str, ...], other: tuple[str, ...]) -> bool:
    return len(other) < len(path) and path[: len(other)] == other


class ReferencedAttributes:
    """The attribute paths a policy reads, and ``key``: a request's values at them."""

    __slots__ = ("paths",)

    def __init__(self, paths: Iterable[tuple[str, ...]]) -> None:
        self.paths = covering_paths(paths)

    def key(self, attributes: Mapping[str, Any]) -> tuple[Hashable, ...]:
        """The values of ``attributes`` at every path (``ABSENT`` where there is none), hashable."""
        return tuple(_value_at(attributes, path) for path in self.paths)


def _value_at(attributes: Mapping[str, Any], path: tuple[str, ...]) -> Hashable:
    value: object = attributes
    for part in path:
        if not isinstance(value, Mapping):
            break  # below a plain value (or ABSENT): that decides
        value = value.get(part, ABSENT)
    return _frozen(value)


def key_chars(key: Hashable) -> int:
    """About how many characters ``key`` holds: its strings' lengths, 1 for any other value."""
    if isinstance(key, str):
        return len(key)
    if isinstance(key, tuple):
        return sum(key_chars(item) for item in key) + 1
    return 1


class DecisionCache(Generic[V]):
    """Key -> value, at most ``max_entries`` (emptied when a new key would exceed it) of keys no longer than
    ``max_key_chars``; counts hits and misses."""

    __slots__ = ("_entries", "hits", "max_entries", "max_key_chars", "misses")

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_key_chars: int = DEFAULT_MAX_KEY_CHARS) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self.max_key_chars = max_key_chars
        self._entries: dict[Hashable, V] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> V | Miss:
        """The value cached for ``key``; ``Miss.MISS`` when there is none."""
        found = self._entries.get(key, Miss.MISS)
        if found is Miss.MISS:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: Hashable, value: V) -> None:
        """Cache ``value`` for ``key``, unless the key is too long to keep."""
        if key_chars(key) > self.max_key_chars:
            return
        if len(self._entries) >= self.max_entries and key not in self._entries:
            self._entries.clear()
        self._entries[key] = value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
