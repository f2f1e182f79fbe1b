"""The replay clock: trades from a feed published in order at a chosen speed.

The exchange's ``now`` is the replay time. It starts just before the first
trade; at ``speed`` s it runs s times faster than the wall clock (1.0: real
time), and at speed 0 it jumps from trade to trade as fast as the slowest
connection reads (backpressure instead of dropping). Trades of one
millisecond are published together, in (time, trade id, symbol) order; before
them, every subscribed kline whose bar ended at or before that time is sent
closed (``x`` true; flat bars too). ``run_until(t)`` publishes everything up
to ``t`` at once and pauses, so tests can step the market deterministically.
Every ``progress_every_s`` of wall time (and at the end of a finite feed) the
``progress`` callback gets a ``ReplayProgress``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from alerts.market.exchange.book import Precision, SymbolBook, decimals_of
from alerts.market.exchange.intervals import Interval, parse_interval
from alerts.market.exchange.streams import (
    agg_trade_payload,
    agg_trade_stream,
    kline_stream,
    trade_payload,
    trade_stream,
)
from alerts.market.exchange.trades import TradeChunk, TradeFeed

_MAX_WAKE_S = 0.25
_NEVER = 2 ** 62


@dataclass(frozen=True)
class ReplayProgress:
    """Where a replay is: trades published (of ``total``; None when endless) and its clock."""

    published: int
    total: int | None
    now_ms: int
    done: bool

    def line(self) -> str:
        """One human line, e.g. ``replay: 12000/34419 trades (34.9%), now 2024-08-08T23:58:01Z``."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now_ms / 1000))
        if self.total:
            share = f"/{self.total} trades ({100.0 * self.published / self.total:.1f}%)"
        else:
            share = " trades"
        return f"replay: {self.published}{share}, now {stamp}{', done' if self.done else ''}"


class Publisher(Protocol):
    """Where the replay sends stream payloads (the exchange's connections)."""

    def has_subscribers(self, stream: str) -> bool: ...

    def publish(self, stream: str, payload: dict[str, Any]) -> None: ...

    async def backpressure(self) -> None: ...


@dataclass
class _KlineSeries:
    book: SymbolBook
    interval: Interval
    stream: str
    open_ms: int          # the forming bar (its close is sent when the clock reaches its end)


class ReplayEngine:
    """Publishes a feed's trades on a replay clock (see the module docstring)."""

    def __init__(self, feed: TradeFeed, publisher: Publisher, *, venue: str = "spot",
                 speed: float = 1.0, paused: bool = False, kline_update_s: float = 2.0,
                 progress: Callable[[ReplayProgress], None] | None = None,
                 progress_every_s: float = 5.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._feed = feed
        self._publisher = publisher
        self._venue = venue
        self._speed = speed
        self._kline_update_s = kline_update_s
        self._progress = progress
        self._progress_every_s = progress_every_s
        self.books: dict[str, SymbolBook] = {}
        self._names = list(feed.symbols)
        self._trade_streams = [trade_stream(n) for n in self._names]
        self._agg_streams = [agg_trade_stream(n) for n in self._names]
        self._pending: TradeChunk | None = None
        self._pos = 0
        self._exhausted = False
        self._published = 0
        self._clock = 0
        self._klines: dict[str, _KlineSeries] = {}
        self._next_close = _NEVER     # the earliest end of a followed kline's forming bar
        self._running = asyncio.Event()
        if not paused:
            self._running.set()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._reanchor = True
        self._finished = asyncio.Event()
        self._started = False

    # ------------------------------------------------------------------ state

    @property
    def now_ms(self) -> int:
        return self._clock

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def published(self) -> int:
        return self._published

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def progress(self) -> ReplayProgress:
        return ReplayProgress(self._published, self._feed.total, self._clock,
                              self._finished.is_set())

    def prepare(self, wall_ms: int) -> None:
        """Create the books and read the feed's first chunk; the clock stands before it."""
        if self._started:
            return
        self._started = True
        for name in self._names:
            self.books[name] = SymbolBook(name, Precision())
        self._clock = self._feed.start_ms(wall_ms) - 1
        self._ingest()

    def _ingest(self) -> bool:
        """Read the next chunk into the books; False when the feed has ended."""
        if self._exhausted:
            return False
        chunk = self._feed.next_chunk()
        if chunk is None:
            self._exhausted = True
            return False
        if len(chunk):
            for index in np.unique(chunk.symbol):
                rows = np.flatnonzero(chunk.symbol == index)
                book = self.books[self._names[int(index)]]
                if self._venue == "usdm" and book.size == 0:   # the symbol's own precision
                    book.precision = Precision(decimals_of(chunk.price[rows]),
                                               decimals_of(chunk.qty[rows]), 8)
                book.extend(chunk.time_ms[rows], chunk.trade_id[rows], chunk.first_id[rows],
                            chunk.last_id[rows], chunk.price[rows], chunk.qty[rows],
                            chunk.buyer_maker[rows])
        self._pending, self._pos = chunk, 0
        return True

    def _next_time(self) -> int | None:
        """Time of the next unpublished trade (reading more of the feed when needed)."""
        while self._pending is None or self._pos >= len(self._pending):
            if not self._ingest():
                return None
        assert self._pending is not None
        return int(self._pending.time_ms[self._pos])

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``predicate()`` holds (checked after every clock or subscription change)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    def changed(self) -> None:
        """Wake ``wait_for`` callers (the exchange's subscriptions or connections changed)."""
        self._notify()

    # ------------------------------------------------------------------ control

    def pause(self) -> None:
        self._running.clear()
        self._wake.set()

    def resume(self) -> None:
        self._reanchor = True
        self._running.set()
        self._wake.set()

    def set_speed(self, speed: float) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._speed = speed
        self._reanchor = True
        self._wake.set()

    async def run_until(self, time_ms: int) -> None:
        """Pause, then publish everything up to ``time_ms`` and set the clock there."""
        self.pause()
        async with self._lock:
            await self._advance(time_ms, backpressure=True)

    # ------------------------------------------------------------------ klines

    def add_kline(self, symbol: str, interval: str) -> None:
        """Start following closes of a subscribed kline stream."""
        stream = kline_stream(symbol, interval)
        book = self.books.get(symbol)
        parsed = parse_interval(interval)
        if book is None or parsed is None or stream in self._klines:
            return
        series = _KlineSeries(book, parsed, stream, parsed.floor(self._clock))
        self._klines[stream] = series
        self._next_close = min(self._next_close, parsed.next_open(series.open_ms))

    def remove_kline(self, symbol: str, interval: str) -> None:
        self._klines.pop(kline_stream(symbol, interval), None)

    def _close_klines(self, upto_ms: int) -> None:
        if upto_ms < self._next_close:
            return
        for series in list(self._klines.values()):
            interval = series.interval
            end = interval.next_open(series.open_ms)
            while end <= upto_ms:
                first = series.book.first_time(end - 1)
                if first is not None and interval.floor(first) <= series.open_ms:
                    self._send_kline(series, series.open_ms, end - 1, closed=True, event_ms=end)
                series.open_ms = end
                end = interval.next_open(end)
        self._next_close = min((s.interval.next_open(s.open_ms) for s in self._klines.values()),
                               default=_NEVER)

    def _send_kline(self, series: _KlineSeries, open_ms: int, now_ms: int, *, closed: bool,
                    event_ms: int) -> None:
        if not self._publisher.has_subscribers(series.stream):
            return
        bars = series.book.bars(series.interval, np.array([open_ms], np.int64), now_ms)
        self._publisher.publish(series.stream, series.book.kline_payload(
            bars, 0, series.interval, closed, event_ms))

    def send_forming_klines(self) -> None:
        """One update of every subscribed kline's forming bar (``x`` false)."""
        for series in list(self._klines.values()):
            if series.book.first_time(self._clock) is not None:
                self._send_kline(series, series.interval.floor(self._clock), self._clock,
                                 closed=False, event_ms=self._clock)

    # ------------------------------------------------------------------ publishing

    async def _advance(self, target_ms: int, *, backpressure: bool) -> None:
        """Publish every trade at or before ``target_ms`` in order; the clock ends there."""
        while True:
            t = self._next_time()
            if t is None or t > target_ms:
                break
            assert self._pending is not None
            end = self._pos + int(np.searchsorted(self._pending.time_ms[self._pos:], t, "right"))
            self._close_klines(t)
            self._clock = max(self._clock, t)
            self._publish_rows(self._pending, self._pos, end)
            self._pos = end
            self._notify()
            if backpressure:
                await self._publisher.backpressure()
        self._close_klines(target_ms)
        if target_ms > self._clock:
            self._clock = target_ms
            self._notify()
        if self._next_time() is None and not self._finished.is_set():
            self._finished.set()
            self._report()
            self._notify()

    def _publish_rows(self, chunk: TradeChunk, start: int, end: int) -> None:
        publisher = self._publisher
        for i in range(start, end):
            index = int(chunk.symbol[i])
            trade_name, agg_name = self._trade_streams[index], self._agg_streams[index]
            wants_trade = publisher.has_subscribers(trade_name)
            wants_agg = publisher.has_subscribers(agg_name)
            if not (wants_trade or wants_agg):
                continue
            book = self.books[self._names[index]]
            price = book.precision.price_text(float(chunk.price[i]))
            qty = book.precision.qty_text(float(chunk.qty[i]))
            time_ms = int(chunk.time_ms[i])
            maker = bool(chunk.buyer_maker[i])
            if wants_trade:
                publisher.publish(trade_name, trade_payload(
                    book.name, time_ms, int(chunk.trade_id[i]), price, qty, time_ms, maker,
                    venue=self._venue))
            if wants_agg:
                publisher.publish(agg_name, agg_trade_payload(
                    book.name, time_ms, int(chunk.trade_id[i]), price, qty,
                    int(chunk.first_id[i]), int(chunk.last_id[i]), time_ms, maker,
                    venue=self._venue))
        self._published += end - start

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self.progress())

    # ------------------------------------------------------------------ loops

    async def run(self) -> None:
        """The replay loop; runs until cancelled."""
        loop = asyncio.get_running_loop()
        anchor_wall, anchor_clock = loop.time(), self._clock
        last_report = loop.time()
        while True:
            if not self._running.is_set():
                await self._running.wait()
            if self._reanchor:
                anchor_wall, anchor_clock, self._reanchor = loop.time(), self._clock, False
            self._wake.clear()
            speed = self._speed
            async with self._lock:
                if not self._running.is_set():
                    continue
                if speed == 0:
                    next_t = self._next_time()
                    if next_t is not None:
                        await self._advance(next_t, backpressure=True)
                else:
                    target = anchor_clock + int((loop.time() - anchor_wall) * speed * 1000)
                    await self._advance(target, backpressure=False)
            if loop.time() - last_report >= self._progress_every_s:
                last_report = loop.time()
                self._report()
            if speed == 0:
                if self._next_time() is None:
                    await self._sleep(None)
                else:
                    await asyncio.sleep(0)
                continue
            await self._sleep(self._wake_delay(speed))

    def _wake_delay(self, speed: float) -> float:
        due = [self._next_time()]
        due += [s.interval.next_open(s.open_ms) for s in self._klines.values()]
        soonest = min((d for d in due if d is not None), default=None)
        if soonest is None:
            return _MAX_WAKE_S
        return min(_MAX_WAKE_S, max(0.0, (soonest - self._clock) / (speed * 1000)))

    async def _sleep(self, seconds: float | None) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def run_kline_updates(self) -> None:
        """Every ``kline_update_s`` of wall time, the forming bars of subscribed klines."""
        while True:
            await asyncio.sleep(self._kline_update_s)
            self.send_forming_klines()
