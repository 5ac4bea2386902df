"""The config-source seam (Istio's ``ConfigStoreController``): what every source of config is, and where it puts
what it reads.

A source (``ConfigSource``: a directory of YAML files, an in-memory source, later the Kubernetes API server) reads
units (a file; an object), parses them (``parse.parse_config_text`` for YAML, ``parse.parse_object`` for an
already-decoded object; each resource carries its ``Origin``) and hands the parses to a ``ConfigSink``. The sink
applies them to the one ``ConfigStore`` that aggregates every source, logs each new problem, counts rejections and
tells its consumer (Pilot's xDS server, Mixer's engine) that what is in force changed. ``SourceGroup`` runs several
sources as one (loads them in order, watches them together).

Adding a source: give it a name the store lists (``ConfigStore(sources=...)``: earlier names win duplicates), call
``sink.publish(name, parsed, removed)`` with the units it read or lost, and implement ``load_initial``, ``watch``
and ``stop``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from pilot.config.errors import ConfigError
from pilot.config.parse import ParsedFile
from pilot.config.store import ConfigStore, StoreChange

__all__ = ["ConfigSink", "ConfigSource", "SourceGroup"]

log = structlog.get_logger(__name__)


class ConfigSource(Protocol):
    """A source of config: reads everything once, then follows changes until stopped."""

    @property
    def name(self) -> str: ...  # as listed in the store's ``sources``

    async def load_initial(self) -> None:
        """Read everything once and publish it (before serving)."""

    async def watch(self) -> None:
        """Publish changes until cancelled or ``stop()`` is called."""

    def stop(self) -> None:
        """Make ``watch()`` return."""


@dataclass(frozen=True, slots=True)
class _RejectionId:
    """A rejection as counted for ``on_rejected``: the same resource rejected for the same reasons counts once."""

    source: str
    unit: str
    key: str  # "kind/namespace/name", or "" for a document without a usable key or a file error
    line: int  # only to tell keyless documents apart (0 for the others: their lines shift with edits above them)
    reasons: frozenset[tuple[str, str]]  # (field path, message) of every error


class ConfigSink:
    """Where every source of one store puts what it read: calls ``on_change`` (on the loop) whenever what is in
    force changed, and ``on_rejected`` with the kind of each resource newly rejected (for metrics)."""

    def __init__(
        self,
        store: ConfigStore,
        on_change: Callable[[StoreChange], None],
        *,
        on_rejected: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self._on_change = on_change
        self._on_rejected = on_rejected
        self._counted: set[_RejectionId] = set()  # rejections in force that on_rejected was already called for

    def publish(self, source: str, parsed: Sequence[ParsedFile], removed: Iterable[str] = ()) -> StoreChange | None:
        """Apply new parses of some units of ``source`` and the units it no longer has; log and notify."""
        removed = tuple(removed)
        logged_before = set(self._current_errors())
        change = self.store.apply(parsed, removed, source=source)
        self._log_outcome(source, parsed, removed, logged_before)
        if change is not None:
            try:
                self._on_change(change)
            except Exception:  # a failing consumer must not stop config from being watched
                log.exception("config_on_change_failed", version=change.version)
        return change

    def _current_errors(self) -> dict[ConfigError, tuple[str, str]]:
        """Every problem in force, with the (source, unit) it is in."""
        errors = {error: (r.source, r.unit) for r in self.store.rejections for error in r.errors}
        errors.update({error: unit for unit, error in self.store.unit_errors.items()})
        return errors

    def _log_outcome(
        self, source: str, parsed: Sequence[ParsedFile], removed: Iterable[str], logged_before: set[ConfigError]
    ) -> None:
        """Log every problem of the units just read, and new problems elsewhere (e.g. a VirtualService whose
        subset was just removed from a DestinationRule in another file or source)."""
        read = {p.file for p in parsed}
        current = self._current_errors()
        for error in sorted(current, key=lambda e: (e.origin, e.path)):
            error_source, unit = current[error]
            if (error_source == source and unit in read) or error not in logged_before:
                log.warning(
                    "config_rejected",
                    origin=str(error.origin),
                    key=str(error.key) if error.key else None,
                    path=error.path,
                    message=error.message,
                )
        self._count_rejections()
        for result in parsed:
            for warning in result.warnings:
                log.warning("config_skipped", source=source, unit=result.file, warning=warning)
        for unit in removed:
            log.info("config_unit_removed", source=source, unit=unit)

    def _count_rejections(self) -> None:
        """Call ``on_rejected`` once per newly rejected resource: not again when its unit is re-read and it is
        rejected for the same reasons, again if it was fixed (or its reasons changed) and then rejected anew."""
        current = {
            _RejectionId(
                source=rejection.source,
                unit=rejection.unit,
                key=str(rejection.key) if rejection.key else "",
                line=0 if rejection.key else rejection.origin.line,
                reasons=frozenset((e.path, e.message) for e in rejection.errors),
            )
            for rejection in self.store.rejections
        }
        for (source, unit), error in self.store.unit_errors.items():
            reasons = frozenset({(error.path, error.message)})
            current.add(_RejectionId(source=source, unit=unit, key="", line=0, reasons=reasons))
        if self._on_rejected is not None:
            new_ones = current - self._counted
            for new in sorted(new_ones, key=lambda r: (r.source, r.unit, r.key, r.line, sorted(r.reasons))):
                self._on_rejected(new.key.split("/", 1)[0] if new.key else "file")
        self._counted = current


class SourceGroup:
    """Several sources run as one (``meshplane.serving.watch_until_stopped`` takes it like a single source)."""

    def __init__(self, sources: Sequence[ConfigSource]) -> None:
        if not sources:
            raise ValueError("a source group needs at least one source")
        self.sources = tuple(sources)

    async def load_initial(self) -> None:
        """Load every source, in order."""
        for source in self.sources:
            await source.load_initial()

    async def watch(self) -> None:
        """Watch every source until all return; when one fails, the others are stopped and its error raised."""
        tasks = [asyncio.create_task(s.watch(), name=f"config-watch-{s.name}") for s in self.sources]
        try:
            for done in asyncio.as_completed(tasks):
                await done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        for source in self.sources:
            source.stop()
