"""Several kinds watched together (one ``Watcher`` thread each), their deliveries consumed on the event loop in
batches: a consumer takes everything that arrived since it last looked (``next_batch``), so that a burst of events
is applied at once (the registry translates once per batch; the config store resolves once per batch).

``synced`` turns true once every kind was listed, or found not served (Istio's informers' ``HasSynced``): a
process serves only then, so that its first config is the cluster's, not part of it.

``WatchedKinds`` runs a group the way a config source runs (``load_initial``: until synced; ``watch``: until
``stop()``); the config source and the registry feed say what a batch does (``take``).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Iterable, Sequence

import structlog
from kubernetes import client

from meshplane.kube_kinds import ApiKind
from meshplane.kube_watch import Delivery, Listed, Unavailable, Watcher, WatchOptions, deliver_to_queue

__all__ = ["WatchGroup", "WatchedKinds"]

log = structlog.get_logger(__name__)

_JOIN_SECONDS = 5.0


class WatchGroup:
    """Watchers of ``kinds`` delivering to one queue; ``start()`` on the loop, then ``next_batch()`` until None."""

    def __init__(self, api: client.ApiClient, kinds: Iterable[ApiKind], options: WatchOptions | None = None) -> None:
        self.kinds = tuple(kinds)
        self._api = api
        self._options = options
        self._queue: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._watchers: list[Watcher] = []
        self._pending_sync = {kind.kind for kind in self.kinds}
        self._stopped = False

    @property
    def synced(self) -> bool:
        return not self._pending_sync

    @property
    def watchers(self) -> tuple[Watcher, ...]:
        return tuple(self._watchers)

    def start(self) -> None:
        deliver = deliver_to_queue(asyncio.get_running_loop(), self._queue)
        self._watchers = [Watcher(self._api, kind, deliver, self._options) for kind in self.kinds]
        for watcher in self._watchers:
            watcher.start()

    async def next_batch(self) -> list[Delivery] | None:
        """What arrived since the last call (waiting for at least one delivery); None once stopped."""
        first = await self._queue.get()
        if first is None:
            return None
        batch = [first]
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                self._queue.put_nowait(None)  # seen again by the next call
                break
            batch.append(item)
        for delivery in batch:
            if isinstance(delivery, Listed | Unavailable):
                self._pending_sync.discard(delivery.kind.kind)
        return batch

    def stop(self) -> None:
        """Stop every watcher (their connections are shut down) and end ``next_batch``. Call on the loop."""
        if self._stopped:
            return
        self._stopped = True
        for watcher in self._watchers:
            watcher.stop()
        self._queue.put_nowait(None)

    async def join(self) -> None:
        """Wait (off the loop) for the watch threads to end."""
        ended = await asyncio.to_thread(lambda: all([w.join(_JOIN_SECONDS) for w in self._watchers]))
        if not ended:
            log.warning("kube_watchers_still_running", kinds=[str(w.kind) for w in self._watchers])


class WatchedKinds(abc.ABC):
    """A ``WatchGroup`` run as a source: ``take`` each batch, ``loaded`` once every kind was listed."""

    def __init__(self, api: client.ApiClient, kinds: Iterable[ApiKind], options: WatchOptions | None) -> None:
        self._group = WatchGroup(api, kinds, options)
        self._started = False

    @property
    def synced(self) -> bool:
        return self._group.synced

    async def load_initial(self) -> None:
        """Take what arrives until every kind was listed or found not served."""
        self._start()
        while not self._group.synced:
            if not await self._consume():
                return
        self.loaded()

    async def watch(self) -> None:
        """Take every batch until ``stop()``."""
        self._start()
        try:
            while await self._consume():
                pass
        finally:  # also when cancelled: the threads are stopped, not left behind
            self._group.stop()
            await self._group.join()

    def stop(self) -> None:
        self._group.stop()

    @abc.abstractmethod
    async def take(self, deliveries: Sequence[Delivery]) -> None:
        """Apply one batch of deliveries."""

    @abc.abstractmethod
    def loaded(self) -> None:
        """Every kind was listed (log what was loaded)."""

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._group.start()

    async def _consume(self) -> bool:
        deliveries = await self._group.next_batch()
        if deliveries is None:
            return False
        await self.take(deliveries)
        return True
