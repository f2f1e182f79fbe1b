"""The Python owner of one ``alerts_core.Engine``: names in, fired rules out.

The core speaks small integers (symbol ids, rule indices, timeframe ids); this
class keeps the maps between those and the service's names, compiles rules
(text or tree) and turns the core's event columns into ``Fired`` records.
Per batch it touches numpy arrays only; Python objects are made per fired
rule, never per tick.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from alerts.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from alerts.rules import ast
from alerts.rules.catalog import SERIES, TIMEFRAMES
from alerts.rules.compiler import CompiledRule, compile_rule, qualify
from alerts.rules.format import format_series
from alerts.rules.parser import parse_condition
from alerts_core import EVENTS, KINDS, MODES, OPS, Engine

CHECKPOINT_MAGIC = b"AKC1"
_EV_EXPIRED, _EV_BAR_CLOSE = EVENTS["expired"], EVENTS["bar_close"]
_KIND_NAMES = {v: k for k, v in KINDS.items()}


class BarColumns(NamedTuple):
    """Closed bars of one timeframe as contiguous columns."""

    open_ms: npt.NDArray[np.int64]
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]
    quote_volume: npt.NDArray[np.float64]
    trades: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Fired:
    """One rule fire decided by the core."""

    rule_id: str
    symbol: str
    time_ms: int                 # event time; a bar-close fire's is the bar's end
    kind: str                    # "tick" | "bar_close"
    timeframe: str | None
    bar_open_ms: int | None
    trade_id: int
    rank: int                    # among this rule's fires at the same event time
    values: tuple[float, ...]    # the condition's series operands, in text order
    price: float = float("nan")  # the symbol's last price (the bar's close at a close)


@dataclass(frozen=True)
class Expiry:
    """A rule the core found expired: its first evaluation at or after its expire time."""

    rule_id: str
    symbol: str
    expire_time_ms: int
    trade_id: int                # of the tick whose evaluation found it (0: a bar close)


@dataclass(frozen=True)
class SnapshotBar:
    timeframe: str
    closed: bool
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int


@dataclass(frozen=True)
class SnapshotIndicator:
    label: str
    series: ast.Series
    value: float            # at the last close (NaN: undefined)
    intrabar: float         # if the forming bar closed now


@dataclass(frozen=True)
class Snapshot:
    symbol: str
    price: float
    last_time_ms: int | None
    bars: list[SnapshotBar]
    indicators: list[SnapshotIndicator]


class TickCounts(NamedTuple):
    accepted: int
    late: int
    duplicate: int
    invalid: int


@dataclass
class _LoadedRule:
    index: int
    compiled: CompiledRule


class Kernel:
    """Symbols interned to ids, rules compiled and loaded, batches run, fires named."""

    def __init__(
        self,
        *,
        enable_1s: bool = False,
        default_venue: str = "binance",
        event_capacity: int = 4096,
    ) -> None:
        self.engine = Engine(enable_1s=enable_1s, event_capacity=event_capacity)
        self.enable_1s = enable_1s
        self.default_venue = default_venue
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        self._rules: dict[str, _LoadedRule] = {}
        self._rule_ids: dict[int, str] = {}
        self.last_counts = TickCounts(0, 0, 0, 0)
        self.source_names: list[str] = []
        self._expired: list[Expiry] = []

    # symbols ---------------------------------------------------------------
    def symbol_id(self, name: str) -> int:
        sid = self._ids.get(name)
        if sid is None:
            sid = len(self._names)
            self._ids[name] = sid
            self._names.append(name)
        return sid

    def find_symbol(self, name: str) -> int | None:
        """The id of a known symbol (None: never named to this kernel)."""
        return self._ids.get(name)

    def symbol_name(self, sid: int) -> str:
        return self._names[sid]

    def intern(self, symbols: Sequence[str] | npt.NDArray[np.str_] | npt.NDArray[np.object_]
               ) -> npt.NDArray[np.int32]:
        """Names to ids: one dict lookup per name (a new name is added)."""
        n = len(symbols)
        try:
            return np.fromiter(map(self._ids.__getitem__, symbols), np.int32, n)
        except KeyError:    # a name not seen before
            return np.fromiter(map(self.symbol_id, map(str, symbols)), np.int32, n)

    # sources ---------------------------------------------------------------
    def add_source(self, *, fill_gaps: bool = True, grace_ms: int = 1000,
                   name: str | None = None) -> int:
        """A new source clock; ``name`` (default: its index) keys it in checkpoints."""
        sid = int(self.engine.add_source(fill_gaps=fill_gaps, grace_ms=grace_ms))
        self.source_names.append(name if name is not None else str(sid))
        return sid

    # checkpoints -------------------------------------------------------------
    def checkpoint(self) -> bytes:
        """Every value of the engine's state, with the names that key it."""
        header = json.dumps({"symbols": self._names, "sources": self.source_names}).encode()
        rule_keys = {loaded.index: rid for rid, loaded in self._rules.items()}
        return (CHECKPOINT_MAGIC + len(header).to_bytes(4, "little") + header
                + self.engine.checkpoint(rule_keys))

    @staticmethod
    def _split(blob: bytes) -> tuple[dict[str, list[str]], bytes]:
        if blob[:4] != CHECKPOINT_MAGIC:
            raise ValueError("not a kernel checkpoint")
        n = int.from_bytes(blob[4:8], "little")
        return json.loads(blob[8:8 + n]), blob[8 + n:]

    def prepare_restore(self, blob: bytes) -> None:
        """Step 1 of a restart, on a fresh kernel: the checkpoint's symbols and sources."""
        if self._names or self.source_names or self._rules:
            raise ValueError("prepare_restore needs a fresh kernel")
        header, _ = self._split(blob)
        for name in header["symbols"]:
            self.symbol_id(name)
        for name in header["sources"]:
            self.add_source(name=name)

    def restore(self, blob: bytes) -> int:
        """Step 2, after the rules are loaded: put the state back; returns records applied."""
        _, state = self._split(blob)
        return int(self.engine.restore(state, {rid: loaded.index
                                               for rid, loaded in self._rules.items()}))

    # rules -----------------------------------------------------------------
    def compile(
        self,
        symbol: str,
        condition: str | ast.Condition,
        *,
        mode: str = "ON_TRUE",
        timeframe: str | None = None,
        cooldown_ms: int | None = None,
        max_fires: int = 0,
        expire_time_ms: int | None = None,
        hold_ms: int = 0,
        hysteresis: float = 0.0,
    ) -> CompiledRule:
        tree = parse_condition(condition) if isinstance(condition, str) else condition
        return compile_rule(
            tree,
            symbol=symbol,
            mode=mode,
            timeframe=timeframe,
            cooldown_ms=cooldown_ms,
            max_fires=max_fires,
            expire_time_ms=expire_time_ms,
            hold_ms=hold_ms,
            hysteresis=hysteresis,
            default_venue=self.default_venue,
            enable_1s=self.enable_1s,
        )

    def add_rule(
        self,
        rule_id: str,
        symbol: str,
        condition: str | ast.Condition,
        *,
        mode: str = "ON_TRUE",
        timeframe: str | None = None,
        cooldown_ms: int | None = None,
        max_fires: int = 0,
        expire_time_ms: int | None = None,
        paused: bool = False,
        hold_ms: int = 0,
        hysteresis: float = 0.0,
    ) -> CompiledRule:
        """Compile and load a rule; the same id twice is ALREADY_EXISTS."""
        if rule_id in self._rules:
            raise AlreadyExistsError(f"rule {rule_id!r} already exists")
        compiled = self.compile(
            symbol, condition, mode=mode, timeframe=timeframe, cooldown_ms=cooldown_ms,
            max_fires=max_fires, expire_time_ms=expire_time_ms, hold_ms=hold_ms,
            hysteresis=hysteresis,
        )
        self.load(rule_id, compiled, paused=paused)
        return compiled

    def load(self, rule_id: str, compiled: CompiledRule, *, paused: bool = False) -> None:
        """Load an already compiled rule under ``rule_id``."""
        if rule_id in self._rules:
            raise AlreadyExistsError(f"rule {rule_id!r} already exists")
        tf = -1 if compiled.timeframe is None else TIMEFRAMES.index(compiled.timeframe)
        operands = [
            (
                KINDS[o.kind],
                self.symbol_id(o.symbol),
                -1 if o.timeframe is None else TIMEFRAMES.index(o.timeframe),
                *o.params,
                o.k,
                o.output,
                o.offset,
            )
            for o in compiled.operands
        ]
        ops = [(OPS[op], a, b, d, c) for op, a, b, d, c in compiled.ops]
        try:
            index = self.engine.add_rule(
                self.symbol_id(compiled.symbol), MODES[compiled.mode], tf, compiled.cooldown_ms,
                compiled.expire_time_ms, compiled.max_fires, ops, operands, compiled.n_slots,
                list(compiled.moves), paused, compiled.hold_ms, compiled.hysteresis,
            )
        except ValueError as exc:  # a program the core refuses is a bug or bad input
            raise InvalidArgumentError(f"rule {rule_id!r} cannot be loaded: {exc}") from exc
        self._rules[rule_id] = _LoadedRule(index, compiled)
        self._rule_ids[index] = rule_id

    def remove_rule(self, rule_id: str) -> None:
        loaded = self._rules.pop(rule_id, None)
        if loaded is None:
            raise NotFoundError(f"rule {rule_id!r} not found")
        del self._rule_ids[loaded.index]
        self.engine.remove_rule(loaded.index)

    def set_limits(self, rule_id: str, *, cooldown_ms: int, expire_time_ms: int | None,
                   max_fires: int, hold_ms: int | None = None,
                   hysteresis: float | None = None) -> None:
        """Change limits in place (``hold_ms``, ``hysteresis`` None: unchanged): the
        trigger state is kept, a hold in progress included."""
        self.engine.set_rule_limits(self._loaded(rule_id).index, cooldown_ms=cooldown_ms,
                                    expire_ms=expire_time_ms, max_fires=max_fires,
                                    hold_ms=hold_ms, hysteresis=hysteresis)

    def restore_state(self, rule_id: str, *, fires: int, last_fire_ms: int | None, armed: bool,
                      completed: bool, expired: bool) -> None:
        """Put back a trigger state kept in the store (after a restart)."""
        self.engine.set_rule_trigger_state(self._loaded(rule_id).index, fires=fires,
                                           last_fire_ms=last_fire_ms, armed=armed,
                                           completed=completed, expired=expired)

    def set_paused(self, rule_id: str, paused: bool) -> None:
        self.engine.set_rule_paused(self._loaded(rule_id).index, paused)

    def rule_state(self, rule_id: str) -> dict[str, object]:
        return dict(self.engine.rule_state(self._loaded(rule_id).index))

    def rules(self) -> Iterable[str]:
        return self._rules.keys()

    def _loaded(self, rule_id: str) -> _LoadedRule:
        try:
            return self._rules[rule_id]
        except KeyError:
            raise NotFoundError(f"rule {rule_id!r} not found") from None

    # batches ---------------------------------------------------------------
    def process(
        self,
        source: int,
        symbol_ids: npt.ArrayLike,
        time_ms: npt.ArrayLike,
        price: npt.ArrayLike,
        qty: npt.ArrayLike,
        trade_id: npt.ArrayLike,
    ) -> list[Fired]:
        """Run a tick batch; counts of the batch are in ``last_counts``."""
        counts = self.engine.process(
            source,
            np.ascontiguousarray(symbol_ids, np.int32),
            np.ascontiguousarray(time_ms, np.int64),
            np.ascontiguousarray(price, np.float64),
            np.ascontiguousarray(qty, np.float64),
            np.ascontiguousarray(trade_id, np.int64),
        )
        self.last_counts = TickCounts(*counts)
        return self._fired()

    def process_bars(
        self,
        source: int,
        timeframe: str,
        symbol_ids: npt.ArrayLike,
        open_time_ms: npt.ArrayLike,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        volume: npt.ArrayLike,
        quote_volume: npt.ArrayLike | None = None,
        trades: npt.ArrayLike | None = None,
    ) -> list[Fired]:
        """Run closed bars of one timeframe (warm-up, backtests)."""
        if timeframe not in TIMEFRAMES:
            raise InvalidArgumentError(f"unknown timeframe {timeframe!r}")
        sids = np.ascontiguousarray(symbol_ids, np.int32)
        n = len(sids)
        closes = np.ascontiguousarray(close, np.float64)
        vols = np.ascontiguousarray(volume, np.float64)
        qv = (closes * vols) if quote_volume is None else quote_volume
        counts = self.engine.process_bars(
            source,
            TIMEFRAMES.index(timeframe),
            sids,
            np.ascontiguousarray(open_time_ms, np.int64),
            np.ascontiguousarray(open, np.float64),
            np.ascontiguousarray(high, np.float64),
            np.ascontiguousarray(low, np.float64),
            closes,
            vols,
            np.ascontiguousarray(qv, np.float64),
            np.ascontiguousarray(np.zeros(n, np.int64) if trades is None else trades, np.int64),
        )
        accepted, late, invalid = counts
        self.last_counts = TickCounts(accepted, late, 0, invalid)
        return self._fired()

    def pending_timeframes(self, symbol: str) -> list[str]:
        """Timeframes of states added while ``symbol`` traded that ``seed`` would fill."""
        sid = self._ids.get(symbol)
        return [] if sid is None else [TIMEFRAMES[t] for t in self.engine.pending_timeframes(sid)]

    def tape_from(self, symbol: str) -> int | None:
        """The first minute of the symbol's tape: seed history must reach it."""
        sid = self._ids.get(symbol)
        return None if sid is None else self.engine.tape_from(sid)

    def seed(self, symbol: str,
             segments: Sequence[tuple[str, int, int, BarColumns]]) -> int:
        """Seed the states added to ``symbol`` while it traded from history.

        ``segments``: ``(timeframe, start_ms, end_ms, columns)`` in time order,
        contiguous, the last of 1-minute bars. Returns the states seeded (0: none
        pending), or -1 when the history ends before the symbol's tape begins.
        Intrabar and bar-close rules reading a seeded state are evaluated once,
        paused: their crossing memory is primed and nothing fires.
        """
        sid = self._ids.get(symbol)
        if sid is None:
            return 0
        for timeframe, *_ in segments:
            if timeframe not in TIMEFRAMES:
                raise InvalidArgumentError(f"unknown timeframe {timeframe!r}")
        return int(self.engine.seed(sid, [
            (TIMEFRAMES.index(tf), int(start), int(end), *cols)
            for tf, start, end, cols in segments]))

    def advance_clock(self, source: int, time_ms: int) -> list[Fired]:
        """Move a source's clock (watermark or wall clock); closes quiet symbols' bars."""
        self.engine.advance_clock(source, int(time_ms))
        return self._fired()

    def take_expired(self) -> list[Expiry]:
        """Rules found expired since the last call (by ``process``, ``process_bars``,
        ``advance_clock``), in the order found; each rule once per expiry."""
        out, self._expired = self._expired, []
        return out

    def stats(self) -> dict[str, int]:
        return dict(self.engine.stats())

    def snapshot(self, symbol: str, closed_bars: int = 1) -> Snapshot | None:
        """A symbol's price, bars and indicator values (None: the engine does not know it)."""
        sid = self._ids.get(symbol)
        raw = None if sid is None else self.engine.snapshot(sid, closed_bars)
        if raw is None:
            return None
        bars = [SnapshotBar(TIMEFRAMES[tf], closed, *values)
                for tf, closed, values in raw["bars"]]
        indicators = []
        for kind, tf, p0, p1, p2, k, closed, intrabar in raw["series"]:
            name = _KIND_NAMES[kind]
            params: tuple[float, ...] = {"bb": (p0, k), "macd": (p0, p1, p2),
                                         "stoch": (p0, p1, p2), "obv": ()}.get(name, (p0,))
            outputs = SERIES[name].outputs or (None,)
            for i, output in enumerate(outputs):
                node = ast.Series(name, tuple(float(p) for p in params), TIMEFRAMES[tf], None,
                                  output)
                indicators.append(SnapshotIndicator(format_series(node), node, closed[i],
                                                    intrabar[i]))
        return Snapshot(symbol, raw["price"], raw["last_time_ms"], bars, indicators)

    def _fired(self) -> list[Fired]:
        if not self.engine.n_events:
            return []
        ev = self.engine.events()
        self.engine.clear_events()
        n = len(ev["rule"])
        names = self._names
        rule_ids = self._rule_ids
        cols = {k: v.tolist() for k, v in ev.items() if k != "values"}
        values = ev["values"].tolist()
        out: list[Fired] = []
        for i in range(n):
            if cols["kind"][i] == _EV_EXPIRED:
                self._expired.append(Expiry(rule_ids[cols["rule"][i]], names[cols["symbol"][i]],
                                            cols["time_ms"][i], cols["trade_id"][i]))
                continue
            tf = cols["timeframe"][i]
            bar_close = cols["kind"][i] == _EV_BAR_CLOSE
            out.append(
                Fired(
                    rule_id=rule_ids[cols["rule"][i]],
                    symbol=names[cols["symbol"][i]],
                    time_ms=cols["time_ms"][i],
                    kind="bar_close" if bar_close else "tick",
                    timeframe=None if tf < 0 else TIMEFRAMES[tf],
                    bar_open_ms=cols["bar_open_ms"][i] if bar_close else None,
                    trade_id=cols["trade_id"][i],
                    rank=cols["rank"][i],
                    values=tuple(values[i][: cols["n_values"][i]]),
                    price=cols["price"][i],
                )
            )
        return out


__all__ = ["Expiry", "Fired", "Kernel", "TickCounts", "qualify"]
