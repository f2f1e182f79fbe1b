"""The Binance source feeding the real engine: a faulty run fires exactly the alerts of a clean one.

A test-side ``MarketSink`` turns each batch into numpy columns for
``Kernel.process`` and each watermark into ``Kernel.advance_clock`` (what the
engine side does). The same rules run twice over the same replayed minutes:
once with no fault, once with a dropped connection, a silent stall, bad and
reordered frames and REST rate limits along the way. The fired alerts (rule,
symbol, event time, trade id, rank, operand values) must be equal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from alerts.engine.kernel import Fired, Kernel
from alerts.market.base import SourceEvent, Tick
from alerts.market.binance import SPOT, BinanceSource
from alerts.market.exchange import ReplayExchange
from tests.market.binance.conftest import Sink, expected_ticks
from tests.support.market_data import (  # noqa: F401 - fixture
    SPOT_TRADES_FILE,
    binance_spot_trades,
    shared_data,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.data]

MIN = 60_000
RULES = [
    ("close(1m) crosses_above sma(3, 1m)", "ONCE_PER_BAR_CLOSE", None),
    ("rsi(2, 1m) > 50", "ON_TRUE", None),
    ("price crosses vwap()", "EVERY_TIME", 5_000),
    ("change_pct(1, 1m) > 0.02", "ONCE_PER_BAR", None),
]


class KernelSink(Sink):
    """Records like ``Sink`` and runs every batch and watermark through a ``Kernel``."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = Kernel()
        self.src = self.kernel.add_source(fill_gaps=True, grace_ms=1000, name="binance")
        self.fired: list[Fired] = []
        for sym in ("BTCUSDT", "ETHUSDT"):
            for i, (cond, mode, cooldown) in enumerate(RULES):
                self.kernel.add_rule(f"{sym}-{i}", f"binance:{sym}", cond, mode=mode,
                                     cooldown_ms=cooldown)

    async def ticks(self, source: str, ticks: Sequence[Tick]) -> None:
        await super().ticks(source, ticks)
        k = self.kernel
        self.fired += k.process(self.src, k.intern([t.symbol for t in ticks]),
                                np.array([t.time_ms for t in ticks], np.int64),
                                np.array([t.price for t in ticks]),
                                np.array([t.qty for t in ticks]),
                                np.array([t.trade_id for t in ticks], np.int64))
        assert self.kernel.last_counts.late == 0 and self.kernel.last_counts.duplicate == 0

    async def watermark(self, source: str, time_ms: int) -> None:
        await super().watermark(source, time_ms)
        self.fired += self.kernel.advance_clock(self.src, time_ms)

    async def event(self, event: SourceEvent) -> None:
        await super().event(event)


Step = Callable[[ReplayExchange], object]


async def run(data: Path, faults: dict[int, Step]) -> tuple[KernelSink, list[str]]:
    """Replay five minutes in steps of one; before step i, apply ``faults[i]``."""
    start = min(int(binance_spot_trades(s)["time_ms"].iloc[0]) for s in ("BTCUSDT", "ETHUSDT"))
    sink = KernelSink()
    async with ReplayExchange.from_files([data / SPOT_TRADES_FILE], speed=0, paused=True,
                                         kline_update_s=0.1) as ex:
        src = BinanceSource(SPOT, ws_url=ex.ws_url, rest_url=ex.rest_url, stale_after_s=0.6,
                            probe_after_s=0.4, backoff_base_s=0.05)
        await src.start(sink)
        try:
            await src.subscribe(["BTCUSDT", "ETHUSDT"])
            await ex.wait_subscribed("ethusdt@aggTrade", timeout=5)
            for step in range(1, 6):
                fault = faults.get(step)
                if fault is not None:
                    fault(ex)
                end = start + step * MIN
                await ex.run_until(end)
                n = sum(len(expected_ticks(s, until_ms=end)) for s in ("BTCUSDT", "ETHUSDT"))
                await sink.until(lambda n=n, end=end: len(sink.received) == n
                                 and bool(sink.watermarks) and sink.watermarks[-1] == end,
                                 timeout=30)
        finally:
            await src.stop()
    return sink, sink.kinds()


def alerts(fired: list[Fired]) -> list[tuple]:
    return [(f.rule_id, f.symbol, f.time_ms, f.kind, f.timeframe, f.bar_open_ms, f.trade_id,
             f.rank, f.values) for f in fired]


async def test_alerts_after_faults_equal_an_uninterrupted_run(shared_data: Path) -> None:  # noqa: F811
    clean, clean_kinds = await run(shared_data, {})
    assert clean_kinds == []
    faulty, kinds = await run(shared_data, {
        2: lambda ex: ex.faults.drop(after_messages=200),
        3: lambda ex: (ex.faults.malformed_json(2), ex.faults.reorder(2),
                       ex.faults.rate_limit(1.0), ex.faults.drop(after_messages=50)),
        4: lambda ex: ex.faults.stall(2.0),
    })
    assert {"RECONNECT", "GAP", "BAD_MESSAGE", "RATE_LIMITED", "STALE", "RECOVERED"} <= set(kinds)
    assert len(clean.fired) > 10
    assert {f.rule_id.split("-")[1] for f in clean.fired} == {"0", "1", "2", "3"}
    assert alerts(faulty.fired) == alerts(clean.fired)
    assert faulty.violations == clean.violations == []
