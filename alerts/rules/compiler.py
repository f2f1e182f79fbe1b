"""Compile a condition tree and a rule's trigger settings into a core program.

The text and structured forms of a condition both arrive here as the tree of
``alerts.rules.ast``, so they compile to the same program. The program is a
stack machine (see ``alerts_core.engine``): series are loaded in text order, so
the operand values an alert carries follow the condition as written.

Resolution done here, with a ``line:col`` error when it fails:
- the rule's timeframe: the one given, else the shortest the condition names;
  series without a timeframe take the rule's;
- operand symbols: a bare ``ETHUSDT`` takes the rule symbol's venue;
- in mode ONCE_PER_BAR_CLOSE, ``price`` is the closed bar's close;
- EVERY_TIME without a cooldown gets the default of 1 s; ONCE is ON_TRUE with
  max fires 1;
- ``hold_for`` is passed to the core as ``hold_ms`` (the trigger keeps the hold,
  see ``alerts_core.engine.Engine._trigger``);
- ``hysteresis`` (a re-arm band) is taken by modes ON_TRUE, ONCE and ONCE_PER_BAR
  only: it changes when a rule re-arms, which the other modes never do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alerts.errors import FieldViolation, InvalidArgumentError, RuleSyntaxError
from alerts.rules import ast
from alerts.rules.catalog import CHANNEL_BOUNDS, SERIES, TIMEFRAME_MS, TIMEFRAMES
from alerts.rules.format import format_series

#: Trigger modes accepted in rules, and the core mode each runs as.
MODES: dict[str, str] = {
    "ON_TRUE": "ON_TRUE",
    "ONCE": "ON_TRUE",
    "EVERY_TIME": "EVERY_TIME",
    "ONCE_PER_BAR": "ONCE_PER_BAR",
    "ONCE_PER_BAR_CLOSE": "ONCE_PER_BAR_CLOSE",
}
BAR_MODES = frozenset({"ONCE_PER_BAR", "ONCE_PER_BAR_CLOSE"})
#: Core modes in which a rule re-arms, so a hysteresis band applies.
BANDED_MODES = frozenset({"ON_TRUE", "ONCE_PER_BAR"})
DEFAULT_EVERY_TIME_COOLDOWN_MS = 1000


@dataclass(frozen=True)
class OperandRef:
    """One series a program loads; ``symbol`` is a full ``venue:SYMBOL`` name."""

    kind: str
    symbol: str
    timeframe: str | None
    params: tuple[int, int, int]
    k: float
    output: int
    offset: int
    label: str


@dataclass(frozen=True)
class CompiledRule:
    """Everything the core needs to run one rule (symbols still as names)."""

    symbol: str
    mode: str                      # core mode
    timeframe: str | None          # None: tick level
    cooldown_ms: int
    max_fires: int
    expire_time_ms: int | None
    ops: tuple[tuple[str, int, int, int, float], ...]
    operands: tuple[OperandRef, ...]
    n_slots: int
    moves: tuple[int, ...]
    hold_ms: int = 0               # hold_for: true this long (event time) before firing
    hysteresis: float = 0.0        # re-arm band (see alerts_core.engine.Engine._run)

    @property
    def labels(self) -> tuple[str, ...]:
        """Operand labels, in the order of an alert's values."""
        return tuple(o.label for o in self.operands)


def split_symbol(symbol: str, default_venue: str) -> tuple[str, str]:
    venue, sep, name = symbol.rpartition(":")
    return (venue if sep else default_venue), name


def qualify(symbol: str, default_venue: str) -> str:
    """``BTCUSDT`` -> ``binance:BTCUSDT``; a qualified symbol is returned as it is."""
    venue, name = split_symbol(symbol, default_venue)
    if not name or not venue:
        raise InvalidArgumentError(
            f"bad symbol {symbol!r}: expected VENUE:SYMBOL or SYMBOL",
            violations=(FieldViolation("rule.symbol", f"bad symbol {symbol!r}"),),
        )
    return f"{venue}:{name}"


def _named_timeframes(node: object, out: set[str]) -> None:
    if isinstance(node, (ast.Series, ast.SeriesChannel)):
        if node.timeframe is not None:
            out.add(node.timeframe)
        return
    for value in vars(node).values() if hasattr(node, "__dataclass_fields__") else ():
        if isinstance(value, tuple):
            for item in value:
                if hasattr(item, "__dataclass_fields__"):
                    _named_timeframes(item, out)
        elif hasattr(value, "__dataclass_fields__"):
            _named_timeframes(value, out)


def rule_timeframe(condition: ast.Condition, timeframe: str | None) -> str | None:
    """The rule's timeframe: the one given, else the shortest the condition names."""
    if timeframe is not None:
        return timeframe
    named: set[str] = set()
    _named_timeframes(condition, named)
    if not named:
        return None
    return min(named, key=TIMEFRAME_MS.__getitem__)


class _Emitter:
    def __init__(self, symbol: str, timeframe: str | None, closed: bool) -> None:
        self.symbol = symbol
        self.venue = symbol.partition(":")[0]
        self.timeframe = timeframe
        self.closed = closed
        self.ops: list[tuple[str, int, int, int, float]] = []
        self.operands: list[OperandRef] = []
        self.n_slots = 0
        self.moves: list[int] = []

    def emit(self, op: str, a: int = 0, b: int = 0, d: int = 0, c: float = 0.0) -> None:
        self.ops.append((op, a, b, d, c))

    # arithmetic ---------------------------------------------------------
    def arith(self, node: ast.Arith) -> None:
        if isinstance(node, ast.Number):
            self.emit("const", c=float(node.value))
        elif isinstance(node, ast.Series):
            self.load(node, node.output)
        elif isinstance(node, ast.Neg):
            self.arith(node.operand)
            self.emit("neg")
        elif isinstance(node, ast.BinOp):
            self.arith(node.left)
            self.arith(node.right)
            self.emit(node.op)
        else:  # pragma: no cover - the tree types are closed
            raise TypeError(f"not an arithmetic node: {node!r}")

    def load(self, node: ast.Series | ast.SeriesChannel, output: str | None) -> None:
        name = node.name
        spec = SERIES[name]
        tf = node.timeframe
        pos = node.pos
        if name == "price" and self.closed:
            # at a bar close, price is that bar's close
            name, tf = "close", self.timeframe
        if spec.timeframe == "bar" or name == "close":
            tf = tf or self.timeframe
            if tf is None:
                raise RuleSyntaxError(
                    pos.line, pos.col,
                    f"{node.name} needs a timeframe: give one, e.g. {node.name}(..., 1h), "
                    "or set the rule's timeframe",
                )
        else:
            tf = None
        offset = node.offset if isinstance(node, ast.Series) else 0
        if node.name in ("price", "vwap") and offset:
            raise RuleSyntaxError(pos.line, pos.col,
                                  f"{node.name} has no history of closed bars; "
                                  "use close(tf)[k] for past closes")
        symbol = self.symbol
        if getattr(node, "symbol", None):
            symbol = qualify(node.symbol, self.venue)  # type: ignore[arg-type]
        ints = [int(p) for p in node.params if float(p).is_integer()]
        k = 0.0
        if name == "bb":
            k = float(node.params[1])
            ints = [int(node.params[0])]
        padded = [*ints, 0, 0, 0]
        params = (padded[0], padded[1], padded[2])
        out_index = spec.outputs.index(output) if output else 0
        label = format_series(
            ast.Series(node.name, tuple(node.params), node.timeframe or tf, node.symbol,
                       output, offset)
        )
        self.operands.append(OperandRef(name, symbol, tf, params, k, out_index, offset, label))
        self.emit("load", a=len(self.operands) - 1)

    # conditions ---------------------------------------------------------
    def condition(self, node: ast.Condition) -> None:
        if isinstance(node, ast.Compare):
            self.arith(node.left)
            self.arith(node.right)
            self.emit(node.op)
        elif isinstance(node, ast.Cross):
            self.arith(node.left)
            self.arith(node.right)
            self.emit(node.op, a=self._slots(2))
        elif isinstance(node, ast.ChannelTest):
            self.arith(node.operand)
            self.channel(node.channel)
            slot = self._slots(1) if node.op in ("enters", "exits") else 0
            self.emit(node.op, a=slot)
        elif isinstance(node, ast.Moves):
            if self.timeframe is None:
                raise RuleSyntaxError(
                    node.pos.line, node.pos.col,
                    f"moves_{node.direction} counts bars: the rule needs a timeframe",
                )
            start = len(self.ops)
            self.arith(node.operand)
            self.moves.append(node.bars)
            self.emit(f"moves_{node.direction}", a=len(self.moves) - 1, b=node.bars, d=start,
                      c=float(node.percent))
        elif isinstance(node, ast.Not):
            self.condition(node.operand)
            self.emit("not")
        elif isinstance(node, (ast.And, ast.Or)):
            op = "and" if isinstance(node, ast.And) else "or"
            self.condition(node.operands[0])
            for operand in node.operands[1:]:
                self.condition(operand)
                self.emit(op)
        else:  # pragma: no cover
            raise TypeError(f"not a condition node: {node!r}")

    def channel(self, node: ast.Channel) -> None:
        if isinstance(node, ast.RangeChannel):
            self.arith(node.lower)
            self.arith(node.upper)
            return
        lower, upper = CHANNEL_BOUNDS[node.name]
        self.load(node, lower)
        self.load(node, upper)

    def _slots(self, n: int) -> int:
        first = self.n_slots
        self.n_slots += n
        return first


def compile_rule(
    condition: ast.Condition,
    *,
    symbol: str,
    mode: str = "ON_TRUE",
    timeframe: str | None = None,
    cooldown_ms: int | None = None,
    max_fires: int = 0,
    expire_time_ms: int | None = None,
    hold_ms: int = 0,
    hysteresis: float = 0.0,
    default_venue: str = "binance",
    enable_1s: bool = False,
) -> CompiledRule:
    """Resolve and compile one rule; raises InvalidArgumentError / RuleSyntaxError."""
    if mode not in MODES:
        raise InvalidArgumentError(
            f"unknown trigger mode {mode!r}",
            violations=(FieldViolation("rule.mode", f"one of {', '.join(MODES)}"),),
        )
    if timeframe is not None and timeframe not in TIMEFRAMES:
        raise InvalidArgumentError(
            f"unknown timeframe {timeframe!r}",
            violations=(FieldViolation("rule.timeframe", f"one of {', '.join(TIMEFRAMES)}"),),
        )
    if cooldown_ms is not None and cooldown_ms < 0:
        raise InvalidArgumentError(
            "cooldown must be >= 0", violations=(FieldViolation("rule.cooldown", ">= 0"),)
        )
    if max_fires < 0:
        raise InvalidArgumentError(
            "max_fires must be >= 0", violations=(FieldViolation("rule.max_fires", ">= 0"),)
        )
    if hold_ms < 0:
        raise InvalidArgumentError(
            "hold_for must be >= 0", violations=(FieldViolation("rule.hold_for", ">= 0"),)
        )
    if not math.isfinite(hysteresis) or hysteresis < 0:
        raise InvalidArgumentError(
            "hysteresis must be finite and >= 0",
            violations=(FieldViolation("rule.hysteresis", "finite and >= 0"),),
        )
    if hysteresis and MODES[mode] not in BANDED_MODES:
        raise InvalidArgumentError(
            f"mode {mode} never re-arms, so a hysteresis band has no meaning in it",
            violations=(FieldViolation("rule.hysteresis",
                                       "0 unless the mode is ON_TRUE, ONCE or ONCE_PER_BAR"),),
        )
    symbol = qualify(symbol, default_venue)
    tf = rule_timeframe(condition, timeframe)
    if mode in BAR_MODES and tf is None:
        raise InvalidArgumentError(
            f"mode {mode} needs a timeframe: name one in the condition or set the rule's",
            violations=(FieldViolation("rule.timeframe", f"required by mode {mode}"),),
        )
    named: set[str] = set()
    _named_timeframes(condition, named)
    if tf is not None:
        named.add(tf)
    if "1s" in named and not enable_1s:
        raise InvalidArgumentError(
            "the 1s timeframe is not enabled on this server",
            violations=(FieldViolation("rule.condition", "1s bars are disabled"),),
        )
    core_mode = MODES[mode]
    emitter = _Emitter(symbol, tf, closed=core_mode == "ONCE_PER_BAR_CLOSE")
    emitter.condition(condition)
    if mode == "ONCE":
        max_fires = 1
    if cooldown_ms is None:
        cooldown_ms = DEFAULT_EVERY_TIME_COOLDOWN_MS if mode == "EVERY_TIME" else 0
    return CompiledRule(
        symbol=symbol,
        mode=core_mode,
        timeframe=tf,
        cooldown_ms=cooldown_ms,
        max_fires=max_fires,
        expire_time_ms=expire_time_ms,
        ops=tuple(emitter.ops),
        operands=tuple(emitter.operands),
        n_slots=emitter.n_slots,
        moves=tuple(emitter.moves),
        hold_ms=hold_ms,
        hysteresis=hysteresis,
    )


__all__ = [
    "BAR_MODES",
    "DEFAULT_EVERY_TIME_COOLDOWN_MS",
    "MODES",
    "CompiledRule",
    "OperandRef",
    "compile_rule",
    "qualify",
    "rule_timeframe",
]
