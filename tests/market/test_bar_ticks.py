"""Bars replayed as ticks rebuild exactly the same 1m bar in the engine."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.engine.kernel import Kernel
from alerts.market.bar_ticks import bar_ticks
from alerts.market.base import Bar

T0 = 1_381_239_000_000          # 2013-10-08 13:30 UTC, on a minute boundary


@pytest.mark.parametrize("bar", [
    Bar("us:SPY", "1m", T0, 165.48, 165.60, 165.41, 165.52, 29_062_853.0),   # up bar
    Bar("us:SPY", "1m", T0, 165.48, 165.50, 165.20, 165.21, 1_001.0),        # down bar
    Bar("us:SPY", "1m", T0, 10.0, 10.0, 10.0, 10.0, 3.0),                     # flat, tiny volume
    Bar("us:SPY", "1m", T0, 10.1, 10.3, 10.0, 10.2, 0.7),                     # fractional volume
])
def test_ticks_rebuild_the_bar_in_the_engine(bar: Bar) -> None:
    ticks = bar_ticks(bar)
    assert [t.time_ms for t in ticks] == sorted(t.time_ms for t in ticks)
    assert all(T0 <= t.time_ms < T0 + 60_000 and t.trade_id == 0 for t in ticks)
    kernel = Kernel(default_venue="us")
    kernel.add_rule("keep", bar.symbol, "close(1m) > 0", mode="ONCE_PER_BAR_CLOSE")
    src = kernel.add_source(fill_gaps=False, grace_ms=0)
    kernel.process(src, kernel.intern([t.symbol for t in ticks]),
                   np.array([t.time_ms for t in ticks]), np.array([t.price for t in ticks]),
                   np.array([t.qty for t in ticks]), np.zeros(len(ticks), np.int64))
    kernel.advance_clock(src, T0 + 60_000)
    snap = kernel.snapshot(bar.symbol)
    assert snap is not None
    closed = [b for b in snap.bars if b.closed and b.timeframe == "1m"]
    assert len(closed) == 1
    got = closed[0]
    assert (got.open_time_ms, got.open, got.high, got.low, got.close, got.volume) == (
        bar.open_ms, bar.open, bar.high, bar.low, bar.close, bar.volume)
