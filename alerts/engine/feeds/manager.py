"""The DataManager: market sources into the engine.

It is the ``MarketSink`` every source delivers to, and the processor's rule
listener. Rules decide what is followed: a symbol is subscribed when the first
rule reading it (any operand counts) is loaded, and unsubscribed when the last
one goes. Its venue's route (``routes.py``) says which sources may feed it.

**One clock per venue.** Whichever source of a route is active, its ticks and
watermarks go to the engine under the route's clock (``feed:<venue>``); a
symbol's bars close by that one clock, so a failover never moves a symbol to
another clock. Per symbol the manager remembers the last event time it passed
on and the trade ids at that millisecond; a tick older than that, or repeating
one of those ids (an id-less tick at that millisecond from another source), is
dropped. So across a switch the engine never sees a tick twice or out of order.

**Failover.** Sources at or above the active one in preference are subscribed;
the others are cold. The active source has failed when it is down, or silent
(no message while it has symbols), for ``stale_after_ms``: the venue then goes
to the next source that has not failed for as long. A better source that has
been healthy for ``recover_after_ms`` takes its symbols back. While a better
source recovers, its ticks are held (up to ``standby_ticks``, the ones the
active source has already passed on are forgotten), and at the switch back they
are passed on through the same filter, so nothing it delivered after the last
tick of the replaced source is lost. A cold source switched to delivers from
what it has: the interval between the failed source's last tick and the new
source's first is exact only if the new source covers it (a REST poller of
recent trades does; it is reported as a GAP otherwise by the source).

**Warm-up** of a symbol the engine has never seen (``_warm``): its ticks are held;
history bars of every timeframe the rules use on it end at a whole minute T of
the venue's clock (or of the symbol's first tick, or of the wall clock, in that
order) and go through ``process_bars``; the minute [T, T+1m), partly missed before
the subscription, is taken from history as a closed 1-minute bar just before
anything at or after T+1m is passed on for the venue, and the symbol's held ticks
from T+1m on follow. Its rules therefore start exactly as if they had been fed
those bars live (paused) and fire from T+1m on.

**Seeding** a symbol already trading (``_seed``): a rule loaded on it may add
states (a timeframe, an indicator) the engine does not have yet. History for
just those timeframes, ending at the venue's last whole minute, goes to the
core's ``seed``, which joins it to the symbol's own recent minutes: the new
states are exactly what they would be had they been there all along, and the
rule is ACTIVE at once. Without history (or if it fails) they warm up live from
their next whole bar, and a GAP notice says so.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from alerts.engine.feeds import notices
from alerts.engine.feeds.routes import Route
from alerts.engine.feeds.warmup import MINUTE_MS, clean_bars, floor_to, history_plan
from alerts.engine.processor import MAX_FUTURE_MS, AlertProcessor, TickBatch, now_ms
from alerts.errors import AlertsError, InvalidArgumentError, UnavailableError
from alerts.market.base import Bar, MarketSource, SourceEvent, SourceHealth, Tick

log = structlog.get_logger("alerts.feeds")

HealthListener = Callable[[str, bool], Awaitable[None]]
"""Told ``(source name, serving)`` whenever a source's health flips (and once at start)."""

#: A symbol silent this long restarts its series in the engine (ARCHITECTURE.md).
_RESTART_GAP_MS = 7 * 86_400_000

#: How long a source's start, stop, subscribe or unsubscribe may take before it is
#: treated as failed (the source's health then says why; the service goes on).
CALL_TIMEOUT_S = 10.0

#: How long seeding a trading symbol waits for the venue to close the minute its
#: tape starts at (a symbol that went live without history, in its first minute).
SEED_WAIT_S = 90.0


@dataclass
class _Warming:
    """A symbol being warmed up: its ticks wait here."""

    held: list[Tick] = field(default_factory=list)
    first_tick: asyncio.Event = field(default_factory=asyncio.Event)
    first_ms: int | None = None
    cut_ms: int | None = None           # history is in up to cut - 1m; live from cut
    resume_from: int | None = None      # restored symbol: history from this whole minute


@dataclass
class _Symbol:
    """What was passed on for a symbol: the dedup/ordering filter across sources."""

    last_ms: int = -1
    ids: set[int] = field(default_factory=set)
    last_source: str = ""
    warming: _Warming | None = None

    def accept(self, tick: Tick, source: str) -> bool:
        if tick.time_ms < self.last_ms:
            return False
        if tick.time_ms == self.last_ms:
            if tick.trade_id == 0 and source != self.last_source:
                return False
            if tick.trade_id != 0 and tick.trade_id in self.ids:
                return False
        else:
            self.last_ms = tick.time_ms
            self.ids.clear()
        if tick.trade_id:
            self.ids.add(tick.trade_id)
        self.last_source = source
        return True


class _RouteState:
    def __init__(self, route: Route, sources: list[MarketSource]) -> None:
        self.route = route
        self.sources = sources
        self.names = [s.name for s in sources]
        self.fill_gaps = sources[0].fill_gaps
        self.grace_ms = sources[0].grace_ms
        self.active = 0
        self.active_since_ms = 0            # wall clock of the last switch or first symbol
        self.symbols: dict[str, _Symbol] = {}
        self.standby: dict[str, deque[Tick]] = {name: deque() for name in self.names}
        self.overflow: dict[str, int] = dict.fromkeys(self.names, 0)   # held ticks let go
        self.lock = asyncio.Lock()          # one at a time: forwarding, switching, warm-up
        self.bad_since: dict[str, float] = {}
        self.good_since: dict[str, float] = {}
        # after a restart, until the restored symbols have their missed bars
        self.resuming = False
        self.resume_held: list[tuple[str, Sequence[Tick]]] = []
        self.resume_mark: int | None = None
        self.withheld: int | None = None    # a watermark not passed on yet (warm-ups)
        self.advanced = asyncio.Event()     # set whenever data went to the venue's clock
        self.first_tick = asyncio.Event()
        self.first_ms: int | None = None


class DataManager:
    """Routes symbols to sources, passes their data to the engine, fails over and back."""

    def __init__(
        self,
        processor: AlertProcessor,
        routes: Sequence[Route],
        sources: Mapping[str, MarketSource],
        *,
        stale_after_ms: int = 30_000,
        stale_after_by_venue: Mapping[str, int] | None = None,
        recover_after_ms: int = 10_000,
        check_interval_ms: int = 1_000,
        standby_ticks: int = 100_000,
        warmup_bars: int = 500,
        warmup_wait_ms: int = 5_000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.processor = processor
        self.metrics = processor.metrics
        self.stale_after_ms = stale_after_ms
        self.stale_after_by_venue = dict(stale_after_by_venue or {})
        self.recover_after_ms = recover_after_ms
        self.check_interval_ms = check_interval_ms
        self.standby_ticks = standby_ticks
        self.warmup_bars = warmup_bars
        self.warmup_wait_ms = warmup_wait_ms
        self.clock = clock
        self.health_listener: HealthListener | None = None
        self._routes: dict[str, _RouteState] = {}
        self._by_source: dict[str, tuple[_RouteState, int]] = {}
        for route in routes:
            missing = [n for n in route.sources if n not in sources]
            if missing:
                raise InvalidArgumentError(
                    f"market_routes: venue {route.venue} names unknown source(s) "
                    f"{', '.join(missing)}; available: {', '.join(sorted(sources)) or 'none'}")
            rs = _RouteState(route, [sources[n] for n in route.sources])
            self._routes[route.venue] = rs
            for pos, name in enumerate(route.sources):
                self._by_source[name] = (rs, pos)
        misnamed = sorted(k for k, src in sources.items() if src.name != k)
        if misnamed:
            raise InvalidArgumentError(f"market sources named otherwise than their key: "
                                       f"{', '.join(misnamed)}")
        unrouted = sorted(set(sources) - set(self._by_source))
        if unrouted:
            raise InvalidArgumentError(f"market sources {', '.join(unrouted)} are in no route")
        self._rules: dict[str, tuple[str, frozenset[str]]] = {}   # rule -> (owner, symbols)
        self._readers: dict[str, set[str]] = {}                    # symbol -> rules
        self._control: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warmups: dict[str, asyncio.Task[None]] = {}
        self._seeds: dict[str, asyncio.Task[None]] = {}
        self._reseed: set[str] = set()      # a rule came while the symbol was being seeded
        self._resumes: set[asyncio.Task[Any]] = set()
        self._serving: dict[str, bool] = {}
        self._messages: dict[str, tuple[float, int]] = {}
        self._wake = asyncio.Event()
        self._started = False
        processor.rule_listener = self

    @property
    def source_names(self) -> list[str]:
        """Every source, by name (the health service has one entry each)."""
        return sorted(self._by_source)

    def active_source(self, venue: str) -> str:
        """The source feeding ``venue`` now."""
        rs = self._routes[venue]
        return rs.names[rs.active]

    def history_bars(self, symbol: str) -> int:
        """Bars per timeframe a new ``symbol`` warms up on from history (0: not routed)."""
        return self.warmup_bars if self._route_of(symbol) is not None else 0

    def warming(self, symbol: str) -> bool:
        """True while ``symbol`` waits for its history (its ticks are held)."""
        rs = self._route_of(symbol)
        st = None if rs is None else rs.symbols.get(symbol)
        return st is not None and st.warming is not None

    # lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Start every source (a failing one is reported as unhealthy), then follow rules."""
        self._started = True
        for rs in self._routes.values():
            rs.resuming = self.processor.source_clock(rs.route.clock) is not None
            for src in rs.sources:
                await self._call(src.name, "start", src.start(self))
            rs.active_since_ms = self.clock()
            if rs.resuming:
                self._spawn(self._resume(rs), self._resumes)
        self._spawn(self._control_loop())
        self._spawn(self._monitor_loop())
        await self.check()

    async def stop(self) -> None:
        """Cancel every task, then stop every source (stopping twice is harmless)."""
        tasks = [*self._tasks, *self._resumes, *self._warmups.values(), *self._seeds.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._warmups.clear()
        self._seeds.clear()
        if self._started:
            for rs in self._routes.values():
                for src in rs.sources:
                    await self._call(src.name, "stop", src.stop())
        self._started = False

    def _spawn(self, coro: Coroutine[Any, Any, None],
               into: set[asyncio.Task[Any]] | None = None) -> None:
        tasks = self._tasks if into is None else into
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _call(self, source: str, what: str, call: Awaitable[None]) -> bool:
        try:
            await asyncio.wait_for(call, CALL_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing source is health, not a crash
            log.warning("source_call_failed", source=source, call=what, error=repr(exc))
            return False
        return True

    # rules (called by the processor, under the engine lock) -------------------------
    def rule_loaded(self, rule_id: str, owner: str, symbols: frozenset[str]) -> None:
        old = self._rules.get(rule_id)
        self._rules[rule_id] = (owner, symbols)
        before = old[1] if old else frozenset()
        for symbol in symbols - before:
            readers = self._readers.setdefault(symbol, set())
            if not readers:
                self._control.put_nowait(("subscribe", symbol))
            readers.add(rule_id)
        for symbol in before - symbols:
            self._drop_reader(symbol, rule_id)
        for symbol in symbols:
            self._control.put_nowait(("seed", symbol))

    def rule_removed(self, rule_id: str) -> None:
        old = self._rules.pop(rule_id, None)
        for symbol in old[1] if old else ():
            self._drop_reader(symbol, rule_id)

    def _drop_reader(self, symbol: str, rule_id: str) -> None:
        readers = self._readers.get(symbol)
        if readers is None:
            return
        readers.discard(rule_id)
        if not readers:
            del self._readers[symbol]
            self._control.put_nowait(("unsubscribe", symbol))

    def _owners(self, symbols: Sequence[str] | set[str]) -> set[str]:
        return {self._rules[rid][0] for s in symbols for rid in self._readers.get(s, ())}

    def _route_of(self, symbol: str) -> _RouteState | None:
        return self._routes.get(symbol.partition(":")[0])

    async def _control_loop(self) -> None:
        while True:
            op, symbol = await self._control.get()
            rs = self._route_of(symbol)
            try:
                if rs is None:
                    pass        # no source for this venue: PublishTicks only
                elif op == "subscribe" and symbol in self._readers:
                    await self._subscribe(rs, symbol)
                elif op == "unsubscribe" and symbol not in self._readers:
                    await self._unsubscribe(rs, symbol)
                elif op == "seed":
                    self._seed_soon(rs, symbol)
            except UnavailableError:
                return          # shutting down
            except Exception:  # logged; the next change retries the symbol
                log.exception("subscription_failed", symbol=symbol, op=op)
            finally:
                self._control.task_done()

    async def _subscribe(self, rs: _RouteState, symbol: str) -> None:
        async with rs.lock:
            if symbol in rs.symbols:
                return
            st = _Symbol()
            last = self.processor.symbol_last_ms(symbol)
            if last is None:
                st.warming = _Warming()
            elif rs.resuming:
                st.warming = _Warming(resume_from=floor_to(last, MINUTE_MS) + MINUTE_MS)
            rs.symbols[symbol] = st
            if len(rs.symbols) == 1:
                rs.active_since_ms = self.clock()
            following = rs.sources[:rs.active + 1]
        # outside the lock: a source may need its own deliveries to get through first
        for src in following:
            await self._call(src.name, "subscribe", src.subscribe([symbol]))
        if st.warming is not None and st.warming.resume_from is None:
            task = asyncio.create_task(self._warm(rs, symbol, st))
            self._warmups[symbol] = task
            task.add_done_callback(lambda t: self._warmups.pop(symbol, None)
                                   if self._warmups.get(symbol) is t else None)
        log.info("symbol_subscribed", symbol=symbol, source=rs.names[rs.active],
                 warm_up=st.warming is not None)

    async def _unsubscribe(self, rs: _RouteState, symbol: str) -> None:
        async with rs.lock:
            if rs.symbols.pop(symbol, None) is None:
                return
            task = self._warmups.pop(symbol, None)
            if task is not None:
                task.cancel()
            following = rs.sources[:rs.active + 1]
        for src in following:
            await self._call(src.name, "unsubscribe", src.unsubscribe([symbol]))
        log.info("symbol_unsubscribed", symbol=symbol)

    # MarketSink ------------------------------------------------------------------
    async def ticks(self, source: str, ticks: Sequence[Tick]) -> None:
        entry = self._by_source.get(source)
        if entry is None or not ticks:
            return
        rs, pos = entry
        async with rs.lock:
            if pos == rs.active:
                await self._forward(rs, source, ticks)
            elif pos < rs.active:
                self._hold(rs, source, ticks)
            else:
                self.metrics.source_ticks.labels(source, "inactive").inc(len(ticks))

    async def watermark(self, source: str, time_ms: int) -> None:
        entry = self._by_source.get(source)
        if entry is None:
            return
        rs, pos = entry
        async with rs.lock:
            if pos == rs.active and rs.resuming:
                rs.resume_mark = max(rs.resume_mark or time_ms, time_ms)
            elif pos == rs.active:
                await self._finish_warmups(rs, time_ms)
                rs.withheld = max(rs.withheld or time_ms, time_ms)
                await self._release_watermark(rs)

    async def _release_watermark(self, rs: _RouteState) -> None:
        """Pass the venue's watermark on, but not past a warming symbol's held ticks
        (the engine would count them late once they are passed on)."""
        if rs.withheld is None:
            return
        held = [st.warming.first_ms for st in rs.symbols.values()
                if st.warming is not None and st.warming.first_ms is not None]
        mark = min([rs.withheld, *held])
        if mark == rs.withheld:
            rs.withheld = None
        await self._publish(rs, [], watermark_ms=mark)

    async def event(self, event: SourceEvent) -> None:
        self.metrics.source_events.labels(event.source, event.kind).inc()
        log.info("feed_event", source=event.source, kind=event.kind, symbol=event.symbol,
                 detail=event.detail, time_ms=event.time_ms)
        entry = self._by_source.get(event.source)
        if entry is None:
            return
        rs, pos = entry
        if event.kind == "STALE" and pos == rs.active:
            self._wake.set()
        if pos == rs.active:    # a recovering or cold source's troubles are metrics and logs
            await self._notify(rs, pos, event)

    async def _notify(self, rs: _RouteState, pos: int, event: SourceEvent) -> None:
        if event.symbol is not None:
            symbol, owners = event.symbol, self._owners([event.symbol])
        else:
            symbol, owners = f"{rs.route.venue}:*", self._owners(set(rs.symbols))
        alerts = notices.alerts_for(event, symbol=symbol, owners=owners, position=pos,
                                    now_ms=now_ms())
        try:
            await self.processor.commit_notices(alerts)
        except UnavailableError:
            pass                # shutting down: the event is in the log and the metrics

    # passing data on (under the route's lock) ----------------------------------------
    async def _forward(self, rs: _RouteState, source: str, ticks: Sequence[Tick]) -> None:
        if rs.resuming:                 # passed on once the restored symbols have their bars
            rs.resume_held.append((source, ticks))
            if rs.first_ms is None:
                rs.first_ms = min(t.time_ms for t in ticks)
                rs.first_tick.set()
            return
        limit = now_ms() + MAX_FUTURE_MS
        upto = max((t.time_ms for t in ticks if t.time_ms <= limit), default=None)
        if upto is not None:
            await self._finish_warmups(rs, upto)
        good: list[Tick] = []
        counts = {"duplicate": 0, "invalid": 0, "unsubscribed": 0, "warming": 0}
        for t in ticks:
            st = rs.symbols.get(t.symbol)
            if st is None:
                counts["unsubscribed"] += 1
            elif not (math.isfinite(t.price) and t.price > 0 and math.isfinite(t.qty)
                      and t.qty >= 0 and t.time_ms <= limit):
                counts["invalid"] += 1
            elif st.warming is not None:
                w = st.warming
                w.held.append(t)
                if w.first_ms is None:
                    w.first_ms = t.time_ms
                    w.first_tick.set()
                counts["warming"] += 1
            elif st.accept(t, source):
                good.append(t)
            else:
                counts["duplicate"] += 1
        for outcome, n in counts.items():
            if n:
                self.metrics.source_ticks.labels(source, outcome).inc(n)
        if good:
            self.metrics.source_ticks.labels(source, "forwarded").inc(len(good))
            await self._publish(rs, good)

    def _hold(self, rs: _RouteState, source: str, ticks: Sequence[Tick]) -> None:
        """Keep a recovering source's ticks the active source has not passed on yet."""
        held = rs.standby[source]
        held.extend(t for t in ticks if t.symbol in rs.symbols)
        while held:
            st = rs.symbols.get(held[0].symbol)
            if st is not None and held[0].time_ms >= st.last_ms:
                break
            held.popleft()
        while len(held) > self.standby_ticks:
            held.popleft()
            rs.overflow[source] += 1
        self.metrics.source_ticks.labels(source, "held").inc(len(ticks))

    async def _publish(self, rs: _RouteState, ticks: Sequence[Tick], *,
                       watermark_ms: int | None = None) -> None:
        n = len(ticks)
        batch = TickBatch(
            symbols=[t.symbol for t in ticks],
            time_ms=np.fromiter((t.time_ms for t in ticks), np.int64, n),
            price=np.fromiter((t.price for t in ticks), np.float64, n),
            qty=np.fromiter((t.qty for t in ticks), np.float64, n),
            trade_id=np.fromiter((t.trade_id for t in ticks), np.int64, n),
        )
        try:
            await self.processor.publish(rs.route.clock, batch, watermark_ms=watermark_ms,
                                         fill_gaps=rs.fill_gaps, grace_ms=rs.grace_ms)
            rs.advanced.set()
        except UnavailableError:
            pass                # shutting down; resumed from the checkpoint's watermark
        except AlertsError as exc:
            log.warning("feed_batch_refused", venue=rs.route.venue, error=str(exc))

    # warm-up ---------------------------------------------------------------------
    async def _warm(self, rs: _RouteState, symbol: str, st: _Symbol) -> None:
        try:
            await self._warm_up(rs, symbol, st)
        except UnavailableError:
            pass                # shutting down
        except Exception as exc:  # noqa: BLE001 - the symbol then warms up from live data
            await self._warmup_failed(rs, symbol, st, exc)

    async def _warm_up(self, rs: _RouteState, symbol: str, st: _Symbol) -> None:
        """History up to a whole minute T now; the minute [T, T+1m) at the cut-over."""
        w = st.warming
        assert w is not None
        anchor = self._live_clock(rs)
        if anchor is None:      # the symbol's first tick (the venue's, while it resumes)
            resuming = rs.resuming
            waits = {asyncio.create_task(w.first_tick.wait())}
            if resuming:
                waits.add(asyncio.create_task(rs.first_tick.wait()))
            try:
                await asyncio.wait(waits, timeout=self.warmup_wait_ms / 1000,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
            anchor = w.first_ms if w.first_ms is not None else (
                rs.first_ms if resuming else self._live_clock(rs))
        end = floor_to(anchor if anchor is not None else self.clock(), MINUTE_MS)
        timeframes = self.processor.timeframes_read(symbol)
        plan = history_plan(timeframes, end, self.warmup_bars)
        segments = [(tf, await self._history(rs, symbol, tf, a, b)) for tf, a, b in plan]
        async with rs.lock:
            if rs.symbols.get(symbol) is not st:
                return
            clock = self._live_clock(rs)
            later = floor_to(clock, MINUTE_MS) if clock is not None else end
            if later > end:     # the venue moved on meanwhile: history up to its minute
                segments.append(("1m", await self._history(rs, symbol, "1m", end, later)))
                end = later
            if not any(bars for _, bars in segments):
                await self._go_live(rs, symbol, st)     # no history at all: warm up live
                log.info("no_history", symbol=symbol)
                return
            fed = await self.processor.warm_up(rs.route.clock, symbol, segments,
                                               fill_gaps=rs.fill_gaps, grace_ms=rs.grace_ms)
            self.metrics.warmup_bars.labels(rs.route.venue).inc(fed)
            w.cut_ms = end + MINUTE_MS
            log.info("warmed_up", symbol=symbol, bars=fed, live_from_ms=w.cut_ms,
                     timeframes=sorted(timeframes))
            held_until = max((t.time_ms for t in w.held), default=-1)
            if held_until >= w.cut_ms:
                await self._finish_warmups(rs, held_until)

    # seeding new states of a trading symbol ---------------------------------------
    def _seed_soon(self, rs: _RouteState, symbol: str) -> None:
        st = rs.symbols.get(symbol)
        if st is None or (st.warming is not None and st.warming.cut_ms is None):
            return              # not followed, or waiting for history (seeded after it)
        if symbol in self._seeds:
            self._reseed.add(symbol)
            return
        task = asyncio.create_task(self._seed(rs, symbol))
        self._seeds[symbol] = task
        task.add_done_callback(lambda t: self._seeds.pop(symbol, None)
                               if self._seeds.get(symbol) is t else None)

    async def _seed(self, rs: _RouteState, symbol: str) -> None:
        try:
            while True:
                self._reseed.discard(symbol)
                await self._seed_once(rs, symbol)
                if symbol not in self._reseed:
                    return
        except UnavailableError:
            pass                # shutting down
        except Exception as exc:  # noqa: BLE001 - the new states then warm up from live data
            log.warning("seed_failed", symbol=symbol, error=repr(exc))
            await self._notify(rs, rs.active, SourceEvent(
                "GAP", rs.names[rs.active], self.clock(),
                f"no history for the new indicators of {symbol} ({exc}); they warm up from "
                "live data", symbol))

    async def _seed_once(self, rs: _RouteState, symbol: str) -> None:
        """History up to the venue's last whole minute, joined to the symbol's tape.

        A symbol that went live without history has a tape from the minute after its
        first tick: until the venue's clock closes that minute, history cannot reach
        it, so the seed waits for it (at most ``SEED_WAIT_S``).
        """
        timeframes, tape = await self.processor.pending(symbol)
        if not timeframes:
            return
        if tape is not None:
            try:
                async with asyncio.timeout(SEED_WAIT_S):
                    while self._clock_minute(rs) < tape:
                        rs.advanced.clear()
                        await rs.advanced.wait()
            except TimeoutError:
                pass            # seed() then says the history does not reach the tape
        end = self._clock_minute(rs)
        segments = [(tf, a, b, await self._history(rs, symbol, tf, a, b))
                    for tf, a, b in history_plan(timeframes, end, self.warmup_bars)]
        if not any(bars for *_, bars in segments):
            raise AlertsError("the source has no history")
        seeded = await self.processor.seed(symbol, segments)
        if seeded < 0:
            raise AlertsError(f"history up to {end} ends before the engine's recent minutes")
        bars = sum(len(b) for *_, b in segments)
        self.metrics.warmup_bars.labels(rs.route.venue).inc(bars)
        log.info("seeded", symbol=symbol, states=seeded, bars=bars, timeframes=timeframes)

    def _clock_minute(self, rs: _RouteState) -> int:
        """The last whole minute of the venue's clock (of the wall clock without one)."""
        clock = self._live_clock(rs)
        return floor_to(clock if clock is not None else self.clock(), MINUTE_MS)

    def _live_clock(self, rs: _RouteState) -> int | None:
        """The venue's clock, if a live symbol drives it (after a restart it is the
        checkpoint's until then, which says nothing about where live data is now)."""
        if rs.resuming or all(st.warming is not None for st in rs.symbols.values()):
            return None
        return self.processor.source_clock(rs.route.clock)

    async def _resume(self, rs: _RouteState) -> None:
        """After a restart: every restored symbol gets the 1-minute bars it missed.

        Nothing is passed on for the venue meanwhile (its clock would close the
        restored symbols' bars flat). History ends at the whole minute of the venue's
        first tick (or of the wall clock after ``warmup_wait_ms``); the minute from
        there is completed at the cut-over like a warm-up's.
        """
        await self._control.join()          # the loaded rules' symbols are subscribed
        try:
            await asyncio.wait_for(rs.first_tick.wait(), self.warmup_wait_ms / 1000)
        except TimeoutError:
            pass
        end = floor_to(rs.first_ms if rs.first_ms is not None else self.clock(), MINUTE_MS)
        fetched: dict[str, list[tuple[str, list[Bar]]]] = {}
        for symbol, st in list(rs.symbols.items()):
            w = st.warming
            if w is None or w.resume_from is None:
                continue
            if end - w.resume_from > _RESTART_GAP_MS:     # the engine restarts such series
                plan = history_plan(self.processor.timeframes_read(symbol), end,
                                    self.warmup_bars)
            else:
                plan = [("1m", w.resume_from, end)] if end > w.resume_from else []
            try:
                fetched[symbol] = [(tf, await self._history(rs, symbol, tf, a, b))
                                   for tf, a, b in plan]
            except Exception as exc:  # noqa: BLE001 - the gap stays as the engine fills it
                log.warning("resume_failed", symbol=symbol, error=repr(exc))
                fetched[symbol] = []
        async with rs.lock:
            for symbol, segments in fetched.items():
                restored = rs.symbols.get(symbol)
                w = None if restored is None else restored.warming
                if restored is None or w is None or w.resume_from is None:
                    continue
                if end > w.resume_from and not any(b for _, b in segments):
                    await self._go_live(rs, symbol, restored)   # no history: live at once
                    continue
                fed = await self.processor.warm_up(rs.route.clock, symbol, segments,
                                                   fill_gaps=rs.fill_gaps, grace_ms=rs.grace_ms)
                self.metrics.warmup_bars.labels(rs.route.venue).inc(fed)
                w.cut_ms = end + MINUTE_MS
                log.info("resumed", symbol=symbol, bars=fed, live_from_ms=end + MINUTE_MS)
            rs.resuming = False
            held, rs.resume_held = rs.resume_held, []
            for source, ticks in held:
                await self._forward(rs, source, ticks)
            if rs.resume_mark is not None:
                await self._finish_warmups(rs, rs.resume_mark)
                await self._publish(rs, [], watermark_ms=rs.resume_mark)
                rs.resume_mark = None

    async def _history(self, rs: _RouteState, symbol: str, timeframe: str, start: int,
                       end: int) -> list[Bar]:
        src = rs.sources[rs.active]
        bars = await src.history(symbol, timeframe, start, end)
        return clean_bars(bars, symbol, timeframe, start, end)

    async def _finish_warmups(self, rs: _RouteState, upto_ms: int) -> None:
        """Before the venue's data reaches ``upto_ms``: feed every due minute [T, T+1m)."""
        for symbol, st in list(rs.symbols.items()):
            w = st.warming
            if w is None or w.cut_ms is None or upto_ms < w.cut_ms:
                continue
            start = w.cut_ms - MINUTE_MS
            bars: list[Bar] = []
            if w.resume_from is None or start >= w.resume_from:   # not a minute it has data of
                try:
                    bars = await self._history(rs, symbol, "1m", start, w.cut_ms)
                except Exception as exc:  # noqa: BLE001 - the minute's held ticks are used
                    log.warning("warm_up_minute_failed", symbol=symbol, error=repr(exc))
            if bars:
                await self.processor.warm_up(rs.route.clock, symbol, [("1m", bars)],
                                             fill_gaps=rs.fill_gaps, grace_ms=rs.grace_ms)
                self.metrics.warmup_bars.labels(rs.route.venue).inc(len(bars))
            st.warming = None
            self._seed_soon(rs, symbol)     # a rule that came during the warm-up
            live_from = w.cut_ms if bars else start
            st.last_ms = live_from - 1
            source = rs.names[rs.active]
            good = [t for t in w.held if t.time_ms >= live_from and st.accept(t, source)]
            if good:
                await self._publish(rs, good)
            await self._release_watermark(rs)

    async def _warmup_failed(self, rs: _RouteState, symbol: str, st: _Symbol,
                             exc: Exception) -> None:
        log.warning("warm_up_failed", symbol=symbol, error=repr(exc))
        async with rs.lock:
            await self._go_live(rs, symbol, st)
        await self._notify(rs, rs.active, SourceEvent(
            "GAP", rs.names[rs.active], self.clock(),
            f"no history to warm {symbol} up ({exc}); its indicators warm up from live data",
            symbol))

    async def _go_live(self, rs: _RouteState, symbol: str, st: _Symbol) -> None:
        """Without history: pass every held tick on, then the live ones."""
        w = st.warming
        st.warming = None
        self._seed_soon(rs, symbol)
        if w is not None and rs.symbols.get(symbol) is st:
            source = rs.names[rs.active]
            good = [t for t in w.held if st.accept(t, source)]
            if good:
                await self._publish(rs, good)
        await self._release_watermark(rs)

    async def idle(self) -> None:
        """Wait until every rule change is applied to the subscriptions and warm-ups end."""
        await self._control.join()
        while self._warmups or self._resumes or self._seeds:
            await asyncio.gather(*self._warmups.values(), *self._resumes,
                                 *self._seeds.values(), return_exceptions=True)

    # health and failover -----------------------------------------------------------
    async def _monitor_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.check_interval_ms / 1000)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.check()
            except UnavailableError:
                return          # shutting down
            except Exception:  # logged; the next check tries again
                log.exception("feed_check_failed")

    async def check(self) -> None:
        """Read every source's health; publish it; fail over or back where due."""
        mono = time.monotonic()
        wall = self.clock()
        for rs in self._routes.values():
            failed: set[str] = set()
            up: set[str] = set()
            for pos, src in enumerate(rs.sources):
                try:
                    h = src.health()
                except Exception as exc:  # noqa: BLE001 - a source that cannot say is down
                    h = SourceHealth(up=False, detail=f"health() failed: {exc!r}")
                if h.up:
                    up.add(src.name)
                ok, stale = self._judge(rs, pos, h, wall)
                name = src.name
                if ok:
                    rs.bad_since.pop(name, None)
                    rs.good_since.setdefault(name, mono)
                else:
                    rs.good_since.pop(name, None)
                    rs.bad_since.setdefault(name, mono)
                    if stale or mono - rs.bad_since[name] >= self._stale_after(rs) / 1000:
                        failed.add(name)
                self._gauges(rs, src, h, ok, mono)
                await self._set_serving(name, ok)
            await self._decide(rs, failed, up, mono)

    def _judge(self, rs: _RouteState, pos: int, h: SourceHealth, wall: int) -> tuple[bool, bool]:
        """(healthy, stale): stale = subscribed to symbols and silent for stale_after_ms."""
        if pos > rs.active or not rs.symbols:
            return h.up, False
        last = max(h.last_message_ms or 0, rs.active_since_ms)
        stale = wall - last > self._stale_after(rs)
        return h.up and not stale, stale

    def _stale_after(self, rs: _RouteState) -> int:
        return self.stale_after_by_venue.get(rs.route.venue, self.stale_after_ms)

    async def _decide(self, rs: _RouteState, failed: set[str], up: set[str],
                      mono: float) -> None:
        active = rs.active
        for pos in range(active):       # a better source, healthy long enough, takes over
            since = rs.good_since.get(rs.names[pos])
            if since is not None and mono - since >= self.recover_after_ms / 1000:
                await self._switch(rs, pos, "RECOVERED",
                                   f"{rs.names[pos]} is healthy again: {rs.route.venue} "
                                   f"switched back from {rs.names[active]}")
                return
        if rs.names[active] in failed and active + 1 < len(rs.sources):
            # the next source that says it is up, else simply the next one (a cold
            # source may only come up once it has symbols)
            later = range(active + 1, len(rs.sources))
            pos = next((p for p in later if rs.names[p] in up), active + 1)
            await self._switch(rs, pos, "STALE", f"{rs.names[active]} is down or silent: "
                                                 f"{rs.route.venue} switched to {rs.names[pos]}")

    async def _switch(self, rs: _RouteState, target: int, kind: str, detail: str) -> None:
        """Make ``target`` the venue's active source (its held ticks are applied first)."""
        async with rs.lock:
            old = rs.active
            if target == old:
                return
            symbols = sorted(rs.symbols)
            rs.active = target
            rs.active_since_ms = self.clock()
            name = rs.names[target]
            held = list(rs.standby[name])
            rs.standby[name].clear()
            overflow, rs.overflow[name] = rs.overflow[name], 0
            dropped = rs.sources[target + 1:old + 1]      # switching back: now cold again
            for src in dropped:
                rs.standby[src.name].clear()
                rs.overflow[src.name] = 0
            self.metrics.source_switches.labels(rs.route.venue, name).inc()
            log.warning("feed_switched", venue=rs.route.venue, source=name,
                        previous=rs.names[old], held=len(held))
            if held:
                await self._forward(rs, name, held)
        # subscriptions change outside the lock (a source's call may wait for its own
        # deliveries); ticks of a newly active source are applied as soon as they come
        if symbols:
            for src in rs.sources[old + 1:target + 1]:
                await self._call(src.name, "subscribe", src.subscribe(symbols))
            for src in dropped:
                await self._call(src.name, "unsubscribe", src.unsubscribe(symbols))
        # the alert names the source that failed (or recovered)
        subject = rs.names[old] if kind == "STALE" else rs.names[target]
        now = self.clock()
        await self._notify(rs, rs.names.index(subject), SourceEvent(kind, subject, now, detail))
        if overflow:
            await self._notify(rs, target, SourceEvent(
                "GAP", name, now, f"{overflow} ticks {name} delivered while recovering were "
                f"not held (feed_standby_ticks = {self.standby_ticks}); bars may miss them"))

    def _gauges(self, rs: _RouteState, src: MarketSource, h: SourceHealth, ok: bool,
                mono: float) -> None:
        m = self.metrics
        name = src.name
        m.source_up.labels(name).set(1 if ok else 0)
        m.source_active.labels(rs.route.venue, name).set(1 if rs.names[rs.active] == name else 0)
        m.source_lag.labels(name).set(h.lag_ms / 1000)
        m.source_messages.labels(name).set(h.messages)
        before = self._messages.get(name)
        if before is not None and mono > before[0]:
            m.source_rate.labels(name).set(max(h.messages - before[1], 0) / (mono - before[0]))
        self._messages[name] = (mono, h.messages)

    async def _set_serving(self, name: str, serving: bool) -> None:
        if self._serving.get(name) == serving:
            return
        self._serving[name] = serving
        if self.health_listener is not None:
            await self.health_listener(name, serving)

    def serving(self, name: str) -> bool:
        """What the health service says for the source ``name``."""
        return self._serving.get(name, False)
