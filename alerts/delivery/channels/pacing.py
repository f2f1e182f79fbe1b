"""Local rate limiting of one destination: a token bucket plus a "not before" time.

A sender asks ``Pacer.reserve()`` for its turn and gets the delay to wait before
sending; reservations queue up fairly (the bucket may go negative), so concurrent
callers are spaced out without a lock. ``hold_for(seconds)`` records the
destination's own limit (Discord's ``X-RateLimit-Reset-After``, a 429's
``retry_after``): no reservation starts before it ends. ``cancel()`` gives back a
reservation the caller decided not to use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Pacer:
    """``rate`` sends per second with bursts of ``burst``, never before a held time."""

    def __init__(self, rate: float, burst: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._updated = clock()
        self._not_before = 0.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    def reserve(self) -> float:
        """Take a turn; return the seconds to wait before using it (0: go now)."""
        now = self._clock()
        self._refill(now)
        self._tokens -= 1.0
        bucket_wait = 0.0 if self._tokens >= 0 else -self._tokens / self._rate
        return max(bucket_wait, self._not_before - now, 0.0)

    def cancel(self) -> None:
        """Give back the last reservation (not sent)."""
        self._tokens = min(self._burst, self._tokens + 1.0)

    def hold_for(self, seconds: float) -> None:
        """The destination asked for a pause: no turn starts within ``seconds`` from now."""
        self._not_before = max(self._not_before, self._clock() + max(seconds, 0.0))

    async def wait_turn(self, max_wait_s: float) -> float | None:
        """Wait for a turn; None when it came, else the (too long) wait, with nothing taken."""
        delay = self.reserve()
        if delay > max_wait_s:
            self.cancel()
            return delay
        if delay > 0:
            await asyncio.sleep(delay)
        return None
