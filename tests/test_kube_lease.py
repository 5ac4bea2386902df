"""The pure rules of leader election on a Lease (``meshplane.kube_lease``), with the clocks given: what a candidate
writes to take, renew or release a lease, when a lease counts as held, and the Lease's fields as client-go writes
them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from meshplane.kube_lease import (
    LeaseRecord,
    LeaseTiming,
    ObservedLease,
    claim,
    format_micro_time,
    held_by_another,
    observe,
    parse_micro_time,
    released,
)

TIMING = LeaseTiming(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)
T0 = datetime(2026, 12, 2, 4, 34, 4, 120000, tzinfo=UTC)
T1 = T0 + timedelta(seconds=2)


def seen(holder: str, *, at: float = 100.0, transitions: int = 3) -> ObservedLease:
    record = LeaseRecord(
        holder=holder, lease_duration_seconds=15, acquire_time=T0, renew_time=T0, transitions=transitions
    )
    return ObservedLease(record=record, resource_version="41", observed_at=at)


@pytest.mark.parametrize(
    ("timing", "problem"),
    [
        ((15.0, 15.0, 2.0), "lease_duration (15.0s) must be longer than renew_deadline (15.0s)"),
        ((15.0, 2.4, 2.0), "renew_deadline (2.4s) must be longer than 1.2 * retry_period (2.0s)"),
        ((15.0, 10.0, 0.0), "lease timing must be positive"),
    ],
    ids=["duration-not-above-deadline", "deadline-within-jitter", "zero-retry"],
)
def test_lease_timing_follows_client_go_rules(timing: tuple[float, float, float], problem: str) -> None:
    duration, deadline, retry = timing
    with pytest.raises(ValueError, match=re.escape(problem)):
        LeaseTiming(lease_duration=duration, renew_deadline=deadline, retry_period=retry)


def test_lease_duration_is_written_in_whole_seconds() -> None:
    assert LeaseTiming(lease_duration=2.5, renew_deadline=2.0, retry_period=0.5).lease_duration_seconds == 3


@pytest.mark.parametrize(
    ("now", "holder", "held"),
    [
        (100.0, "", False),
        (100.0, "pilot-a", False),
        (114.9, "pilot-b", True),
        (115.0, "pilot-b", False),
    ],
    ids=["free", "ours", "another-within-duration", "another-expired"],
)
def test_a_lease_is_held_by_another_until_its_duration_after_it_was_seen(now: float, holder: str, held: bool) -> None:
    assert held_by_another(seen(holder, at=100.0), "pilot-a", TIMING, now) is held


def test_expiry_counts_from_when_the_record_last_changed_not_from_each_read() -> None:
    first = seen("pilot-b", at=100.0)
    again = observe(first, first.record, "42", now=110.0)  # read again, unchanged
    assert (again.observed_at, again.resource_version) == (100.0, "42")
    renewed = observe(again, LeaseRecord(holder="pilot-b", renew_time=T1), "43", now=112.0)
    assert renewed.observed_at == 112.0
    assert held_by_another(renewed, "pilot-a", TIMING, now=120.0)


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        (None, LeaseRecord(holder="pilot-a", lease_duration_seconds=15, acquire_time=T1, renew_time=T1, transitions=0)),
        (
            seen("pilot-a"),
            LeaseRecord(holder="pilot-a", lease_duration_seconds=15, acquire_time=T0, renew_time=T1, transitions=3),
        ),
        (
            seen("pilot-b"),
            LeaseRecord(holder="pilot-a", lease_duration_seconds=15, acquire_time=T1, renew_time=T1, transitions=4),
        ),
        (
            seen(""),
            LeaseRecord(holder="pilot-a", lease_duration_seconds=15, acquire_time=T1, renew_time=T1, transitions=4),
        ),
    ],
    ids=["create", "renew-keeps-acquire-time", "take-over-counts-a-transition", "take-released"],
)
def test_the_record_a_candidate_writes(observed: ObservedLease | None, expected: LeaseRecord) -> None:
    assert claim(observed, "pilot-a", TIMING, T1) == expected


def test_release_clears_the_holder_and_keeps_the_transitions() -> None:
    record = released(seen("pilot-a", transitions=5), T1)
    assert record == LeaseRecord(holder="", lease_duration_seconds=1, acquire_time=T1, renew_time=T1, transitions=5)
    assert record.spec() == {
        "leaseDurationSeconds": 1,
        "leaseTransitions": 5,
        "acquireTime": "2026-12-02T04:34:06.120000Z",
        "renewTime": "2026-12-02T04:34:06.120000Z",
    }


def test_a_lease_spec_reads_back_as_written() -> None:
    record = claim(None, "pilot-a", TIMING, T0)
    spec = record.spec()
    assert spec == {
        "holderIdentity": "pilot-a",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 0,
        "acquireTime": "2026-12-02T04:34:04.120000Z",
        "renewTime": "2026-12-02T04:34:04.120000Z",
    }
    assert LeaseRecord.from_spec(spec) == record


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-02T04:34:04.120000Z", T0),
        ("2026-12-02T04:34:04Z", T0.replace(microsecond=0)),
        ("2026-12-02T06:34:04.120000+02:00", T0),
        ("yesterday", None),
        (None, None),
    ],
    ids=["micro-time", "time", "offset", "unreadable", "absent"],
)
def test_micro_times_are_read(value: object, expected: datetime | None) -> None:
    assert parse_micro_time(value) == expected


def test_micro_times_are_written_in_utc_with_six_digits() -> None:
    local = datetime(2026, 12, 2, 6, 34, 4, tzinfo=timezone(timedelta(hours=2)))
    assert format_micro_time(local) == "2026-12-02T04:34:04.000000Z"
    with pytest.raises(ValueError, match="needs a time zone"):
        format_micro_time(datetime(2026, 12, 2))  # the naive time under test
