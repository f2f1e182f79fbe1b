"""Local stand-ins for the stock providers, a virtual clock, and sinks for tests.

``FakeStockProvider`` is one aiohttp app on a real 127.0.0.1 socket that
answers both Alpha Vantage's ``/query`` and Yahoo's ``/v8/finance/chart/{t}``
in exactly the formats of ``protocols/stocks.md``, from the real 1-minute bars
of ``us_stocks_1m_2013-10.csv.gz``: Alpha Vantage times in US/Eastern, newest
first, numbers as strings; Yahoo times as unix seconds with ``null`` rows for
minutes without trades. What "now" is comes from a ``FakeClock`` shared with
the source under test, so only bars that have ended by then are served (and,
with ``forming``, the current minute with partial values, as the live
providers do; any ``Clock`` serves, e.g. the shifted wall clock of an
end-to-end test). Switches make it answer each documented error and limit body,
Yahoo's plain-text 429, slow answers, malformed JSON and revised bars.
``in_thread`` serves it from its own event loop, for tests that block on gRPC.

``FakeClock`` is virtual time: ``sleep`` moves it forward at once. When it
passes ``stop_at`` the sleeper parks and ``reached`` is set, so a test runs a
source for hours of provider time, waits on ``reached`` and stops it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from aiohttp import web

from alerts.engine.kernel import Fired, Kernel
from alerts.market.base import SourceEvent, Tick
from alerts.market.clock import Clock

EASTERN = ZoneInfo("US/Eastern")
MINUTE_MS = 60_000

AV_MESSAGES: dict[str, dict[str, str]] = {
    "av_error": {"Error Message": "Invalid API call. Please retry or visit the documentation "
                 "(https://www.alphavantage.co/documentation/) for TIME_SERIES_INTRADAY."},
    "av_daily": {"Information": "Thank you for using Alpha Vantage! Our standard API rate limit "
                 "is 25 requests per day. Please subscribe to any of the premium plans at "
                 "https://www.alphavantage.co/premium/ to instantly remove all daily rate "
                 "limits."},
    "av_burst": {"Information": "Thank you for using Alpha Vantage! Please consider spreading "
                 "out your free API requests more sparingly (1 request per second). You may "
                 "subscribe to any of the premium plans at https://www.alphavantage.co/premium/ "
                 "to lift the free key rate limit (25 requests per day) and instantly unlock "
                 "all premium endpoints"},
    "av_premium": {"Information": "Thank you for using Alpha Vantage! This is a premium "
                   "endpoint. You may subscribe to any of the premium plans at "
                   "https://www.alphavantage.co/premium/ to instantly unlock all premium "
                   "endpoints"},
    "av_legacy": {"Note": "Thank you for using Alpha Vantage! Our standard API call frequency "
                  "is 5 calls per minute and 500 calls per day. Please visit "
                  "https://www.alphavantage.co/premium/ if you would like to target a higher "
                  "API call frequency."},
}
YAHOO_404 = {"chart": {"result": None, "error": {
    "code": "Not Found", "description": "No data found, symbol may be delisted"}}}


class FakeClock:
    """Virtual epoch seconds; ``sleep`` jumps ahead (one sleeper at a time)."""

    def __init__(self, start_s: float, stop_at: float | None = None) -> None:
        self.now = start_s
        self.stop_at = stop_at
        self.reached = asyncio.Event()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        if self.stop_at is not None and self.now >= self.stop_at:
            self.reached.set()
            await asyncio.Event().wait()        # parked until the task is cancelled
        await asyncio.sleep(0)


@dataclass(frozen=True)
class Seen:
    """One request the fake received: virtual time, path and query."""

    time_s: float
    path: str
    params: dict[str, str]

    @property
    def ticker(self) -> str:
        return self.params.get("symbol") or self.path.rsplit("/", 1)[-1]


@dataclass
class FakeStockProvider:
    """Alpha Vantage and Yahoo answers over real bars; see the module docstring."""

    bars: Mapping[str, pd.DataFrame]          # ticker -> us_stocks_1m frame
    clock: Clock
    forming: bool = False                     # also serve the current minute, partial
    null_gaps: bool = False                   # Yahoo: null rows for minutes without trades
    # (ticker or None for all, failure, from, to clock time): every call in [from, to) fails
    outages: list[tuple[str | None, str, float, float]] = field(default_factory=list)
    # failures for the next calls, in order: a key of AV_MESSAGES, "yahoo_429",
    # "yahoo_429_edge" (with Retry-After), "yahoo_422", "malformed", "slow" (1 s), "http_500"
    script: deque[str] = field(default_factory=deque)
    failing: str | None = None                # every call fails so (a script kind) while set
    retry_after_s: int = 120                  # the Retry-After of "yahoo_429_edge"
    # (from clock time, ticker, bar open ms, new close): the provider restates a bar
    revisions: list[tuple[float, str, int, float]] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/query", self._alphavantage)
        app.router.add_get("/v8/finance/chart/{ticker}", self._yahoo)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -------------------------------------------------------------- data --
    def served(self, ticker: str, start_ms: int | None = None,
               end_ms: int | None = None) -> pd.DataFrame:
        """The bars a provider has at ``clock`` time: ended ones, plus the forming one."""
        frame = self.bars[ticker]
        now_ms = int(self.clock.time() * 1000)
        limit = now_ms if self.forming else now_ms - MINUTE_MS
        frame = frame[frame["open_time_ms"] <= limit].copy()
        for after_s, t, open_ms, close in self.revisions:
            if t == ticker and self.clock.time() >= after_s:
                frame.loc[frame["open_time_ms"] == open_ms, "close"] = close
        forming = frame["open_time_ms"] > now_ms - MINUTE_MS
        if forming.any():     # the live minute so far: its first price only
            for column in ("high", "low", "close"):
                frame.loc[forming, column] = frame.loc[forming, "open"]
            frame.loc[forming, "volume"] = frame.loc[forming, "volume"] // 2
        if start_ms is not None:
            frame = frame[frame["open_time_ms"] >= start_ms]
        if end_ms is not None:
            frame = frame[frame["open_time_ms"] < end_ms]
        return frame

    async def _failure(self, request: web.Request, ticker: str) -> web.Response | None:
        self.requests.append(Seen(self.clock.time(), request.path, dict(request.query)))
        now = self.clock.time()
        kind = next((k for t, k, start, stop in self.outages
                     if t in (None, ticker) and start <= now < stop), None)
        if kind is None and self.script:
            kind = self.script.popleft()
        if kind is None:
            kind = self.failing
        if kind is None:
            return None
        if kind in AV_MESSAGES:
            return web.json_response(AV_MESSAGES[kind])
        if kind == "yahoo_429":
            return web.Response(status=429, text="Too Many Requests\r\n")
        if kind == "yahoo_429_edge":
            return web.Response(status=429, text="Edge: Too Many Requests",
                                headers={"Retry-After": str(self.retry_after_s)})
        if kind == "yahoo_422":
            return web.json_response({"chart": {"result": None, "error": {
                "code": "Unprocessable Entity",
                "description": "1m data not available for startTime=1 and endTime=2. The "
                               "requested range must be within the last 30 days."}}},
                status=422)
        if kind == "malformed":
            return web.Response(text='{"chart": {"result": [{"meta": ', content_type="application/json")
        if kind == "slow":     # longer than the tests' client timeout, then a good answer
            await asyncio.sleep(1.0)
            return None
        return web.Response(status=500, text="Internal Server Error")

    # ------------------------------------------------------ Alpha Vantage --
    async def _alphavantage(self, request: web.Request) -> web.Response:
        q = request.query
        ticker = q.get("symbol", "")
        failed = await self._failure(request, ticker)
        if failed is not None:
            return failed
        if not q.get("apikey"):
            return web.json_response({"Error Message": "the parameter apikey is invalid or "
                                      "missing. Please claim your free API key on "
                                      "(https://www.alphavantage.co/support/#api-key)."})
        function = q.get("function")
        if function == "GLOBAL_QUOTE":
            return web.json_response(self._global_quote(ticker))
        if (function != "TIME_SERIES_INTRADAY" or ticker not in self.bars
                or q.get("interval") != "1min"):
            return web.json_response(AV_MESSAGES["av_error"])
        frame = self.served(ticker)
        local = pd.to_datetime(frame["open_time_ms"], unit="ms", utc=True).dt.tz_convert(EASTERN)
        if "month" in q:
            frame = frame[(local.dt.strftime("%Y-%m") == q["month"]).to_numpy()]
        elif q.get("outputsize") == "full":
            frame = frame[frame["open_time_ms"] > self.clock.time() * 1000 - 30 * 86_400_000]
        else:
            frame = frame.tail(100)
        stamps = (pd.to_datetime(frame["open_time_ms"], unit="ms", utc=True)
                  .dt.tz_convert(EASTERN).dt.strftime("%Y-%m-%d %H:%M:%S").tolist())
        series = {
            stamp: {"1. open": f"{o:.4f}", "2. high": f"{h:.4f}", "3. low": f"{lo:.4f}",
                    "4. close": f"{c:.4f}", "5. volume": f"{v:.0f}"}
            for stamp, o, h, lo, c, v in zip(stamps, frame["open"], frame["high"], frame["low"],
                                             frame["close"], frame["volume"])
        }
        series = dict(reversed(series.items()))          # newest first
        meta = {"1. Information": "Intraday (1min) open, high, low, close prices and volume",
                "2. Symbol": ticker, "3. Last Refreshed": stamps[-1] if stamps else "",
                "4. Interval": "1min",
                "5. Output Size": "Full size" if q.get("outputsize") == "full" else "Compact",
                "6. Time Zone": "US/Eastern"}
        return web.json_response({"Meta Data": meta, "Time Series (1min)": series})

    def _global_quote(self, ticker: str) -> dict[str, Any]:
        if ticker not in self.bars:
            return {"Global Quote": {}}
        frame = self.served(ticker)
        day = datetime.fromtimestamp(frame["open_time_ms"].iloc[-1] / 1000, EASTERN).date()
        return {"Global Quote": {
            "01. symbol": ticker, "02. open": f"{frame['open'].iloc[0]:.4f}",
            "03. high": f"{frame['high'].max():.4f}", "04. low": f"{frame['low'].min():.4f}",
            "05. price": f"{frame['close'].iloc[-1]:.4f}",
            "06. volume": f"{frame['volume'].sum():.0f}",
            "07. latest trading day": day.isoformat(),
            "08. previous close": f"{frame['close'].iloc[0]:.4f}",
            "09. change": "0.0000", "10. change percent": "0.0000%"}}

    # -------------------------------------------------------------- Yahoo --
    async def _yahoo(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        failed = await self._failure(request, ticker)
        if failed is not None:
            return failed
        if ticker not in self.bars:
            return web.json_response(YAHOO_404, status=404)
        q = request.query
        start_ms = int(q["period1"]) * 1000
        end_ms = int(q["period2"]) * 1000
        frame = self.served(ticker, start_ms, end_ms)
        stamps = (frame["open_time_ms"] // 1000).astype(int).tolist()
        cols = {k: frame[k].astype(float).tolist() for k in ("open", "high", "low", "close")}
        cols["volume"] = frame["volume"].astype(int).tolist()
        if self.null_gaps and stamps:
            full = list(range(stamps[0], stamps[-1] + 60, 60))
            at = {s: i for i, s in enumerate(stamps)}
            cols = {k: [v[at[s]] if s in at else None for s in full] for k, v in cols.items()}
            stamps = full
        last = self.bars[ticker]
        meta = {"currency": "USD", "symbol": ticker, "exchangeName": "PCX",
                "fullExchangeName": "NYSEArca", "instrumentType": "ETF",
                "firstTradeDate": 728317800,
                "regularMarketTime": int(self.clock.time()), "hasPrePostMarketData": True,
                "gmtoffset": -14400, "timezone": "EDT", "exchangeTimezoneName": "America/New_York",
                "regularMarketPrice": float(last["close"].iloc[-1]),
                "chartPreviousClose": float(last["close"].iloc[0]), "priceHint": 2,
                "dataGranularity": q.get("interval", "1m"), "range": "",
                "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd",
                                "max"]}
        result: dict[str, Any] = {"meta": meta}
        if stamps:
            result["timestamp"] = stamps
            result["indicators"] = {"quote": [cols]}
        else:
            result["indicators"] = {"quote": [{}]}
        return web.Response(text=json.dumps({"chart": {"result": [result], "error": None}}),
                            content_type="application/json")


@contextmanager
def in_thread(fake: FakeStockProvider) -> Iterator[str]:
    """Serve ``fake`` from an event loop of its own in a thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class RecordingSink:
    """Keeps everything a source hands on, and checks the MarketSink promises as it goes."""

    ticks_seen: list[Tick] = field(default_factory=list)
    batches: int = 0
    watermarks: list[int] = field(default_factory=list)
    events: list[SourceEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def ticks(self, source: str, ticks: Sequence[Tick]) -> None:
        times = [t.time_ms for t in ticks]
        assert times == sorted(times), "a batch is not in time order"
        if self.watermarks:
            assert times[0] >= self.watermarks[-1], "a tick before the last watermark"
        self.ticks_seen.extend(ticks)
        self.batches += 1
        self.changed.set()

    async def watermark(self, source: str, time_ms: int) -> None:
        assert not self.watermarks or time_ms > self.watermarks[-1]
        self.watermarks.append(time_ms)
        self.changed.set()

    async def event(self, event: SourceEvent) -> None:
        self.events.append(event)
        self.changed.set()

    def kinds(self, symbol: str | None = None) -> list[str]:
        return [e.kind for e in self.events if symbol is None or e.symbol == symbol]


class KernelSink(RecordingSink):
    """A RecordingSink that also runs everything through a real engine kernel."""

    def __init__(self, kernel: Kernel, name: str) -> None:
        super().__init__()
        self.kernel = kernel
        self.source_id = kernel.add_source(fill_gaps=False, grace_ms=0, name=name)
        self.fired: list[Fired] = []
        self.late = 0

    async def ticks(self, source: str, ticks: Sequence[Tick]) -> None:
        await super().ticks(source, ticks)
        k = self.kernel
        self.fired += k.process(
            self.source_id, k.intern([t.symbol for t in ticks]),
            np.array([t.time_ms for t in ticks], np.int64),
            np.array([t.price for t in ticks]), np.array([t.qty for t in ticks]),
            np.array([t.trade_id for t in ticks], np.int64))
        self.late += k.last_counts.late

    async def watermark(self, source: str, time_ms: int) -> None:
        await super().watermark(source, time_ms)
        self.fired += self.kernel.advance_clock(self.source_id, time_ms)
