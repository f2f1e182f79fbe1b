"""Request budgets: how often a polled source may call its provider.

A ``RequestBudget`` is shared by every symbol (and every history request) of
one source. It enforces hard limits over rolling windows (requests per minute,
per day, and a minimum interval between two requests) and a *pace*: the
spacing that spends the tightest limit evenly, so a 25-a-day budget is spread
over the day instead of being spent in the first 25 seconds. When a limit is
reached the caller waits (on the injectable clock); a budget never raises. A
provider's own "slow down" answer pauses the budget until a given time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from alerts.market.clock import Clock

MINUTE_S = 60.0
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """Limits of one source; ``None`` means no limit of that kind."""

    per_minute: int | None = None
    per_day: int | None = None
    min_interval_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("per_minute", "per_day"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, not {value}")
        if self.min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")

    @property
    def spacing_s(self) -> float:
        """Seconds between paced requests so that no limit is ever reached."""
        spacing = self.min_interval_s
        if self.per_minute is not None:
            spacing = max(spacing, MINUTE_S / self.per_minute)
        if self.per_day is not None:
            spacing = max(spacing, DAY_S / self.per_day)
        return spacing


class RequestBudget:
    """Rolling-window request limits with a FIFO queue of waiters."""

    def __init__(self, limits: BudgetLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._minute: deque[float] = deque()
        self._day: deque[float] = deque()
        self._last: float | None = None
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def _trim(self, now: float) -> None:
        while self._minute and self._minute[0] <= now - MINUTE_S:
            self._minute.popleft()
        while self._day and self._day[0] <= now - DAY_S:
            self._day.popleft()

    def wait_s(self, *, paced: bool = False) -> float:
        """Seconds until the next request is allowed (0: now)."""
        now = self._clock.time()
        self._trim(now)
        limits = self.limits
        ready = self._paused_until
        if self._last is not None:
            gap = limits.spacing_s if paced else limits.min_interval_s
            ready = max(ready, self._last + gap)
        if limits.per_minute is not None and len(self._minute) >= limits.per_minute:
            ready = max(ready, self._minute[-limits.per_minute] + MINUTE_S)
        if limits.per_day is not None and len(self._day) >= limits.per_day:
            ready = max(ready, self._day[-limits.per_day] + DAY_S)
        return max(0.0, ready - now)

    async def acquire(self, *, paced: bool = False) -> None:
        """Wait until a request is allowed, then count it.

        ``paced`` also keeps the even spacing (the poll loop); unpaced callers
        (warm-up history) only respect the hard limits.
        """
        async with self._lock:
            while (wait := self.wait_s(paced=paced)) > 0:
                await self._clock.sleep(wait)
            now = self._clock.time()
            self._minute.append(now)
            self._day.append(now)
            self._last = now

    def pause_until(self, when: float) -> None:
        """The provider asked to stop: no request before ``when`` (epoch seconds)."""
        self._paused_until = max(self._paused_until, when)

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def used(self) -> tuple[int, int]:
        """Requests counted in the last minute and in the last day."""
        self._trim(self._clock.time())
        return len(self._minute), len(self._day)
