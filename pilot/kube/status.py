"""Pilot writes the validation outcome of every config object it reads from Kubernetes to the object's ``status``
subresource (what is written: ``status_messages``), so that ``kubectl get vs reviews -o yaml`` says why it is not in
force; an object that becomes valid has that status removed again.

``StatusReconciler`` is fed by two sides and writes the difference:

- the Kubernetes config source calls ``observe(obj)`` with every object it receives (every ADDED or MODIFIED
  event, status-only ones too: that is how a write is confirmed and another writer's change seen) and
  ``forget(key)`` on DELETED: the object's ``apiVersion`` (where its status lives), ``metadata.generation``
  (written as ``observedGeneration``), ``resourceVersion`` and current ``status``;
- the store's rejections (``rejections()``, e.g. ``lambda: store.rejections``), read when woken (``changed()``) or
  every ``poll_interval`` (an identity check: the store makes a new tuple on every apply), so that a problem caused
  by another source (a DestinationRule file removing a subset a VirtualService object uses) is written too.

Only while leading (``start_writing``/``stop_writing``: the lease's callbacks, ``status_writes``) does it write,
and only what differs from what is on the object (or what it wrote and has not seen confirmed yet): a new leader
rewrites nothing that is already right. Changes are batched (``batch_delay``), written in worker threads, at most
``max_concurrent`` at once and ``writes_per_second``. Each write is a merge patch of ``/status`` carrying the
``resourceVersion`` it was computed from: a 409 (the object changed since) re-reads the object and plans again;
a 404 (deleted) forgets it; both quietly. Other failures are logged and retried with backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from kubernetes import client

from meshplane.kube_rest import CONFLICT, MERGE_PATCH, NOT_FOUND, KubeResponse, KubeUnavailable, kube_request
from pilot.config.store import Rejection
from pilot.config.types import ConfigKey
from pilot.kube.status_messages import Verdict, own_status, status_patch, verdicts, wanted_status

__all__ = ["STATUS_PLURALS", "KubeStatusClient", "StatusClient", "StatusReconciler", "StatusTarget"]

log = structlog.get_logger(__name__)

# the resource (plural) of every kind meshplane reads from Kubernetes, whose objects get a status
STATUS_PLURALS: Mapping[str, str] = {
    "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules",
    "ServiceEntry": "serviceentries",
    "WorkloadEntry": "workloadentries",
    "PeerAuthentication": "peerauthentications",
    "AuthorizationPolicy": "authorizationpolicies",
    "AccessList": "accesslists",
    "RateLimit": "ratelimits",
}
_KEPT_VERSIONS = 4  # generations remembered per object, by resourceVersion (a verdict names the version it is for)
_MAX_BACKOFF = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusTarget:
    """An object whose status Pilot may write, as last observed."""

    api_version: str  # group/version, e.g. networking.istio.io/v1beta1
    kind: str
    namespace: str
    name: str
    generation: int
    resource_version: str
    status: Mapping[str, Any]

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> StatusTarget | None:
        """The target of an API object; None when it is not a kind with a status here or lacks its identity."""
        metadata = obj.get("metadata")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(metadata, Mapping) or not isinstance(api_version, str) or "/" not in api_version:
            return None
        if not isinstance(kind, str) or kind not in STATUS_PLURALS:
            return None
        name, namespace = metadata.get("name"), metadata.get("namespace")
        generation, version = metadata.get("generation"), metadata.get("resourceVersion")
        if not isinstance(name, str) or not isinstance(namespace, str) or not name or not namespace:
            return None
        status = obj.get("status")
        return cls(
            api_version=api_version,
            kind=kind,
            namespace=namespace,
            name=name,
            generation=generation if isinstance(generation, int) else 0,
            resource_version=version if isinstance(version, str) else "",
            status=status if isinstance(status, Mapping) else {},
        )

    @property
    def key(self) -> ConfigKey:
        return ConfigKey(kind=self.kind, namespace=self.namespace, name=self.name)

    @property
    def path(self) -> str:
        """The object's API path (``/status`` appended: its status subresource)."""
        plural = STATUS_PLURALS[self.kind]
        return f"/apis/{self.api_version}/namespaces/{self.namespace}/{plural}/{self.name}"


class StatusClient(Protocol):
    """Reads an object and merge-patches its status (synchronous: called in worker threads)."""

    def read(self, target: StatusTarget) -> KubeResponse: ...

    def patch_status(self, target: StatusTarget, status: Mapping[str, Any]) -> KubeResponse: ...


class KubeStatusClient:
    """``StatusClient`` on an API server."""

    def __init__(self, api: client.ApiClient, *, timeout: float = 10.0) -> None:
        self._api = api
        self._timeout = timeout

    def read(self, target: StatusTarget) -> KubeResponse:
        return kube_request(self._api, "GET", target.path, timeout=self._timeout)

    def patch_status(self, target: StatusTarget, status: Mapping[str, Any]) -> KubeResponse:
        body = {"metadata": {"resourceVersion": target.resource_version}, "status": status}
        return kube_request(
            self._api, "PATCH", f"{target.path}/status", body=body, content_type=MERGE_PATCH, timeout=self._timeout
        )


@dataclass(slots=True)
class _Written:
    """A status written and not yet seen on the object."""

    wanted: dict[str, Any]
    generation: int


@dataclass(slots=True)
class _Failure:
    attempts: int
    retry_at: float
    error: str


@dataclass(slots=True)
class _Tracked:
    target: StatusTarget
    generations: dict[str, int] = field(default_factory=dict)  # resourceVersion -> generation, the last few


class StatusReconciler:
    """Writes the status of the Kubernetes config objects of source ``source`` from the store's rejections."""

    def __init__(
        self,
        status_client: StatusClient,
        rejections: Callable[[], Sequence[Rejection]],
        *,
        source: str = "kubernetes",
        batch_delay: float = 0.2,
        poll_interval: float = 1.0,
        writes_per_second: float = 20.0,
        max_concurrent: int = 4,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if writes_per_second <= 0 or max_concurrent < 1:
            raise ValueError("status writes need a positive rate and at least one at a time")
        self._client = status_client
        self._rejections = rejections
        self._source = source
        self._batch_delay = batch_delay
        self._poll_interval = poll_interval
        self._write_interval = 1.0 / writes_per_second
        self._slots = asyncio.Semaphore(max_concurrent)
        self._clock = clock
        self._wall_clock = wall_clock
        self._objects: dict[ConfigKey, _Tracked] = {}
        self._written: dict[ConfigKey, _Written] = {}
        self._failures: dict[ConfigKey, _Failure] = {}
        self._seen_rejections: object = None
        self._leading = False
        self._wake = asyncio.Event()
        self._next_write = 0.0
        self.writes = 0  # status writes the API server accepted (metrics, tests)

    @property
    def leading(self) -> bool:
        return self._leading

    def observe(self, obj: Mapping[str, Any]) -> None:
        """An object as the watch delivered it (ADDED or MODIFIED)."""
        target = StatusTarget.from_object(obj)
        if target is None:
            return
        tracked = self._objects.get(target.key)
        if tracked is None:
            tracked = self._objects[target.key] = _Tracked(target=target)
        tracked.target = target
        tracked.generations[target.resource_version] = target.generation
        while len(tracked.generations) > _KEPT_VERSIONS:
            del tracked.generations[next(iter(tracked.generations))]
        written = self._written.get(target.key)
        if written is not None and (
            own_status(target.status) == written.wanted or target.generation > written.generation
        ):  # confirmed (or outdated by an edit): what is on the object counts again
            del self._written[target.key]
        self.changed()

    def forget(self, key: ConfigKey) -> None:
        """The object was deleted."""
        self._objects.pop(key, None)
        self._written.pop(key, None)
        self._failures.pop(key, None)

    def changed(self) -> None:
        """Something may need writing: plan again soon."""
        self._wake.set()

    def start_writing(self) -> None:
        """This replica leads: write whatever differs (everything is compared with the objects again)."""
        self._leading = True
        self._written.clear()
        self._failures.clear()
        self.changed()

    def stop_writing(self) -> None:
        """Another replica leads (or none): write nothing, retry nothing."""
        self._leading = False
        self._failures.clear()

    async def run(self) -> None:
        """Plan and write until cancelled."""
        while True:
            await self._sleep_until_woken()
            if not self._leading:
                continue
            await asyncio.sleep(self._batch_delay)  # let a burst of changes arrive, write once
            await self.write_once()

    async def write_once(self) -> int:
        """Write every status that differs now; the number of writes tried."""
        planned = self.plan()
        await asyncio.gather(*(self._write(target, patch) for target, patch in planned))
        return len(planned)

    def plan(self) -> list[tuple[StatusTarget, dict[str, Any]]]:
        """Every (object, status merge patch) to write now (pure but for the clock: nothing is written)."""
        if not self._leading:
            return []
        rejections = self._rejections()
        self._seen_rejections = rejections
        found = verdicts(rejections, self._source)
        now, wall_now = self._clock(), self._wall_clock()
        planned: list[tuple[StatusTarget, dict[str, Any]]] = []
        for key, tracked in self._objects.items():
            failure = self._failures.get(key)
            if failure is not None and failure.retry_at > now:
                continue
            wanted = self._wanted(tracked, found.get(key))
            written = self._written.get(key)
            # nothing to write: not yet (the verdict is about another version), or written and its event not seen
            patch = None
            if wanted is not None and (written is None or written.wanted != wanted):
                patch = status_patch(tracked.target.status, wanted, wall_now)
            if patch is None:
                self._failures.pop(key, None)  # a failed write that is no longer wanted is not retried
                continue
            planned.append((tracked.target, patch))
        return planned

    def _wanted(self, tracked: _Tracked, verdict: Verdict | None) -> dict[str, Any] | None:
        """What the object's status should hold; None when the verdict is about another version than the one
        observed (the store has not seen this edit yet: wait for it)."""
        target = tracked.target
        generation = target.generation
        if verdict is not None and verdict.resource_version:
            generation = tracked.generations.get(verdict.resource_version, generation)
            if generation != target.generation:
                return None
        return wanted_status(target.kind, verdict, generation)

    async def _sleep_until_woken(self) -> None:
        """Until ``changed()``, a failed write's retry time, or the store's rejections changed (polled)."""
        while not self._wake.is_set():
            timeout = self._poll_interval
            if self._leading and self._failures:
                timeout = min(timeout, max(0.0, min(f.retry_at for f in self._failures.values()) - self._clock()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                if self._leading and (self._rejections() is not self._seen_rejections or self._due_retries()):
                    break
        self._wake.clear()

    def _due_retries(self) -> bool:
        now = self._clock()
        return any(f.retry_at <= now for f in self._failures.values())

    async def _write(self, target: StatusTarget, patch: dict[str, Any]) -> None:
        async with self._slots:
            await self._pace()
            if not self._leading:
                return
            try:
                response = await asyncio.to_thread(self._client.patch_status, target, patch)
            except KubeUnavailable as error:
                self._failed(target, str(error))
                return
            await self._answered(target, patch, response)

    async def _pace(self) -> None:
        """Hold a write until its turn at ``writes_per_second``."""
        now = self._clock()
        turn = max(now, self._next_write)
        self._next_write = turn + self._write_interval
        if turn > now:
            await asyncio.sleep(turn - now)

    async def _answered(self, target: StatusTarget, patch: dict[str, Any], response: KubeResponse) -> None:
        key = target.key
        if response.ok:
            self.writes += 1
            self._failures.pop(key, None)
            wanted = own_status({k: v for k, v in patch.items() if v is not None})
            self._written[key] = _Written(wanted=wanted, generation=target.generation)
            log.info("status_written", object=str(key), rejected=bool(patch.get("validationMessages")))
        elif response.status == NOT_FOUND:
            log.debug("status_object_gone", object=str(key))
            self.forget(key)
        elif response.status == CONFLICT:
            log.debug("status_object_changed", object=str(key), resource_version=target.resource_version)
            await self._reread(target)
        else:
            self._failed(target, response.reason())

    async def _reread(self, target: StatusTarget) -> None:
        """The object changed since it was observed: read it again and plan anew."""
        try:
            response = await asyncio.to_thread(self._client.read, target)
        except KubeUnavailable as error:
            self._failed(target, str(error))
            return
        if response.ok:
            self.observe(response.body)
        elif response.status == NOT_FOUND:
            self.forget(target.key)
        else:
            self._failed(target, response.reason())

    def _failed(self, target: StatusTarget, error: str) -> None:
        """Retry later, with exponential backoff; logged when the error is new for this object."""
        key = target.key
        before = self._failures.get(key)
        attempts = before.attempts + 1 if before else 1
        delay = min(_MAX_BACKOFF, 0.5 * 2 ** (attempts - 1))
        self._failures[key] = _Failure(attempts=attempts, retry_at=self._clock() + delay, error=error)
        if before is None or before.error != error:
            log.warning("status_write_failed", object=str(key), error=error, retry_in=delay)
