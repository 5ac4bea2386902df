"""A per-snapshot memo: values derived from one ``MeshSnapshot`` alone (pure functions of it), computed by
whichever generator asks first and read by the others, from any worker thread. Not part of the snapshot's value:
equal snapshots compare equal whatever they memoized, and a snapshot made from another (``dataclasses.replace``)
starts with an empty one (the memo fields are ``init=False``), so nothing derived from one snapshot is read
through another.

A value is computed outside any lock and the first one stored wins (``dict.setdefault``): two threads asking at
once may both compute it (the functions are pure, so both get equal values), and a computation may ask the same
memo for something else without deadlocking."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["SnapshotMemo"]

_MISSING = object()


class SnapshotMemo:
    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value memoized under ``key``, computed by ``compute`` the first time."""
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            value = self._values.setdefault(key, compute())
        return value
