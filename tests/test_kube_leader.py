"""``LeaderElector`` against an in-memory Lease with the API server's optimistic concurrency (a write over a stale
``resourceVersion`` is a 409): acquiring, stepping down when the lease was taken or could not be renewed in time,
releasing on stop. Timings are tiny (a 0.05 s retry period); the API server itself is in e2e/k8s/test_kube_leader."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from meshplane.kube_leader import LeaderElector
from meshplane.kube_lease import LeaseRecord
from meshplane.kube_rest import KubeResponse, KubeUnavailable

RETRY = 0.05
DEADLINE = 0.2


class MemoryLease:
    """One Lease in memory: versions count up, a write over an older one is a 409, ``down`` makes it unreachable."""

    def __init__(self) -> None:
        self.spec: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    def get(self, timeout: float) -> KubeResponse:
        self._reachable()
        return KubeResponse(404, {}) if self.spec is None else self._object(200)

    def create(self, record: LeaseRecord, timeout: float) -> KubeResponse:
        self._reachable()
        if self.spec is not None:
            return KubeResponse(409, {"message": "already exists"})
        return self._write(record)

    def replace(self, record: LeaseRecord, resource_version: str, timeout: float) -> KubeResponse:
        self._reachable()
        if self.spec is None:
            return KubeResponse(404, {})
        if resource_version != str(self.version):
            return KubeResponse(409, {"message": "the object has been modified"})
        return self._write(record)

    def take(self, holder: str) -> None:
        """Someone else writes the lease (as ``kubectl`` would)."""
        self._write(LeaseRecord(holder=holder, lease_duration_seconds=3600))

    def _write(self, record: LeaseRecord) -> KubeResponse:
        self.spec, self.version = record.spec(), self.version + 1
        return self._object(200)

    def _object(self, status: int) -> KubeResponse:
        return KubeResponse(status, {"metadata": {"resourceVersion": str(self.version)}, "spec": self.spec})

    def _reachable(self) -> None:
        if self.down:
            raise KubeUnavailable("connection refused")


class Candidate:
    def __init__(self, lease: MemoryLease, identity: str = "pilot-a") -> None:
        self.events: list[str] = []
        self.elector = LeaderElector(
            None,
            "istio-system",
            "pilot-status",
            identity,
            lease_duration=DEADLINE * 2,
            renew_deadline=DEADLINE,
            retry_period=RETRY,
            on_started_leading=lambda: self.events.append("started"),
            on_stopped_leading=lambda: self.events.append("stopped"),
            on_new_leader=lambda holder: self.events.append(f"holder={holder}"),
            lease_client=lease,
        )

    async def leading(self, wanted: bool = True) -> None:
        for _ in range(200):
            if self.elector.is_leader is wanted:
                return
            await asyncio.sleep(RETRY / 5)
        raise AssertionError(f"is_leader never became {wanted}: {self.events}")


async def test_a_leader_steps_down_at_once_when_another_holds_its_lease() -> None:
    lease = MemoryLease()
    a = Candidate(lease)
    task = asyncio.create_task(a.elector.run())
    await a.leading()
    lease.take("intruder")
    await a.leading(False)
    assert a.events == ["holder=pilot-a", "started", "holder=intruder", "stopped"]
    a.elector.stop()
    await task
    assert lease.spec is not None and lease.spec["holderIdentity"] == "intruder"  # not ours to release


async def test_a_leader_that_cannot_renew_gives_up_at_its_renew_deadline() -> None:
    lease = MemoryLease()
    a = Candidate(lease)
    task = asyncio.create_task(a.elector.run())
    await a.leading()
    with structlog.testing.capture_logs() as logs:
        lease.down = True
        loop = asyncio.get_running_loop()
        since = loop.time()
        await a.leading(False)
        lasted = loop.time() - since
    assert DEADLINE - RETRY <= lasted < DEADLINE + 3 * RETRY
    assert a.events == ["holder=pilot-a", "started", "stopped"]
    assert "lease_request_failed" in [e["event"] for e in logs]
    lease.down = False
    await a.leading()  # the lease is still its own: it takes it back
    a.elector.stop()
    await task


async def test_stopping_releases_the_lease_and_a_waiting_candidate_takes_it() -> None:
    lease = MemoryLease()
    a, b = Candidate(lease, "pilot-a"), Candidate(lease, "pilot-b")
    first = asyncio.create_task(a.elector.run())
    await a.leading()
    second = asyncio.create_task(b.elector.run())
    await asyncio.sleep(3 * RETRY)
    assert not b.elector.is_leader and b.elector.leader == "pilot-a"
    a.elector.stop()
    await first
    assert a.events[-1] == "stopped" and not a.elector.is_leader
    await b.leading()
    assert lease.spec is not None
    assert (lease.spec["holderIdentity"], lease.spec["leaseTransitions"]) == ("pilot-b", 1)
    b.elector.stop()
    await second
    assert "holderIdentity" not in lease.spec  # released: free for the next one at once


async def test_a_failing_callback_does_not_stop_the_election() -> None:
    lease = MemoryLease()

    def broken() -> None:
        raise RuntimeError("callback bug")

    elector = LeaderElector(
        None, "ns", "l", "pilot-a", lease_duration=0.4, renew_deadline=0.2, retry_period=RETRY,
        on_started_leading=broken, lease_client=lease,
    )  # fmt: skip
    task = asyncio.create_task(elector.run())
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(elector.wait_until_leading(), timeout=2)
        await asyncio.sleep(2 * RETRY)
    assert elector.is_leader
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["leader_callback_failed"]
    elector.stop()
    await task


async def test_a_leader_whose_lease_was_deleted_creates_it_again() -> None:
    lease = MemoryLease()
    a = Candidate(lease)
    task = asyncio.create_task(a.elector.run())
    await a.leading()
    lease.spec = None  # kubectl delete lease
    for _ in range(100):
        if lease.spec is not None:
            break
        await asyncio.sleep(RETRY / 5)
    assert lease.spec is not None and lease.spec["holderIdentity"] == "pilot-a"
    assert a.events == ["holder=pilot-a", "started"]  # it never stopped leading
    a.elector.stop()
    await task
