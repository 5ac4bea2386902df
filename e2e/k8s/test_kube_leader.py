"""Leader election on a real API server's Lease (``meshplane.kube_leader``): candidates racing for one lease, a
released lease taken over within the retry period, a leader stepping down when someone else wrote its lease, and the
Lease's fields as client-go writes them. Timings are short (3 s lease, 2 s renew deadline, 0.5 s retry period)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from kubernetes import client

from meshplane.kube_leader import LeaderElector, LeaseClient
from meshplane.kube_lease import LeaseRecord, LeaseTiming, format_micro_time, parse_micro_time

NAMESPACE_PREFIX = "lease"  # kube_namespace's

TIMING = LeaseTiming(lease_duration=3.0, renew_deadline=2.0, retry_period=0.5)
LEASE = "pilot-status"


class Candidate:
    """An elector and what its callbacks saw."""

    def __init__(self, api: client.ApiClient, namespace: str, identity: str) -> None:
        self.events: list[str] = []
        self.elector = LeaderElector(
            api,
            namespace,
            LEASE,
            identity,
            on_started_leading=lambda: self.events.append("started"),
            on_stopped_leading=lambda: self.events.append("stopped"),
            lease_duration=TIMING.lease_duration,
            renew_deadline=TIMING.renew_deadline,
            retry_period=TIMING.retry_period,
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run())

    async def stop(self) -> None:
        self.elector.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, timeout=10)


@asynccontextmanager
async def candidates(api: client.ApiClient, namespace: str, *identities: str) -> AsyncIterator[list[Candidate]]:
    running = [Candidate(api, namespace, identity) for identity in identities]
    for candidate in running:
        candidate.start()
    try:
        yield running
    finally:
        for candidate in running:
            await candidate.stop()


async def until(what: str, probe: Callable[[], bool], timeout: float = 15.0) -> float:
    """Seconds until ``probe()`` is true (polled every 50 ms)."""
    start = time.monotonic()
    while not probe():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def read_lease(api: client.ApiClient, namespace: str) -> tuple[LeaseRecord, dict[str, object]]:
    response = LeaseClient(api, namespace, LEASE).get(timeout=5)
    assert response.status == 200, response.reason()
    spec = dict(response.body["spec"])
    return LeaseRecord.from_spec(spec), spec


async def test_two_candidates_racing_for_one_lease_elect_exactly_one(
    kube_api: client.ApiClient, kube_namespace: str
) -> None:
    async with candidates(kube_api, kube_namespace, "pilot-a", "pilot-b") as (a, b):
        await until("a leader", lambda: a.elector.is_leader or b.elector.is_leader)
        await asyncio.sleep(4 * TIMING.retry_period)  # several renewals and tries later: still exactly one
        leaders = [c for c in (a, b) if c.elector.is_leader]
        assert len(leaders) == 1
        leader, other = (a, b) if leaders[0] is a else (b, a)
        record, spec = read_lease(kube_api, kube_namespace)
        assert record.holder == leader.elector.identity
        assert other.elector.leader == leader.elector.identity
        assert (leader.events, other.events) == (["started"], [])
        # as client-go writes a Lease: whole-second duration, MicroTime with six fractional digits, no transition yet
        assert spec["leaseDurationSeconds"] == 3
        assert spec["leaseTransitions"] == 0
        for field in ("acquireTime", "renewTime"):
            moment = parse_micro_time(spec[field])
            assert moment is not None and spec[field] == format_micro_time(moment), spec[field]
        assert record.renew_time is not None and record.acquire_time is not None
        assert record.renew_time > record.acquire_time  # renewed since acquired
        assert abs((datetime.now(UTC) - record.renew_time).total_seconds()) < 2


async def test_a_stopping_leader_hands_over_within_the_retry_period(
    kube_api: client.ApiClient, kube_namespace: str
) -> None:
    async with candidates(kube_api, kube_namespace, "pilot-a") as (a,):
        await until("pilot-a leading", lambda: a.elector.is_leader)
        async with candidates(kube_api, kube_namespace, "pilot-b") as (b,):
            await asyncio.sleep(2 * TIMING.retry_period)
            assert not b.elector.is_leader and b.elector.leader == "pilot-a"
            await a.stop()
            assert a.events == ["started", "stopped"]
            handover = await until("pilot-b leading", lambda: b.elector.is_leader)
            assert handover < TIMING.retry_period + 0.5, f"took {handover:.2f}s"
            record, _ = read_lease(kube_api, kube_namespace)
            assert (record.holder, record.transitions) == ("pilot-b", 1)


async def test_a_leader_whose_lease_someone_else_wrote_steps_down(
    kube_api: client.ApiClient, kube_namespace: str
) -> None:
    async with candidates(kube_api, kube_namespace, "pilot-a") as (a,):
        await until("pilot-a leading", lambda: a.elector.is_leader)
        lease = LeaseClient(kube_api, kube_namespace, LEASE)
        got = lease.get(timeout=5)
        now = datetime.now(UTC)
        intruder = LeaseRecord(
            holder="intruder", lease_duration_seconds=3600, acquire_time=now, renew_time=now, transitions=7
        )
        written = lease.replace(intruder, got.body["metadata"]["resourceVersion"], timeout=5)
        assert written.ok, written.reason()
        stepped_down = await until("pilot-a stepping down", lambda: not a.elector.is_leader)
        assert stepped_down < 2 * TIMING.retry_period + 0.5, f"took {stepped_down:.2f}s"
        assert a.events == ["started", "stopped"]
        assert a.elector.leader == "intruder"
        await asyncio.sleep(4 * TIMING.retry_period)  # the intruder's lease is valid for an hour: no retake
        assert not a.elector.is_leader
        record, _ = read_lease(kube_api, kube_namespace)
        assert (record.holder, record.transitions) == ("intruder", 7)
