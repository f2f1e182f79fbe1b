"""Binance's limits: REST request weight per minute (429, then 418 bans) and the
incoming-message rate of a stream connection.

Request weight is counted per client IP in fixed UTC minutes of the wall
clock (the ``X-MBX-USED-WEIGHT-1M`` header). Past the limit a request gets 429
with ``Retry-After`` (seconds to the next minute). A client that sends again
before the ``Retry-After`` it was given earns a strike; ``ban_after`` strikes
ban its IP for ``ban_s`` seconds (418, ``Retry-After``). ``force(seconds)``
makes every request a 429 for a while (a fault), with the same ban rule.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _IpState:
    minute: int = -1
    used: int = 0
    limited_until: float = 0.0
    told_until: float = 0.0
    strikes: int = 0
    banned_until: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """What to do with one request: ``status`` 200 (serve), 429 or 418."""

    status: int
    used: int
    retry_after_s: int = 0
    banned_until_ms: int = 0


class WeightLimiter:
    """Per-IP request weight in fixed minutes; ``clock`` is wall time in seconds."""

    def __init__(self, limit: int, *, ban_after: int = 3, ban_s: float = 120.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.ban_after = ban_after
        self.ban_s = ban_s
        self.clock = clock
        self._forced_until = 0.0
        self._ips: dict[str, _IpState] = {}

    def force(self, seconds: float) -> None:
        """Answer every request with 429 for ``seconds`` from now."""
        self._forced_until = self.clock() + seconds

    def reset(self) -> None:
        """Forget all weight, strikes, bans and forced limits."""
        self._forced_until = 0.0
        self._ips.clear()

    def used(self, ip: str) -> int:
        """Weight ``ip`` used in the current minute."""
        state = self._ips.get(ip)
        if state is None or state.minute != int(self.clock() // 60):
            return 0
        return state.used

    def charge(self, ip: str, weight: int) -> Verdict:
        now = self.clock()
        state = self._ips.setdefault(ip, _IpState())
        minute = int(now // 60)
        if state.minute != minute:
            state.minute, state.used = minute, 0
        if now < state.banned_until:
            return Verdict(418, state.used, _ceil(state.banned_until - now),
                           int(state.banned_until * 1000))
        state.used += weight
        if state.used > self.limit:
            state.limited_until = max(state.limited_until, (minute + 1) * 60.0)
        limited_until = max(state.limited_until, self._forced_until)
        if now >= limited_until:
            state.strikes = 0
            return Verdict(200, state.used)
        if now < state.told_until:
            state.strikes += 1
            if state.strikes >= self.ban_after:
                state.banned_until = now + self.ban_s
                state.strikes = 0
                return Verdict(418, state.used, _ceil(self.ban_s), int(state.banned_until * 1000))
        state.told_until = limited_until
        return Verdict(429, state.used, _ceil(limited_until - now))


def _ceil(seconds: float) -> int:
    return max(1, math.ceil(seconds))


class MessageRate:
    """True while at most ``limit`` messages arrived within any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float = 1.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    def arrive(self, now: float) -> bool:
        """Record one message at loop time ``now``; False once the limit is broken."""
        self._times.append(now)
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        return len(self._times) <= self.limit
