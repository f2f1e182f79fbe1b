"""Yahoo chart API: every documented shape parsed; the poll loop into a real engine kernel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from alerts.engine.kernel import Kernel
from alerts.errors import InvalidArgumentError
from alerts.market.base import Tick
from alerts.market.budget import BudgetLimits
from alerts.market.polling import BadPayloadError, PollSettings, ProviderError
from alerts.market.tickers import TickerMap
from alerts.market.yahoo import YahooSource, parse_chart
from tests.market.fakes import FakeStockProvider, KernelSink, RecordingSink
from tests.market.support import KEEP, bars_of, engine_bars, provider_bars, run_until

DOC_CHART = {"chart": {"result": [{
    "meta": {"currency": "USD", "symbol": "^TNX", "exchangeName": "CGI",
             "fullExchangeName": "Cboe Indices", "instrumentType": "INDEX",
             "firstTradeDate": -252326400, "regularMarketTime": 1770062392,
             "hasPrePostMarketData": False, "gmtoffset": -21600, "timezone": "CST",
             "exchangeTimezoneName": "America/Chicago", "regularMarketPrice": 4.275,
             "fiftyTwoWeekHigh": 4.997, "fiftyTwoWeekLow": 3.345, "regularMarketDayHigh": 4.261,
             "regularMarketDayLow": 4.237, "regularMarketVolume": 0, "chartPreviousClose": 4.227,
             "previousClose": 4.227, "scale": 3, "priceHint": 4,
             "currentTradingPeriod": {"pre": {"timezone": "CST", "start": 1770038400,
                                              "end": 1770038400, "gmtoffset": -21600},
                                      "regular": {}, "post": {}},
             "dataGranularity": "5m", "range": "1d",
             "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd",
                             "max"]},
    "timestamp": [1770057900, 1770058200],
    "indicators": {"quote": [{"open": [4.27, 4.27], "high": [4.27, 4.27], "low": [4.26, 4.26],
                              "close": [4.27, 4.26], "volume": [0, 0]}],
                   "adjclose": [{"adjclose": [4.27, 4.26]}]}}],
    "error": None}}

START_S = datetime(2013, 10, 8, 13, 30, tzinfo=UTC).timestamp()   # the 09:30 New York open


def _chart(stamps: list[object], **cols: list[object]) -> dict[str, object]:
    return {"chart": {"result": [{"meta": {"symbol": "SPY"}, "timestamp": stamps,
                                  "indicators": {"quote": [cols]}}], "error": None}}


def test_documented_chart() -> None:
    bars = parse_chart(DOC_CHART, "us:TNX", "5m")
    assert [(b.open_ms, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (1770057900000, 4.27, 4.27, 4.26, 4.27, 0.0), (1770058200000, 4.27, 4.27, 4.26, 4.26, 0.0)]


def test_nulls_the_live_minute_and_no_data() -> None:
    payload = _chart([1381237200, 1381237260, 1381237320, 1381237347],
                     open=[1.0, None, 2.0, 3.0], high=[1.5, None, 2.5, 3.0],
                     low=[0.5, None, 1.5, 3.0], close=[1.2, None, 2.2, 3.0],
                     volume=[100, None, None, 7])
    bars = parse_chart(payload, "us:SPY", "1m")
    # the null minute is skipped, a null volume is 0, the off-minute live point is skipped
    assert [(b.open_ms, b.close, b.volume) for b in bars] == [
        (1381237200000, 1.2, 100.0), (1381237320000, 2.2, 0.0)]
    empty = {"chart": {"result": [{"meta": {"symbol": "SPY"},
                                   "indicators": {"quote": [{}]}}], "error": None}}
    assert parse_chart(empty, "us:SPY", "1m") == []


@pytest.mark.parametrize(("payload", "error"), [
    ({"chart": {"result": None, "error": {"code": "Not Found",
                                          "description": "No data found"}}}, ProviderError),
    ({"nope": 1}, BadPayloadError),
    (_chart([1381237200], open=[1.0], high=[1.0], low=[1.0], close=[1.0]), BadPayloadError),
    (_chart([1381237200, 1381237260], open=[1.0], high=[1.0], low=[1.0], close=[1.0],
            volume=[1]), BadPayloadError),
    (_chart([1381237200], open=["1.0"], high=[1.0], low=[1.0], close=[1.0], volume=[1]),
     BadPayloadError),
    (_chart(["x"], open=[1.0], high=[1.0], low=[1.0], close=[1.0], volume=[1]),
     BadPayloadError),
    (_chart([1381237200], open=[1.0], high=[1.0], low=[0.0], close=[1.0], volume=[1]),
     BadPayloadError),
    (_chart([1381237200], open=[1.0], high=[1.0], low=[1.0], close=[1.0], volume=[-5]),
     BadPayloadError),
])
def test_bad_charts(payload: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_chart(payload, "us:SPY", "1m")


def test_symbols_map_to_tickers() -> None:
    tickers = TickerMap(overrides={"us:BRK.B": "BRK-B"})
    assert tickers.ticker("us:SPY") == "SPY"
    assert tickers.ticker("us:BRK.B") == "BRK-B"
    for bad in ("binance:BTCUSDT", "SPY", "us:"):
        with pytest.raises(InvalidArgumentError) as caught:
            tickers.ticker(bad)
        assert caught.value.violations[0].field == "symbol"


def _source(provider: FakeStockProvider, **kwargs: object) -> YahooSource:
    return YahooSource(base_url=provider.base_url, clock=provider.clock,
                       start_ms=int(START_S * 1000), **kwargs)  # type: ignore[arg-type]


def _cross_reference(bars: pd.DataFrame) -> set[int]:
    """Bar opens where close crosses above its 5-bar SMA, computed with pandas."""
    sma = bars["close"].rolling(5).mean()
    diff = bars["close"] - sma
    cross = (diff > 0) & (diff.shift(1) <= 0)
    return set(bars.loc[cross, "open_time_ms"].tolist())


def _near_ties(bars: pd.DataFrame) -> set[int]:
    diff = (bars["close"] - bars["close"].rolling(5).mean()).abs()
    tie = (diff < 1e-9) | (diff.shift(1) < 1e-9)
    return set(bars.loc[tie, "open_time_ms"].tolist())


@pytest.mark.asyncio
@pytest.mark.data
async def test_engine_bars_and_an_sma_rule_match_the_provider(
        provider: FakeStockProvider) -> None:
    provider.clock.now = START_S
    provider.forming = True          # the live minute is served, partial: never delivered
    provider.null_gaps = True        # minutes without trades are null rows
    tickers = ("SPY", "IBM", "AIG")
    kernel = Kernel(default_venue="us")
    for t in tickers:
        kernel.add_rule(f"keep-{t}", f"us:{t}", KEEP, mode="ONCE_PER_BAR_CLOSE")
        kernel.add_rule(f"cross-{t}", f"us:{t}", "close(1m) crosses_above sma(5, 1m)",
                        mode="ONCE_PER_BAR_CLOSE")
    sink = KernelSink(kernel, "yahoo")
    source = _source(provider)
    await source.subscribe([f"us:{t}" for t in tickers])
    await run_until(source, sink, provider.clock, START_S + 3 * 3600)

    frontier = source.frontier_ms
    assert frontier >= int((START_S + 3 * 3600 - 180) * 1000)
    per_bar = pd.Series([(t.symbol, t.time_ms // 60_000) for t in sink.ticks_seen]).value_counts()
    assert set(per_bar) == {4}                       # every bar once, across overlapping polls
    for t in tickers:
        want = provider_bars(t, int(START_S * 1000), frontier)
        pd.testing.assert_frame_equal(engine_bars(kernel, f"us:{t}"), want)
        fired = {f.bar_open_ms for f in sink.fired if f.rule_id == f"cross-{t}"}
        ties = _near_ties(want)
        assert fired - ties == _cross_reference(want) - ties
        assert len(fired) > 3
    assert sink.late == 0


@pytest.mark.asyncio
@pytest.mark.data
async def test_a_restated_bar_is_logged_not_resent(provider: FakeStockProvider) -> None:
    provider.clock.now = START_S
    bar = bars_of("SPY").set_index("open_time_ms").loc[int(START_S * 1000) + 600_000]
    open_ms = int(START_S * 1000) + 600_000
    provider.revisions.append((START_S + 780, "SPY", open_ms, float(bar["low"]) - 0.01))
    kernel = Kernel(default_venue="us")
    kernel.add_rule("keep", "us:SPY", KEEP, mode="ONCE_PER_BAR_CLOSE")
    sink = KernelSink(kernel, "yahoo")
    source = _source(provider)
    await source.subscribe(["us:SPY"])
    await run_until(source, sink, provider.clock, START_S + 1800)

    assert source.health().extra["corrected_bars"] == 1
    got = engine_bars(kernel, "us:SPY").set_index("open_time_ms").loc[open_ms]
    assert got["close"] == bar["close"]                  # the first version stays
    assert sum(1 for t in sink.ticks_seen if t.time_ms // 60_000 == open_ms // 60_000) == 4


@pytest.mark.asyncio
@pytest.mark.data
async def test_the_per_minute_budget_is_shared_fairly(provider: FakeStockProvider) -> None:
    provider.clock.now = START_S
    sink = RecordingSink()
    source = _source(provider, limits=BudgetLimits(per_minute=2))
    symbols = ["us:SPY", "us:IBM", "us:AIG", "us:BAC"]
    await source.subscribe(symbols)
    await run_until(source, sink, provider.clock, START_S + 3600)

    times = np.array([r.time_s for r in provider.requests])
    assert max(int(((times >= t) & (times < t + 60)).sum()) for t in times) == 2
    counts = pd.Series([r.ticker for r in provider.requests]).value_counts()
    assert len(counts) == 4 and counts.max() - counts.min() <= 1
    assert len(times) >= 115
    # each symbol is polled every two minutes and nothing is lost meanwhile
    frontier = source.frontier_ms
    want = sum(len(provider_bars(s[3:], int(START_S * 1000), frontier)) for s in symbols)
    assert len(sink.ticks_seen) == 4 * want
    assert frontier >= int((START_S + 3600 - 300) * 1000)


@pytest.mark.asyncio
@pytest.mark.data
@pytest.mark.parametrize(("kind", "wait_s"), [("yahoo_429", 60.0), ("yahoo_429_edge", 120.0)])
async def test_429_pauses_and_recovers(provider: FakeStockProvider, kind: str,
                                       wait_s: float) -> None:
    provider.clock.now = START_S
    provider.script.append(kind)
    sink = RecordingSink()
    source = _source(provider)
    await source.subscribe(["us:SPY", "us:IBM"])
    await run_until(source, sink, provider.clock, START_S + 1200)

    assert [e.kind for e in sink.events] == ["RATE_LIMITED", "RECOVERED"]
    assert "Too Many Requests" in sink.events[0].detail
    assert provider.requests[1].time_s - provider.requests[0].time_s >= wait_s
    assert source.health().rate_limited == 1
    frontier = source.frontier_ms
    want = sum(len(provider_bars(t, int(START_S * 1000), frontier)) for t in ("SPY", "IBM"))
    assert len(sink.ticks_seen) == 4 * want and frontier > int((START_S + 900) * 1000)


@pytest.mark.asyncio
@pytest.mark.data
async def test_errors_and_slow_answers_become_health(provider: FakeStockProvider) -> None:
    provider.clock.now = START_S
    provider.script.extend(["yahoo_422", "malformed", "slow", "http_500"])
    sink = RecordingSink()
    source = _source(provider, settings=PollSettings(timeout_s=0.2))
    await source.subscribe(["us:SPY"])
    await run_until(source, sink, provider.clock, START_S + 1200)

    assert [(e.kind, e.symbol) for e in sink.events] == [("BAD_MESSAGE", "us:SPY")]
    health = source.health()
    assert health.bad_messages == 1 and health.extra["errors"] == 3   # 422, timeout, 500
    frontier = source.frontier_ms
    assert len(sink.ticks_seen) == 4 * len(provider_bars("SPY", int(START_S * 1000), frontier))
    assert frontier > int((START_S + 900) * 1000)


@pytest.mark.asyncio
@pytest.mark.data
async def test_unknown_symbol_is_reported_once(provider: FakeStockProvider) -> None:
    provider.clock.now = START_S
    sink = RecordingSink()
    source = _source(provider)
    await source.subscribe(["us:NOPE", "us:SPY"])
    await run_until(source, sink, provider.clock, START_S + 1200)

    assert [(e.kind, e.symbol) for e in sink.events] == [("STALE", "us:NOPE")]
    assert "No data found, symbol may be delisted" in sink.events[0].detail
    assert sum(r.ticker == "NOPE" for r in provider.requests) == 1     # never asked again
    frontier = source.frontier_ms
    assert len(sink.ticks_seen) == 4 * len(provider_bars("SPY", int(START_S * 1000), frontier))
    assert frontier > int((START_S + 900) * 1000)
    await source.unsubscribe(["us:NOPE"])
    await source.subscribe(["us:NOPE"])       # subscribing again asks again
    assert source.health().extra["unknown_symbols"] == 0


@pytest.mark.asyncio
@pytest.mark.data
async def test_odd_tickers_are_mapped(provider: FakeStockProvider) -> None:
    provider.clock.now = START_S
    provider.bars = {**provider.bars, "BRK-B": bars_of("BAC")}
    sink = RecordingSink()
    source = _source(provider, tickers=TickerMap(overrides={"us:BRK.B": "BRK-B"}))
    await source.subscribe(["us:BRK.B"])
    with pytest.raises(InvalidArgumentError):
        await source.subscribe(["binance:BTCUSDT"])
    await run_until(source, sink, provider.clock, START_S + 600)

    await source.stop()                       # a second stop is harmless
    assert {r.path for r in provider.requests} == {"/v8/finance/chart/BRK-B"}
    assert sink.ticks_seen and {t.symbol for t in sink.ticks_seen} == {"us:BRK.B"}


@pytest.mark.asyncio
@pytest.mark.data
async def test_history_in_windows_returns_closed_bars(provider: FakeStockProvider) -> None:
    provider.clock.now = datetime(2013, 10, 10, 14, 0, tzinfo=UTC).timestamp()
    provider.forming = True
    source = _source(provider)
    await source.start(RecordingSink())
    try:
        start = int(datetime(2013, 10, 1, tzinfo=UTC).timestamp() * 1000)
        end = int(datetime(2013, 10, 11, tzinfo=UTC).timestamp() * 1000)
        bars = await source.history("us:AIG", "1m", start, end)
    finally:
        await source.stop()
    got = pd.DataFrame([(b.open_ms, b.open, b.high, b.low, b.close, b.volume) for b in bars],
                       columns=["open_time_ms", "open", "high", "low", "close", "volume"])
    # asked at 14:00:00: bars ending by 13:59 (a minute to settle) are final, so the last
    # one opens at 13:58; the forming 14:00 and the unsettled 13:59 are left out
    last_open = int(datetime(2013, 10, 10, 13, 58, tzinfo=UTC).timestamp() * 1000)
    pd.testing.assert_frame_equal(got, provider_bars("AIG", start, last_open + 1))
    windows = [(int(r.params["period1"]), int(r.params["period2"])) for r in provider.requests]
    assert len(windows) == 2 and windows[0][1] == windows[1][0]
    assert all(b - a <= 7 * 86_400 for a, b in windows)


@dataclass
class _FailingOnceSink(RecordingSink):
    tick_failures: int = 1
    watermark_failures: int = 1

    async def ticks(self, source: str, ticks: Sequence[Tick]) -> None:
        if self.tick_failures:
            self.tick_failures -= 1
            raise RuntimeError("store unavailable")
        await super().ticks(source, ticks)

    async def watermark(self, source: str, time_ms: int) -> None:
        if self.watermark_failures and not self.tick_failures:
            self.watermark_failures -= 1
            raise RuntimeError("store unavailable")
        await super().watermark(source, time_ms)


@pytest.mark.asyncio
@pytest.mark.data
async def test_a_failing_sink_does_not_stop_the_loop_or_lose_bars(
        provider: FakeStockProvider) -> None:
    provider.clock.now = START_S
    sink = _FailingOnceSink()
    source = _source(provider)
    await source.subscribe(["us:SPY", "us:IBM"])
    await run_until(source, sink, provider.clock, START_S + 1200)

    assert source.health().extra["errors"] == 2
    frontier = source.frontier_ms
    assert sink.watermarks[-1] == frontier
    want = sum(len(provider_bars(t, int(START_S * 1000), frontier)) for t in ("SPY", "IBM"))
    per_bar = pd.Series([(t.symbol, t.time_ms // 60_000) for t in sink.ticks_seen]).value_counts()
    assert len(sink.ticks_seen) == 4 * want and set(per_bar) == {4}
    assert frontier > int((START_S + 900) * 1000)


@pytest.mark.asyncio
@pytest.mark.data
async def test_a_source_wide_outage_holds_every_symbol_and_loses_nothing(
        provider: FakeStockProvider) -> None:
    provider.clock.now = START_S
    provider.outages.append((None, "http_500", START_S + 300, START_S + 1500))
    sink = RecordingSink()
    source = _source(provider, settings=PollSettings(stale_after_s=300))
    await source.subscribe(["us:SPY", "us:IBM"])
    await run_until(source, sink, provider.clock, START_S + 2400)

    # both went stale and came back; neither was released, so nothing arrived late
    assert sorted((e.kind, e.symbol) for e in sink.events) == [
        ("RECOVERED", "us:IBM"), ("RECOVERED", "us:SPY"), ("STALE", "us:IBM"),
        ("STALE", "us:SPY")]
    health = source.health()
    assert health.extra["late_bars"] == 0 and health.extra["errors"] > 20
    frontier = source.frontier_ms
    want = sum(len(provider_bars(t, int(START_S * 1000), frontier)) for t in ("SPY", "IBM"))
    assert len(sink.ticks_seen) == 4 * want and frontier > int((START_S + 2100) * 1000)


@pytest.mark.asyncio
@pytest.mark.data
async def test_a_symbol_failing_alone_is_released_and_its_late_bars_are_not_sent(
        provider: FakeStockProvider) -> None:
    provider.clock.now = START_S
    provider.outages.append(("IBM", "http_500", START_S + 300, START_S + 1500))
    sink = RecordingSink()
    source = _source(provider, settings=PollSettings(stale_after_s=300))
    await source.subscribe(["us:SPY", "us:IBM"])
    await run_until(source, sink, provider.clock, START_S + 2400)

    assert [(e.kind, e.symbol) for e in sink.events] == [
        ("STALE", "us:IBM"), ("RECOVERED", "us:IBM")]
    # SPY went on while IBM failed: every SPY bar was delivered
    frontier = source.frontier_ms
    spy = provider_bars("SPY", int(START_S * 1000), frontier)
    assert sum(t.symbol == "us:SPY" for t in sink.ticks_seen) == 4 * len(spy)
    # IBM's bars from while it held nobody back came later than the frontier: logged, not sent
    ibm_sent = {t.time_ms // 60_000 * 60_000 for t in sink.ticks_seen if t.symbol == "us:IBM"}
    ibm_all = set(provider_bars("IBM", int(START_S * 1000), frontier)["open_time_ms"])
    missing = ibm_all - ibm_sent
    assert missing and source.health().extra["late_bars"] == len(missing)
    assert max(missing) < int((START_S + 1500) * 1000) <= max(ibm_sent)


@dataclass
class _SubscribingSink(RecordingSink):
    """Subscribes ``symbol`` once the watermark reaches ``at_ms`` (mid-run, from the loop)."""

    source: YahooSource | None = None
    symbol: str = ""
    at_ms: int = 0
    subscribed_at_ms: int | None = None

    async def watermark(self, source: str, time_ms: int) -> None:
        await super().watermark(source, time_ms)
        if self.subscribed_at_ms is None and time_ms >= self.at_ms and self.source is not None:
            await self.source.subscribe([self.symbol])
            self.subscribed_at_ms = time_ms


@pytest.mark.asyncio
@pytest.mark.data
async def test_a_symbol_subscribed_later_starts_at_the_frontier(
        provider: FakeStockProvider) -> None:
    provider.clock.now = START_S
    source = _source(provider)
    sink = _SubscribingSink(source=source, symbol="us:IBM", at_ms=int((START_S + 600) * 1000))
    await source.subscribe(["us:SPY"])
    await run_until(source, sink, provider.clock, START_S + 1800)

    joined = sink.subscribed_at_ms
    assert joined is not None
    frontier = source.frontier_ms
    ibm = [t for t in sink.ticks_seen if t.symbol == "us:IBM"]
    assert len(ibm) == 4 * len(provider_bars("IBM", joined, frontier)) > 0
    assert min(t.time_ms for t in ibm) >= joined
    spy = provider_bars("SPY", int(START_S * 1000), frontier)
    assert sum(t.symbol == "us:SPY" for t in sink.ticks_seen) == 4 * len(spy)
    assert source.health().extra["late_bars"] == 0
