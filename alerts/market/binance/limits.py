"""Client-side limits: sliding-window rate limiters and reconnect backoff.

``SlidingWindowLimiter`` admits at most ``limit`` acquisitions in any window of
``window_s`` seconds, in call order (control messages per connection: 5 per
second; connection attempts: 300 per 5 minutes). ``full_jitter`` is the
"full jitter" exponential backoff: a uniform delay in [0, min(cap, base * 2^n)].
The clock and sleep are injectable so the arithmetic is tested without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable


class SlidingWindowLimiter:
    """At most ``limit`` events in any ``window_s`` seconds; ``acquire`` waits its turn."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a limiter needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    def delay(self, now: float | None = None) -> float:
        """Seconds until one more event is allowed (0: now)."""
        now = self._clock() if now is None else now
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        if len(self._times) < self.limit:
            return 0.0
        return self._times[0] + self.window_s - now

    def record(self, now: float | None = None) -> None:
        self._times.append(self._clock() if now is None else now)

    async def acquire(self) -> float:
        """Wait until allowed, record the event; returns the seconds waited."""
        waited = 0.0
        async with self._lock:
            while (d := self.delay()) > 0:
                waited += d
                await self._sleep(d)
            self.record()
        return waited


def full_jitter(attempt: int, *, base_s: float, cap_s: float,
                rng: random.Random | None = None) -> float:
    """Delay before retry ``attempt`` (0-based): uniform in [0, min(cap, base * 2^attempt)]."""
    ceiling = min(cap_s, base_s * (2.0 ** min(attempt, 62)))
    return (rng or random).uniform(0.0, ceiling)
