"""The mesh config file, watched (Istio's mesh watcher on its ``mesh`` ConfigMap key).

``MeshConfigFile`` reads the file at start (a bad file stops Pilot from starting, as before), then follows it: every
batch of file events in its directory, and every ``poll_ms`` without one, compares the file's ``FileSignature``
(mtime, size, inode, following symlinks: a ConfigMap's swapped ``..data`` link is seen) with the one last read, and
re-reads it when it differs. A good edit is handed to ``on_change``; a bad one (invalid YAML, an unsupported field,
a changed ``trustDomain`` / ``rootNamespace``) or a file that went away keeps the last good mesh config in force: its
problems are logged with file:line, kept for ``/debug/mesh`` (``describe``) and counted once per distinct set of
problems through ``on_rejected`` (``pilot_total_rejected_configs{kind="MeshConfig"}``).

It runs beside the config sources (``load_initial`` / ``watch`` / ``stop``, so a ``SourceGroup`` takes it). When the
file lies inside ``--config-dir``, the ``DirectorySource`` is told to skip it (``exclude``): a MeshConfig has no
``apiVersion``/``kind`` and is not an Istio resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from watchfiles import awatch

from pilot.config.errors import ConfigError
from pilot.config.mesh_config import (
    DEFAULT_MESH_NAMES,
    MeshConfig,
    MeshConfigError,
    MeshNames,
    load_mesh_config,
    parse_mesh_config,
)
from pilot.config.origin import Origin
from pilot.config.source_files import FileSignature
from pilot.model.mesh_settings import MESH_CONFIG_KIND

__all__ = ["MESH_CONFIG_SOURCE", "MeshConfigFile"]

log = structlog.get_logger(__name__)

MESH_CONFIG_SOURCE = "mesh-config"


class MeshConfigFile:
    """The MeshConfig of ``path``: ``current`` is the one in force."""

    def __init__(
        self,
        path: Path,
        *,
        on_change: Callable[[MeshConfig], None],
        on_rejected: Callable[[str], None] | None = None,
        defaults: MeshNames = DEFAULT_MESH_NAMES,
        step_ms: int = 50,
        debounce_ms: int = 1600,
        poll_ms: int = 1000,
    ) -> None:
        self.path = Path(path)
        self._on_change = on_change
        self._on_rejected = on_rejected
        self._defaults = defaults
        self._step_ms = step_ms
        self._debounce_ms = debounce_ms
        self._poll_ms = poll_ms
        self._current: MeshConfig | None = None
        self._signature: FileSignature | None = None  # of the file last read (good or not)
        self._errors: tuple[ConfigError, ...] = ()  # why the newest edit is not in force (empty: it is)
        self._stop = asyncio.Event()

    @property
    def name(self) -> str:
        return MESH_CONFIG_SOURCE

    @property
    def current(self) -> MeshConfig:
        if self._current is None:
            raise RuntimeError("MeshConfigFile.load_initial() was not called")
        return self._current

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        return self._errors

    async def load_initial(self) -> None:
        """Read the file; raises ``MeshConfigError`` when it is not a usable MeshConfig (Pilot does not start)."""
        self._signature = _signature(self.path)
        self._current = await asyncio.to_thread(load_mesh_config, self.path, defaults=self._defaults)
        log.info("mesh_config_loaded", file=str(self.path), **_fields(self._current))

    async def watch(self) -> None:
        """Apply edits until cancelled or ``stop()`` is called."""
        directory = self.path.parent
        while not self._stop.is_set():
            if not directory.is_dir():  # the directory itself is gone: keep what is in force, look again later
                await self.check()
                await self._sleep(self._poll_ms)
                continue
            batches = awatch(
                directory,
                stop_event=self._stop,
                step=self._step_ms,
                debounce=self._debounce_ms,
                rust_timeout=self._poll_ms,
                yield_on_timeout=True,
                recursive=False,
            )
            with contextlib.suppress(FileNotFoundError):  # the directory went away while watched: start again
                async with contextlib.aclosing(batches):
                    async for _ in batches:
                        await self.check()
                        if not directory.is_dir():
                            break

    def stop(self) -> None:
        self._stop.set()

    async def check(self) -> None:
        """Re-read the file if its signature changed since it was last read."""
        signature = _signature(self.path)
        if signature == self._signature:
            return
        self._signature = signature
        if signature is None:
            self._reject((_file_error(self.path, "the mesh config file is gone; the last good one stays in force"),))
            return
        try:
            text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
            config = parse_mesh_config(text, str(self.path), defaults=self._defaults, running=self.current.names)
        except MeshConfigError as exc:
            self._reject(exc.errors)
            return
        except (OSError, UnicodeDecodeError) as exc:
            self._reject((_file_error(self.path, f"cannot read the mesh config: {exc}"),))
            return
        self._accept(config)

    def describe(self) -> dict[str, Any]:
        """``/debug/mesh``: the file, the mesh config in force, and why the newest edit is not (if it is not)."""
        return {
            "file": str(self.path),
            "in_force": self.current.describe(),
            "rejected": [_error_fields(error) for error in self._errors],
        }

    def _accept(self, config: MeshConfig) -> None:
        if self._errors:
            log.info("mesh_config_fixed", file=str(self.path))
        self._errors = ()
        if config == self._current:
            return
        self._current = config
        log.info("mesh_config_changed", file=str(self.path), **_fields(config))
        try:
            self._on_change(config)
        except Exception:  # a failing consumer must not stop the file from being watched
            log.exception("mesh_config_on_change_failed", file=str(self.path))

    def _reject(self, errors: tuple[ConfigError, ...]) -> None:
        if {(e.origin, e.path, e.message) for e in errors} == {(e.origin, e.path, e.message) for e in self._errors}:
            return  # re-read with the same problems: logged and counted already
        self._errors = errors
        for error in errors:
            log.error("mesh_config_rejected", **_error_fields(error), in_force="last good mesh config")
        if self._on_rejected is not None:
            self._on_rejected(MESH_CONFIG_KIND)

    async def _sleep(self, milliseconds: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), milliseconds / 1000)


def _signature(path: Path) -> FileSignature | None:
    try:
        return FileSignature.of(os.stat(path))
    except OSError:
        return None


def _file_error(path: Path, message: str) -> ConfigError:
    return ConfigError(origin=Origin(file=str(path), line=1), key=None, path="", message=message)


def _fields(config: MeshConfig) -> dict[str, str]:
    return {
        "outbound_traffic_policy": config.settings.outbound_traffic_policy.value,
        "root_namespace": config.names.root_namespace,
        "trust_domain": config.names.trust_domain,
    }


def _error_fields(error: ConfigError) -> dict[str, Any]:
    return {"file": error.origin.file, "line": error.origin.line, "path": error.path, "message": error.message}
