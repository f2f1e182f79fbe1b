"""Canonical text of a condition tree, the inverse of ``parser.parse_condition``.

``format_condition`` writes one space around binary operators and keywords,
``", "`` between arguments, and only the parentheses the grammar needs to give
the same tree back: ``parse_condition(format_condition(t)) == t`` for every tree
the parser accepts. Numbers print with ``repr`` precision (integers without
``.0``), so they read back as the identical float. A negative constant is a
``Number`` (the parser folds ``-5``), so ``Neg(Number(5))`` prints as ``-(5)``.
"""

from __future__ import annotations

import math

from alerts.rules.ast import (
    And,
    Arith,
    BinOp,
    Channel,
    ChannelTest,
    Compare,
    Condition,
    Cross,
    Moves,
    Neg,
    Not,
    Number,
    Or,
    RangeChannel,
    Series,
    SeriesChannel,
)

#: Integers below this magnitude print as digits; larger ones use repr's exponent form.
_DIGITS_LIMIT = 1e16

#: Binding strength of arithmetic nodes (higher binds tighter).
_ADDITIVE = 1
_MULTIPLICATIVE = 2
_UNARY = 3
_ATOM = 4


def format_number(value: float) -> str:
    """``20.0`` -> ``20``, ``0.1`` -> ``0.1``, ``1e20`` -> ``1e+20``: shortest exact text."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if value.is_integer() and abs(value) < _DIGITS_LIMIT:
        return str(int(value))
    return repr(float(value))


def format_condition(node: Condition) -> str:
    """The canonical text of a condition tree."""
    if isinstance(node, Or):
        return " or ".join(_operand(child, (Or,)) for child in node.operands)
    if isinstance(node, And):
        return " and ".join(_operand(child, (And, Or)) for child in node.operands)
    if isinstance(node, Not):
        return "not " + _operand(node.operand, (And, Or))
    if isinstance(node, Compare | Cross):
        return f"{format_arith(node.left)} {node.op} {format_arith(node.right)}"
    if isinstance(node, ChannelTest):
        return f"{format_arith(node.operand)} {node.op} {format_channel(node.channel)}"
    if isinstance(node, Moves):
        return (
            f"{format_arith(node.operand)} moves_{node.direction} "
            f"{format_number(node.percent)}% within {node.bars} bars"
        )
    raise TypeError(f"not a condition node: {node!r}")


def format_arith(node: Arith) -> str:
    """The canonical text of an arithmetic expression."""
    if isinstance(node, Number):
        return format_number(node.value)
    if isinstance(node, Series):
        return format_series(node)
    if isinstance(node, Neg):
        return "-" + _neg_operand(node.operand)
    if isinstance(node, BinOp):
        strength = _strength(node)
        left = _wrap(node.left, _strength(node.left) < strength)
        right = _wrap(node.right, _strength(node.right) <= strength)
        return f"{left} {node.op} {right}"
    raise TypeError(f"not an arithmetic node: {node!r}")


def format_series(node: Series) -> str:
    """``price``, ``close(1h, ETHUSDT)``, ``macd(12, 26, 9, 15m).hist[1]``."""
    text = node.name
    if node.name != "price":
        text += "(" + _args(node.params, node.timeframe, node.symbol) + ")"
    if node.output is not None:
        text += "." + node.output
    if node.offset:
        text += f"[{node.offset}]"
    return text


def format_channel(node: Channel) -> str:
    """``bb(20, 2, 4h)``, ``donchian(20)`` or ``[lower, upper]``."""
    if isinstance(node, SeriesChannel):
        return f"{node.name}({_args(node.params, node.timeframe, node.symbol)})"
    if isinstance(node, RangeChannel):
        return f"[{format_arith(node.lower)}, {format_arith(node.upper)}]"
    raise TypeError(f"not a channel node: {node!r}")


def _operand(node: Condition, wrapped: tuple[type, ...]) -> str:
    """A child of ``and``/``or``/``not``, parenthesized when its kind is in ``wrapped``."""
    text = format_condition(node)
    return f"({text})" if isinstance(node, wrapped) else text


def _neg_operand(node: Arith) -> str:
    """The operand of unary minus: ``-(5)`` keeps ``Neg(Number(5))`` apart from ``Number(-5)``."""
    needs_parens = isinstance(node, BinOp) or (isinstance(node, Number) and node.value >= 0)
    return _wrap(node, needs_parens)


def _wrap(node: Arith, parens: bool) -> str:
    text = format_arith(node)
    return f"({text})" if parens else text


def _strength(node: Arith) -> int:
    if isinstance(node, BinOp):
        return _ADDITIVE if node.op in ("+", "-") else _MULTIPLICATIVE
    if isinstance(node, Neg):
        return _UNARY
    return _ATOM


def _args(params: tuple[float, ...], timeframe: str | None, symbol: str | None) -> str:
    parts = [format_number(value) for value in params]
    if timeframe is not None:
        parts.append(timeframe)
    if symbol is not None:
        parts.append(symbol)
    return ", ".join(parts)
