"""Warm-up with the real parts: the Binance source against the replay exchange over loopback.

The exchange replays the recorded spot trades, stepped with ``run_until``. One
run creates ``rsi(3, 1m) > 0`` (mode ONCE_PER_BAR_CLOSE: one alert per close,
carrying the RSI) six minutes into the file: the rule warms up from the
exchange's REST klines and is ACTIVE at once. The reference run has the rule
before the first trade and is fed every trade live. From the warmed-up run's
cut-over on, both fire the same alerts with the same RSI values.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from alerts.engine.feeds.warmup import MINUTE_MS
from alerts.market.binance import SPOT, BinanceSource
from alerts.market.exchange import ReplayExchange
from alerts.storage.records import AlertRecord
from alerts.v1 import rules_pb2
from tests.engine.feeds.harness import Engine, engine
from tests.engine.feeds.test_warmup import state
from tests.support.market_data import (  # noqa: F401 - fixture
    SPOT_TRADES_FILE,
    binance_spot_trades,
    shared_data,
)

pytestmark = pytest.mark.asyncio

STEP = 15_000
GRACE = 1_000


@pytest_asyncio.fixture
async def spot(shared_data: Path) -> AsyncIterator[ReplayExchange]:  # noqa: F811
    async with ReplayExchange.from_files([shared_data / SPOT_TRADES_FILE], speed=0,
                                         paused=True, kline_update_s=0.1) as exchange:
        yield exchange


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for a condition the engine reaches on its own (polled, bounded)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def replay(ex: ReplayExchange, create_at: int | None, end: int
                 ) -> tuple[list[AlertRecord], Engine | None, int]:
    src = BinanceSource(SPOT, ws_url=ex.ws_url, rest_url=ex.rest_url, name="binance",
                        backoff_base_s=0.05)
    first = int(binance_spot_trades("BTCUSDT")["time_ms"].iloc[0])
    async with engine("binance=binance", [src], warmup_wait_ms=20_000) as e:
        t = create_at if create_at is not None else first - 1
        await ex.run_until(t)                      # the exchange's history: up to t
        created = asyncio.create_task(e.add_rule("rsi", "BTCUSDT", "rsi(3, 1m) > 0",
                                                 mode="ONCE_PER_BAR_CLOSE"))
        await ex.wait_subscribed("btcusdt@aggTrade", timeout=10)
        while not created.done():                  # live trades date the history
            t += STEP
            await ex.run_until(t)
            await asyncio.wait({created}, timeout=2)
        await created
        active = await state(e, "rsi")
        while t < end:
            t = min(t + STEP, end)
            await ex.run_until(t)
        await until(lambda: (e.processor.source_clock("feed:binance") or 0) >= end)
        return [a for a in await e.alerts() if a.event_time_ms <= end - GRACE], None, active


async def test_warm_up_from_the_exchange_klines_fires_as_the_live_run(
        spot: ReplayExchange, shared_data: Path) -> None:  # noqa: F811
    first = int(binance_spot_trades("BTCUSDT")["time_ms"].iloc[0])
    start = first - first % MINUTE_MS
    create_at = start + 6 * MINUTE_MS + 20_000
    end = start + 11 * MINUTE_MS
    warmed, _, active = await replay(spot, create_at, end)
    assert active == rules_pb2.Rule.STATE_ACTIVE
    async with ReplayExchange.from_files([shared_data / SPOT_TRADES_FILE], speed=0,
                                         paused=True, kline_update_s=0.1) as fresh:
        live, _, _ = await replay(fresh, None, end)

    def key(a: AlertRecord) -> tuple[object, ...]:
        return a.rule_id, a.event_time_ms, a.bar_open_ms, a.values, a.price

    cut = min(a.event_time_ms for a in warmed)
    assert cut <= create_at + 3 * MINUTE_MS
    assert len(warmed) >= 3
    assert [key(a) for a in warmed] == [key(a) for a in live if a.event_time_ms >= cut]
    assert len([a for a in live if a.event_time_ms < cut]) >= 2   # RSI defined before it


async def test_a_rule_on_a_trading_symbol_is_seeded_from_the_exchange(
        spot: ReplayExchange, shared_data: Path) -> None:  # noqa: F811
    """BTCUSDT trades (another rule follows it from before its first trade) when the rsi
    rule is created: its new indicator is seeded from the exchange's klines and the
    symbol's own recent minutes, and from then on it fires as the live run's rule."""
    first = int(binance_spot_trades("BTCUSDT")["time_ms"].iloc[0])
    start = first - first % MINUTE_MS
    create_at = start + 6 * MINUTE_MS + 20_000
    end = start + 11 * MINUTE_MS
    src = BinanceSource(SPOT, ws_url=spot.ws_url, rest_url=spot.rest_url, name="binance",
                        backoff_base_s=0.05)
    async with engine("binance=binance", [src], warmup_wait_ms=20_000) as e:
        await spot.run_until(first - 1)
        base = asyncio.create_task(e.add_rule("base", "BTCUSDT", "sma(2, 1m) > 0",
                                              mode="ONCE_PER_BAR_CLOSE"))
        await spot.wait_subscribed("btcusdt@aggTrade", timeout=10)
        t = first - 1
        while not base.done():                      # live trades date the (empty) history
            t += STEP
            await spot.run_until(t)
            await asyncio.wait({base}, timeout=2)
        await base
        while t < create_at:
            t = min(t + STEP, create_at)
            await spot.run_until(t)
        await until(lambda: (e.processor.source_clock("feed:binance") or 0) >= create_at - 1)
        await e.add_rule("rsi", "BTCUSDT", "rsi(3, 1m) > 0", mode="ONCE_PER_BAR_CLOSE")
        assert await state(e, "rsi") == rules_pb2.Rule.STATE_ACTIVE
        while t < end:
            t = min(t + STEP, end)
            await spot.run_until(t)
        await until(lambda: (e.processor.source_clock("feed:binance") or 0) >= end)
        seeded = [a for a in await e.alerts()
                  if a.rule_id == "rsi" and a.event_time_ms <= end - GRACE]
    async with ReplayExchange.from_files([shared_data / SPOT_TRADES_FILE], speed=0,
                                         paused=True, kline_update_s=0.1) as fresh:
        live, _, _ = await replay(fresh, None, end)

    def key(a: AlertRecord) -> tuple[object, ...]:
        return a.event_time_ms, a.bar_open_ms, a.values, a.price

    assert len(seeded) >= 3
    # the first close after the creation already fires, with the live run's RSI
    assert min(a.event_time_ms for a in seeded) == create_at - create_at % MINUTE_MS + MINUTE_MS
    assert [key(a) for a in seeded] == [key(a) for a in live if a.event_time_ms > create_at]
