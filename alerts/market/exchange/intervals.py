"""Binance kline intervals: parsing, UTC bucket arithmetic and bar enumeration.

Fixed-length intervals (``1s`` .. ``3d``) are aligned to the Unix epoch, ``1w``
to Mondays 00:00 UTC and ``1M`` to calendar months, as Binance aligns them with
``timeZone=0``. All times are epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_SECOND = 1000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_MONDAY_OFFSET = 4 * _DAY   # 1970-01-01 was a Thursday; 1970-01-05 a Monday

_FIXED: dict[str, tuple[int, int]] = {
    "1s": (_SECOND, 0), "1m": (_MINUTE, 0), "3m": (3 * _MINUTE, 0), "5m": (5 * _MINUTE, 0),
    "15m": (15 * _MINUTE, 0), "30m": (30 * _MINUTE, 0), "1h": (_HOUR, 0), "2h": (2 * _HOUR, 0),
    "4h": (4 * _HOUR, 0), "6h": (6 * _HOUR, 0), "8h": (8 * _HOUR, 0), "12h": (12 * _HOUR, 0),
    "1d": (_DAY, 0), "3d": (3 * _DAY, 0), "1w": (7 * _DAY, _MONDAY_OFFSET),
}

INTERVAL_NAMES: tuple[str, ...] = (*_FIXED, "1M")
"""Every interval Binance accepts (case-sensitive: ``1m`` is a minute, ``1M`` a month)."""


@dataclass(frozen=True)
class Interval:
    """One kline interval; ``length_ms`` is 0 for the calendar month."""

    name: str
    length_ms: int
    offset_ms: int

    @property
    def monthly(self) -> bool:
        return self.length_ms == 0

    def floor(self, time_ms: int) -> int:
        """Open time of the bar holding ``time_ms``."""
        if self.monthly:
            month = np.datetime64(int(time_ms), "ms").astype("datetime64[M]")
            return int(month.astype("datetime64[ms]").astype(np.int64))
        return (time_ms - self.offset_ms) // self.length_ms * self.length_ms + self.offset_ms

    def next_open(self, open_ms: int) -> int:
        """Open time of the bar after the one opening at ``open_ms``."""
        if self.monthly:
            month = np.datetime64(int(open_ms), "ms").astype("datetime64[M]") + 1
            return int(month.astype("datetime64[ms]").astype(np.int64))
        return open_ms + self.length_ms

    def ceil(self, time_ms: int) -> int:
        """Open time of the first bar opening at or after ``time_ms``."""
        start = self.floor(time_ms)
        return start if start == time_ms else self.next_open(start)

    def opens(self, first_ms: int, last_ms: int) -> npt.NDArray[np.int64]:
        """Open times from the bar opening at ``first_ms`` to the one at ``last_ms``, inclusive."""
        if last_ms < first_ms:
            return np.empty(0, np.int64)
        if self.monthly:
            lo = np.datetime64(int(first_ms), "ms").astype("datetime64[M]")
            hi = np.datetime64(int(last_ms), "ms").astype("datetime64[M]")
            return np.arange(lo, hi + 1).astype("datetime64[ms]").astype(np.int64)
        return np.arange(first_ms, last_ms + 1, self.length_ms, dtype=np.int64)

    def step_back(self, open_ms: int, bars: int) -> int:
        """Open time ``bars`` bars before ``open_ms``."""
        if self.monthly:
            month = np.datetime64(int(open_ms), "ms").astype("datetime64[M]") - bars
            return int(month.astype("datetime64[ms]").astype(np.int64))
        return open_ms - bars * self.length_ms


def parse_interval(name: str) -> Interval | None:
    """The interval called ``name``, or None when Binance has no such interval."""
    if name == "1M":
        return Interval("1M", 0, 0)
    fixed = _FIXED.get(name)
    if fixed is None:
        return None
    return Interval(name, fixed[0], fixed[1])
