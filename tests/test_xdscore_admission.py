"""New streams wait for a token: a burst at once, then the rate; nobody is refused."""

from __future__ import annotations

import asyncio

import pytest

from xdscore import AdmissionRate


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_burst_is_admitted_at_once_and_the_rest_waits() -> None:
    clock = FakeClock()
    admission = AdmissionRate(10.0, 2, clock=clock)
    assert await admission.admit() == 0.0
    assert await admission.admit() == 0.0
    third = asyncio.create_task(admission.admit())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not third.done(), "no token left: the third stream waits"
    assert admission.waiting == 1
    clock.now = 0.125  # one token refilled at 10/s
    assert await asyncio.wait_for(third, 5.0) == pytest.approx(0.125)
    assert admission.waiting == 0


async def test_tokens_refill_up_to_the_burst_only() -> None:
    clock = FakeClock()
    admission = AdmissionRate(10.0, 2, clock=clock)
    clock.now = 100.0
    for _ in range(2):
        assert await admission.admit() == 0.0
    waiting = asyncio.create_task(admission.admit())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not waiting.done(), "a long quiet spell saves at most the burst"
    clock.now = 100.25
    await asyncio.wait_for(waiting, 5.0)


async def test_rate_zero_admits_everyone() -> None:
    admission = AdmissionRate(0.0, 1)
    for _ in range(1000):
        assert await admission.admit() == 0.0


@pytest.mark.parametrize(("rate", "burst"), [(-1.0, 1), (1.0, 0)], ids=["negative-rate", "zero-burst"])
def test_bad_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="admission"):
        AdmissionRate(rate, burst)
