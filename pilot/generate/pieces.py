"""Pieces of a generated part, each built once per distinct inputs across snapshots.

A part of a shared scope (``registry.ScopeParts``: a port's route table) is rebuilt whole when any of its inputs
changes; its pieces (the table's virtual hosts) need not be. A builder that takes a ``PieceMemo`` asks it for each
piece by the piece's inputs (hashable, and all that the piece is built from): the memo returns the piece built for
equal inputs by this snapshot or the previous one (the resource cache carries the pieces of the parts it keeps),
else builds it. A VirtualService change then rebuilds the one virtual host it changes, and the table is
reassembled from the others as they were. Pieces are shared: whoever uses one must not modify it (protobuf copies a
message put into a repeated field, so a table built from them does not)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

__all__ = ["PieceMemo"]

K = TypeVar("K", bound=Hashable)
P = TypeVar("P")


class PieceMemo:
    """The pieces one part is built from: looked up in ``current`` (this snapshot's), then ``previous``, else built
    and added to ``current``; ``used`` lists the keys asked for, in order (the part's pieces)."""

    __slots__ = ("_current", "_previous", "used")

    def __init__(self, current: dict[Hashable, Any], previous: Mapping[Hashable, Any]) -> None:
        self._current = current
        self._previous = previous
        self.used: list[Hashable] = []

    def get(self, key: K, build: Callable[[K], P]) -> P:
        self.used.append(key)
        found = self._current.get(key)
        if found is None:
            found = self._previous.get(key)
            if found is None:
                found = build(key)
            self._current[key] = found
        return found
