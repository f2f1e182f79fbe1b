"""Closed provider bars replayed as ticks that rebuild them exactly in the engine.

Polled stock sources get 1-minute OHLCV bars, not trades. Each bar becomes four
ticks inside its minute: the open at the bar's open time, then the low and the
high (low first for a bar that closed at or above its open, high first for one
that closed below: the usual guess at the path), and the close at the last
millisecond of the minute. The engine's 1m bar built from them has exactly the
provider's open, high, low and close. The volume is split over the four ticks
in whole shares (three equal parts and the remainder, all integers, so their
float sum is exact); a fractional or tiny volume goes whole on the close tick.
Ticks carry trade id 0 (never deduplicated); the engine counts four trades per
bar.
"""

from __future__ import annotations

from alerts.market.base import Bar, Tick

MINUTE_MS = 60_000
_OFFSETS_MS = (0, 20_000, 40_000, MINUTE_MS - 1)


def _volume_parts(volume: float) -> tuple[float, float, float, float]:
    if volume >= 4 and volume.is_integer() and volume < 2.0**53:
        part = float(int(volume) // 4)
        return part, part, part, volume - 3 * part
    return 0.0, 0.0, 0.0, volume


def bar_ticks(bar: Bar) -> list[Tick]:
    """Four ticks, in time order, that rebuild ``bar`` (a 1m bar) in the engine."""
    if bar.close >= bar.open:
        prices = (bar.open, bar.low, bar.high, bar.close)
    else:
        prices = (bar.open, bar.high, bar.low, bar.close)
    return [
        Tick(bar.symbol, price, qty, bar.open_ms + offset, 0)
        for price, qty, offset in zip(prices, _volume_parts(bar.volume), _OFFSETS_MS)
    ]
