"""Two resources of one kind for one host that cannot both be in force as written (VirtualServices whose routes
would shadow each other, DestinationRules whose merge would drop part of one): the pair, where in each, and why.
The store rejects one of them with ``message`` (``pilot.config.store``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pilot.config.errors import FieldPath, format_path
from pilot.config.types import DestinationRule, VirtualService

__all__ = ["HostConflict"]

_R = TypeVar("_R", VirtualService, DestinationRule)


@dataclass(frozen=True, kw_only=True)  # no slots: a slotted frozen dataclass cannot be Generic (CPython 3.11)
class HostConflict(Generic[_R]):
    """``later``'s ``path`` conflicts with ``earlier`` (``earlier_path``) for ``host``."""

    earlier: _R
    later: _R
    host: str
    path: FieldPath  # in ``later``
    earlier_path: FieldPath  # in ``earlier``
    reason: str

    def message(self, named: _R) -> str:
        """The error for ``named`` (``earlier`` or ``later``), naming the other resource."""
        other, where = (self.earlier, self.earlier_path) if named is self.later else (self.later, self.path)
        key = other.meta.key
        return (
            f"conflicts with {key.kind} {key.namespace}/{key.name} ({other.meta.origin}: {format_path(where)}) "
            f"for host {self.host}: {self.reason}"
        )

    def path_in(self, named: _R) -> FieldPath:
        """Where the conflict is in ``named``."""
        return self.path if named is self.later else self.earlier_path
