"""Config from a directory of YAML files, watched for changes.

Every ``*.yaml`` / ``*.yml`` file under the directory is read (recursively), except hidden files and directories
(``.git/``, Kubernetes ConfigMap mounts' ``..data/``, ``.foo.yaml.swp``) and editor leftovers (``#foo.yaml#``,
``.#foo.yaml``, ``foo.yaml~``).

File events only wake the watcher up. What to re-read is decided by comparing each file's (mtime, size, inode)
with what was last read, plus the files the events named; so a ConfigMap mount that swaps a ``..data`` symlink, a
directory renamed away or an editor's write-to-temp-then-rename are all seen. watchfiles groups events until
``step_ms`` pass without any (at most ``debounce_ms``), so a file written in several quick steps is read once
complete. ``step_ms`` is 30: watchfiles looks every step, so a change waits one to two steps before it is read
(at 100, 144-171 ms of every change's latency), while the writes of one save (an editor's temp file and rename, a
``kubectl cp``, a ConfigMap's ``..data`` swap) come within a few milliseconds of each other; a file caught
half-written either fails YAML parsing (the file keeps what it had in force) or fails
validation (each key keeps its last good version) until the next write completes it.

The watch follows the config directory by path, not by inode: when an event names the directory itself or the
directory's (device, inode) changed (renamed away and recreated, a symlink to it swapped; checked after every batch
and every ``root_check_ms`` without events), the watcher is restarted on whatever directory is now at that path and
everything is rescanned. While no directory is there, what is in force stays in force.

Files named in ``exclude`` are not read (the mesh config file, when it lies inside the directory: it is not an Istio
resource and has its own watcher, ``pilot.config.mesh_config_file``).

It is a ``ConfigSource`` (``pilot.config.source``): what it reads goes to a ``ConfigSink``, whose store may
aggregate other sources too; a unit of this source is a file, named by its path.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR
from typing import TYPE_CHECKING

import structlog
from watchfiles import awatch

from pilot.config.errors import ConfigError, ConfigSourceError
from pilot.config.origin import Origin
from pilot.config.parse import ParsedFile, parse_config_text
from pilot.config.source import ConfigSink
from pilot.config.store import FILES
from pilot.config.yaml_source import MAX_FILE_BYTES, file_too_large

__all__ = [
    "DirectorySource",
    "FileSignature",
    "ahead_share",
    "is_config_file",
    "read_and_parse",
    "scan_config_files",
]

if TYPE_CHECKING:
    from pilot.parse_ahead import ParseAhead

log = structlog.get_logger(__name__)

_SUFFIXES = (".yaml", ".yml")


def is_config_file(relative: Path) -> bool:
    """True for a YAML file that is neither hidden (itself or a parent directory) nor an editor's leftover."""
    if any(part.startswith(".") for part in relative.parts):
        return False
    name = relative.name
    return name.endswith(_SUFFIXES) and not name.startswith("#")


@dataclass(frozen=True, slots=True)
class FileSignature:
    """What tells a file changed without reading it: mtime, size and inode (a replaced file, or a swapped
    ConfigMap ``..data`` link, has a new inode). Mixer's entries files are watched the same way."""

    mtime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileSignature:
        return cls(mtime_ns=stat.st_mtime_ns, size=stat.st_size, inode=stat.st_ino)


_Ahead = Mapping[str, tuple[FileSignature, ParsedFile]]  # parses made ahead, with the signature when read


def ahead_share(signatures: Mapping[str, FileSignature], share: float) -> set[str]:
    """The files a parse worker reads (``pilot.parse_ahead``): the last ones in name order that make up ``share``
    of the bytes."""
    total = sum(s.size for s in signatures.values())
    taken: set[str] = set()
    size = 0
    for name in sorted(signatures, reverse=True):
        if size >= share * total:
            break
        taken.add(name)
        size += signatures[name].size
    return taken


@dataclass(frozen=True, slots=True)
class _Sync:
    """The outcome of one pass over the directory, computed off the event loop."""

    root: tuple[int, int] | None  # (device, inode) of the directory scanned
    signatures: dict[str, FileSignature]
    parsed: list[ParsedFile]
    removed: set[str]


class DirectorySource:
    """Feeds ``sink`` (as source ``name``) from the YAML files under ``config_dir``."""

    def __init__(
        self,
        config_dir: Path,
        sink: ConfigSink,
        *,
        name: str = FILES,
        step_ms: int = 30,
        debounce_ms: int = 1600,
        root_check_ms: int = 1000,
        exclude: Collection[Path] = (),
        parse_ahead: ParseAhead | None = None,
    ) -> None:
        """``parse_ahead``: a worker parsing some files for ``load_initial`` (``pilot.parse_ahead``)."""
        self._config_dir = Path(config_dir)
        self._exclude = tuple(Path(path) for path in exclude)
        self._sink = sink
        self._name = name
        self._step_ms = step_ms
        self._debounce_ms = debounce_ms
        self._root_check_ms = root_check_ms
        self._known: dict[str, FileSignature] = {}  # file (as shown in messages) -> signature when last read
        self._root: tuple[int, int] | None = None  # (device, inode) of the directory last scanned
        self._stop = asyncio.Event()
        self._parse_ahead = parse_ahead

    @property
    def name(self) -> str:
        return self._name

    async def load_initial(self) -> None:
        """Read every config file once (the sink's ``on_change`` is called if that changed the store)."""
        self._check_dir()
        ahead, self._parse_ahead = self._parse_ahead, None
        try:
            await self._sync(reported=frozenset(), ahead=ahead)
        finally:
            if ahead is not None:
                ahead.stop()
        store = self._sink.store
        log.info(
            "config_loaded",
            source=self._name,
            config_dir=str(self._config_dir),
            files=len(self._known),
            resources=len(store.accepted),
            rejected=len(store.rejections),
            version=store.version,
            parsed_ahead=ahead.taken if ahead is not None else 0,
        )
        if ahead is not None and ahead.failure:
            log.warning("config_parse_ahead_failed", reason=ahead.failure)

    async def watch(self) -> None:
        """Re-read changed files until cancelled or ``stop()`` is called."""
        self._check_dir()
        restarted = missing = False
        while not self._stop.is_set():
            root = _root_identity(self._config_dir)
            if root is None:  # gone (or not a directory): keep what is in force until one is there again
                if not missing:
                    log.error("config_dir_unreadable", config_dir=str(self._config_dir), error="no such directory")
                missing = True
                await self._sleep(self._root_check_ms)
                continue
            missing = False
            if root != self._root and self._root is not None:
                log.warning("config_dir_replaced", config_dir=str(self._config_dir))
            if restarted or root != self._root:
                await self._rescan(frozenset())
            await self._watch_root(root)
            restarted = True

    async def _watch_root(self, root: tuple[int, int]) -> None:
        """Watch the directory that has identity ``root`` until stopped, or until an event names the directory itself
        or another directory (or none) is at its path: a watch stays on the inode it started on, so it must restart.
        (A directory deleted and recreated at once may get the same inode number back: the event tells.)"""
        absolute = os.path.abspath(self._config_dir)
        first = True
        batches = awatch(
            self._config_dir,
            stop_event=self._stop,
            step=self._step_ms,
            debounce=self._debounce_ms,
            rust_timeout=self._root_check_ms,
            yield_on_timeout=True,  # an empty batch: time to check that the directory is still the same one
            recursive=True,
        )
        async with contextlib.aclosing(batches):
            async for changes in batches:
                reported = frozenset(os.path.abspath(path) for _, path in changes)
                if absolute in reported or _root_identity(self._config_dir) != root:
                    log.info("config_watch_restarted", config_dir=str(self._config_dir))
                    return
                if changes or first:  # the first batch also covers edits made before this watcher was running
                    await self._rescan(reported)
                first = False

    async def _rescan(self, reported: frozenset[str]) -> None:
        try:
            await self._sync(reported=reported)
        except OSError as exc:  # the directory itself went away or became unreadable: keep what is in force
            log.error("config_dir_unreadable", config_dir=str(self._config_dir), error=str(exc))

    async def _sleep(self, milliseconds: int) -> None:
        """Wait ``milliseconds``, or less if ``stop()`` is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), milliseconds / 1000)

    def stop(self) -> None:
        """Make ``watch()`` return after the batch it is processing, if any."""
        self._stop.set()

    def _check_dir(self) -> None:
        if not self._config_dir.is_dir():
            raise ConfigSourceError(f"config directory {str(self._config_dir)!r} does not exist or is not a directory")

    async def _sync(self, *, reported: frozenset[str], ahead: ParseAhead | None = None) -> None:
        sync = await asyncio.to_thread(
            _scan_and_parse, self._config_dir, dict(self._known), reported, self._exclude, ahead
        )
        self._root = sync.root
        self._sink.publish(self._name, sync.parsed, sync.removed)
        for name in sync.removed:
            self._known.pop(name, None)
        for parsed in sync.parsed:
            self._known[parsed.file] = sync.signatures[parsed.file]


def _scan_and_parse(
    config_dir: Path,
    known: dict[str, FileSignature],
    reported: frozenset[str],
    exclude: tuple[Path, ...] = (),
    ahead: ParseAhead | None = None,
) -> _Sync:
    """List the config files, then read and parse the new, changed and reported ones (runs in a worker thread).
    With ``ahead``, the files of its share are parsed last, each only if the worker's parse is not of this very
    file (same signature) as listed now.

    Raises FileNotFoundError when the directory itself is gone: that must not read as "every file was deleted".
    """
    root = _root_identity(config_dir)
    if root is None:
        raise FileNotFoundError(f"config directory {str(config_dir)!r} is gone")
    signatures = scan_config_files(config_dir, exclude)
    wanted = [n for n, s in sorted(signatures.items()) if known.get(n) != s or os.path.abspath(n) in reported]
    later = ahead_share(signatures, ahead.share) if ahead is not None and ahead.started else set()
    results = {name: read_and_parse(name) for name in wanted if name not in later}
    made_ahead: _Ahead = ahead.results() if later and ahead is not None else {}
    for name in wanted:
        if name in later:
            signature, parse = made_ahead.get(name, (None, None))
            results[name] = parse if parse is not None and signature == signatures[name] else read_and_parse(name)
    if ahead is not None:
        ahead.taken = sum(1 for n in later if (made := made_ahead.get(n)) and results.get(n) is made[1])
    parsed = [result for name in wanted if (result := results[name]) is not None]
    removed = (set(known) - set(signatures)) | {name for name in wanted if results[name] is None}  # None: deleted
    return _Sync(root=root, signatures=signatures, parsed=parsed, removed=removed & set(known))


def _root_identity(config_dir: Path) -> tuple[int, int] | None:
    """(device, inode) of the directory at ``config_dir`` (following symlinks), None when there is no directory."""
    try:
        stat = os.stat(config_dir)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino) if S_ISDIR(stat.st_mode) else None


def scan_config_files(config_dir: Path, exclude: Collection[Path] = ()) -> dict[str, FileSignature]:
    """Every config file under ``config_dir`` (as its path joined to ``config_dir``), with its signature; files in
    ``exclude`` (compared by real path: the mesh config file, when it lives there) are left out.

    It runs on every batch of events, over every file: at 2000 files a walk building a ``Path`` and resolving
    the real path of each took 70-100 ms, so names are checked as strings (hidden directories are never entered:
    only a file's own name can make it hidden) and real paths resolved only when something is excluded."""
    excluded = {os.path.realpath(path) for path in exclude}
    signatures: dict[str, FileSignature] = {}
    pending = [os.fspath(config_dir)]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            path = os.path.join(directory, name)  # as os.walk joins: what messages and ``known`` name
            try:
                if entry.is_dir():  # follows symlinks, as os.walk lists them (it does not descend into them)
                    if not entry.is_symlink():
                        pending.append(path)
                    continue
                if not name.endswith(_SUFFIXES) or name.startswith("#"):
                    continue
                stat = entry.stat()  # follows symlinks: a swapped ConfigMap ..data link changes the inode
            except OSError:
                continue
            if excluded and os.path.realpath(path) in excluded:
                continue
            signatures[path] = FileSignature.of(stat)
    return signatures


def read_and_parse(name: str) -> ParsedFile | None:
    """The parse of one file; a file error if it is too large or not UTF-8; None if it no longer exists."""
    try:
        with open(name, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            raw = file.read() if size <= MAX_FILE_BYTES else b""  # a huge file is refused without reading it
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _file_error(name, 1, str(exc))
    if max(size, len(raw)) > MAX_FILE_BYTES:
        return _file_error(name, 1, file_too_large(max(size, len(raw))).message)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if raw.startswith(codecs.BOM_UTF8) else 0)  # utf-8-sig counts after the BOM
        message = f"not UTF-8 text: byte 0x{raw[start]:02x} cannot be decoded ({exc.reason}); save the file as UTF-8"
        return _file_error(name, raw.count(b"\n", 0, start) + 1, message)
    return parse_config_text(text, name)


def _file_error(name: str, line: int, message: str) -> ParsedFile:
    error = ConfigError(origin=Origin(file=name, line=line), key=None, path="", message=message)
    return ParsedFile(file=name, file_error=error)
