"""Request-weight accounting for one REST client (``X-MBX-USED-WEIGHT-1M``).

Binance counts request weight per IP per clock minute and reports the
minute's total on every response. The tracker keeps the last reported value
(plus the cost of requests sent since), and says how long to wait before a
request of a given cost: nothing while usage is low, an even spread of the
remaining budget over the rest of the minute past ``slow_fraction`` of the
budget, and the start of the next minute when the request would exceed it.
"""

from __future__ import annotations

WEIGHT_HEADER = "x-mbx-used-weight-1m"


class WeightTracker:
    """Used weight of the current minute against ``budget`` (below the exchange's limit)."""

    def __init__(self, budget: int = 5000, *, slow_fraction: float = 0.8) -> None:
        if budget < 1 or not 0 < slow_fraction <= 1:
            raise ValueError("weight budget must be >= 1 and slow_fraction in (0, 1]")
        self.budget = budget
        self.slow_fraction = slow_fraction
        self.used = 0
        self._minute = -1

    def _roll(self, now_s: float) -> None:
        minute = int(now_s // 60)
        if minute != self._minute:
            self._minute = minute
            self.used = 0

    def observe(self, used: int, now_s: float) -> None:
        """The exchange's figure for the minute of ``now_s`` (wall clock seconds)."""
        self._roll(now_s)
        self.used = max(self.used, used)   # our count includes requests still in flight

    def spend(self, cost: int, now_s: float) -> None:
        """A request of ``cost`` is being sent (counted until the answer reports)."""
        self._roll(now_s)
        self.used += cost

    def delay(self, cost: int, now_s: float) -> float:
        """Seconds to wait before sending a request of ``cost``."""
        self._roll(now_s)
        left_in_minute = 60.0 - (now_s % 60.0)
        if self.used + cost > self.budget:
            return left_in_minute + 0.05
        soft = self.budget * self.slow_fraction
        if self.used + cost <= soft:
            return 0.0
        remaining = self.budget - self.used
        return left_in_minute * cost / max(remaining, cost)
