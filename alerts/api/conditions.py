"""Conversion between the rule syntax tree and the structured ``alerts.v1.Condition`` proto.

``condition_to_proto`` turns a tree of :mod:`alerts.rules.ast` into the proto;
``condition_from_proto`` turns a client's proto into a tree and refuses a
malformed one with :class:`~alerts.errors.InvalidArgumentError` (reason
``INVALID_RULE``) carrying one :class:`~alerts.errors.FieldViolation` per
problem found (at most ``MAX_VIOLATIONS``). It checks structure and the series
table of :mod:`alerts.rules.catalog` (names, parameter counts and ranges,
outputs, timeframes, offsets, nesting); whether operands make sense together
(a rule's timeframe, warm-up, ...) is the validator's job.

Field paths name proto fields from a root the caller gives (``rule.condition``
in CreateRule, ``condition`` by default):

* message fields are joined with ``.``, by their proto names
  (``compare.left``); the name of a oneof never appears, only the member set
  (``all_of``, ``series``);
* elements of repeated fields are ``[i]``, 0-based (``operands[1]``,
  ``params[0]``);
* a violation points at the deepest field that is wrong: a missing or unknown
  member of a oneof, or a missing message field, is reported at the field
  holding it (``rule.condition.all_of.operands[1]``, ``...compare.left``).

So ``rule.condition.all_of.operands[1].compare.left.series.params[0]`` is the
first parameter of the left series of the comparison that is the second
operand of the rule's top-level ``and``.

Mapping of absent values: a series' or channel's ``timeframe`` None is
``TIMEFRAME_UNSPECIFIED``, ``symbol`` and ``output`` None are the empty string.

A structured condition is accepted only if its canonical text would be, so the
two forms stay interchangeable (the server returns both). Hence the same rules
as the text parser: multi-output series need an output, ``macd``'s fast period
is below its slow one, symbols are ``venue:SYMBOL`` or a bare identifier, and
two depth limits hold. *Nesting* is counted as in the text (each parenthesis
group the canonical text needs, each channel bracket, each ``not`` and each
unary minus, a negative constant's sign included) and is at most
``catalog.MAX_NESTING``. The *tree depth* (nodes on the longest root-to-leaf
path, channels included) is at most ``catalog.MAX_TREE_DEPTH``: every tree level costs
two protobuf message levels, and protobuf decoders refuse messages nested more
than 100 deep, so a deeper tree could not be sent back to clients inside a
``Rule``. Violations of either limit are reported at the first node beyond it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from alerts.errors import FieldViolation, InvalidArgumentError
from alerts.rules import ast, catalog
from alerts.rules.parser import KEYWORDS
from alerts.v1 import market_pb2, rules_pb2

__all__ = [
    "MAX_VIOLATIONS",
    "condition_from_proto",
    "condition_to_proto",
    "series_from_proto",
    "series_to_proto",
    "timeframe_from_proto",
    "timeframe_to_proto",
]

#: At most this many violations are reported for one condition.
MAX_VIOLATIONS = 50

#: Symbol syntax of the rule text: ``venue:SYMBOL`` or a bare identifier.
_QUALIFIED_SYMBOL_RE = re.compile(r"[a-z][a-z0-9-]*:[A-Za-z0-9._/-]+")
_BARE_SYMBOL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_TIMEFRAME_TO_PROTO: dict[str, market_pb2.Timeframe] = {
    "1s": market_pb2.TIMEFRAME_1S,
    "1m": market_pb2.TIMEFRAME_1M,
    "5m": market_pb2.TIMEFRAME_5M,
    "15m": market_pb2.TIMEFRAME_15M,
    "1h": market_pb2.TIMEFRAME_1H,
    "4h": market_pb2.TIMEFRAME_4H,
    "1d": market_pb2.TIMEFRAME_1D,
}
if tuple(_TIMEFRAME_TO_PROTO) != catalog.TIMEFRAMES:  # pragma: no cover
    raise RuntimeError("catalog.TIMEFRAMES and the Timeframe enum disagree")
_TIMEFRAME_FROM_PROTO: dict[int, str] = {v: k for k, v in _TIMEFRAME_TO_PROTO.items()}

_COMPARE_TO_PROTO: dict[ast.CompareOp, rules_pb2.CompareOperator] = {
    ">": rules_pb2.COMPARE_OPERATOR_GREATER,
    ">=": rules_pb2.COMPARE_OPERATOR_GREATER_OR_EQUAL,
    "<": rules_pb2.COMPARE_OPERATOR_LESS,
    "<=": rules_pb2.COMPARE_OPERATOR_LESS_OR_EQUAL,
    "==": rules_pb2.COMPARE_OPERATOR_EQUAL,
}
_CROSS_TO_PROTO: dict[ast.CrossOp, rules_pb2.CrossOperator] = {
    "crosses": rules_pb2.CROSS_OPERATOR_CROSSES,
    "crosses_above": rules_pb2.CROSS_OPERATOR_CROSSES_ABOVE,
    "crosses_below": rules_pb2.CROSS_OPERATOR_CROSSES_BELOW,
}
_CHANNEL_TO_PROTO: dict[ast.ChannelOp, rules_pb2.ChannelOperator] = {
    "enters": rules_pb2.CHANNEL_OPERATOR_ENTERS,
    "exits": rules_pb2.CHANNEL_OPERATOR_EXITS,
    "inside": rules_pb2.CHANNEL_OPERATOR_INSIDE,
    "outside": rules_pb2.CHANNEL_OPERATOR_OUTSIDE,
}
_ARITH_TO_PROTO: dict[ast.ArithOp, rules_pb2.ArithmeticOperator] = {
    "+": rules_pb2.ARITHMETIC_OPERATOR_ADD,
    "-": rules_pb2.ARITHMETIC_OPERATOR_SUBTRACT,
    "*": rules_pb2.ARITHMETIC_OPERATOR_MULTIPLY,
    "/": rules_pb2.ARITHMETIC_OPERATOR_DIVIDE,
}
_DIRECTION_TO_PROTO: dict[ast.MoveDirection, rules_pb2.MoveDirection] = {
    "up": rules_pb2.MOVE_DIRECTION_UP,
    "down": rules_pb2.MOVE_DIRECTION_DOWN,
}

_K = TypeVar("_K")


def _invert(mapping: Mapping[_K, int]) -> dict[int, _K]:
    return {v: k for k, v in mapping.items()}


_COMPARE_FROM_PROTO = _invert(_COMPARE_TO_PROTO)
_CROSS_FROM_PROTO = _invert(_CROSS_TO_PROTO)
_CHANNEL_FROM_PROTO = _invert(_CHANNEL_TO_PROTO)
_ARITH_FROM_PROTO = _invert(_ARITH_TO_PROTO)
_DIRECTION_FROM_PROTO = _invert(_DIRECTION_TO_PROTO)

_CONDITION_MEMBERS = ", ".join(f.name for f in rules_pb2.Condition.DESCRIPTOR.oneofs[0].fields)
_EXPRESSION_MEMBERS = ", ".join(f.name for f in rules_pb2.Expression.DESCRIPTOR.oneofs[0].fields)
_CHANNEL_MEMBERS = ", ".join(
    f.name for f in rules_pb2.ChannelExpression.DESCRIPTOR.oneofs[0].fields
)


# --- timeframes ----------------------------------------------------------------------------


def timeframe_to_proto(timeframe: str | None) -> market_pb2.Timeframe:
    """``"1m"`` -> ``TIMEFRAME_1M``; None -> ``TIMEFRAME_UNSPECIFIED``.

    Raises ``ValueError`` for a name not in ``catalog.TIMEFRAMES`` (a programming error:
    the tree is validated before it gets here).
    """
    if timeframe is None:
        return market_pb2.TIMEFRAME_UNSPECIFIED
    try:
        return _TIMEFRAME_TO_PROTO[timeframe]
    except KeyError:
        raise ValueError(f"unknown timeframe {timeframe!r}") from None


def timeframe_from_proto(value: int, *, field: str = "timeframe") -> str | None:
    """``TIMEFRAME_1M`` -> ``"1m"``; ``TIMEFRAME_UNSPECIFIED`` -> None.

    A value this server does not know is ``InvalidArgumentError`` naming ``field``.
    """
    if value == market_pb2.TIMEFRAME_UNSPECIFIED:
        return None
    try:
        return _TIMEFRAME_FROM_PROTO[value]
    except KeyError:
        violation = FieldViolation(field, f"unknown timeframe value {value}")
        raise InvalidArgumentError(
            f"{field}: {violation.description}", violations=(violation,)
        ) from None


# --- tree -> proto -------------------------------------------------------------------------


def condition_to_proto(node: ast.Condition) -> rules_pb2.Condition:
    """The proto form of a (valid) condition tree; positions are not carried."""
    msg = rules_pb2.Condition()
    _condition_into(node, msg)
    return msg


def series_to_proto(series: ast.Series) -> rules_pb2.Series:
    """The proto form of one series."""
    msg = rules_pb2.Series()
    _series_into(series, msg)
    return msg


def _condition_into(node: ast.Condition, msg: rules_pb2.Condition) -> None:
    match node:
        case ast.Compare(op=op, left=left, right=right):
            msg.compare.op = _COMPARE_TO_PROTO[op]
            _expression_into(left, msg.compare.left)
            _expression_into(right, msg.compare.right)
        case ast.Cross(op=op, left=left, right=right):
            msg.cross.op = _CROSS_TO_PROTO[op]
            _expression_into(left, msg.cross.left)
            _expression_into(right, msg.cross.right)
        case ast.ChannelTest(op=op, operand=operand, channel=channel):
            msg.channel_test.op = _CHANNEL_TO_PROTO[op]
            _expression_into(operand, msg.channel_test.operand)
            _channel_into(channel, msg.channel_test.channel)
        case ast.Moves(direction=direction, operand=operand, percent=percent, bars=bars):
            msg.moves.direction = _DIRECTION_TO_PROTO[direction]
            _expression_into(operand, msg.moves.operand)
            msg.moves.percent = percent
            msg.moves.bars = bars
        case ast.Not(operand=operand):
            _condition_into(operand, msg.negation.operand)
        case ast.And(operands=operands):
            msg.all_of.SetInParent()
            for operand in operands:
                _condition_into(operand, msg.all_of.operands.add())
        case ast.Or(operands=operands):
            msg.any_of.SetInParent()
            for operand in operands:
                _condition_into(operand, msg.any_of.operands.add())
        case _:
            raise TypeError(f"not a condition node: {node!r}")


def _expression_into(node: ast.Arith, msg: rules_pb2.Expression) -> None:
    match node:
        case ast.Number(value=value):
            msg.number = value
        case ast.Series():
            _series_into(node, msg.series)
        case ast.Neg(operand=operand):
            _expression_into(operand, msg.neg.operand)
        case ast.BinOp(op=op, left=left, right=right):
            msg.binary.op = _ARITH_TO_PROTO[op]
            _expression_into(left, msg.binary.left)
            _expression_into(right, msg.binary.right)
        case _:
            raise TypeError(f"not an arithmetic node: {node!r}")


def _series_into(node: ast.Series, msg: rules_pb2.Series) -> None:
    msg.name = node.name
    msg.params.extend(node.params)
    msg.timeframe = timeframe_to_proto(node.timeframe)
    msg.symbol = node.symbol or ""
    msg.output = node.output or ""
    msg.offset = node.offset
    msg.SetInParent()


def _channel_into(node: ast.Channel, msg: rules_pb2.ChannelExpression) -> None:
    match node:
        case ast.SeriesChannel(name=name, params=params, timeframe=timeframe, symbol=symbol):
            msg.series_channel.name = name
            msg.series_channel.params.extend(params)
            msg.series_channel.timeframe = timeframe_to_proto(timeframe)
            msg.series_channel.symbol = symbol or ""
            msg.series_channel.SetInParent()
        case ast.RangeChannel(lower=lower, upper=upper):
            _expression_into(lower, msg.range.lower)
            _expression_into(upper, msg.range.upper)
        case _:
            raise TypeError(f"not a channel node: {node!r}")


# --- proto -> tree -------------------------------------------------------------------------


def condition_from_proto(msg: rules_pb2.Condition, *, field: str = "condition") -> ast.Condition:
    """The tree of a client's condition proto; ``field`` is the path of ``msg`` itself.

    Raises ``InvalidArgumentError`` (reason ``INVALID_RULE``) listing every problem found.
    """
    reader = _Reader()
    node = reader.condition(msg, _Place(field, 1, 0))
    reader.raise_if_invalid()
    assert node is not None
    return node


def series_from_proto(msg: rules_pb2.Series, *, field: str = "series") -> ast.Series:
    """The tree of one series proto; ``field`` is the path of ``msg`` itself."""
    reader = _Reader()
    node = reader.series(msg, field)
    reader.raise_if_invalid()
    assert node is not None
    return node


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a node sits: its field path, its tree level (root 1) and its text nesting."""

    path: str
    level: int
    nesting: int

    def child(self, name: str, *, wrapped: bool = False, opens: int = 0) -> _Place:
        """The node in field ``name`` one tree level down.

        ``opens`` counts the constructs this node opens around the child (``not``, unary
        minus, a channel bracket); ``wrapped``: the canonical text puts the child in
        parentheses.
        """
        return _Place(f"{self.path}.{name}", self.level + 1, self.nesting + opens + wrapped)


_LOGICAL = frozenset({"all_of", "any_of"})
_ANY_OF = frozenset({"any_of"})
_ADDITIVE = frozenset({rules_pb2.ARITHMETIC_OPERATOR_ADD, rules_pb2.ARITHMETIC_OPERATOR_SUBTRACT})


def _strength(msg: rules_pb2.Expression) -> int:
    """Binding strength of an expression in the canonical text (higher binds tighter)."""
    kind = msg.WhichOneof("kind")
    if kind == "binary":
        return 1 if msg.binary.op in _ADDITIVE else 2
    if kind == "neg":
        return 3
    return 4


class _Reader:
    """One conversion: walks the proto, collects violations, returns None below a bad node."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def fail(self, field: str, description: str) -> None:
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(FieldViolation(field, description))

    def raise_if_invalid(self) -> None:
        if not self.violations:
            return
        first = self.violations[0]
        message = f"invalid condition: {first.field}: {first.description}"
        if len(self.violations) > 1:
            message += f" (and {len(self.violations) - 1} more)"
        raise InvalidArgumentError(
            message, reason="INVALID_RULE", violations=tuple(self.violations)
        )

    def too_deep(self, at: _Place, extra_nesting: int = 0) -> bool:
        """Check the limits for a node at ``at``; report and return True if it is beyond them."""
        if at.level > catalog.MAX_TREE_DEPTH:
            self.fail(at.path, f"condition tree deeper than {catalog.MAX_TREE_DEPTH} levels")
            return True
        if at.nesting + extra_nesting > catalog.MAX_NESTING:
            self.fail(
                at.path,
                f"nesting deeper than {catalog.MAX_NESTING} levels (in the condition's text: "
                "parentheses, channel brackets, 'not' and unary '-')",
            )
            return True
        return False

    # conditions

    def condition(self, msg: rules_pb2.Condition, at: _Place) -> ast.Condition | None:
        if self.too_deep(at):
            return None
        kind = msg.WhichOneof("kind")
        if kind is None:
            self.fail(at.path, f"one of {_CONDITION_MEMBERS} must be set")
            return None
        node = _Place(f"{at.path}.{kind}", at.level, at.nesting)
        match kind:
            case "compare":
                compare_op = self.enum(msg.compare.op, _COMPARE_FROM_PROTO, f"{node.path}.op")
                left = self.expression_field(msg.compare, "left", node)
                right = self.expression_field(msg.compare, "right", node)
                if compare_op is None or left is None or right is None:
                    return None
                return ast.Compare(compare_op, left, right)
            case "cross":
                cross_op = self.enum(msg.cross.op, _CROSS_FROM_PROTO, f"{node.path}.op")
                left = self.expression_field(msg.cross, "left", node)
                right = self.expression_field(msg.cross, "right", node)
                if cross_op is None or left is None or right is None:
                    return None
                return ast.Cross(cross_op, left, right)
            case "channel_test":
                return self.channel_test(msg.channel_test, node)
            case "moves":
                return self.moves(msg.moves, node)
            case "negation":
                if not msg.negation.HasField("operand"):
                    self.fail(f"{node.path}.operand", "required")
                    return None
                operand = msg.negation.operand
                wrapped = operand.WhichOneof("kind") in _LOGICAL
                inner = self.condition(operand, node.child("operand", wrapped=wrapped, opens=1))
                return None if inner is None else ast.Not(inner)
            case "all_of":
                operands = self.operands(msg.all_of.operands, node, _LOGICAL, "and")
                return None if operands is None else ast.And(operands)
            case "any_of":
                operands = self.operands(msg.any_of.operands, node, _ANY_OF, "or")
                return None if operands is None else ast.Or(operands)
        self.fail(at.path, f"unsupported condition kind {kind!r}")  # pragma: no cover
        return None  # pragma: no cover

    def channel_test(self, msg: rules_pb2.ChannelTest, node: _Place) -> ast.ChannelTest | None:
        channel_op = self.enum(msg.op, _CHANNEL_FROM_PROTO, f"{node.path}.op")
        operand = self.expression_field(msg, "operand", node)
        channel = None
        if not msg.HasField("channel"):
            self.fail(f"{node.path}.channel", "required")
        else:
            channel = self.channel(msg.channel, node.child("channel"))
        if channel_op is None or operand is None or channel is None:
            return None
        return ast.ChannelTest(channel_op, operand, channel)

    def moves(self, msg: rules_pb2.Moves, node: _Place) -> ast.Moves | None:
        direction = self.enum(msg.direction, _DIRECTION_FROM_PROTO, f"{node.path}.direction")
        operand = self.expression_field(msg, "operand", node)
        ok = direction is not None and operand is not None
        if not math.isfinite(msg.percent) or msg.percent <= 0:
            self.fail(f"{node.path}.percent", f"must be a finite number > 0, got {msg.percent!r}")
            ok = False
        if not catalog.MIN_PERIOD <= msg.bars <= catalog.MAX_PERIOD:
            self.fail(
                f"{node.path}.bars",
                f"must be a whole number from {catalog.MIN_PERIOD} to {catalog.MAX_PERIOD}, "
                f"got {msg.bars}",
            )
            ok = False
        if not ok:
            return None
        assert direction is not None and operand is not None
        return ast.Moves(direction, operand, float(msg.percent), int(msg.bars))

    def operands(
        self,
        items: Sequence[rules_pb2.Condition],
        node: _Place,
        wrapped_kinds: frozenset[str],
        word: str,
    ) -> tuple[ast.Condition, ...] | None:
        path = f"{node.path}.operands"
        if len(items) < 2:
            self.fail(path, f"'{word}' needs at least two operands, got {len(items)}")
        nodes = [
            self.condition(
                item,
                _Place(
                    f"{path}[{i}]",
                    node.level + 1,
                    node.nesting + (item.WhichOneof("kind") in wrapped_kinds),
                ),
            )
            for i, item in enumerate(items)
        ]
        if len(items) < 2 or any(n is None for n in nodes):
            return None
        return tuple(n for n in nodes if n is not None)

    # arithmetic

    def expression_field(
        self,
        parent: rules_pb2.Compare
        | rules_pb2.Cross
        | rules_pb2.ChannelTest
        | rules_pb2.Moves
        | rules_pb2.UnaryMinus
        | rules_pb2.BinaryExpression
        | rules_pb2.RangeChannel,
        name: str,
        node: _Place,
        *,
        wrapped: bool = False,
        opens: int = 0,
    ) -> ast.Arith | None:
        """The expression in ``parent.<name>``, which must be set; ``node`` is the parent's place."""
        at = node.child(name, wrapped=wrapped, opens=opens)
        if not parent.HasField(name):
            self.fail(at.path, "required")
            return None
        child: rules_pb2.Expression = getattr(parent, name)
        return self.expression(child, at)

    def expression(self, msg: rules_pb2.Expression, at: _Place) -> ast.Arith | None:
        kind = msg.WhichOneof("kind")
        # A negative constant is written with a leading '-', which nests like unary minus.
        if self.too_deep(at, int(kind == "number" and msg.number < 0)):
            return None
        if kind is None:
            self.fail(at.path, f"one of {_EXPRESSION_MEMBERS} must be set")
            return None
        node = _Place(f"{at.path}.{kind}", at.level, at.nesting)
        match kind:
            case "number":
                if not math.isfinite(msg.number):
                    self.fail(node.path, f"must be a finite number, got {msg.number!r}")
                    return None
                return ast.Number(float(msg.number))
            case "series":
                return self.series(msg.series, node.path)
            case "neg":
                inner = msg.neg.operand
                inner_kind = inner.WhichOneof("kind")
                # The canonical text writes -(a + b) and -(5); -close(1h) and --x need none.
                wrapped = inner_kind == "binary" or (inner_kind == "number" and inner.number >= 0)
                operand = self.expression_field(msg.neg, "operand", node, wrapped=wrapped, opens=1)
                return None if operand is None else ast.Neg(operand)
            case "binary":
                binary = msg.binary
                arith_op = self.enum(binary.op, _ARITH_FROM_PROTO, f"{node.path}.op")
                strength = _strength(msg)
                left = self.expression_field(
                    binary, "left", node, wrapped=_strength(binary.left) < strength
                )
                right = self.expression_field(
                    binary, "right", node, wrapped=_strength(binary.right) <= strength
                )
                if arith_op is None or left is None or right is None:
                    return None
                return ast.BinOp(arith_op, left, right)
        self.fail(at.path, f"unsupported expression kind {kind!r}")  # pragma: no cover
        return None  # pragma: no cover

    # series and channels

    def series(self, msg: rules_pb2.Series, path: str) -> ast.Series | None:
        spec = self.series_name(msg.name, f"{path}.name", channel=False)
        timeframe, tf_ok = self.timeframe(msg.timeframe, f"{path}.timeframe")
        symbol, symbol_ok = self.symbol(msg.symbol, f"{path}.symbol")
        ok = spec is not None and tf_ok and symbol_ok
        if msg.offset > catalog.MAX_OFFSET:
            self.fail(
                f"{path}.offset",
                f"must be a whole number from 0 to {catalog.MAX_OFFSET}, got {msg.offset}",
            )
            ok = False
        if spec is None:
            return None
        ok = self.params(msg.name, spec, msg.params, f"{path}.params") and ok
        ok = self.series_options(msg.name, spec, timeframe, symbol, path) and ok
        ok = self.output(msg.name, spec, msg.output, f"{path}.output") and ok
        if not ok:
            return None
        return ast.Series(
            name=msg.name,
            params=tuple(float(p) for p in msg.params),
            timeframe=timeframe,
            symbol=symbol,
            output=msg.output or None,
            offset=int(msg.offset),
        )

    def output(self, name: str, spec: catalog.SeriesSpec, output: str, path: str) -> bool:
        if not output:
            if spec.outputs:
                self.fail(path, f"{name} needs an output: {', '.join(spec.outputs)}")
                return False
            return True
        if not spec.outputs:
            self.fail(path, f"{name} has no outputs, got {output!r}")
            return False
        if output not in spec.outputs:
            expected = ", ".join(spec.outputs)
            self.fail(path, f"unknown output {output!r} of {name}; expected one of {expected}")
            return False
        return True

    def channel(self, msg: rules_pb2.ChannelExpression, at: _Place) -> ast.Channel | None:
        if self.too_deep(at):
            return None
        kind = msg.WhichOneof("kind")
        if kind is None:
            self.fail(at.path, f"one of {_CHANNEL_MEMBERS} must be set")
            return None
        node = _Place(f"{at.path}.{kind}", at.level, at.nesting)
        if kind == "range":
            # [lower, upper]: the bracket nests like a parenthesis.
            lower = self.expression_field(msg.range, "lower", node, opens=1)
            upper = self.expression_field(msg.range, "upper", node, opens=1)
            if lower is None or upper is None:
                return None
            return ast.RangeChannel(lower, upper)
        sc = msg.series_channel
        spec = self.series_name(sc.name, f"{node.path}.name", channel=True)
        timeframe, tf_ok = self.timeframe(sc.timeframe, f"{node.path}.timeframe")
        symbol, symbol_ok = self.symbol(sc.symbol, f"{node.path}.symbol")
        if spec is None:
            return None
        ok = self.params(sc.name, spec, sc.params, f"{node.path}.params") and tf_ok and symbol_ok
        ok = self.series_options(sc.name, spec, timeframe, symbol, node.path) and ok
        if not ok:
            return None
        return ast.SeriesChannel(
            name=sc.name,
            params=tuple(float(p) for p in sc.params),
            timeframe=timeframe,
            symbol=symbol,
        )

    def series_name(self, name: str, path: str, *, channel: bool) -> catalog.SeriesSpec | None:
        if not name:
            self.fail(path, "required")
            return None
        spec = catalog.SERIES.get(name)
        if spec is None:
            self.fail(path, f"unknown series {name!r}")
            return None
        if channel and not spec.channel:
            names = ", ".join(n for n, s in catalog.SERIES.items() if s.channel)
            self.fail(path, f"{name!r} is not a channel; expected one of {names}")
            return None
        return spec

    def params(
        self, name: str, spec: catalog.SeriesSpec, params: Sequence[float], path: str
    ) -> bool:
        if len(params) != len(spec.params):
            signature = ", ".join(spec.params) or "no parameters"
            self.fail(
                path, f"{name} takes {len(spec.params)} parameters ({signature}), got {len(params)}"
            )
            return False
        ok = True
        for i, (param_name, value) in enumerate(zip(spec.params, params, strict=True)):
            at = f"{path}[{i}]"
            if not math.isfinite(value):
                self.fail(at, f"{param_name} must be a finite number, got {value!r}")
                ok = False
            elif param_name in spec.float_params:
                if not 0 < value <= catalog.MAX_BB_K:
                    self.fail(
                        at, f"{param_name} must be in (0, {catalog.MAX_BB_K:g}], got {value!r}"
                    )
                    ok = False
            elif not (value.is_integer() and catalog.MIN_PERIOD <= value <= catalog.MAX_PERIOD):
                self.fail(
                    at,
                    f"{param_name} must be a whole number from "
                    f"{catalog.MIN_PERIOD} to {catalog.MAX_PERIOD}, got {value!r}",
                )
                ok = False
        if ok and name == "macd" and params[0] >= params[1]:
            self.fail(
                f"{path}[0]", f"macd fast ({params[0]:g}) must be less than slow ({params[1]:g})"
            )
            ok = False
        return ok

    def series_options(
        self,
        name: str,
        spec: catalog.SeriesSpec,
        timeframe: str | None,
        symbol: str | None,
        path: str,
    ) -> bool:
        ok = True
        if spec.timeframe == "none" and timeframe is not None:
            self.fail(f"{path}.timeframe", f"{name} takes no timeframe")
            ok = False
        if not spec.symbol and symbol is not None:
            self.fail(f"{path}.symbol", f"{name} takes no symbol")
            ok = False
        return ok

    def timeframe(self, value: int, path: str) -> tuple[str | None, bool]:
        if value == market_pb2.TIMEFRAME_UNSPECIFIED:
            return None, True
        name = _TIMEFRAME_FROM_PROTO.get(value)
        if name is None:
            self.fail(path, f"unknown timeframe value {value}")
            return None, False
        return name, True

    def symbol(self, value: str, path: str) -> tuple[str | None, bool]:
        if not value:
            return None, True
        if _QUALIFIED_SYMBOL_RE.fullmatch(value) or (
            _BARE_SYMBOL_RE.fullmatch(value)
            and value not in KEYWORDS
            and value not in catalog.SERIES
        ):
            return value, True
        self.fail(
            path,
            f"not a symbol: {value!r}; expected venue:SYMBOL (venue [a-z][a-z0-9-]*, SYMBOL "
            "[A-Za-z0-9._/-]+) or a bare SYMBOL [A-Za-z_][A-Za-z0-9_]* that is not a keyword "
            "or series name",
        )
        return None, False

    def enum(self, value: int, table: Mapping[int, _K], path: str) -> _K | None:
        if value == 0:
            self.fail(path, "required")
            return None
        found = table.get(value)
        if found is None:
            self.fail(path, f"unknown enum value {value}")
        return found
