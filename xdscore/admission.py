"""How fast a server admits new streams: a token bucket that new streams wait on (Istio's
PILOT_MAX_REQUESTS_PER_SECOND, which refuses a stream after a second's wait; here a stream waits its turn, so a
reconnect storm is admitted at a bounded rate instead of being refused and retried)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["DEFAULT_NEW_STREAMS_BURST", "DEFAULT_NEW_STREAMS_PER_SECOND", "AdmissionRate"]

DEFAULT_NEW_STREAMS_PER_SECOND = 100.0  # the top of Istio's PILOT_MAX_REQUESTS_PER_SECOND range
DEFAULT_NEW_STREAMS_BURST = 100


class AdmissionRate:
    """``rate`` streams a second on average, up to ``burst`` at once after a quiet spell; ``rate`` 0: no limit.

    Waiters are served in arrival order (one lock): a stream that waits longer is never overtaken."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 0:
            raise ValueError(f"the admission rate must be >= 0 streams/s, got {rate}")
        if burst < 1:
            raise ValueError(f"the admission burst must be >= 1 stream, got {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = asyncio.Lock()
        self.waiting = 0  # streams waiting for a token now

    async def admit(self) -> float:
        """Wait for a token; the seconds waited."""
        if self.rate == 0:
            return 0.0
        started = self._clock()
        self.waiting += 1
        try:
            async with self._lock:
                while (wait := self._take()) > 0:
                    await asyncio.sleep(wait)
        finally:
            self.waiting -= 1
        return self._clock() - started

    def _take(self) -> float:
        """Take a token if there is one (0.0); else the seconds until there is."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate
