"""Alpha Vantage: every documented shape parsed; the poll loop against the fake provider."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pytest

from alerts.engine.kernel import Kernel
from alerts.market.alphavantage import (
    AlphaVantageSource,
    parse_global_quote,
    parse_intraday,
    raise_for_message,
)
from alerts.market.polling import (
    BadPayloadError,
    PollSettings,
    ProviderError,
    SourceRateLimitedError,
)
from tests.market.fakes import AV_MESSAGES, FakeStockProvider, KernelSink
from tests.market.support import DAY_START_S, KEEP, engine_bars, provider_bars, run_until

NOW_S = datetime(2026, 1, 3, 12, 0, tzinfo=UTC).timestamp()
DOC_INTRADAY: dict[str, Any] = {
    "Meta Data": {"1. Information": "Intraday (5min) open, high, low, close prices and volume",
                  "2. Symbol": "IBM", "3. Last Refreshed": "2026-01-02 19:55:00",
                  "4. Interval": "5min", "5. Output Size": "Compact",
                  "6. Time Zone": "US/Eastern"},
    "Time Series (5min)": {"2026-01-02 19:55:00": {
        "1. open": "291.3500", "2. high": "291.3500", "3. low": "291.3400",
        "4. close": "291.3500", "5. volume": "57"}}}
DOC_QUOTE = {"Global Quote": {
    "01. symbol": "MSFT", "02. open": "112.6300", "03. high": "113.1700", "04. low": "110.6400",
    "05. price": "112.1300", "06. volume": "29062853", "07. latest trading day": "2018-10-05",
    "08. previous close": "112.7900", "09. change": "-0.6600", "10. change percent": "-0.5852%"}}


def test_intraday_times_are_eastern_converted_to_utc() -> None:
    bars = parse_intraday(DOC_INTRADAY, "us:IBM", "5m", NOW_S)
    assert len(bars) == 1
    b = bars[0]
    # 19:55 EST (UTC-5) on 2 January is 00:55 UTC on 3 January
    assert b.open_ms == int(datetime(2026, 1, 3, 0, 55, tzinfo=UTC).timestamp() * 1000)
    assert (b.open, b.high, b.low, b.close, b.volume) == (291.35, 291.35, 291.34, 291.35, 57.0)
    summer = {**DOC_INTRADAY, "Time Series (5min)": {
        "2013-10-08 09:30:00": DOC_INTRADAY["Time Series (5min)"]["2026-01-02 19:55:00"]}}
    # 09:30 EDT (UTC-4) is 13:30 UTC
    assert parse_intraday(summer, "us:IBM", "5m", NOW_S)[0].open_ms == int(
        datetime(2013, 10, 8, 13, 30, tzinfo=UTC).timestamp() * 1000)


def test_intraday_series_newest_first_comes_out_oldest_first_and_empty_is_empty() -> None:
    row = DOC_INTRADAY["Time Series (5min)"]["2026-01-02 19:55:00"]
    payload = {**DOC_INTRADAY, "Time Series (5min)": {
        "2026-01-02 19:55:00": row, "2026-01-02 19:50:00": row, "2026-01-02 19:45:00": row}}
    times = [b.open_ms for b in parse_intraday(payload, "us:IBM", "5m", NOW_S)]
    assert times == sorted(times) and len(times) == 3
    assert parse_intraday({**DOC_INTRADAY, "Time Series (5min)": {}}, "us:IBM", "5m", NOW_S) == []


def test_global_quote_and_unknown_symbol() -> None:
    quote = parse_global_quote(DOC_QUOTE, NOW_S)
    assert quote is not None
    assert (quote.symbol, quote.price, quote.volume, quote.latest_trading_day) == (
        "MSFT", 112.13, 29_062_853.0, date(2018, 10, 5))
    assert parse_global_quote({"Global Quote": {}}, NOW_S) is None


@pytest.mark.parametrize(("kind", "error", "wait_s"), [
    ("av_error", ProviderError, None),
    ("av_premium", ProviderError, None),
    ("av_burst", SourceRateLimitedError, 5.0),
    ("av_legacy", SourceRateLimitedError, 60.0),
    # NOW_S is 12:00 UTC: the daily cap lifts at the next UTC midnight
    ("av_daily", SourceRateLimitedError, 12 * 3600.0),
])
def test_every_message_body_is_classified(kind: str, error: type[Exception],
                                          wait_s: float | None) -> None:
    with pytest.raises(error) as caught:
        raise_for_message(AV_MESSAGES[kind], NOW_S)
    if wait_s is not None:
        assert caught.value.retry_after_s == pytest.approx(wait_s)   # type: ignore[attr-defined]
    with pytest.raises(error):       # the same bodies in place of a series
        parse_intraday(AV_MESSAGES[kind], "us:IBM", "1m", NOW_S)


@pytest.mark.parametrize("payload", [
    [],
    {"Meta Data": {"6. Time Zone": "US/Eastern"}},
    {**DOC_INTRADAY, "Time Series (5min)": {"2026-01-02 19:55:00": {"1. open": "abc"}}},
    {**DOC_INTRADAY, "Time Series (5min)": {"yesterday": {}}},
    {**DOC_INTRADAY, "Time Series (5min)": {"2026-01-02 19:55:00": {
        "1. open": "-1.0", "2. high": "1.0", "3. low": "1.0", "4. close": "1.0",
        "5. volume": "5"}}},
    {**DOC_INTRADAY, "Time Series (5min)": {"2026-01-02 19:56:00":
                                            DOC_INTRADAY["Time Series (5min)"]["2026-01-02 19:55:00"]}},
])
def test_bad_payloads(payload: object) -> None:
    with pytest.raises(BadPayloadError):
        parse_intraday(payload, "us:IBM", "5m", NOW_S)


def _source(provider: FakeStockProvider, **kwargs: object) -> AlphaVantageSource:
    return AlphaVantageSource(api_key="demo", base_url=provider.base_url,
                              clock=provider.clock, start_ms=int(DAY_START_S * 1000),
                              **kwargs)   # type: ignore[arg-type]


@pytest.mark.asyncio
@pytest.mark.data
async def test_engine_gets_the_providers_bars_within_the_daily_budget(
        provider: FakeStockProvider) -> None:
    kernel = Kernel(default_venue="us")
    for symbol in ("us:SPY", "us:IBM"):
        kernel.add_rule(f"keep-{symbol}", symbol, KEEP, mode="ONCE_PER_BAR_CLOSE")
    sink = KernelSink(kernel, "alphavantage")
    source = _source(provider)
    await source.subscribe(["us:SPY", "us:IBM"])
    await run_until(source, sink, provider.clock, DAY_START_S + 2 * 86_400)

    times = [r.time_s for r in provider.requests]
    assert max(sum(1 for u in times if t <= u < t + 86_400) for t in times) <= 25
    per_ticker = pd.Series([r.ticker for r in provider.requests]).value_counts()
    assert abs(per_ticker["SPY"] - per_ticker["IBM"]) <= 1       # round-robin
    assert len(times) >= 45                                       # and the budget is used
    frontier = source.frontier_ms
    assert frontier >= int((DAY_START_S + 86_400) * 1000)         # the session is delivered
    delivered = 0
    for ticker in ("SPY", "IBM"):
        want = provider_bars(ticker, int(DAY_START_S * 1000), frontier)
        delivered += len(want)
        got = engine_bars(kernel, f"us:{ticker}")     # the newest 1001 (the ring's size)
        assert len(got) == min(1001, len(want))
        pd.testing.assert_frame_equal(got, want.tail(len(got)).reset_index(drop=True))
    assert len(sink.ticks_seen) == 4 * delivered      # each bar once
    assert sink.late == 0
    assert sink.kinds() == []


def _all_bars(tickers: tuple[str, ...], frontier: int) -> int:
    return sum(len(provider_bars(t, int(DAY_START_S * 1000), frontier)) for t in tickers)


@pytest.mark.asyncio
@pytest.mark.data
@pytest.mark.parametrize(("kind", "min_wait_s"), [
    # the first request is at 08:00 UTC; the daily cap lifts at 00:00 UTC
    ("av_daily", 16 * 3600.0),
    ("av_burst", 5.0),
    ("av_legacy", 60.0),
])
async def test_limit_messages_pause_the_source_and_lose_nothing(
        provider: FakeStockProvider, kind: str, min_wait_s: float) -> None:
    provider.script.append(kind)
    sink = KernelSink(Kernel(default_venue="us"), "alphavantage")
    source = _source(provider)
    await source.subscribe(["us:SPY", "us:IBM"])
    await run_until(source, sink, provider.clock, DAY_START_S + 1.5 * 86_400)

    assert [e.kind for e in sink.events if e.symbol is None] == ["RATE_LIMITED", "RECOVERED"]
    limited = next(e for e in sink.events if e.kind == "RATE_LIMITED")
    assert "Alpha Vantage" in limited.detail
    first, second = provider.requests[0].time_s, provider.requests[1].time_s
    assert second - first >= min_wait_s
    assert source.health().rate_limited == 1
    assert source.frontier_ms > int((DAY_START_S + 86_400) * 1000)
    assert len(sink.ticks_seen) == 4 * _all_bars(("SPY", "IBM"), source.frontier_ms)
    assert sink.late == 0


@pytest.mark.asyncio
@pytest.mark.data
async def test_unknown_symbol_is_reported_once_and_the_rest_goes_on(
        provider: FakeStockProvider) -> None:
    sink = KernelSink(Kernel(default_venue="us"), "alphavantage")
    source = _source(provider)
    await source.subscribe(["us:NOPE", "us:SPY"])
    await run_until(source, sink, provider.clock, DAY_START_S + 86_400)

    nope = [e for e in sink.events if e.symbol == "us:NOPE"]
    assert [e.kind for e in nope] == ["STALE"] and "unknown symbol" in nope[0].detail
    functions = [r.params["function"] for r in provider.requests if r.ticker == "NOPE"]
    assert functions == ["TIME_SERIES_INTRADAY", "GLOBAL_QUOTE"]
    assert source.health().extra["unknown_symbols"] == 1
    assert len(sink.ticks_seen) == 4 * _all_bars(("SPY",), source.frontier_ms) > 0


@pytest.mark.asyncio
@pytest.mark.data
async def test_bad_answers_become_health_and_the_loop_survives(
        provider: FakeStockProvider) -> None:
    provider.script.extend(["malformed", "av_premium", "http_500", "slow", "av_error"])
    sink = KernelSink(Kernel(default_venue="us"), "alphavantage")
    source = _source(provider, settings=PollSettings(timeout_s=0.2))
    await source.subscribe(["us:SPY"])
    await run_until(source, sink, provider.clock, DAY_START_S + 86_400)

    # five failed polls an hour apart: the symbol went stale, then recovered
    assert sink.kinds("us:SPY") == ["BAD_MESSAGE", "STALE", "RECOVERED"]
    assert sink.kinds() == sink.kinds("us:SPY")
    health = source.health()
    assert health.bad_messages == 1
    assert health.extra["errors"] == 4      # premium, HTTP 500, timeout, error message
    assert health.detail == ""              # the last poll was good
    assert not health.up                    # stopped
    # the Error Message was checked with GLOBAL_QUOTE, which knows SPY: not "unknown"
    assert [r.params["function"] for r in provider.requests[4:6]] == [
        "TIME_SERIES_INTRADAY", "GLOBAL_QUOTE"]
    assert health.extra["unknown_symbols"] == 0
    assert source.frontier_ms > int((DAY_START_S + 12 * 3600) * 1000)
    assert len(sink.ticks_seen) == 4 * _all_bars(("SPY",), source.frontier_ms)
    assert sink.late == 0


@pytest.mark.asyncio
@pytest.mark.data
async def test_history_reads_the_month_and_returns_closed_bars(
        provider: FakeStockProvider) -> None:
    provider.clock.now = datetime(2013, 10, 12, tzinfo=UTC).timestamp()
    source = _source(provider)
    await source.start(KernelSink(Kernel(default_venue="us"), "alphavantage"))
    try:
        start = int(datetime(2013, 10, 7, 13, 30, tzinfo=UTC).timestamp() * 1000)
        end = int(datetime(2013, 10, 8, 20, 0, tzinfo=UTC).timestamp() * 1000)
        bars = await source.history("us:IBM", "1m", start, end)
        with pytest.raises(Exception, match="no '4h' bars"):
            await source.history("us:IBM", "4h", start, end)
    finally:
        await source.stop()
    got = pd.DataFrame([(b.open_ms, b.open, b.high, b.low, b.close, b.volume) for b in bars],
                       columns=["open_time_ms", "open", "high", "low", "close", "volume"])
    pd.testing.assert_frame_equal(got, provider_bars("IBM", start, end))
    seen = [r.params for r in provider.requests if r.params.get("function")]
    assert [(p["month"], p["outputsize"]) for p in seen] == [("2013-10", "full")]


@pytest.mark.asyncio
@pytest.mark.data
async def test_history_refused_by_the_daily_cap_raises_and_pauses(
        provider: FakeStockProvider) -> None:
    provider.script.append("av_daily")
    source = _source(provider)
    await source.start(KernelSink(Kernel(default_venue="us"), "alphavantage"))
    try:
        with pytest.raises(SourceRateLimitedError) as caught:
            await source.history("us:IBM", "1m", int(DAY_START_S * 1000),
                                 int((DAY_START_S + 3600) * 1000))
    finally:
        await source.stop()
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    midnight = datetime(2013, 10, 9, tzinfo=UTC).timestamp()
    assert source.budget.paused_until == pytest.approx(midnight)
    assert source.health().rate_limited == 1
