"""AccessList ``entriesFile``: entries read from a file and re-read when it changes, as Istio's list adapter
refreshed a remote list (``providerUrl``) on its ``refreshInterval``, here within a second of an edit.

A file holds one entry per line; surrounding whitespace is stripped, blank lines and lines starting with ``#``
are skipped. Entries that are invalid for the list's ``entryType`` (not an address, not an RE2 regex) are left
out and logged.

``EntriesFiles`` watches the files the current AccessLists use (``use``/``retain``): a task polls each file's
``stat`` (mtime_ns, size, inode) every ``poll_interval`` seconds, reads and compiles a changed file in a worker
thread (``asyncio.to_thread``), then swaps the compiled entries in one assignment, so a check sees either the old
entries or the new ones. A file is read synchronously the first time it is used, so a new AccessList decides from
its first check: that read runs where ``PolicyEngine.update`` runs, which in ``mixer.app`` is the event loop (beside
the CEL compilation of the same config change; the snapshot itself is built in a worker thread), once per newly
used file, a local file of one entry per line; every re-read is off the loop.

Fail-safe on an unreadable file: once a file was read, a later failure (removed, unreadable, not UTF-8) keeps the
last good entries and logs an error. A file that was never read has no entries to decide with: its AccessLists
answer every check as an evaluation error, which denies the request (an allow list lets nothing in, a deny list
keeps everything out) with a reason naming the file, until the file can be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from mixer.access_list import ListEntries, compile_entries
from pilot.config.source_files import FileSignature
from pilot.config.types import AccessListEntryType

__all__ = ["DEFAULT_POLL_INTERVAL", "EntriesFiles", "FileEntries", "read_entries"]

log = structlog.get_logger(__name__)

DEFAULT_POLL_INTERVAL = 0.2


def read_entries(text: str) -> tuple[str, ...]:
    """The entries of a file's text: one per line, stripped, without blank and ``#`` comment lines."""
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


class FileEntries:
    """The entries of one file compiled for one entry type (an ``EntriesSource`` for ``AccessListCheck``)."""

    def __init__(self, path: str, entry_type: AccessListEntryType) -> None:
        self.path = path
        self.entry_type = entry_type
        self._entries: ListEntries | None = None
        self._problem = f"entries file {path} was not read yet"

    @property
    def entries(self) -> ListEntries | None:
        return self._entries

    @property
    def problem(self) -> str:
        return self._problem

    def install(self, entries: ListEntries) -> None:
        """Swap in newly compiled entries (one assignment: checks see the old or the new entries)."""
        self._entries = entries

    def mark_unreadable(self, problem: str) -> None:
        """Say why there are no entries (only matters while ``entries`` is None)."""
        self._problem = problem


@dataclass(slots=True)
class _WatchedFile:
    """Mutable watch state of one path: the last good read and the compiled entries per type."""

    path: str
    signature: FileSignature | None = None
    lines: tuple[str, ...] | None = None
    error: str = ""
    by_type: dict[AccessListEntryType, FileEntries] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Read:
    """What a worker thread found for one path: new lines and their compilations, or an error."""

    path: str
    signature: FileSignature | None = None
    lines: tuple[str, ...] | None = None
    compiled: tuple[tuple[AccessListEntryType, ListEntries], ...] = ()
    error: str = ""


def _read_file(path: str, known: FileSignature | None, types: tuple[AccessListEntryType, ...]) -> _Read | None:
    """Read ``path`` if its signature changed since ``known`` (None: unchanged)."""
    try:
        if known is not None and FileSignature.of(os.stat(path)) == known:
            return None
        with open(path, "rb") as file:
            signature = FileSignature.of(os.fstat(file.fileno()))
            text = file.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _Read(path=path, error=f"entries file {path} unreadable: {exc}")
    lines = read_entries(text)
    compiled = tuple((entry_type, compile_entries(lines, entry_type)) for entry_type in types)
    return _Read(path=path, signature=signature, lines=lines, compiled=compiled)


class EntriesFiles:
    """The entries files in use, polled for changes by ``start()`` until ``stop()``."""

    def __init__(self, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        self.poll_interval = poll_interval
        self._files: dict[str, _WatchedFile] = {}
        # ``use``/``retain`` run in the thread of ``PolicyEngine.update`` (the loop in ``mixer.app``; a caller may
        # update from a worker thread), ``poll_once`` applies its reads on the loop. Uncontended, it costs nothing.
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def use(self, path: str, entry_type: AccessListEntryType) -> FileEntries:
        """The entries of ``path`` for ``entry_type``, watched from now on; read now if the file is new."""
        with self._lock:
            watched = self._files.get(path)
            if watched is None:
                watched = self._files[path] = _WatchedFile(path=path)
            entries = watched.by_type.get(entry_type)
            if entries is not None:
                return entries
            entries = watched.by_type[entry_type] = FileEntries(path, entry_type)
            if watched.lines is None:
                read = _read_file(path, None, (entry_type,))
                if read is not None:
                    self._apply(watched, read)
            else:  # already read for another entry type: compile the last good lines (a later error keeps them)
                entries.install(self._compiled(watched.lines, entry_type, path))
            return entries

    def retain(self, used: Iterable[tuple[str, AccessListEntryType]]) -> None:
        """Stop watching what is not in ``used`` (the files of the AccessLists of the current snapshot)."""
        keep = set(used)
        with self._lock:
            for path in list(self._files):
                watched = self._files[path]
                for entry_type in list(watched.by_type):
                    if (path, entry_type) not in keep:
                        del watched.by_type[entry_type]
                if not watched.by_type:
                    del self._files[path]

    @property
    def paths(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._files))

    async def start(self) -> None:
        """Start polling (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._poll_forever(), name="mixer-entries-files")

    async def stop(self) -> None:
        """Stop polling and wait for the task to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def poll_once(self) -> None:
        """Re-read every watched file that changed (one polling round)."""
        with self._lock:
            work = [(w.path, w.signature, tuple(w.by_type)) for w in self._files.values()]
        if not work:
            return
        reads = await asyncio.to_thread(lambda: [_read_file(path, known, types) for path, known, types in work])
        with self._lock:
            for (path, _, _), read in zip(work, reads, strict=True):
                watched = self._files.get(path)
                if watched is None:
                    continue
                if read is not None:
                    self._apply(watched, read)
                elif watched.error:  # readable again, content unchanged: the last good entries are current
                    log.info("entries file readable again", path=path)
                    watched.error = ""

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep watching: one failed round must not stop reloads for good
                log.exception("entries files poll failed")

    def _apply(self, watched: _WatchedFile, read: _Read) -> None:
        """Install a read (lock held)."""
        if read.error or read.lines is None:
            if read.error != watched.error:
                kept = "keeping the last good entries" if watched.lines is not None else "denying its lists' checks"
                log.error("entries file unreadable", path=watched.path, error=read.error, action=kept)
            watched.error = read.error
            if watched.lines is None:
                for entries in watched.by_type.values():
                    entries.mark_unreadable(read.error)
            return
        first = watched.lines is None
        watched.signature, watched.lines, watched.error = read.signature, read.lines, ""
        compiled = dict(read.compiled)
        for entry_type, entries in watched.by_type.items():
            entries.install(compiled.get(entry_type) or self._compiled(read.lines, entry_type, watched.path))
        event = "entries file loaded" if first else "entries file reloaded"
        log.info(event, path=watched.path, entries=len(read.lines))
        for entry_type, list_entries in compiled.items():
            _log_skipped(watched.path, entry_type, list_entries)

    @staticmethod
    def _compiled(lines: tuple[str, ...], entry_type: AccessListEntryType, path: str) -> ListEntries:
        entries = compile_entries(lines, entry_type)
        _log_skipped(path, entry_type, entries)
        return entries


def _log_skipped(path: str, entry_type: AccessListEntryType, entries: ListEntries) -> None:
    for problem in entries.skipped:
        log.warning("entries file: invalid entry skipped", path=path, entry_type=entry_type, problem=problem)
