"""The pure part of leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` (the
package Istio's ``pkg/leaderelection`` runs) decides it: the record a candidate writes, and when a lease counts as
held by someone else. ``kube_leader`` does the requests; everything here takes its clocks as arguments.

A Lease's spec is the record: ``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime`` and ``renewTime``
(``MicroTime``: RFC 3339 with exactly six fractional digits, in UTC) and ``leaseTransitions`` (how many times the
holder changed). As in client-go:

- A lease is free when it has no holder; otherwise it is held until ``lease_duration`` after this candidate *saw*
  its record change (its own monotonic clock, not the holder's ``renewTime``: clocks of two machines may differ).
- The holder renewing keeps ``acquireTime`` and ``leaseTransitions``; a new holder sets ``acquireTime`` and adds one
  to ``leaseTransitions`` (a lease just created starts at 0).
- Releasing writes no holder and ``leaseDurationSeconds: 1``, keeping the transitions: the next candidate to try takes
  it at once.
- Timing: ``lease_duration > renew_deadline > 1.2 * retry_period`` (client-go's ``JitterFactor``), all positive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "JITTER_FACTOR",
    "LeaseRecord",
    "LeaseTiming",
    "ObservedLease",
    "claim",
    "format_micro_time",
    "held_by_another",
    "observe",
    "parse_micro_time",
    "released",
]

JITTER_FACTOR = 1.2  # client-go's: retries are spread by up to this many retry periods


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTiming:
    """How long a lease lasts unrenewed, how long a leader keeps trying to renew before it gives up leadership, and
    how often candidates try (client-go's LeaseDuration, RenewDeadline, RetryPeriod), in seconds."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if min(self.lease_duration, self.renew_deadline, self.retry_period) <= 0:
            raise ValueError(f"lease timing must be positive: {self}")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(
                f"lease_duration ({self.lease_duration}s) must be longer than renew_deadline ({self.renew_deadline}s)"
            )
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError(
                f"renew_deadline ({self.renew_deadline}s) must be longer than {JITTER_FACTOR} * retry_period "
                f"({self.retry_period}s)"
            )

    @property
    def lease_duration_seconds(self) -> int:
        """``leaseDurationSeconds`` as written (whole seconds, at least 1)."""
        return max(1, math.ceil(self.lease_duration))


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    """A Lease's spec, as client-go's ``LeaderElectionRecord``."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LeaseRecord:
        """The record of a Lease's ``spec`` as the API returns it (absent fields: empty)."""
        return cls(
            holder=_string(spec.get("holderIdentity")),
            lease_duration_seconds=_integer(spec.get("leaseDurationSeconds")),
            acquire_time=parse_micro_time(spec.get("acquireTime")),
            renew_time=parse_micro_time(spec.get("renewTime")),
            transitions=_integer(spec.get("leaseTransitions")),
        )

    def spec(self) -> dict[str, Any]:
        """The Lease ``spec`` that writes this record (an empty holder is written as no holder)."""
        spec: dict[str, Any] = {
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.holder:
            spec["holderIdentity"] = self.holder
        if self.acquire_time is not None:
            spec["acquireTime"] = format_micro_time(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = format_micro_time(self.renew_time)
        return spec


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservedLease:
    """A Lease as a candidate last read it: its record, its ``resourceVersion`` (for the next write's optimistic
    concurrency) and when (this candidate's monotonic clock) its record was first seen as it is."""

    record: LeaseRecord
    resource_version: str
    observed_at: float


def observe(previous: ObservedLease | None, record: LeaseRecord, resource_version: str, now: float) -> ObservedLease:
    """The lease read at ``now``: its observation time moves only when the record changed (an unrenewed lease
    expires ``lease_duration`` after it was first seen, however often it is read)."""
    if previous is not None and previous.record == record:
        return replace(previous, resource_version=resource_version)
    return ObservedLease(record=record, resource_version=resource_version, observed_at=now)


def held_by_another(observed: ObservedLease, identity: str, timing: LeaseTiming, now: float) -> bool:
    """Whether someone other than ``identity`` holds the lease at ``now`` (it has a holder, and less than
    ``lease_duration`` passed since its record last changed)."""
    holder = observed.record.holder
    return bool(holder) and holder != identity and now < observed.observed_at + timing.lease_duration


def claim(observed: ObservedLease | None, identity: str, timing: LeaseTiming, wall_now: datetime) -> LeaseRecord:
    """The record ``identity`` writes to take (or, holding it, renew) the lease at ``wall_now``; ``observed`` None
    when the lease does not exist yet."""
    if observed is None:
        return LeaseRecord(
            holder=identity,
            lease_duration_seconds=timing.lease_duration_seconds,
            acquire_time=wall_now,
            renew_time=wall_now,
            transitions=0,
        )
    before = observed.record
    if before.holder == identity:
        return replace(before, lease_duration_seconds=timing.lease_duration_seconds, renew_time=wall_now)
    return LeaseRecord(
        holder=identity,
        lease_duration_seconds=timing.lease_duration_seconds,
        acquire_time=wall_now,
        renew_time=wall_now,
        transitions=before.transitions + 1,
    )


def released(observed: ObservedLease, wall_now: datetime) -> LeaseRecord:
    """The record a holder writes when it stops: no holder, a 1 s duration, the transitions kept (client-go's
    ``ReleaseOnCancel``)."""
    return LeaseRecord(
        holder="",
        lease_duration_seconds=1,
        acquire_time=wall_now,
        renew_time=wall_now,
        transitions=observed.record.transitions,
    )


def format_micro_time(moment: datetime) -> str:
    """``2026-12-02T04:34:04.123456Z``: Kubernetes' ``MicroTime`` (UTC, always six fractional digits)."""
    if moment.tzinfo is None:
        raise ValueError(f"a MicroTime needs a time zone: {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(value: object) -> datetime | None:
    """A ``MicroTime`` (or a plain RFC 3339 time) as an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _integer(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
