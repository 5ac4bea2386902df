"""Leader election on a Kubernetes Lease (``coordination.k8s.io/v1``), as client-go's ``leaderelection`` runs it for
Istio's single-writer work: one replica of a component holds the lease and does the work only one may do (Pilot's
status writes; later a webhook's ``caBundle`` or a namespace's root-certificate ConfigMap), the others wait to take
over.

It is shared (``meshplane``, not ``pilot``): Pilot, Citadel and a sidecar injector each elect their own leader,
each on a lease of its own name, with this one implementation.

``LeaderElector.run()`` is a loop on the event loop; every request runs in a worker thread (the client is
synchronous). Every ``retry_period`` a candidate reads the lease and takes it when it is free (no holder) or expired
(unchanged for ``lease_duration``); the holder renews it as often. Writes carry the ``resourceVersion`` read
(optimistic concurrency): a 409 Conflict means another candidate wrote first, and that candidate won. The leader
gives up leadership when it has not renewed for ``renew_deadline`` (the API unreachable), or at once when it reads
that someone else holds the lease (client-go keeps trying until the deadline; stepping down at once means two
replicas never both act as leader once one of them knows). ``stop()`` ends the loop and releases a held lease (no
holder), so that another replica takes over at its next try, within ``retry_period``.

Callbacks (called on the loop; an exception in one is logged, never raised): ``on_started_leading``,
``on_stopped_leading`` (after losing or releasing the lease), ``on_new_leader(identity)`` (the holder seen changed;
"" when the lease became free). ``wait_until_leading()`` and ``is_leader`` for code that asks instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog
from kubernetes import client

from meshplane.kube_lease import (
    LeaseRecord,
    LeaseTiming,
    ObservedLease,
    claim,
    held_by_another,
    observe,
    released,
)
from meshplane.kube_rest import CONFLICT, NOT_FOUND, KubeResponse, KubeUnavailable, kube_request

__all__ = ["LeaderElector", "LeaseAccess", "LeaseClient", "default_identity"]

log = structlog.get_logger(__name__)

Callback = Callable[[], None]


def default_identity() -> str:
    """Who this process is in a lease: its pod's name in Kubernetes (``POD_NAME``, else ``HOSTNAME``, which the
    kubelet sets to it), else ``host_pid`` (two processes on one machine must not share an identity)."""
    pod = os.environ.get("POD_NAME")
    if pod:
        return pod
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.environ.get("HOSTNAME"):
        return os.environ["HOSTNAME"]
    return f"{socket.gethostname()}_{os.getpid()}"


class LeaseAccess(Protocol):
    """Reads and writes one Lease (synchronous: called in worker threads)."""

    def get(self, timeout: float) -> KubeResponse: ...

    def create(self, record: LeaseRecord, timeout: float) -> KubeResponse: ...

    def replace(self, record: LeaseRecord, resource_version: str, timeout: float) -> KubeResponse: ...


class LeaseClient:
    """``LeaseAccess`` on an API server."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name
        self._api = api
        self._collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    def get(self, timeout: float) -> KubeResponse:
        return kube_request(self._api, "GET", f"{self._collection}/{self.name}", timeout=timeout)

    def create(self, record: LeaseRecord, timeout: float) -> KubeResponse:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.spec(),
        }
        return kube_request(self._api, "POST", self._collection, body=body, timeout=timeout)

    def replace(self, record: LeaseRecord, resource_version: str, timeout: float) -> KubeResponse:
        """PUT the record, only over ``resource_version`` (409 when the lease changed since)."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": resource_version},
            "spec": record.spec(),
        }
        return kube_request(self._api, "PUT", f"{self._collection}/{self.name}", body=body, timeout=timeout)


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What one try to acquire or renew found: ``held`` (this candidate holds the lease now), the lease as seen,
    and ``error`` when the API did not answer usefully (nothing is known then)."""

    held: bool
    observed: ObservedLease | None
    error: str = ""


class LeaderElector:
    """One candidate for the lease ``namespace/lease_name``, as ``identity``."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        lease_name: str,
        identity: str,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        on_new_leader: Callable[[str], None] | None = None,
        lease_client: LeaseAccess | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not identity:
            raise ValueError("a leader election candidate needs an identity")
        self.identity = identity
        self.timing = LeaseTiming(
            lease_duration=lease_duration, renew_deadline=renew_deadline, retry_period=retry_period
        )
        self._lease = lease_client or LeaseClient(api, namespace, lease_name)
        self.lease = f"{namespace}/{lease_name}"
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._clock = clock
        self._wall_clock = wall_clock
        self._observed: ObservedLease | None = None
        self._leading = False
        self._leading_event = asyncio.Event()
        self._last_renewed = 0.0
        self._leader = ""
        self._stopping = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def leader(self) -> str:
        """The holder last seen ("" when none or not read yet)."""
        return self._leader

    async def wait_until_leading(self) -> None:
        await self._leading_event.wait()

    def stop(self) -> None:
        """End ``run()``; it releases the lease if it holds it."""
        self._stopping.set()

    async def run(self) -> None:
        """Try to acquire, then renew, until ``stop()`` (or cancellation); a held lease is released at the end."""
        try:
            while not self._stopping.is_set():
                attempt = await asyncio.to_thread(self._attempt, self._observed, self._leading, self._timeout())
                self._record(attempt)
                await self._pause()
        finally:
            await self._release()

    def _timeout(self) -> float:
        """A request's time limit: a leader's must end before its renew deadline."""
        if not self._leading:
            return self.timing.renew_deadline
        return max(0.5, self.timing.renew_deadline - (self._clock() - self._last_renewed))

    def _attempt(self, observed: ObservedLease | None, leading: bool, timeout: float) -> _Attempt:
        """One try to acquire or renew (in a worker thread; reads only its arguments and the clocks)."""
        try:
            if leading and observed is not None:  # renew over what we wrote last, without reading first
                renewed = self._write(observed, timeout)
                if renewed is not None and renewed.held:
                    return renewed  # else (changed, deleted, refused): read what is there now
            response = self._lease.get(timeout)
            if response.status == NOT_FOUND:
                return self._create(timeout)
            if not response.ok:
                return _Attempt(held=False, observed=observed, error=response.reason())
            seen = observe(observed, *_read_lease(response), self._clock())
            if held_by_another(seen, self.identity, self.timing, self._clock()):
                return _Attempt(held=False, observed=seen)
            return self._write(seen, timeout) or _Attempt(held=False, observed=seen)
        except KubeUnavailable as error:
            return _Attempt(held=False, observed=observed, error=str(error))

    def _write(self, observed: ObservedLease, timeout: float) -> _Attempt | None:
        """Write our claim over ``observed``; None on a conflict (someone else wrote since: read again)."""
        record = claim(observed, self.identity, self.timing, self._wall_clock())
        response = self._lease.replace(record, observed.resource_version, timeout)
        if response.status == CONFLICT:
            return None
        if not response.ok:
            return _Attempt(held=False, observed=observed, error=response.reason())
        return _Attempt(held=True, observed=observe(observed, *_read_lease(response), self._clock()))

    def _create(self, timeout: float) -> _Attempt:
        record = claim(None, self.identity, self.timing, self._wall_clock())
        response = self._lease.create(record, timeout)
        if response.status == CONFLICT:  # another candidate created it first: it holds it
            return _Attempt(held=False, observed=None)
        if not response.ok:
            return _Attempt(held=False, observed=None, error=response.reason())
        return _Attempt(held=True, observed=observe(None, *_read_lease(response), self._clock()))

    def _record(self, attempt: _Attempt) -> None:
        """Take what an attempt found: start or stop leading, note a new holder (on the loop)."""
        self._observed = attempt.observed
        if attempt.observed is not None:
            self._note_leader(attempt.observed.record.holder)
        if attempt.held:
            self._last_renewed = self._clock()
            if not self._leading:
                self._set_leading(True, "acquired")
            return
        if attempt.error:
            log.warning("lease_request_failed", lease=self.lease, identity=self.identity, error=attempt.error)
            if self._leading and self._clock() - self._last_renewed >= self.timing.renew_deadline:
                self._set_leading(False, f"not renewed within {self.timing.renew_deadline:g}s")
        elif self._leading:
            self._set_leading(False, f"taken by {self._leader or 'another candidate'}")

    def _note_leader(self, holder: str) -> None:
        if holder != self._leader:
            self._leader = holder
            log.info("lease_holder_changed", lease=self.lease, holder=holder or None, identity=self.identity)
            if self._on_new_leader is not None:
                _call(self._on_new_leader, holder)

    def _set_leading(self, leading: bool, why: str) -> None:
        self._leading = leading
        if leading:
            self._leading_event.set()
            log.info("leader_elected", lease=self.lease, identity=self.identity, why=why)
            _call(self._on_started)
        else:
            self._leading_event.clear()
            log.warning("leadership_lost", lease=self.lease, identity=self.identity, why=why)
            _call(self._on_stopped)

    async def _pause(self) -> None:
        """Until the next try: ``retry_period`` for the leader, a little less (at random) for candidates, so that
        they do not all ask at once and a released lease is taken within one retry period."""
        wait = self.timing.retry_period
        if not self._leading:
            wait *= 1.0 - 0.2 * random.random()  # spreading requests, not security
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=wait)

    async def _release(self) -> None:
        """Give the lease up (no holder) if held, so that another candidate takes it at once."""
        if not self._leading or self._observed is None:
            return
        observed = self._observed
        record = released(observed, self._wall_clock())
        try:
            response = await asyncio.to_thread(
                self._lease.replace, record, observed.resource_version, self.timing.retry_period
            )
        except KubeUnavailable as error:
            response = KubeResponse(status=0, body={"message": str(error)})
        if not response.ok:  # a conflict: someone else wrote it already; else it expires on its own
            log.warning("lease_release_failed", lease=self.lease, identity=self.identity, error=response.reason())
        self._leading = False
        self._leading_event.clear()
        log.info("leader_released", lease=self.lease, identity=self.identity)
        _call(self._on_stopped)


def _read_lease(response: KubeResponse) -> tuple[LeaseRecord, str]:
    """The record and resourceVersion of a Lease in an API answer."""
    spec = response.body.get("spec")
    metadata = response.body.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    record = LeaseRecord.from_spec(spec if isinstance(spec, dict) else {})
    return record, version if isinstance(version, str) else ""


def _call(callback: Callable[..., None] | None, *arguments: str) -> None:
    if callback is None:
        return
    try:
        callback(*arguments)
    except Exception:  # a failing callback must not stop the election
        log.exception("leader_callback_failed", callback=getattr(callback, "__qualname__", repr(callback)))
