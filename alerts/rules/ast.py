"""Syntax tree of rule conditions.

Both forms of a condition, the text of ARCHITECTURE.md's grammar and the
structured ``alerts.v1.Condition`` proto, are turned into this one tree; the
compiler turns the tree into a core program, so both forms compile to the same
program. Nodes are frozen dataclasses and compare by value (positions excluded),
which is what the round-trip tests rely on.

Arithmetic nodes: ``Number``, ``Series``, ``Neg``, ``BinOp``.
Condition nodes: ``Compare``, ``Cross``, ``ChannelTest``, ``Moves``, ``Not``,
``And``, ``Or``. Channels: ``SeriesChannel`` (``bb(20, 2, 4h)``,
``donchian(20, 1h)``) and ``RangeChannel`` (``[a, b]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

CompareOp = Literal[">", ">=", "<", "<=", "=="]
CrossOp = Literal["crosses", "crosses_above", "crosses_below"]
ChannelOp = Literal["enters", "exits", "inside", "outside"]
ArithOp = Literal["+", "-", "*", "/"]
MoveDirection = Literal["up", "down"]


@dataclass(frozen=True)
class Pos:
    """1-based line and column of a node's first character in the rule text."""

    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


NO_POS = Pos(0, 0)


@dataclass(frozen=True)
class Number:
    """A finite numeric constant."""

    value: float
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True)
class Series:
    """A market series: ``price``, a bar field or an indicator output.

    ``name``: ``price``, a field (``open high low close volume quote_volume
    trades``) or an indicator (``sma ema wma rsi macd bb atr stoch obv vwap
    volume_z change_pct highest lowest donchian``).
    ``params``: the numeric arguments in order (periods are whole numbers kept
    as floats here; ``bb``'s k may be fractional).
    ``timeframe``: ``1s 1m 5m 15m 1h 4h 1d`` or None (the rule's timeframe).
    ``symbol``: an explicit operand symbol (``ETHUSDT``, ``binance:ETHUSDT``) or
    None (the rule's symbol).
    ``output``: for multi-output indicators (``macd.hist``, ``bb.upper``,
    ``stoch.k``, ``donchian.lower``), else None.
    ``offset``: ``x[k]``, k closed bars ago; 0 is the current value.
    """

    name: str
    params: tuple[float, ...] = ()
    timeframe: str | None = None
    symbol: str | None = None
    output: str | None = None
    offset: int = 0
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True)
class Neg:
    """Unary minus."""

    operand: Arith
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True)
class BinOp:
    """``left op right`` for ``+ - * /`` (division by zero is undefined)."""

    op: ArithOp
    left: Arith
    right: Arith
    pos: Pos = field(default=NO_POS, compare=False)


Arith: TypeAlias = Number | Series | Neg | BinOp


@dataclass(frozen=True)
class SeriesChannel:
    """A channel indicator used whole: ``bb(n, k, tf)`` or ``donchian(n, tf)``."""

    name: str
    params: tuple[float, ...] = ()
    timeframe: str | None = None
    symbol: str | None = None
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True)
class RangeChannel:
    """A literal channel ``[lower, upper]``."""

    lower: Arith
    upper: Arith
    pos: Pos = field(default=NO_POS, compare=False)


Channel: TypeAlias = SeriesChannel | RangeChannel


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    left: Arith
    right: Arith
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True)
class Cross:
    op: CrossOp
    left: Arith
    right: Arith
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True)
class ChannelTest:
    op: ChannelOp
    operand: Arith
    channel: Channel
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True)
class Moves:
    """``operand moves_up|moves_down percent % within bars bars``."""

    direction: MoveDirection
    operand: Arith
    percent: float
    bars: int
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True)
class Not:
    operand: Condition
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True)
class And:
    """Two or more operands (a chain ``a and b and c`` is one node)."""

    operands: tuple[Condition, ...]
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True)
class Or:
    """Two or more operands (a chain ``a or b or c`` is one node)."""

    operands: tuple[Condition, ...]
    pos: Pos = field(default=NO_POS, compare=False)


Condition: TypeAlias = Compare | Cross | ChannelTest | Moves | Not | And | Or
