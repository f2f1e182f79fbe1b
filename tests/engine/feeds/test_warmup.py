"""Warm-up: a new symbol's rules start from history bars, exactly as if fed live.

The history is Binance's real 1-minute klines (February 2026, LINKUSDT); live
ticks are four trades per kline (open, high, low, close), so the bars they make
are the klines. The reference run has the rule from the first history bar on,
paused, fed those ticks live, and unpaused where the warmed-up run goes live
(the whole minute after the rule's creation): both must fire the same alerts.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from alerts.api import convert
from alerts.engine.feeds.warmup import MINUTE_MS, history_plan
from alerts.market.base import Bar, Tick
from alerts.rules.catalog import TIMEFRAME_MS
from alerts.v1 import rules_pb2
from tests.engine.feeds.harness import Engine, engine, rule_alerts
from tests.support import market_data as md
from tests.support.sources import ScriptedSource

SYMBOL = "binance:LINKUSDT"
HOUR = 3_600_000
WARMUP_BARS = 30
CONDITION = "rsi(14, 1h) crosses 50"


def klines() -> pd.DataFrame:
    md.require_shared_data()
    return md.binance_usdm_klines("LINKUSDT")


def one_minute_bars(k: pd.DataFrame) -> list[Bar]:
    return [Bar(SYMBOL, "1m", int(r.open_time_ms), r.open, r.high, r.low, r.close, r.volume,
                r.quote_volume, int(r.trades)) for r in k.itertuples()]


def hour_bars(k: pd.DataFrame) -> list[Bar]:
    g = k.groupby(k.open_time_ms // HOUR * HOUR)
    agg = pd.DataFrame({"open": g.open.first(), "high": g.high.max(), "low": g.low.min(),
                        "close": g.close.last(), "volume": g.volume.sum(),
                        "quote_volume": g.quote_volume.sum(), "trades": g.trades.sum()})
    return [Bar(SYMBOL, "1h", int(t), r.open, r.high, r.low, r.close, r.volume,
                r.quote_volume, int(r.trades)) for t, r in agg.iterrows()]


def ticks_of(k: pd.DataFrame) -> list[Tick]:
    out: list[Tick] = []
    for r in k.itertuples():
        for j, price in enumerate((r.open, r.high, r.low, r.close)):
            out.append(Tick(SYMBOL, price, r.volume / 4, int(r.open_time_ms) + 15_000 * j,
                            len(out) + 1))
    return out


async def state(e: Engine, rule_id: str, owner: str = "local") -> int:
    """The rule's state as the API shows it."""
    rec = await e.store.get_rule(owner, rule_id)
    return convert.rule_to_proto(rec, e.processor.rule_state(rule_id), None).state


async def push_all(src: ScriptedSource, ticks: list[Tick], size: int = 97) -> None:
    for i in range(0, len(ticks), size):
        await src.push(ticks[i:i + size])


@pytest.mark.asyncio
async def test_a_new_rule_is_active_at_once_and_fires_as_if_fed_live() -> None:
    k = klines()
    created = int(k.open_time_ms.iloc[3000]) + 37_000       # in the middle of a minute
    t1 = created - created % MINUTE_MS
    live_from = t1 + MINUTE_MS
    live = ticks_of(k[(k.open_time_ms >= t1) & (k.open_time_ms < t1 + 900 * MINUTE_MS)])
    live = [t for t in live if t.time_ms >= created]         # what a live feed delivers

    # warmed up: the rule is created at `created`, history comes from the source
    src = ScriptedSource("src")
    src.bars = {(SYMBOL, "1m"): one_minute_bars(k), (SYMBOL, "1h"): hour_bars(k)}
    async with engine("binance=src", [src], warmup_bars=WARMUP_BARS,
                      clock=lambda: created) as e:
        await e.add_rule("rsi", "LINKUSDT", CONDITION)
        assert await state(e, "rsi") == rules_pb2.Rule.STATE_ACTIVE   # before any live tick
        snap = await e.processor.snapshot(SYMBOL, 1)
        assert snap is not None
        rsi = next(i for i in snap.indicators if i.label == "rsi(14, 1h)")
        assert rsi.value == rsi.value and rsi.intrabar == rsi.intrabar   # both defined
        await push_all(src, live)
        warmed = rule_alerts(await e.alerts())
        calls = src.history_calls
    # the history asked for is contiguous, ends where live ticks take over, once each
    assert [c[1] for c in calls] == ["1h", "1m", "1m"]
    assert all(a[3] == b[2] for a, b in itertools.pairwise(calls))
    assert calls[-1][3] == live_from and calls[0][2] == t1 - t1 % HOUR - WARMUP_BARS * HOUR

    # reference: the rule (paused) sees the same data live from the first history bar
    first = calls[0][2]
    ref_src = ScriptedSource("src")
    async with engine("binance=src", [ref_src]) as e:
        rec = await e.add_rule("rsi", "LINKUSDT", CONDITION, paused=True)
        history = ticks_of(k[(k.open_time_ms >= first) & (k.open_time_ms < live_from)])
        await push_all(ref_src, history)
        await e.processor.change_rule(
            lambda: e.store.update_rule(replace(rec, paused=False), expected_etag=None),
            reset=False)
        await push_all(ref_src, [t for t in live if t.time_ms >= live_from])
        reference = rule_alerts(await e.alerts())

    assert len(reference) >= 3
    assert warmed == reference
    assert min(a[2] for a in warmed) >= live_from


@pytest.mark.asyncio
async def test_a_rule_on_a_trading_symbol_is_seeded_and_fires_as_if_it_had_been_there() -> None:
    """The symbol trades (another rule follows it) when an rsi(14, 1h) rule is created:
    the rule is ACTIVE at once and fires exactly as the same rule created with the first."""
    k = klines()
    first = int(k.open_time_ms.iloc[3000]) + 37_000
    late = first + 135 * MINUTE_MS + 21_000                     # mid-minute, mid-hour
    t1 = first - first % MINUTE_MS
    live = [t for t in ticks_of(k[(k.open_time_ms >= t1) &
                                  (k.open_time_ms < t1 + 900 * MINUTE_MS)])
            if t.time_ms >= first]
    before, after = [t for t in live if t.time_ms < late], [t for t in live if t.time_ms >= late]
    bars = {(SYMBOL, "1m"): one_minute_bars(k), (SYMBOL, "1h"): hour_bars(k)}

    async def run(late_rule: bool) -> list[tuple[object, ...]]:
        src = ScriptedSource("src")
        src.bars = bars
        # every bar there is (both runs' rsi start at the data's first hour)
        async with engine("binance=src", [src], warmup_bars=1_000,
                          clock=lambda: first) as e:
            await e.add_rule("base", "LINKUSDT", "sma(3, 1m) > 0")
            if not late_rule:
                await e.add_rule("rsi", "LINKUSDT", CONDITION)
            await push_all(src, before)
            if late_rule:
                calls = len(src.history_calls)
                await e.add_rule("rsi", "LINKUSDT", CONDITION)
                assert await state(e, "rsi") == rules_pb2.Rule.STATE_ACTIVE   # no tick since
                seeded = src.history_calls[calls:]
                # history of the 1h timeframe only, up to the venue's last whole minute
                assert [c[1] for c in seeded] == ["1h", "1m"]
                assert seeded[-1][3] == before[-1].time_ms - before[-1].time_ms % MINUTE_MS
            await push_all(src, after)
            return [a for a in rule_alerts(await e.alerts())
                    if a[0] == "rsi" and int(str(a[2])) >= late]

    seeded, reference = await run(True), await run(False)
    assert len(reference) >= 3
    assert seeded == reference


@pytest.mark.asyncio
async def test_a_symbol_live_without_history_is_seeded_once_its_first_minute_closes() -> None:
    """The symbol went live mid-minute T without history, so the engine has only part of
    T: a rule created then is seeded when the venue reaches T+1m, with the whole kline
    of T from history, and is ACTIVE at once (sma(2, 1m) live would need T+1m and T+2m)."""
    t = 1_723_161_600_000
    sym = "binance:BTCUSDT"
    src = ScriptedSource("src")
    async with engine("binance=src", [src]) as e:
        task = asyncio.create_task(e.add_rule("base", "BTCUSDT", "price > 0"))
        await src.wait_for(lambda: sym in src.symbols)
        await src.push([Tick(sym, 100.0, 1.0, t + 10_000, 1)])
        await task                                  # no history: live from the first tick
        src.bars = {(sym, "1m"): [Bar(sym, "1m", t - MINUTE_MS, 90.0, 91.0, 89.0, 90.0, 5.0),
                                  Bar(sym, "1m", t, 95.0, 101.0, 94.0, 100.0, 7.0)]}
        created = asyncio.create_task(e.add_rule("sma", "BTCUSDT", "sma(2, 1m) > 0",
                                                 mode="ONCE_PER_BAR_CLOSE"))
        await src.push([Tick(sym, 101.0, 1.0, t + 20_000, 2)])
        await asyncio.wait({created}, timeout=0.6)
        assert not created.done()                   # waits for the minute to close
        await src.push([Tick(sym, 104.0, 1.0, t + MINUTE_MS + 5_000, 3)])
        await created
        assert await state(e, "sma") == rules_pb2.Rule.STATE_ACTIVE
        assert src.history_calls[-1][1:] == ("1m", t + MINUTE_MS - 500 * MINUTE_MS,
                                             t + MINUTE_MS)
        await src.push([Tick(sym, 110.0, 1.0, t + 2 * MINUTE_MS + 5_000, 4)])
        fired = [a for a in await e.alerts() if a.rule_id == "sma"]
    # the close of T+1m, averaging the kline of T (close 100) with T+1m (close 104)
    assert [(a.bar_open_ms, a.values) for a in fired] == [
        (t + MINUTE_MS, (("sma(2, 1m)", 102.0),))]


@pytest.mark.asyncio
async def test_without_history_the_symbol_goes_live_with_every_tick() -> None:
    src = ScriptedSource("src")
    async with engine("binance=src", [src], warmup_wait_ms=5_000) as e:
        task = asyncio.create_task(e.add_rule("p", "BTCUSDT", "price > 100"))
        await src.wait_for(lambda: "binance:BTCUSDT" in src.symbols)
        await src.push([Tick("binance:BTCUSDT", 101.0, 1.0, 1_723_161_600_000, 1)])
        await task                         # the first tick dated the (empty) history
        assert src.history_calls[0][3] == 1_723_161_600_000
        await src.push([Tick("binance:BTCUSDT", 99.0, 1.0, 1_723_161_600_010, 2),
                        Tick("binance:BTCUSDT", 102.0, 1.0, 1_723_161_600_020, 3)])
        assert [a.trade_id for a in await e.alerts()] == [1, 3]


@pytest.mark.asyncio
async def test_a_watermark_during_a_warm_up_does_not_make_the_held_ticks_late() -> None:
    """A polled source sends a closed bar's ticks and then its watermark (the bar's end)
    while the new symbol's history is still being fetched: the engine gets the watermark
    only up to the held ticks, then all of it once they are in, so the bar closes."""
    t = 1_723_161_600_000
    sym = "us:AAPL"
    src = ScriptedSource("src", fill_gaps=False)
    src.grace_ms = 0                # as a poller's: its watermark closes the bar
    gate = asyncio.Event()
    fetch = src.history

    async def slow_history(symbol: str, timeframe: str, start: int, end: int) -> list[Bar]:
        await gate.wait()
        return await fetch(symbol, timeframe, start, end)

    src.history = slow_history      # type: ignore[method-assign]
    async with engine("us=src", [src], warmup_wait_ms=5_000) as e:
        created = asyncio.create_task(e.add_rule("c", "us:AAPL", "close(1m) > 100",
                                                 mode="ONCE_PER_BAR_CLOSE"))
        await src.wait_for(lambda: sym in src.symbols)
        await src.push([Tick(sym, 101.0, 5.0, t + 1_000, 0), Tick(sym, 102.0, 5.0, t + 59_000, 0)])
        await src.mark(t + MINUTE_MS)                 # the bar is over: its watermark
        assert e.processor.source_clock("feed:us") == t + 1_000     # held back
        gate.set()                                    # history (none) arrives
        await created
        assert e.processor.source_clock("feed:us") == t + MINUTE_MS
        fired = await e.alerts()
    assert [(a.bar_open_ms, a.price) for a in fired] == [(t, 102.0)]


def test_history_plan_covers_every_timeframe_once_and_ends_on_the_minute() -> None:
    end = 1_771_000_000_000 - 1_771_000_000_000 % MINUTE_MS + 17 * MINUTE_MS
    plan = history_plan({"5m", "4h", "1h"}, end, 100)
    assert [p[0] for p in plan] == ["4h", "1h", "5m", "1m"]
    assert all(a[2] == b[1] for a, b in itertools.pairwise(plan))
    assert plan[-1][2] == end
    for tf, start, stop in plan:
        assert start % TIMEFRAME_MS[tf] == 0 and stop % TIMEFRAME_MS[tf] == 0 or stop == end
    # each timeframe has at least its 100 bars of its own or finer bars before `end`
    for tf in ("4h", "1h", "5m"):
        tf_start = next(s for t, s, _ in plan if t == tf)
        assert end - tf_start >= 100 * TIMEFRAME_MS[tf]
    with pytest.raises(ValueError):
        history_plan({"1h"}, end + 1, 10)


@pytest.mark.asyncio
async def test_a_restart_fills_the_minutes_missed_from_history(tmp_path: Path) -> None:
    """Stopped mid-run and restarted later: the restored symbol gets the 1-minute bars
    of the outage, and from the cut-over on fires as the uninterrupted run does."""
    k = klines()
    created = int(k.open_time_ms.iloc[3000]) + 37_000
    t1 = created - created % MINUTE_MS
    stop_at = t1 + 301 * MINUTE_MS + 20_000          # the service stops here ...
    back_at = t1 + 420 * MINUTE_MS + 50_000          # ... and is back here (wall clock)
    live = [t for t in ticks_of(k[(k.open_time_ms >= t1)
                                  & (k.open_time_ms < t1 + 900 * MINUTE_MS)])
            if t.time_ms >= created]
    bars = {(SYMBOL, "1m"): one_minute_bars(k), (SYMBOL, "1h"): hour_bars(k)}

    src = ScriptedSource("src")
    src.bars = bars
    async with engine("binance=src", [src], warmup_bars=WARMUP_BARS,
                      clock=lambda: created) as e:
        await e.add_rule("rsi", "LINKUSDT", CONDITION)
        await push_all(src, live)
        whole = rule_alerts(await e.alerts())

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    before = ScriptedSource("src")
    before.bars = bars
    async with engine("binance=src", [before], store_url=url, warmup_bars=WARMUP_BARS,
                      clock=lambda: created) as e:
        await e.add_rule("rsi", "LINKUSDT", CONDITION)
        await push_all(before, [t for t in live if t.time_ms < stop_at])
    last = max(t.time_ms for t in live if t.time_ms < stop_at)

    after = ScriptedSource("src")
    after.bars = bars
    async with engine("binance=src", [after], store_url=url, warmup_bars=WARMUP_BARS,
                      clock=lambda: back_at) as e:
        await e.feeds.idle()
        resume_from = last - last % MINUTE_MS + MINUTE_MS
        back_minute = back_at - back_at % MINUTE_MS
        assert after.history_calls == [(SYMBOL, "1m", resume_from, back_minute)]
        await push_all(after, [t for t in live if t.time_ms >= back_at])
        restarted = rule_alerts(await e.alerts())
    assert after.history_calls[-1] == (SYMBOL, "1m", back_minute, back_minute + MINUTE_MS)

    cut = back_minute + MINUTE_MS
    assert [a for a in restarted if a[2] < stop_at] == [a for a in whole if a[2] < stop_at]
    assert [a for a in restarted if stop_at <= a[2] < cut] == []     # history never fires
    tail = [a for a in whole if a[2] >= cut]
    assert len(tail) >= 2
    assert [a for a in restarted if a[2] >= cut] == tail


@pytest.mark.asyncio
async def test_failing_history_is_a_data_quality_gap_and_the_ticks_still_count() -> None:
    src = ScriptedSource("src")
    src.history_error = ConnectionError("HTTP 503 from /fapi/v1/klines")
    async with engine("binance=src", [src], warmup_wait_ms=5_000) as e:
        task = asyncio.create_task(e.add_rule("p", "BTCUSDT", "price > 100"))
        await src.wait_for(lambda: "binance:BTCUSDT" in src.symbols)
        await src.push([Tick("binance:BTCUSDT", 101.0, 1.0, 1_723_161_600_000, 1)])
        await task
        alerts = await e.alerts()
        assert [(a.kind, a.trade_id) for a in alerts] == [("RULE", 1), ("DATA_QUALITY", 0)]
        gap = alerts[1]
        assert (gap.symbol, gap.details["event"]) == ("binance:BTCUSDT", "GAP")
        assert "HTTP 503" in gap.message and "warm up from live data" in gap.message
