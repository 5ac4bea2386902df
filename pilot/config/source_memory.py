"""A config source holding already-decoded objects in memory.

It has the shape a Kubernetes source will have: each object is one unit, named ``kind/namespace/name``, replaced
whole by ``put`` and dropped by ``delete``; its origin is the object reference with the ``resourceVersion`` when
the object has one (``VirtualService/default/reviews@4711``), so that every message names it. Objects are parsed
with ``parse_object`` (no lines: problems are at the origin, with their field paths) and published at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from pilot.config.origin import object_reference
from pilot.config.parse import DEFAULT_NAMESPACE, ParsedFile, Rejected, Skipped, parse_object
from pilot.config.source import ConfigSink
from pilot.config.types import Resource

__all__ = ["MEMORY", "MemorySource", "object_unit", "parse_object_unit"]

MEMORY = "memory"


class MemorySource:
    """Objects put in memory (tests; anything that hands meshplane decoded objects), as source ``name``."""

    def __init__(self, sink: ConfigSink, *, name: str = MEMORY) -> None:
        self._sink = sink
        self._name = name
        self._units: set[str] = set()
        self._stop = asyncio.Event()

    @property
    def name(self) -> str:
        return self._name

    def put(self, obj: Mapping[str, object]) -> Resource | Rejected | Skipped:
        """Add or replace the object with this kind/namespace/name, and publish it; returns what it parsed to."""
        parsed, outcome = parse_object_unit(obj)
        self._units.add(parsed.file)
        self._sink.publish(self._name, [parsed])
        return outcome

    def delete(self, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Drop the object with this kind/namespace/name (nothing happens if there is none)."""
        unit = f"{kind}/{namespace}/{name}"
        if unit in self._units:
            self._units.discard(unit)
            self._sink.publish(self._name, [], [unit])

    async def load_initial(self) -> None:
        """Nothing to read: objects are published when put."""

    async def watch(self) -> None:
        await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


def object_unit(obj: Mapping[str, object]) -> str:
    """The unit an object is in a source of objects: ``kind/namespace/name``."""
    kind, namespace, name, _ = _identity(obj)
    return f"{kind}/{namespace}/{name}"


def parse_object_unit(obj: Mapping[str, object]) -> tuple[ParsedFile, Resource | Rejected | Skipped]:
    """One object parsed as its own unit (``object_unit``), its origin the object reference with its
    ``resourceVersion``; and what it parsed to."""
    kind, namespace, name, version = _identity(obj)
    unit = f"{kind}/{namespace}/{name}"
    outcome = parse_object(obj, object_reference(kind, namespace, name, version))
    if isinstance(outcome, Rejected):
        return ParsedFile(file=unit, rejected=(outcome,)), outcome
    if isinstance(outcome, Skipped):
        return ParsedFile(file=unit, warnings=(str(outcome),)), outcome
    return ParsedFile(file=unit, resources=(outcome,)), outcome


def _identity(obj: Mapping[str, object]) -> tuple[str, str, str, str]:
    """kind, namespace, name and resourceVersion as far as they are strings ("?" for a missing kind or name: the
    object is then rejected, and its reference still says what it was)."""
    metadata = obj.get("metadata")
    fields = metadata if isinstance(metadata, Mapping) else {}

    def text(value: object, default: str) -> str:
        return value if isinstance(value, str) and value else default

    return (
        text(obj.get("kind"), "?"),
        text(fields.get("namespace"), DEFAULT_NAMESPACE),
        text(fields.get("name"), "?"),
        text(fields.get("resourceVersion"), ""),
    )
