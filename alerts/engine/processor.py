"""AlertProcessor: ticks in, committed alerts out.

One Kernel, driven off the event loop thread (the core releases the GIL, so
the event loop keeps serving clients while a batch runs): on the processor's
worker thread, except that a tick batch runs wherever the store runs its
transaction (``Store.commit_produced``; SQLite: its writer's thread), so a batch
crosses threads once from the engine to the disk. Rule changes and tick batches
are serialised through one lock, which fixes their order and keeps the kernel
used by one thread at a time; each batch's alerts and the trigger states of the
rules that fired are committed in one store transaction, together with the
source's watermark (and, for rules that name channels, one pending delivery per
channel), before anyone is told;
then the hub fans the committed alerts out and the ``committed`` listeners (the
delivery outbox) are called with them.
"""

from __future__ import annotations

import asyncio
import gc
import math
import operator
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt

from alerts.delivery.hub import AlertHub
from alerts.engine.kernel import BarColumns, Fired, Kernel, Snapshot, TickCounts
from alerts.engine.messages import render
from alerts.engine.system_alerts import rule_expired
from alerts.errors import FieldViolation, InvalidArgumentError, UnavailableError
from alerts.market.base import Bar
from alerts.observability.metrics import Metrics
from alerts.rules.catalog import TIMEFRAME_MS
from alerts.rules.compiler import CompiledRule, qualify
from alerts.rules.parser import parse_condition
from alerts.storage.base import BatchWrite, Store
from alerts.storage.records import AlertRecord, Checkpoint, NewAlert, RuleRecord, TriggerState
from alerts_core import wire

#: A tick more than this far ahead of the wall clock is refused.
MAX_FUTURE_MS = 60_000
#: Symbols as published -> kernel ids, for this many distinct names (then it starts over).
PUBLISHED_NAMES_LIMIT = 100_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class TickColumns:
    """The columns every tick batch has, one row a tick."""

    time_ms: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    trade_id: np.ndarray

    def __len__(self) -> int:
        return len(self.time_ms)


@dataclass(frozen=True)
class TickBatch(TickColumns):
    """A tick batch from a feed (symbols already qualified)."""

    symbols: list[str]


@dataclass(frozen=True)
class DecodedTicks(TickColumns):
    """One PublishTicks message's ticks, checked (``AlertProcessor.decode``).

    ``ids`` are kernel symbol ids, -1 for a name seen for the first time; ``new_names``
    are those names as published (bytes), in tick order.
    """

    ids: npt.NDArray[np.int32]
    new_names: list[bytes]


@dataclass(frozen=True)
class PublishResult:
    accepted: int
    late: int
    duplicate: int
    watermark_ms: int | None
    alerts: list[AlertRecord]


def bar_columns(bars: Sequence[Bar]) -> BarColumns:
    """Bars as the core's columns."""
    n = len(bars)
    col = np.fromiter
    return BarColumns(
        col((b.open_ms for b in bars), np.int64, n), col((b.open for b in bars), float, n),
        col((b.high for b in bars), float, n), col((b.low for b in bars), float, n),
        col((b.close for b in bars), float, n), col((b.volume for b in bars), float, n),
        col((b.quote_volume for b in bars), float, n), col((b.trades for b in bars), np.int64, n))


def symbols_read(compiled: CompiledRule) -> frozenset[str]:
    """Every symbol a rule's program reads: its own and each operand's."""
    return frozenset({compiled.symbol, *(o.symbol for o in compiled.operands)})


class RuleListener(Protocol):
    """Told, under the engine lock, which symbols each loaded rule reads (the DataManager)."""

    def rule_loaded(self, rule_id: str, owner: str, symbols: frozenset[str]) -> None:
        """A rule was loaded or reloaded; ``symbols`` is every symbol its program reads."""

    def rule_removed(self, rule_id: str) -> None:
        """A rule was deleted."""


_PROBLEMS = {
    wire.BAD_SYMBOL: ("symbol", "expected SYMBOL or VENUE:SYMBOL"),
    wire.BAD_PRICE: ("price", "price must be finite and > 0"),
    wire.BAD_QUANTITY: ("quantity", "quantity must be finite and >= 0"),
    wire.BAD_TIMESTAMP: ("event_time", "not a valid timestamp (years 1 to 9999, nanos 0-999999999)"),
    wire.FUTURE_TIME: ("event_time", "event time is more than 60 s ahead of the server's clock"),
}


def _refuse(problem: tuple[int, int], field: str) -> InvalidArgumentError:
    i, code = problem
    name, why = _PROBLEMS[code]
    path = f"{field}[{i}].{name}"
    return InvalidArgumentError(f"{path}: {why}", violations=(FieldViolation(path, why),))


def validate_ticks(batch: TickBatch, *, now: int, field: str = "ticks") -> None:
    """Refuse the whole batch at its first bad tick, naming ``ticks[i].field`` (the
    checks of ``alerts_core.wire.tick_problem``, as ``decode`` makes them)."""
    problem = wire.first_bad_tick(_bad_symbols(batch.symbols), batch.price, batch.qty,
                                  batch.time_ms, now + MAX_FUTURE_MS)
    if problem is not None:
        raise _refuse(problem, field)


def _bad_symbols(symbols: Sequence[str]) -> npt.NDArray[np.uint8]:
    """Which symbols ``qualify`` refuses: empty, or nothing after or before the last ':'."""
    # The usual case, per symbol in C: none is empty, none starts or ends with ':'.
    if (all(symbols) and not any(map(_STARTS_WITH_COLON, symbols))
            and not any(map(_ENDS_WITH_COLON, symbols))):
        return np.zeros(len(symbols), np.uint8)
    return np.array([not s or s.rfind(":") in (0, len(s) - 1) for s in symbols], np.uint8)


_STARTS_WITH_COLON = operator.methodcaller("startswith", ":")
_ENDS_WITH_COLON = operator.methodcaller("endswith", ":")


class AlertProcessor:
    """Owns the kernel; the only writer of alerts and trigger states."""

    def __init__(self, store: Store, hub: AlertHub, *, default_venue: str = "binance",
                 grace_ms: int = 1000, enable_1s: bool = False,
                 checkpoint_interval_ms: int = 60_000) -> None:
        self.store = store
        self.hub = hub
        self.default_venue = default_venue
        self.grace_ms = grace_ms
        self.kernel = Kernel(enable_1s=enable_1s, default_venue=default_venue)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts-kernel")
        self._lock = asyncio.Lock()
        self._rules: dict[str, RuleRecord] = {}
        self._sources: dict[str, int] = {}
        self._compiled: dict[str, CompiledRule] = {}
        self._published_ids = wire.SymbolIds()   # names as published -> kernel ids
        self.metrics = Metrics()
        self.checkpoint_interval_ms = checkpoint_interval_ms
        self._dirty = False                 # ticks applied since the last checkpoint
        self._next_checkpoint: int | None = None
        self._checkpoint_wall: float | None = None
        self._checkpoint_write: asyncio.Task[None] | None = None
        self.metrics.checkpoint_age.set_function(
            lambda: float("nan") if self._checkpoint_wall is None
            else time.monotonic() - self._checkpoint_wall)
        self._closed = False
        self.committed: list[Callable[[Sequence[AlertRecord]], None]] = []
        """Called after each commit with its alerts, in id order; must not block."""
        self.rule_listener: RuleListener | None = None

    # lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        """Restore the last checkpoint, then load every stored rule.

        With a checkpoint, rules in it continue with their checkpointed trigger state and
        rules created after it start fresh (a checkpoint is taken before every rule
        change, so the sources' resent ticks replay exactly what happened). Publishers
        resend from the watermark an empty PublishTicks returns.
        """
        cp = await self.store.load_checkpoint()
        if cp is not None:
            self.kernel.prepare_restore(cp.blob)
            self._sources = {name: i for i, name in enumerate(self.kernel.source_names)}
        states = {} if cp is not None else {s.rule_id: s for s in await self.store.trigger_states()}
        for rec in await self.store.all_rules():
            compiled = self.compile(rec)
            self.kernel.load(rec.rule_id, compiled, paused=rec.paused)
            self._rules[rec.rule_id] = rec
            self._compiled[rec.rule_id] = compiled
            self._tell_loaded(rec, compiled)
            state = states.get(rec.rule_id)
            if state is not None:
                self.kernel.restore_state(rec.rule_id, fires=state.fires,
                                          last_fire_ms=state.last_fire_ms, armed=state.armed,
                                          completed=state.completed, expired=state.expired)
        if cp is not None:
            self.kernel.restore(cp.blob)
            clocks = [c for c in (self.kernel.engine.source_clock(i)
                                  for i in range(len(self.kernel.source_names))) if c is not None]
            if clocks:
                self._next_checkpoint = max(clocks) + self.checkpoint_interval_ms
            self._checkpoint_wall = time.monotonic()
        self.hub.last_id = await self.store.last_alert_id()
        gc.freeze()

    async def _checkpoint(self, *, wait: bool = True) -> None:
        """Save the engine's state with every source's watermark (called under the lock).

        The state is copied under the lock; with ``wait=False`` (the periodic checkpoint)
        the store write goes on while ticks flow. Writes stay in order, and until one
        lands the previous checkpoint is the valid one, which is still correct to resume
        from. A rule change waits, since the stored rule must never be newer than the
        checkpoint it will be replayed from.
        """
        loop = asyncio.get_running_loop()
        blob = await loop.run_in_executor(self._worker, self.kernel.checkpoint)
        marks = {name: clock for name, i in self._sources.items()
                 if (clock := self.kernel.engine.source_clock(i)) is not None}
        cp = Checkpoint(blob=blob, watermarks=marks, create_time_ms=now_ms())
        self._dirty = False
        self._checkpoint_wall = time.monotonic()
        if self._checkpoint_write is not None:
            await self._checkpoint_write
        self._checkpoint_write = asyncio.create_task(self.store.save_checkpoint(cp))
        if wait:
            await self._checkpoint_write

    async def stop(self) -> None:
        """Finish the batch under way, checkpoint, then stop taking work."""
        async with self._lock:
            if self._dirty and not self._closed:
                await self._checkpoint()
            elif self._checkpoint_write is not None:
                await self._checkpoint_write
            self._closed = True
        self._worker.shutdown(wait=True)

    # rules ------------------------------------------------------------------
    def compile(self, rec: RuleRecord) -> CompiledRule:
        return self.kernel.compile(
            rec.symbol, parse_condition(rec.condition_text), mode=rec.mode,
            timeframe=rec.timeframe, cooldown_ms=rec.cooldown_ms, max_fires=rec.max_fires,
            expire_time_ms=rec.expire_time_ms, hold_ms=rec.hold_for_ms,
            hysteresis=rec.hysteresis,
        )

    async def change_rule(self, store_change: Callable[[], Awaitable[RuleRecord | None]],
                          *, reset: bool = True) -> RuleRecord | None:
        """Store a rule change and apply it to the engine, between two tick batches.

        ``store_change`` runs under the engine lock and returns the stored rule (None: it
        was deleted). A rule the engine already has is reloaded with a fresh trigger state
        when ``reset``, else only its limits (cooldown, expiry, max fires, hold_for,
        hysteresis) and pause flag change: a hold in progress keeps its start (resuming
        restarts it).
        """
        async with self._lock:
            self._check_open()
            if self._dirty:          # the change must not be replayed over older ticks
                await self._checkpoint()
            rec = await store_change()
            if rec is None:
                return None
            compiled = self.compile(rec)
            old = self._rules.get(rec.rule_id)
            if old is None or reset:
                if old is not None:
                    self.kernel.remove_rule(rec.rule_id)
                self.kernel.load(rec.rule_id, compiled, paused=rec.paused)
            else:
                self.kernel.set_limits(rec.rule_id, cooldown_ms=compiled.cooldown_ms,
                                       expire_time_ms=compiled.expire_time_ms,
                                       max_fires=compiled.max_fires,
                                       hold_ms=compiled.hold_ms,
                                       hysteresis=compiled.hysteresis)
                self.kernel.set_paused(rec.rule_id, rec.paused)
            self._rules[rec.rule_id] = rec
            self._compiled[rec.rule_id] = compiled
            self._tell_loaded(rec, compiled)
            # long-lived rule objects leave the cyclic collector's young generations: a
            # full collection over ten thousand rules would stall every stream ~10 ms
            gc.freeze()
            return rec

    async def delete_rule(self, rule_id: str,
                          store_change: Callable[[], Awaitable[None]]) -> None:
        async with self._lock:
            self._check_open()
            if self._dirty:
                await self._checkpoint()
            await store_change()
            if self._rules.pop(rule_id, None) is not None:
                self._compiled.pop(rule_id, None)
                self.kernel.remove_rule(rule_id)
                if self.rule_listener is not None:
                    self.rule_listener.rule_removed(rule_id)

    def _tell_loaded(self, rec: RuleRecord, compiled: CompiledRule) -> None:
        if self.rule_listener is not None:
            self.rule_listener.rule_loaded(rec.rule_id, rec.owner, symbols_read(compiled))

    async def amend_rules(self, store_change: Callable[[], Awaitable[list[RuleRecord]]]
                          ) -> list[RuleRecord]:
        """Store a change to rules' delivery fields (their channels) and keep the engine's
        records in step, between two tick batches; nothing is recompiled or reset."""
        async with self._lock:
            self._check_open()
            changed = await store_change()
            for rec in changed:
                if rec.rule_id in self._rules:
                    self._rules[rec.rule_id] = rec
            return changed

    async def snapshot(self, symbol: str, closed_bars: int) -> Snapshot | None:
        """Read between batches (the worker thread owns the engine)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._worker, self.kernel.snapshot, symbol,
                                              closed_bars)

    def rule_state(self, rule_id: str) -> dict[str, object] | None:
        if rule_id not in self._rules:
            return None
        return self.kernel.rule_state(rule_id)

    # market sources ---------------------------------------------------------
    def readers(self, symbol: str) -> list[str]:
        """Ids of the rules whose programs read ``symbol``."""
        return [rid for rid, c in self._compiled.items() if symbol in symbols_read(c)]

    def timeframes_read(self, symbol: str) -> set[str]:
        """Every timeframe the loaded rules use on ``symbol`` (bars the engine keeps for it)."""
        out: set[str] = set()
        for c in self._compiled.values():
            if c.symbol == symbol and c.timeframe is not None:
                out.add(c.timeframe)
            out.update(o.timeframe for o in c.operands
                       if o.symbol == symbol and o.timeframe is not None)
        return out

    def symbol_last_ms(self, symbol: str) -> int | None:
        """Time of the last tick or bar of ``symbol`` in the engine (None: never started)."""
        sid = self.kernel.find_symbol(symbol)
        raw = None if sid is None else self.kernel.engine.snapshot(sid, 0)
        return None if raw is None else raw["last_time_ms"]

    def source_clock(self, source: str) -> int | None:
        """The engine clock of ``source`` (None: it has not ticked yet)."""
        src = self._sources.get(source)
        return None if src is None else self.kernel.engine.source_clock(src)

    async def warm_up(self, source: str, symbol: str, segments: Sequence[tuple[str, list[Bar]]],
                      *, fill_gaps: bool = True, grace_ms: int | None = None) -> int:
        """Feed closed history bars of ``symbol`` through the core (returns bars accepted).

        ``segments`` are (timeframe, bars) in time order; each bar enters its timeframe
        and every coarser one. The rules reading the symbol are paused in the core
        meanwhile: history warms their indicators and crossing memory but fires nothing
        and leaves their trigger state as a new rule's. Nothing is committed (no alert).
        """
        async with self._lock:
            self._check_open()
            src = self._source(source, fill_gaps, grace_ms)
            sid = self.kernel.symbol_id(symbol)
            readers = self.readers(symbol)
            for rid in readers:
                self.kernel.set_paused(rid, True)
            accepted = 0
            loop = asyncio.get_running_loop()
            try:
                for timeframe, bars in segments:
                    if bars:
                        accepted += await loop.run_in_executor(
                            self._worker, self._run_bars, src, timeframe, sid, bars)
            finally:
                for rid in readers:
                    self.kernel.set_paused(rid, self._rules[rid].paused)
            if accepted:
                self._dirty = True
            return accepted

    def _run_bars(self, src: int, timeframe: str, sid: int, bars: list[Bar]) -> int:
        self.kernel.process_bars(src, timeframe, np.full(len(bars), sid, np.int32),
                                 *bar_columns(bars))
        return self.kernel.last_counts.accepted

    async def pending(self, symbol: str) -> tuple[list[str], int | None]:
        """Timeframes of states added to ``symbol`` while it traded, not yet seeded, and
        the first minute of its tape (seed history must reach it)."""
        async with self._lock:
            return self.kernel.pending_timeframes(symbol), self.kernel.tape_from(symbol)

    async def seed(self, symbol: str, segments: Sequence[tuple[str, int, int, list[Bar]]]
                   ) -> int:
        """Give the states added to a trading ``symbol`` the history they missed.

        ``segments``: ``(timeframe, start_ms, end_ms, bars)`` in time order, the last of
        1-minute bars; the engine's own recent minutes follow them (``Kernel.seed``).
        Returns the states seeded, or -1 when the history ends before those minutes.
        """
        async with self._lock:
            self._check_open()
            cols = [(tf, a, b, bar_columns(bars)) for tf, a, b, bars in segments]
            loop = asyncio.get_running_loop()
            seeded = await loop.run_in_executor(self._worker, self.kernel.seed, symbol, cols)
            if seeded > 0:
                self._dirty = True
            return seeded

    async def commit_notices(self, alerts: Sequence[NewAlert]) -> list[AlertRecord]:
        """Commit alerts no rule decided (DATA_QUALITY, SYSTEM) and fan them out.

        They are written under the engine lock, like a batch's alerts, so ids stay in
        commit order; one whose identity is already stored is skipped.
        """
        if not alerts:
            return []
        async with self._lock:
            self._check_open()
            records = await self.store.commit_batch(list(alerts), [], {})
            self.hub.publish(records)
        if records:
            self.metrics.alerts.inc(len(records))
        return records

    def _source(self, source: str, fill_gaps: bool, grace_ms: int | None) -> int:
        """The engine clock of ``source``, added at its first use (grace None: the service's)."""
        src = self._sources.get(source)
        if src is None:
            src = self.kernel.add_source(
                fill_gaps=fill_gaps, grace_ms=self.grace_ms if grace_ms is None else grace_ms,
                name=source)
            self._sources[source] = src
        return src

    # ticks ------------------------------------------------------------------
    async def publish(self, source: str, batch: TickBatch | DecodedTicks, *, watermark_ms: int | None = None,
                      fill_gaps: bool = True, grace_ms: int | None = None) -> PublishResult:
        """Validate, apply, commit, fan out; answers after the commit."""
        received = now_ms()
        if isinstance(batch, TickBatch):    # a DecodedTicks was checked while decoded
            validate_ticks(batch, now=received)
        async with self._lock:
            self._check_open()
            src = self._source(source, fill_gaps, grace_ms)

            def step() -> tuple[BatchWrite, tuple[TickCounts, int | None, float]]:
                """Off the loop: the engine, then the alerts and states to write."""
                fired, counts = self._run_batch(src, batch, watermark_ms)
                expired = self.kernel.take_expired()
                decided = now_ms()
                alerts = [self._new_alert(f, received, decided) for f in fired]
                alerts += [rule_expired(self._rules[e.rule_id], e, received_ms=received,
                                        decided_ms=decided) for e in expired]
                clock = self.kernel.engine.source_clock(src)
                changed = {f.rule_id for f in fired} | {e.rule_id for e in expired}
                write = BatchWrite(alerts, self._states(changed),
                                   {source: clock} if clock is not None else {})
                return write, (counts, clock, time.perf_counter())

            records, (counts, clock, started) = await self.store.commit_produced(
                step, self._worker)
            committed = time.perf_counter()
            self.hub.publish(records)
            if records:
                for listener in self.committed:
                    listener(records)
            if len(batch) or watermark_ms is not None:
                self._dirty = True
            if clock is not None:
                if self._next_checkpoint is None:
                    self._next_checkpoint = clock + self.checkpoint_interval_ms
                elif clock >= self._next_checkpoint:
                    await self._checkpoint(wait=False)
                    self._next_checkpoint = clock + self.checkpoint_interval_ms
        if records:
            await asyncio.sleep(0)  # the streams woken by hub.publish send before the rest
        m = self.metrics
        m.store_write.observe(committed - started)
        m.batch_size.observe(len(batch))
        for outcome, n in zip(("accepted", "late", "duplicate"), counts[:3], strict=True):
            m.ticks.labels(outcome).inc(n)
        if records:
            m.alerts.inc(len(records))
            m.tick_to_alert.observe(max(records[-1].commit_time_ms - received, 0) / 1000)
        m.subscribers.set(self.hub.subscriber_count)
        m.queue_depth.set(max(self.hub.queue_depths(), default=0))
        return PublishResult(counts.accepted, counts.late, counts.duplicate, clock, records)

    def _run_batch(self, src: int, batch: TickBatch | DecodedTicks,
                   watermark_ms: int | None) -> tuple[list[Fired], TickCounts]:
        fired: list[Fired] = []
        if len(batch):
            ids = self._symbol_ids(batch)
            fired = self.kernel.process(src, ids, batch.time_ms, batch.price, batch.qty,
                                        batch.trade_id)
        counts = self.kernel.last_counts
        if watermark_ms is not None:
            fired += self.kernel.advance_clock(src, watermark_ms)
        return fired, counts

    def _new_alert(self, f: Fired, received: int, decided: int) -> NewAlert:
        rec = self._rules[f.rule_id]
        compiled = self.compile_cached(rec)
        values = tuple(zip(compiled.labels, f.values, strict=False))
        price = None if math.isnan(f.price) else f.price
        timeframe, bar_open_ms = f.timeframe, f.bar_open_ms
        if f.kind != "bar_close":       # the forming bar's, for ONCE_PER_BAR only
            timeframe = compiled.timeframe if rec.mode == "ONCE_PER_BAR" else None
            bar_open_ms = (None if timeframe is None
                           else f.time_ms - f.time_ms % TIMEFRAME_MS[timeframe])
        return NewAlert(
            owner=rec.owner, rule_id=rec.rule_id, symbol=f.symbol, kind="RULE",
            timeframe=timeframe, bar_open_ms=bar_open_ms, values=values,
            message=render(rec.message_template, rule=rec.display_name or rec.rule_id,
                           symbol=f.symbol, condition=rec.condition_text, price=price,
                           values=values, timeframe=compiled.timeframe, time_ms=f.time_ms),
            condition_text=rec.condition_text, rule_display_name=rec.display_name,
            rule_labels=rec.labels, event_time_ms=f.time_ms, receive_time_ms=received,
            decide_time_ms=decided, trade_id=f.trade_id, rank=f.rank, price=price, details={},
            channels=tuple(c.removeprefix("channels/") for c in rec.channels),
        )

    def compile_cached(self, rec: RuleRecord) -> CompiledRule:
        """The program the engine runs for this rule (compiled when it was loaded)."""
        return self._compiled[rec.rule_id]

    def _states(self, rule_ids: Sequence[str] | set[str]) -> list[TriggerState]:
        out = []
        for rid in sorted(rule_ids):
            st = self.kernel.rule_state(rid)
            out.append(TriggerState(
                rule_id=rid, owner=self._rules[rid].owner, fires=cast(int, st["fires"]),
                last_fire_ms=cast("int | None", st["last_fire_ms"]), armed=bool(st["armed"]),
                completed=bool(st["completed"]), expired=bool(st["expired"]),
            ))
        return out

    def qualify(self, symbol: str) -> str:
        return qualify(symbol, self.default_venue)

    def decode(self, message: bytes, *, field: str = "ticks") -> DecodedTicks:
        """The ticks of a serialized PublishTicksRequest, checked as ``validate_ticks`` does;
        no Python object is made per tick, only per name not seen before."""
        ids, time_ms, price, qty, trade_id, new_names, problem = wire.decode_ticks(
            message, self._published_ids, now_ms() + MAX_FUTURE_MS)
        if problem is not None:
            raise _refuse(problem, field)
        return DecodedTicks(time_ms=time_ms, price=price, qty=qty, trade_id=trade_id, ids=ids,
                            new_names=new_names)

    def _symbol_ids(self, batch: TickBatch | DecodedTicks) -> npt.NDArray[np.int32]:
        """Kernel ids of the batch's symbols; a name published for the first time is
        qualified and interned here, under the engine lock."""
        if isinstance(batch, TickBatch):
            return self.kernel.intern(batch.symbols)
        if batch.new_names:
            known = self._published_ids
            if len(known) > PUBLISHED_NAMES_LIMIT:
                known.clear()
            learnt = []
            for name in batch.new_names:
                sid = self.kernel.symbol_id(self.qualify(name.decode()))
                known.add(name, sid)
                learnt.append(sid)
            batch.ids[batch.ids < 0] = learnt
        return batch.ids

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("the server is shutting down")
