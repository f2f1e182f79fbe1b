"""Helpers of the stock source tests: the real bars, running a source in virtual time, engine bars."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pandas as pd

from alerts.engine.kernel import Kernel
from alerts.market.polling import PollingSource
from tests.market.fakes import FakeClock, RecordingSink
from tests.support.market_data import require_shared_data, us_stocks_1m

#: 2013-10-08 08:00 UTC = 04:00 New York, when extended hours open.
DAY_START_S = datetime(2013, 10, 8, 8, 0, tzinfo=UTC).timestamp()
KEEP = "close(1m)[1000] >= 0"      # keeps 1001 closed 1m bars for Kernel.snapshot


def bars_of(ticker: str) -> pd.DataFrame:
    require_shared_data()
    return us_stocks_1m(ticker)


async def run_until(source: PollingSource, sink: RecordingSink, clock: FakeClock,
                    stop_at_s: float) -> None:
    """Run ``source`` in virtual time until its clock passes ``stop_at_s``, then stop it."""
    clock.stop_at = stop_at_s
    await source.start(sink)
    try:
        await asyncio.wait_for(clock.reached.wait(), timeout=120)
    finally:
        await source.stop()


def engine_bars(kernel: Kernel, symbol: str) -> pd.DataFrame:
    """Every closed 1m bar the engine holds for ``symbol``, oldest first."""
    snap = kernel.snapshot(symbol, closed_bars=1001)
    assert snap is not None
    rows = [(b.open_time_ms, b.open, b.high, b.low, b.close, b.volume)
            for b in snap.bars if b.closed and b.timeframe == "1m"]
    return pd.DataFrame(rows[::-1], columns=["open_time_ms", "open", "high", "low", "close",
                                             "volume"])


def provider_bars(ticker: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    frame = bars_of(ticker)
    frame = frame[(frame["open_time_ms"] >= start_ms) & (frame["open_time_ms"] < end_ms)]
    return frame[["open_time_ms", "open", "high", "low", "close", "volume"]].reset_index(drop=True)

