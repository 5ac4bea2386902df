"""A per-snapshot memo: values derived from one ``MeshSnapshot`` alone (pure functions of it), computed once by
whichever generator asks first and read by the others, from any worker thread. Not part of the snapshot's value:
equal snapshots compare equal whatever they memoized. Every snapshot gets a fresh one (they are built whole, never
copied), so nothing derived from one snapshot is read through another."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["SnapshotMemo"]


class SnapshotMemo:
    __slots__ = ("_lock", "_values")

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value memoized under ``key``, computed by ``compute`` (once, under a lock) the first time."""
        value = self._values.get(key)
        if value is None:
            with self._lock:
                value = self._values.get(key)
                if value is None:
                    value = self._values[key] = compute()
        return value
