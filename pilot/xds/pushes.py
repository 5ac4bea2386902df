"""From config changes to a generated snapshot: debounce, then build in a worker thread.

Istio's debounce (pilot/pkg/xds/discovery.go): a push waits for ``quiet`` seconds without a new change, but never
longer than ``max_delay`` after the first change of the burst, so that a steady stream of changes still gets
pushed. One snapshot is then built from the latest config, off the event loop (``asyncio.to_thread``): the model,
then every type for every connected proxy, so that streams only look results up, and what changed since the
previous snapshot; a snapshot whose resources are inconsistent for a connected proxy is refused
(``InconsistentSnapshotError``). Fan-out to the streams is the server's job; each stream has its own sender (see
``connection.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

import structlog

from pilot.config.types import ConfigKey
from pilot.config.types import Resource as ConfigResource
from pilot.generate.registry import TypeGenerator
from pilot.model import (
    DEFAULT_MESH_SETTINGS,
    DEFAULT_ROOT_NAMESPACE,
    DEFAULT_TRUST_DOMAIN,
    SERVICE_ENTRIES,
    MeshSettings,
    MeshSnapshot,
    ProxyNode,
    ServiceRegistry,
    build_snapshot,
)
from pilot.xds.cache import ResourceCache
from pilot.xds.consistency import InconsistentSnapshotError

__all__ = ["Debouncer", "build_cache"]

log = structlog.get_logger(__name__)


class Debouncer:
    """Calls ``flush(first_change_at)`` once per burst of ``trigger()`` calls (``first_change_at``: monotonic)."""

    def __init__(
        self, *, quiet: float, max_delay: float, flush: Callable[[float], Awaitable[None]], name: str = "debounce"
    ) -> None:
        if quiet < 0:
            raise ValueError(f"debounce: quiet period must be >= 0 seconds, got {quiet}")
        if max_delay < quiet:
            raise ValueError(f"debounce: max delay ({max_delay}s) must be >= the quiet period ({quiet}s)")
        self._quiet = quiet
        self._max_delay = max_delay
        self._flush = flush
        self._name = name
        self._first: float | None = None
        self._last = 0.0
        self._pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def trigger(self) -> None:
        """A change happened (call on the event loop). Cheap: only timestamps."""
        self._last = time.monotonic()
        if self._first is None:
            self._first = self._last
        self._pending.set()

    def start(self, *, flush_pending: bool = False) -> None:
        """Start flushing. ``flush_pending``: a change triggered before the start is flushed at once, without its
        quiet period (a server's first config is loaded whole before it starts: there is no burst to wait out)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(at_once=flush_pending), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, *, at_once: bool) -> None:
        at_once = at_once and self._pending.is_set()
        while True:
            await self._pending.wait()
            first = self._first
            assert first is not None
            while not at_once:
                now = time.monotonic()
                deadline = min(self._last + self._quiet, first + self._max_delay)
                if now >= deadline:
                    break
                await asyncio.sleep(deadline - now)
            at_once = False
            self._first = None
            self._pending.clear()
            try:
                await self._flush(first)
            except Exception:  # a failed push must not stop later ones: the next change retries
                log.exception("push failed; keeping the previous snapshot")


def build_cache(
    configs: Mapping[ConfigKey, ConfigResource],
    version: int,
    *,
    previous: ResourceCache | None,
    generators: Mapping[str, TypeGenerator],
    domain_suffix: str,
    nodes: Collection[ProxyNode],
    changed_at: float | None,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    root_namespace: str = DEFAULT_ROOT_NAMESPACE,
    registries: Sequence[ServiceRegistry] = (SERVICE_ENTRIES,),
    mesh: MeshSettings = DEFAULT_MESH_SETTINGS,
) -> ResourceCache:
    """Build the snapshot and generate every type for ``nodes`` (CPU work: run it in a worker thread).

    Raises ``InconsistentSnapshotError`` when the resources of one of ``nodes`` reference EDS/RDS names that it
    would not be served: such a snapshot must not be served."""
    started, started_cpu = time.perf_counter(), time.thread_time()
    previous_snapshot: MeshSnapshot | None = previous.snapshot if previous is not None else None
    snapshot = build_snapshot(
        configs,
        version,
        previous_snapshot,
        domain_suffix,
        trust_domain=trust_domain,
        root_namespace=root_namespace,
        registries=registries,
        mesh=mesh,
    )
    cache = ResourceCache(snapshot, generators, previous=previous, keep=nodes, changed_at=changed_at)
    cache.warm(nodes)
    dangling = {node.id: found for node in nodes if (found := cache.dangling(node))}
    if dangling:
        raise InconsistentSnapshotError(version, dangling)
    cache.prepare_changes()
    log.info(
        "snapshot built",
        version=version,
        changed_kinds=sorted(snapshot.changed_kinds),
        reused_types=sorted(t.rsplit(".", 1)[-1] for t in cache.reused_types),
        proxies=len(nodes),
        seconds=round(time.perf_counter() - started, 4),
        cpu_seconds=round(time.thread_time() - started_cpu, 4),  # this thread's: less than seconds while it waits
    )
    return cache
