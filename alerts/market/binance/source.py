"""``BinanceSource``: Binance aggregate trades into a ``MarketSink``, exactly.

Each followed symbol is one ``<sym>@aggTrade`` stream (plus ``<sym>@kline_1m``,
whose event times keep the source clock moving on quiet symbols); streams are
spread over ``StreamConnection`` slots of at most ``streams_per_connection``.
Every frame goes through ``TradeIntake``: parsed, checked against the last
aggregate id of its symbol (``Sequencer``), and either queued for delivery,
dropped as a duplicate, or held while the missing ids are fetched from REST
``aggTrades?fromId=``. After any reconnect, and after a socket was silent
longer than its clock streams allow, every symbol of the connection is
backfilled the same way. While any backfill runs nothing is delivered; then
the queue is sorted by event time and handed to the sink in batches (ticks of
a faster connection wait until every connection has reached their time), so
the sink sees exactly the trades of an uninterrupted connection. Watermarks
(that common time) follow when nothing is pending. Feed trouble becomes
``SourceEvent``s; bad frames are counted and logged, never fatal.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import structlog

from alerts.errors import FailedPreconditionError, InvalidArgumentError
from alerts.market.base import Bar, MarketSink, MarketSource, SourceEvent, SourceHealth, Tick
from alerts.market.binance.connection import ConnectionSettings, LinkState, StreamConnection
from alerts.market.binance.errors import BinanceRequestError
from alerts.market.binance.intake import TradeIntake
from alerts.market.binance.limits import SlidingWindowLimiter, full_jitter
from alerts.market.binance.rest import PAGE, BinanceRestClient
from alerts.market.binance.venues import KLINE_INTERVALS, SPOT, Venue

log = structlog.get_logger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024
_TROUBLE = frozenset({"STALE", "GAP", "RECONNECT", "RATE_LIMITED"})
_SYMBOL = re.compile(r"^[A-Z0-9_]{1,32}$")


def _time_of(tick: Tick) -> int:
    return tick.time_ms


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class BinanceSource(MarketSource):
    """Spot or USDⓈ-M aggregate trades over combined streams, backfilled from REST."""

    fill_gaps = True

    def __init__(
        self,
        venue: Venue = SPOT,
        *,
        ws_url: str | None = None,
        rest_url: str | None = None,
        name: str | None = None,
        streams_per_connection: int = 200,
        clock_streams: bool = True,
        max_age_s: float = 23 * 3600.0,
        stale_after_s: float = 30.0,
        reply_timeout_s: float = 10.0,
        control_per_s: int = 4,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 60.0,
        connection_attempts: tuple[int, float] = (300, 300.0),
        weight_budget: int | None = None,
        max_batch: int = 10_000,
        max_backlog: int = 200_000,
        backfill_retries: int = 20,
        backfill_concurrency: int = 4,
        probe_after_s: float | None = 5.0,
        progress_every_s: float = 5.0,
    ) -> None:
        if not 1 <= streams_per_connection <= MAX_STREAMS_PER_CONNECTION:
            raise InvalidArgumentError(
                f"streams_per_connection must be 1..{MAX_STREAMS_PER_CONNECTION}")
        if clock_streams and streams_per_connection < 2:
            raise InvalidArgumentError("streams_per_connection must be >= 2 with clock streams")
        if not 1 <= control_per_s <= 5:
            raise InvalidArgumentError("control_per_s must be 1..5 (Binance allows 5 per second)")
        self.venue = venue
        self.name = name or venue.name
        self.settings = ConnectionSettings(
            ws_url=ws_url or venue.ws_url, max_age_s=max_age_s, stale_after_s=stale_after_s,
            reply_timeout_s=reply_timeout_s, control_per_s=control_per_s,
            backoff_base_s=backoff_base_s, backoff_cap_s=backoff_cap_s)
        self.streams_per_connection = streams_per_connection
        self.clock_streams = clock_streams
        self.max_batch = max_batch
        self.max_backlog = max_backlog
        self.backfill_retries = backfill_retries
        self.progress_every_s = progress_every_s
        self.probe_after_s = probe_after_s if clock_streams else None
        self.rest = BinanceRestClient(venue, base_url=rest_url, weight_budget=weight_budget,
                                      on_rate_limited=self._rest_rate_limited,
                                      on_recovered=self._rest_recovered)
        self._attempts = SlidingWindowLimiter(*connection_attempts)
        self._backfill_slots = asyncio.Semaphore(backfill_concurrency)
        self._intake = TradeIntake(venue.name, on_bad=self._bad, on_gap=self._gap)
        self._seq = self._intake.sequencer
        self._sink: MarketSink | None = None
        self._health = SourceHealth()
        self._where: dict[str, StreamConnection] = {}  # BTCUSDT -> its connection
        self._connections: list[StreamConnection] = []
        self._numbers = 0
        self._events: deque[SourceEvent] = deque()
        self._backfills: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._degraded: set[str] = set()
        self._troubled = False           # a trouble event went out since the feed was whole
        self._last_tick_ms = 0           # event time of the last tick delivered
        self._last_watermark = 0
        self._subscribe_lock = asyncio.Lock()
        self._stopped = False
        self._counts = {"backfilled": 0, "gaps": 0, "rotations": 0,
                        "delivered": 0, "sink_errors": 0}

    # -- MarketSource ------------------------------------------------------------------
    async def start(self, sink: MarketSink) -> None:
        if self._sink is not None:
            raise FailedPreconditionError(f"source {self.name!r} already started")
        self._sink = sink
        self._stopped = False
        self._spawn(self._deliver(), "deliver")

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for conn in list(self._connections):
            await conn.stop()
        self._connections.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.rest.aclose()
        self._health.up = False
        self._health.detail = "stopped"

    async def subscribe(self, symbols: Sequence[str]) -> None:
        if self._sink is None or self._stopped:
            raise FailedPreconditionError(f"source {self.name!r} is not running")
        bare = [s for s in dict.fromkeys(self._bare(s) for s in symbols) if s not in self._where]
        async with self._subscribe_lock:
            per_symbol = 2 if self.clock_streams else 1
            plan: dict[StreamConnection, list[str]] = {}
            fresh: dict[StreamConnection, list[str]] = {}
            for sym in bare:
                if sym in self._where:
                    continue
                conn = next((c for c in self._connections
                             if c.room - per_symbol * len(plan.get(c, ())) >= per_symbol), None)
                if conn is None:
                    conn = self._new_connection()
                    fresh[conn] = []
                self._where[sym] = conn
                self._intake.follow(sym)
                plan.setdefault(conn, []).append(sym)
            for conn, syms in plan.items():
                streams = [s for sym in syms for s in self._streams(sym)]
                if conn in fresh:
                    conn.start(streams)
                    continue
                try:
                    await conn.subscribe(streams)
                except Exception:
                    for sym in syms:
                        self._where.pop(sym, None)
                        self._intake.unfollow(sym)
                    raise
            refused: BinanceRequestError | None = None
            for conn in fresh:      # wait (bounded) for new sockets, so the caller knows
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.settled.wait(), self.settings.reply_timeout_s)
                if conn.refused is not None:
                    refused = conn.refused
                    for sym in plan[conn]:
                        self._where.pop(sym, None)
                        self._intake.unfollow(sym)
                    self._connections.remove(conn)
                    await conn.stop()
            self._update_health()
            if refused is not None:
                raise refused

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        bare = [s for s in dict.fromkeys(self._bare(s) for s in symbols) if s in self._where]
        async with self._subscribe_lock:
            by_conn: dict[StreamConnection, list[str]] = {}
            for sym in bare:
                by_conn.setdefault(self._where.pop(sym), []).append(sym)
                task = self._backfills.pop(sym, None)
                if task is not None:
                    task.cancel()
                self._intake.unfollow(sym)
                self._restore(f"backfill {sym}")
            for conn, syms in by_conn.items():
                await conn.unsubscribe([s for sym in syms for s in self._streams(sym)])
                if not conn.streams:
                    self._connections.remove(conn)
                    await conn.stop()
            self._update_health()

    async def history(self, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> list[Bar]:
        if timeframe not in KLINE_INTERVALS:
            raise InvalidArgumentError(f"unknown timeframe {timeframe!r}")
        if end_ms <= start_ms:
            return []
        bare = self._bare(symbol)
        return await self.rest.history(bare, timeframe, start_ms, end_ms,
                                       closed_before_ms=await self.rest.server_time(),
                                       name=f"{self.venue.name}:{bare}")

    def health(self) -> SourceHealth:
        self._update_health()
        return self._health

    # -- helpers ------------------------------------------------------------------------
    def now_ms(self) -> int:
        """The exchange's time as far as the streams tell (wall clock before any message)."""
        return self._intake.clock_ms or _wall_ms()

    def _bare(self, symbol: str) -> str:
        venue, sep, bare = symbol.rpartition(":")
        if sep and venue != self.venue.name:
            raise InvalidArgumentError(
                f"symbol {symbol!r} is not on venue {self.venue.name!r}")
        bare = bare.upper()
        if not _SYMBOL.match(bare):
            raise InvalidArgumentError(f"invalid Binance symbol {symbol!r}")
        return bare

    def _streams(self, sym: str) -> list[str]:
        low = sym.lower()
        return [f"{low}@aggTrade", f"{low}@kline_1m"] if self.clock_streams else [f"{low}@aggTrade"]

    def _new_connection(self) -> StreamConnection:
        self._numbers += 1
        conn = StreamConnection(self._numbers, self.settings, self, self._attempts,
                                self.streams_per_connection)
        self._connections.append(conn)
        return conn

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"binance-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _event(self, kind: str, detail: str, symbol: str | None = None) -> None:
        self._events.append(SourceEvent(kind, self.name, self.now_ms(), detail, symbol))
        if kind in _TROUBLE:
            self._troubled = True
        self._wake.set()

    def _degrade(self, key: str) -> None:
        self._degraded.add(key)

    def _restore(self, key: str) -> None:
        if key in self._degraded:
            self._degraded.discard(key)
            if not self._degraded and self._troubled:
                self._troubled = False
                self._event("RECOVERED", f"{key}: recovered; the feed is whole again")

    # -- frames (FrameHandler) --------------------------------------------------------------
    def on_frame(self, state: LinkState, raw: str | bytes) -> bool:
        """Handle one frame in arrival order; True when the delivery backlog is full."""
        intake = self._intake
        if (self.probe_after_s is not None and state.last_seen
                and time.monotonic() - state.last_message > self.probe_after_s):
            self._probe(state)
        intake.on_frame(state, raw)
        if intake.woke:
            intake.woke = False
            self._wake.set()
        return len(intake.ticks) >= self.max_backlog

    def _bad(self, state: LinkState, why: str, raw: str | bytes | None,
             symbol: str | None) -> None:
        self._health.bad_messages += 1
        sample = raw[:200] if raw is not None else None
        log.warning("binance_bad_message", source=self.name, connection=state.number,
                    reason=why, frame=sample if isinstance(sample, str | None) else repr(sample))
        self._event("BAD_MESSAGE", why, symbol)

    def _probe(self, state: LinkState) -> None:
        """A socket that was silent longer than its clock streams allow may have lost frames
        (a stall): hold its symbols and check REST for trades missed, before going on."""
        silent = time.monotonic() - state.last_message
        log.warning("binance_connection_silent", source=self.name, connection=state.number,
                    silent_s=round(silent, 3))
        for sym, conn in self._where.items():
            if conn.number == state.number and self._seq.begin(sym):
                self._start_backfill(sym, f"connection {state.number} silent {silent:.1f} s")

    def _gap(self, sym: str, why: str) -> None:
        self._start_backfill(sym, why)

    async def wait_room(self) -> None:
        self._room.clear()
        self._wake.set()
        while len(self._intake.ticks) >= self.max_backlog and not self._stopped:
            await self._room.wait()
            self._room.clear()

    # -- connection lifecycle (FrameHandler) --------------------------------------------------
    async def on_connected(self, conn: StreamConnection, *, first: bool) -> None:
        key = f"connection {conn.number}"
        if first:
            return
        self._health.reconnects += 1
        for sym in [s for s, c in self._where.items() if c is conn]:
            if self._seq.begin(sym):
                self._start_backfill(sym, "reconnected")
        self._restore(key)

    async def on_lost(self, conn: StreamConnection, why: str, *, stale: bool) -> None:
        key = f"connection {conn.number}"
        self._degrade(key)
        if stale:
            self._event("STALE", f"connection {conn.number}: no message for "
                                 f"{self.settings.stale_after_s:g} s while subscribed; "
                                 "reconnecting")
        self._event("RECONNECT", f"connection {conn.number} {why}; reconnecting")
        log.warning("binance_connection_lost", source=self.name, connection=conn.number, why=why)

    async def on_rotated(self, conn: StreamConnection, why: str) -> None:
        self._counts["rotations"] += 1
        log.info("binance_connection_rotated", source=self.name, connection=conn.number, why=why)

    # -- backfill ---------------------------------------------------------------------------
    def _start_backfill(self, sym: str, why: str) -> None:
        """Fetch ``sym``'s missing trades (the sequencer already holds its live ones)."""
        if sym in self._backfills:
            return
        self._degrade(f"backfill {sym}")
        self._backfills[sym] = self._spawn(self._backfill(sym, why), f"backfill-{sym}")

    async def _backfill(self, sym: str, why: str) -> None:
        qualified = self._intake.qualified[sym]
        first = self._seq.next_id(sym)
        failures = 0
        async with self._backfill_slots:
            while True:
                try:
                    await self._backfill_step(sym)
                    break
                except BinanceRequestError as exc:   # refused for good: do not hold the feed
                    self._give_up(sym, exc)
                    break
                except Exception as exc:  # noqa: BLE001 - REST down or refusing: hold, retry
                    failures += 1
                    log.error("binance_backfill_failed", source=self.name, symbol=sym,
                              error=repr(exc), failures=failures)
                    await asyncio.sleep(full_jitter(failures, base_s=0.5, cap_s=30.0))
        missed = self._seq.end(sym)
        self._backfills.pop(sym, None)
        if missed:
            last = self._seq.next_id(sym) - 1
            self._counts["backfilled"] += missed
            self._counts["gaps"] += 1
            self._event("GAP", f"{why}: {missed} trades the stream missed among aggregate ids "
                               f"{first}..{last}, delivered from REST backfill", qualified)
        self._restore(f"backfill {sym}")
        self._wake.set()

    def _give_up(self, sym: str, exc: BinanceRequestError) -> None:
        """Binance refuses the backfill (e.g. the symbol is gone): skip to the live trades."""
        log.error("binance_backfill_refused", source=self.name, symbol=sym, error=str(exc))
        held = self._seq.held_ids(sym)
        missing = self._seq.next_id(sym)
        while True:                      # past every hole among the held trades
            _, drained = self._seq.skip(sym)
            self._intake.queue(drained)
            if not self._seq.held_ids(sym):
                break
        upto = f"..{held[0] - 1}" if held else " on"
        self._event("GAP", f"aggregate ids {missing}{upto} could not be backfilled: {exc}",
                    self._intake.qualified.get(sym))

    async def _backfill_step(self, sym: str) -> None:
        """Fetch until the held trades join up and REST has nothing newer (a long one logs
        its progress every ``progress_every_s``)."""
        stuck = 0
        fetched = 0
        started = report = time.monotonic()
        while True:
            rows = await self.rest.agg_trades(sym, from_id=self._seq.next_id(sym), limit=PAGE)
            got = self._seq.absorb(sym, rows)
            self._intake.queue(got)
            held = self._seq.held_ids(sym)
            fetched += len(rows)
            if time.monotonic() - report >= self.progress_every_s:
                report = time.monotonic()
                log.info("binance_backfill_progress", source=self.name, symbol=sym,
                         trades=fetched, next_id=self._seq.next_id(sym),
                         live_from_id=held[0] if held else None,
                         elapsed_s=round(report - started, 1))
            if not held and len(rows) < PAGE:
                return                              # caught up with the present
            if got:
                stuck = 0
                continue
            stuck += 1                              # REST is behind the stream: wait for it
            if stuck > self.backfill_retries:
                missing, drained = self._seq.skip(sym)
                self._intake.queue(drained)
                self._event("GAP", f"aggregate ids {missing}..{held[0] - 1} are not available "
                                   "from REST; skipped", self._intake.qualified.get(sym))
                stuck = 0
                continue
            await asyncio.sleep(min(0.05 * 2 ** stuck, 2.0))

    async def _rest_rate_limited(self, status: int, pause_s: float) -> None:
        self._health.rate_limited += 1
        self._degrade("rest")
        self._event("RATE_LIMITED", f"REST answered HTTP {status}; all REST calls paused "
                                    f"for {pause_s:g} s")

    async def _rest_recovered(self) -> None:
        self._restore("rest")

    # -- delivery ------------------------------------------------------------------------------
    async def _deliver(self) -> None:
        sink = self._sink
        assert sink is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._events:
                await self._call(sink.event, self._events.popleft())
            if self._backfills:
                continue
            mark = self._watermark()     # every frame up to here is queued: the batch covers it
            if self._intake.ticks:
                batch = self._ready()
                self._room.set()
            else:
                batch = []
            if batch:
                for i in range(0, len(batch), self.max_batch):
                    chunk = batch[i:i + self.max_batch]
                    await self._call(sink.ticks, self.name, chunk)
                    self._counts["delivered"] += len(chunk)
                last = batch[-1].time_ms
                self._last_tick_ms = max(self._last_tick_ms, last)
                self._health.lag_ms = float(_wall_ms() - last)
            if self._backfills:          # a gap found meanwhile: its trades may be older
                continue
            if mark > self._last_watermark and mark > self._last_tick_ms:
                self._last_watermark = mark
                await self._call(sink.watermark, self.name, mark)

    async def _call(self, method: Callable[..., Awaitable[None]], *args: object) -> None:
        try:
            await method(*args)
        except Exception as exc:  # noqa: BLE001 - a failing sink must not end the feed
            self._counts["sink_errors"] += 1
            log.error("binance_sink_failed", source=self.name, error=repr(exc))

    def _frontier(self) -> int | None:
        """Event time every connection has reached (None: no connection has seen anything)."""
        marks = [m for c in self._connections if (m := c.progress_ms) > 0]
        return min(marks) if marks else None

    def _ready(self) -> list[Tick]:
        """The queued ticks no connection can still precede, oldest first; the rest stay queued.

        With one connection that is all of them; with several, a faster socket's ticks
        wait until the slower ones have reached their time (their clock streams keep
        them moving), so event time never goes back. Without clock streams a quiet
        socket would hold the others forever: each batch is then only sorted.
        """
        batch = self._intake.take()
        frontier = self._frontier()
        if frontier is None or not self.clock_streams or batch[-1].time_ms <= frontier:
            return batch
        cut = bisect.bisect_right(batch, frontier, key=_time_of)
        self._intake.ticks = batch[cut:] + self._intake.ticks
        return batch[:cut]

    def _watermark(self) -> int:
        """The source clock to announce: the frontier, while every connection is up."""
        if any(c.state is None for c in self._connections):
            return 0
        return self._frontier() or 0

    def _update_health(self) -> None:
        h = self._health
        up = [c for c in self._connections if c.state is not None]
        h.up = (self._sink is not None and not self._stopped
                and len(up) == len(self._connections))   # no symbol yet: up, nothing to do
        h.rate_limited = max(h.rate_limited, self.rest.rate_limited)
        stamp = max((c.state.last_message for c in up if c.state), default=None)
        if stamp is not None:
            h.last_message_ms = int(_wall_ms() - (time.monotonic() - stamp) * 1000)
        h.detail = ("; ".join(sorted(self._degraded)) if self._degraded
                    else f"{len(self._where)} symbols on {len(self._connections)} connections")
        h.messages = self._intake.messages
        h.extra = {k: float(v) for k, v in self._counts.items()}
        h.extra.update(connections=float(len(self._connections)),
                       connections_up=float(len(up)),
                       symbols=float(len(self._where)),
                       streams=float(sum(len(c.streams) for c in self._connections)),
                       used_weight=float(self.rest.weight.used),
                       backfills_running=float(len(self._backfills)),
                       duplicates=float(self._intake.duplicates),
                       backlog=float(len(self._intake.ticks)))
