"""Config from a directory of YAML files, watched for changes.

Every ``*.yaml`` / ``*.yml`` file under the directory is read (recursively), except hidden files and directories
(``.git/``, Kubernetes ConfigMap mounts' ``..data/``, ``.foo.yaml.swp``) and editor leftovers (``#foo.yaml#``,
``.#foo.yaml``, ``foo.yaml~``).

File events only wake the watcher up. What to re-read is decided by comparing each file's (mtime, size, inode)
with what was last read, plus the files the events named; so a ConfigMap mount that swaps a ``..data`` symlink, a
directory renamed away or an editor's write-to-temp-then-rename are all seen. watchfiles groups events until
``step_ms`` pass without any (at most ``debounce_ms``), so a file written in several quick steps is read once
complete; a file caught half-written either fails YAML parsing (the file keeps what it had in force) or fails
validation (each key keeps its last good version) until the next write completes it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog
from watchfiles import awatch

from pilot.config.errors import ConfigError, ConfigSourceError
from pilot.config.parse import ParsedFile, parse_config_text
from pilot.config.store import ConfigStore, StoreChange

__all__ = [
    "DirectorySource",
    "is_config_file",
]

log = structlog.get_logger(__name__)

_SUFFIXES = (".yaml", ".yml")


def is_config_file(relative: Path) -> bool:
    """True for a YAML file that is neither hidden (itself or a parent directory) nor an editor's leftover."""
    if any(part.startswith(".") for part in relative.parts):
        return False
    name = relative.name
    return name.endswith(_SUFFIXES) and not name.startswith("#")


@dataclass(frozen=True, slots=True)
class _Signature:
    mtime_ns: int
    size: int
    inode: int


@dataclass(frozen=True, slots=True)
class _Sync:
    """The outcome of one pass over the directory, computed off the event loop."""

    signatures: dict[str, _Signature]
    parsed: list[ParsedFile]
    removed: set[str]


class DirectorySource:
    """Feeds a ``ConfigStore`` from ``config_dir``; calls ``on_change`` (on the loop) whenever the store changed."""

    def __init__(
        self,
        config_dir: Path,
        store: ConfigStore,
        on_change: Callable[[StoreChange], None],
        *,
        on_rejected: Callable[[str], None] | None = None,
        step_ms: int = 100,
        debounce_ms: int = 1600,
    ) -> None:
        self._config_dir = Path(config_dir)
        self._store = store
        self._on_change = on_change
        self._on_rejected = on_rejected  # called with the kind of each resource newly rejected (for metrics)
        self._step_ms = step_ms
        self._debounce_ms = debounce_ms
        self._known: dict[str, _Signature] = {}  # file (as shown in messages) -> signature when last read
        self._stop = asyncio.Event()

    async def load_initial(self) -> None:
        """Read every config file once (calls ``on_change`` if that changed the store)."""
        self._check_dir()
        await self._sync(reported=frozenset())
        log.info(
            "config_loaded",
            config_dir=str(self._config_dir),
            files=len(self._known),
            resources=len(self._store.accepted),
            rejected=len(self._store.rejections),
            version=self._store.version,
        )

    async def watch(self) -> None:
        """Re-read changed files until cancelled or ``stop()`` is called."""
        self._check_dir()
        async for changes in awatch(
            self._config_dir,
            stop_event=self._stop,
            step=self._step_ms,
            debounce=self._debounce_ms,
            recursive=True,
        ):
            reported = frozenset(os.path.abspath(path) for _, path in changes)
            try:
                await self._sync(reported=reported)
            except OSError as exc:  # the directory itself went away or became unreadable: keep what is in force
                log.error("config_dir_unreadable", config_dir=str(self._config_dir), error=str(exc))

    def stop(self) -> None:
        """Make ``watch()`` return after the batch it is processing, if any."""
        self._stop.set()

    def _check_dir(self) -> None:
        if not self._config_dir.is_dir():
            raise ConfigSourceError(f"config directory {str(self._config_dir)!r} does not exist or is not a directory")

    async def _sync(self, *, reported: frozenset[str]) -> None:
        sync = await asyncio.to_thread(_scan_and_parse, self._config_dir, dict(self._known), reported)
        logged_before = self._current_errors()
        change = self._store.apply(sync.parsed, sync.removed)
        for name in sync.removed:
            self._known.pop(name, None)
        for parsed in sync.parsed:
            self._known[parsed.file] = sync.signatures[parsed.file]
        self._log_outcome(sync.parsed, sync.removed, logged_before)
        if change is not None:
            try:
                self._on_change(change)
            except Exception:  # a failing consumer must not stop config from being watched
                log.exception("config_on_change_failed", version=change.version)

    def _current_errors(self) -> set[ConfigError]:
        errors = {error for rejection in self._store.rejections for error in rejection.errors}
        return errors | set(self._store.file_errors)

    def _log_outcome(self, parsed: list[ParsedFile], removed: Iterable[str], logged_before: set[ConfigError]) -> None:
        """Log every problem of the files just read, and new problems elsewhere (e.g. a VirtualService whose
        subset was just removed from a DestinationRule in another file)."""
        read = {p.file for p in parsed}
        rejected: set[tuple[str, str]] = set()  # (file, resource) of what was logged: one count per resource
        for error in sorted(self._current_errors(), key=lambda e: (e.file, e.line, e.path)):
            if error.file in read or error not in logged_before:
                rejected.add((error.file, str(error.key) if error.key else ""))
                log.warning(
                    "config_rejected",
                    file=error.file,
                    line=error.line,
                    key=str(error.key) if error.key else None,
                    path=error.path,
                    message=error.message,
                )
        if self._on_rejected is not None:
            for _file, key in sorted(rejected):
                self._on_rejected(key.split("/", 1)[0] if key else "file")
        for result in parsed:
            for warning in result.warnings:
                log.info("config_skipped", warning=warning)
        for name in removed:
            log.info("config_file_removed", file=name)


def _scan_and_parse(config_dir: Path, known: dict[str, _Signature], reported: frozenset[str]) -> _Sync:
    """List the config files, then read and parse the new, changed and reported ones (runs in a worker thread).

    Raises FileNotFoundError when the directory itself is gone: that must not read as "every file was deleted".
    """
    if not config_dir.is_dir():
        raise FileNotFoundError(f"config directory {str(config_dir)!r} is gone")
    signatures = _scan(config_dir)
    parsed: list[ParsedFile] = []
    removed = set(known) - set(signatures)
    for name, signature in sorted(signatures.items()):
        if known.get(name) == signature and os.path.abspath(name) not in reported:
            continue
        result = _read_and_parse(name)
        if result is None:
            removed.add(name)  # deleted between listing and reading
        else:
            parsed.append(result)
    return _Sync(signatures=signatures, parsed=parsed, removed=removed & set(known))


def _scan(config_dir: Path) -> dict[str, _Signature]:
    signatures: dict[str, _Signature] = {}
    for directory, subdirectories, files in os.walk(config_dir):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in files:
            path = os.path.join(directory, name)
            if not is_config_file(Path(os.path.relpath(path, config_dir))):
                continue
            try:
                stat = os.stat(path)  # follows symlinks: a swapped ConfigMap ..data link changes the inode
            except OSError:
                continue
            signatures[path] = _Signature(mtime_ns=stat.st_mtime_ns, size=stat.st_size, inode=stat.st_ino)
    return signatures


def _read_and_parse(name: str) -> ParsedFile | None:
    """The parse of one file; a file error if it cannot be read as UTF-8; None if it no longer exists."""
    try:
        raw = Path(name).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return ParsedFile(file=name, file_error=ConfigError(file=name, line=1, key=None, path="", message=str(exc)))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text: {exc}"
        return ParsedFile(file=name, file_error=ConfigError(file=name, line=1, key=None, path="", message=message))
    return parse_config_text(text, name)
