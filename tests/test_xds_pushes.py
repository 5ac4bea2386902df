"""Debounce: a burst becomes one push after a quiet period; a steady stream still pushes every max delay."""

from __future__ import annotations

import asyncio
import time

import pytest

from pilot.xds import Debouncer


class Flushes:
    def __init__(self) -> None:
        self.at: list[float] = []
        self.first_change: list[float] = []
        self.event = asyncio.Event()

    async def __call__(self, first_change_at: float) -> None:
        self.at.append(time.monotonic())
        self.first_change.append(first_change_at)
        self.event.set()


async def test_burst_is_flushed_once_after_the_quiet_period() -> None:
    flushes = Flushes()
    debouncer = Debouncer(quiet=0.25, max_delay=5.0, flush=flushes)
    debouncer.start()
    try:
        started = time.monotonic()
        for _ in range(5):
            debouncer.trigger()
            last = time.monotonic()
            await asyncio.sleep(0.01)
        await asyncio.wait_for(flushes.event.wait(), 5.0)
        await asyncio.sleep(0.3)
        assert len(flushes.at) == 1
        assert flushes.at[0] >= last + 0.25 - 0.005  # waited for quiet after the last change
        assert started <= flushes.first_change[0] <= last
    finally:
        await debouncer.stop()


async def test_steady_changes_are_pushed_every_max_delay() -> None:
    flushes = Flushes()
    debouncer = Debouncer(quiet=0.1, max_delay=0.2, flush=flushes)
    debouncer.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < 0.7:  # never quiet for 100ms
            debouncer.trigger()
            await asyncio.sleep(0.02)
        assert len(flushes.at) >= 2
        assert flushes.at[0] - started < 0.2 + 0.25  # the max delay, not the end of the stream (0.7s)
    finally:
        await debouncer.stop()


async def test_a_failed_flush_does_not_stop_later_ones() -> None:
    calls: list[float] = []

    async def flush(first_change_at: float) -> None:
        calls.append(first_change_at)
        if len(calls) == 1:
            raise RuntimeError("generator bug")

    debouncer = Debouncer(quiet=0.0, max_delay=0.0, flush=flush)
    debouncer.start()
    try:
        debouncer.trigger()
        async with asyncio.timeout(2.0):
            while len(calls) < 1:
                await asyncio.sleep(0.01)
        debouncer.trigger()
        async with asyncio.timeout(2.0):
            while len(calls) < 2:
                await asyncio.sleep(0.01)
    finally:
        await debouncer.stop()


@pytest.mark.parametrize(
    ("flush_pending", "trigger_before_start", "at_once"),
    [(True, True, True), (False, True, False), (True, False, False)],
    ids=["pending-at-start-flushed-at-once", "pending-at-start-waits-when-not-asked", "later-change-waits"],
)
async def test_a_change_pending_at_start_can_skip_the_quiet_period(
    flush_pending: bool, trigger_before_start: bool, at_once: bool
) -> None:
    flushes = Flushes()
    debouncer = Debouncer(quiet=0.3, max_delay=5.0, flush=flushes)
    if trigger_before_start:
        debouncer.trigger()
    debouncer.start(flush_pending=flush_pending)
    try:
        if not trigger_before_start:
            await asyncio.sleep(0.01)
            debouncer.trigger()
        triggered = time.monotonic()
        await asyncio.wait_for(flushes.event.wait(), 5.0)
        waited = flushes.at[0] - triggered
        assert waited < 0.2 if at_once else waited >= 0.3 - 0.005, waited
        flushes.event.clear()
        debouncer.trigger()  # the next change waits for its quiet period again
        triggered = time.monotonic()
        await asyncio.wait_for(flushes.event.wait(), 5.0)
        assert flushes.at[1] - triggered >= 0.3 - 0.005
    finally:
        await debouncer.stop()


@pytest.mark.parametrize(
    ("quiet", "max_delay", "message"),
    [(-1.0, 1.0, "quiet period must be >= 0"), (0.5, 0.1, "must be >= the quiet period")],
    ids=["negative-quiet", "max-below-quiet"],
)
def test_invalid_debounce_settings(quiet: float, max_delay: float, message: str) -> None:
    async def flush(first_change_at: float) -> None:
        return None

    with pytest.raises(ValueError, match=message):
        Debouncer(quiet=quiet, max_delay=max_delay, flush=flush)
