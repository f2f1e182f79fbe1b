"""Round trips between the rule syntax tree and the ``alerts.v1.Condition`` proto, and the
refusal of malformed protos with the right field path."""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Iterable
from typing import cast

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.api.conditions import (
    MAX_VIOLATIONS,
    condition_from_proto,
    condition_to_proto,
    series_from_proto,
    series_to_proto,
    timeframe_from_proto,
    timeframe_to_proto,
)
from alerts.errors import InvalidArgumentError, RuleSyntaxError
from alerts.rules import ast, catalog
from alerts.rules.catalog import MAX_TREE_DEPTH
from alerts.v1 import market_pb2, rules_pb2, service_pb2

ROOT = "rule.condition"

RSI = ast.Series("rsi", (14.0,), "5m")
CLOSE_1H = ast.Series("close", timeframe="1h")
SMA_50 = ast.Series("sma", (50.0,), "1h")
PRICE = ast.Series("price")

# Every node type and every optional Series field, written by hand.
HAND_WRITTEN: dict[str, ast.Condition] = {
    "price_gt": ast.Compare(">", PRICE, ast.Number(65000.0)),
    "all_compare_ops": ast.And(
        tuple(ast.Compare(op, RSI, ast.Number(50.0)) for op in (">", ">=", "<", "<=", "=="))
    ),
    "cross_ops": ast.Or(
        tuple(
            ast.Cross(op, CLOSE_1H, SMA_50) for op in ("crosses", "crosses_above", "crosses_below")
        )
    ),
    "macd_hist_crosses_zero": ast.Cross(
        "crosses_below",
        ast.Series("macd", (12.0, 26.0, 9.0), "15m", output="hist"),
        ast.Number(0.0),
    ),
    "bb_channel_ops": ast.And(
        tuple(
            ast.ChannelTest(
                op, ast.Series("close", timeframe="4h"), ast.SeriesChannel("bb", (20.0, 2.5), "4h")
            )
            for op in ("enters", "exits", "inside", "outside")
        )
    ),
    "donchian_other_symbol": ast.ChannelTest(
        "inside", PRICE, ast.SeriesChannel("donchian", (20.0,), None, "binance:ETHUSDT")
    ),
    "range_channel": ast.ChannelTest(
        "outside",
        ast.Series("vwap"),
        ast.RangeChannel(
            ast.Number(-1.5), ast.BinOp("*", ast.Number(2.0), ast.Series("atr", (14.0,)))
        ),
    ),
    "moves": ast.Or(
        (
            ast.Moves("up", ast.Series("close", timeframe="1m"), 5.0, 15),
            ast.Moves("down", ast.Series("close", timeframe="1m"), 2.5, 1000),
        )
    ),
    "arithmetic_and_offsets": ast.Compare(
        ">=",
        ast.BinOp(
            "/",
            ast.Series("close", timeframe="1h", symbol="ETHUSDT"),
            ast.Series("close", timeframe="1h", symbol="BTCUSDT", offset=3),
        ),
        ast.Neg(
            ast.BinOp("-", ast.Number(0.06), ast.BinOp("+", ast.Number(1.0), ast.Number(-2.0)))
        ),
    ),
    "not_nested": ast.Not(
        ast.Not(
            ast.And(
                (
                    ast.Compare("<", RSI, ast.Number(30.0)),
                    ast.Not(ast.Compare(">", PRICE, ast.Number(1.0))),
                )
            )
        )
    ),
    "every_indicator": ast.And(
        (
            ast.Compare(">", ast.Series("ema", (20.0,), "1d"), ast.Series("wma", (1000.0,), "1s")),
            ast.Compare(
                ">", ast.Series("stoch", (14.0, 3.0, 3.0), "5m", output="k"), ast.Number(80.0)
            ),
            ast.Compare(
                ">", ast.Series("obv", (), "15m"), ast.Series("volume", timeframe="1m", offset=1000)
            ),
            ast.Compare(">", ast.Series("volume_z", (20.0,), "1m"), ast.Number(3.0)),
            ast.Compare(">=", ast.Series("change_pct", (3.0,), "5m"), ast.Number(3.0)),
            ast.Cross("crosses_above", PRICE, ast.Series("highest", (20.0,), "1h")),
            ast.Cross("crosses_below", PRICE, ast.Series("lowest", (20.0,), "1h")),
            ast.Compare("<", ast.Series("bb", (20.0, 2.0), "4h", output="pct_b"), ast.Number(0.0)),
            ast.Compare(
                ">",
                ast.Series("quote_volume", timeframe="1m"),
                ast.Series("trades", timeframe="1m"),
            ),
            ast.Compare(
                ">", ast.Series("open", timeframe="1h"), ast.Series("high", timeframe="1h")
            ),
            ast.Compare(
                ">",
                ast.Series("low", timeframe="1h"),
                ast.Series("donchian", (10.0,), "1h", output="middle"),
            ),
            ast.Compare(
                ">",
                ast.Series("vwap", symbol="us:SPY"),
                ast.Series("macd", (12.0, 26.0, 9.0), "1h", output="line"),
            ),
        )
    ),
}


@pytest.mark.parametrize("node", list(HAND_WRITTEN.values()), ids=list(HAND_WRITTEN))
def test_hand_written_round_trip(node: ast.Condition) -> None:
    msg = condition_to_proto(node)
    assert condition_from_proto(msg) == node
    # The wire form and the JSON form (grpcurl) survive too.
    assert condition_from_proto(rules_pb2.Condition.FromString(msg.SerializeToString())) == node
    parsed = json_format.Parse(json_format.MessageToJson(msg), rules_pb2.Condition())
    assert condition_from_proto(parsed) == node


def test_every_node_type_is_covered() -> None:
    seen: set[type] = set()

    def walk(node: object) -> None:
        seen.add(type(node))
        for value in vars(node).values():
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(
                    item,
                    (
                        ast.Number,
                        ast.Series,
                        ast.Neg,
                        ast.BinOp,
                        ast.SeriesChannel,
                        ast.RangeChannel,
                        ast.Compare,
                        ast.Cross,
                        ast.ChannelTest,
                        ast.Moves,
                        ast.Not,
                        ast.And,
                        ast.Or,
                    ),
                ):
                    walk(item)

    for node in HAND_WRITTEN.values():
        walk(node)
    assert seen == {
        ast.Number,
        ast.Series,
        ast.Neg,
        ast.BinOp,
        ast.SeriesChannel,
        ast.RangeChannel,
        ast.Compare,
        ast.Cross,
        ast.ChannelTest,
        ast.Moves,
        ast.Not,
        ast.And,
        ast.Or,
    }
    names = {n.name for n in _series_in(HAND_WRITTEN.values())}
    assert names == set(catalog.SERIES)


def _series_in(nodes: Iterable[ast.Condition]) -> list[ast.Series | ast.SeriesChannel]:
    found: list[ast.Series | ast.SeriesChannel] = []

    def walk(node: object) -> None:
        if isinstance(node, (ast.Series, ast.SeriesChannel)):
            found.append(node)
        elif isinstance(node, tuple):
            for item in node:
                walk(item)
        elif hasattr(node, "__dataclass_fields__"):
            for value in vars(node).values():
                walk(value)

    for node in nodes:
        walk(node)
    return found


def test_documented_example_shape() -> None:
    """The example in rules.proto's header is what the converter produces."""
    node = ast.And(
        (ast.Compare(">", RSI, ast.Number(70.0)), ast.Cross("crosses_above", CLOSE_1H, SMA_50))
    )
    msg = condition_to_proto(node)
    assert msg.WhichOneof("kind") == "all_of"
    first = msg.all_of.operands[0].compare
    assert first.op == rules_pb2.COMPARE_OPERATOR_GREATER
    assert first.left.series.name == "rsi"
    assert list(first.left.series.params) == [14.0]
    assert first.left.series.timeframe == market_pb2.TIMEFRAME_5M
    assert first.right.number == 70.0
    assert msg.all_of.operands[1].cross.op == rules_pb2.CROSS_OPERATOR_CROSSES_ABOVE


def test_absent_series_fields_map_to_defaults() -> None:
    msg = series_to_proto(PRICE)
    assert msg.timeframe == market_pb2.TIMEFRAME_UNSPECIFIED
    assert msg.symbol == "" and msg.output == "" and msg.offset == 0
    assert series_from_proto(msg) == PRICE


def test_positions_are_not_part_of_equality() -> None:
    node = ast.Compare(">", ast.Series("price", pos=ast.Pos(1, 1)), ast.Number(1.0, ast.Pos(1, 9)))
    assert condition_from_proto(condition_to_proto(node)) == node


# --- random valid trees --------------------------------------------------------------------

SYMBOLS = ("ETHUSDT", "btc_usd", "binance:ETHUSDT", "binance-usdm:BTCUSDT", "us:BRK.B", "x:A/B")
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
periods = st.integers(catalog.MIN_PERIOD, catalog.MAX_PERIOD).map(float)
bb_k = st.floats(min_value=0.0, max_value=catalog.MAX_BB_K, exclude_min=True)


def _params(name: str, spec: catalog.SeriesSpec) -> st.SearchStrategy[tuple[float, ...]]:
    params = st.tuples(*(bb_k if p in spec.float_params else periods for p in spec.params))
    if name == "macd":  # fast < slow
        return params.filter(lambda p: p[0] < p[1])
    return params


def _timeframes(spec: catalog.SeriesSpec) -> st.SearchStrategy[str | None]:
    if spec.timeframe == "none":
        return st.none()
    return st.none() | st.sampled_from(catalog.TIMEFRAMES)


def _symbols(spec: catalog.SeriesSpec) -> st.SearchStrategy[str | None]:
    return st.none() | st.sampled_from(SYMBOLS) if spec.symbol else st.none()


@st.composite
def series(draw: st.DrawFn) -> ast.Series:
    name = draw(st.sampled_from(sorted(catalog.SERIES)))
    spec = catalog.SERIES[name]
    return ast.Series(
        name=name,
        params=draw(_params(name, spec)),
        timeframe=draw(_timeframes(spec)),
        symbol=draw(_symbols(spec)),
        output=draw(st.sampled_from(spec.outputs)) if spec.outputs else None,
        offset=draw(st.integers(0, catalog.MAX_OFFSET)),
    )


@st.composite
def series_channels(draw: st.DrawFn) -> ast.SeriesChannel:
    name = draw(st.sampled_from(sorted(n for n, s in catalog.SERIES.items() if s.channel)))
    spec = catalog.SERIES[name]
    return ast.SeriesChannel(
        name=name,
        params=draw(_params(name, spec)),
        timeframe=draw(_timeframes(spec)),
        symbol=draw(_symbols(spec)),
    )


ARITH_OPS: tuple[ast.ArithOp, ...] = ("+", "-", "*", "/")
COMPARE_OPS: tuple[ast.CompareOp, ...] = (">", ">=", "<", "<=", "==")
CROSS_OPS: tuple[ast.CrossOp, ...] = ("crosses", "crosses_above", "crosses_below")
CHANNEL_OPS: tuple[ast.ChannelOp, ...] = ("enters", "exits", "inside", "outside")


@functools.cache
def arith(depth: int) -> st.SearchStrategy[ast.Arith]:
    """Arithmetic trees at most ``depth`` levels deep."""
    leaves: st.SearchStrategy[ast.Arith] = finite.map(ast.Number) | series()
    if depth <= 1:
        return leaves
    sub = arith(depth - 1)
    return leaves | sub.map(ast.Neg) | st.builds(ast.BinOp, st.sampled_from(ARITH_OPS), sub, sub)


@functools.cache
def conditions(depth: int) -> st.SearchStrategy[ast.Condition]:
    """Condition trees whose Condition + Expression levels are at most ``depth`` + 3."""
    operand = arith(3)
    channel = series_channels() | st.builds(ast.RangeChannel, arith(2), arith(2))
    leaves: st.SearchStrategy[ast.Condition] = (
        st.builds(ast.Compare, st.sampled_from(COMPARE_OPS), operand, operand)
        | st.builds(ast.Cross, st.sampled_from(CROSS_OPS), operand, operand)
        | st.builds(ast.ChannelTest, st.sampled_from(CHANNEL_OPS), operand, channel)
        | st.builds(
            ast.Moves,
            st.sampled_from(("up", "down")),
            operand,
            st.floats(min_value=0.0, max_value=1e6, exclude_min=True),
            st.integers(catalog.MIN_PERIOD, catalog.MAX_PERIOD),
        )
    )
    if depth <= 1:
        return leaves
    sub = conditions(depth - 1)
    many = st.lists(sub, min_size=2, max_size=3).map(tuple)
    return leaves | sub.map(ast.Not) | many.map(ast.And) | many.map(ast.Or)


@settings(max_examples=300, deadline=None)
@given(conditions(4))
def test_random_trees_round_trip(node: ast.Condition) -> None:
    msg = condition_to_proto(node)
    assert condition_from_proto(msg) == node
    assert condition_from_proto(rules_pb2.Condition.FromString(msg.SerializeToString())) == node


@given(series())
def test_random_series_round_trip(node: ast.Series) -> None:
    assert series_from_proto(series_to_proto(node)) == node


# --- timeframes ----------------------------------------------------------------------------


def test_timeframes() -> None:
    expected = {
        "1s": market_pb2.TIMEFRAME_1S,
        "1m": market_pb2.TIMEFRAME_1M,
        "5m": market_pb2.TIMEFRAME_5M,
        "15m": market_pb2.TIMEFRAME_15M,
        "1h": market_pb2.TIMEFRAME_1H,
        "4h": market_pb2.TIMEFRAME_4H,
        "1d": market_pb2.TIMEFRAME_1D,
    }
    assert set(expected) == set(catalog.TIMEFRAMES)
    for name, value in expected.items():
        assert timeframe_to_proto(name) == value
        assert timeframe_from_proto(value) == name
    # Every enum value but UNSPECIFIED is a catalog timeframe, in the catalog's order.
    values = [v.number for v in market_pb2.Timeframe.DESCRIPTOR.values if v.number]
    assert [timeframe_from_proto(v) for v in sorted(values)] == list(catalog.TIMEFRAMES)
    assert timeframe_to_proto(None) == market_pb2.TIMEFRAME_UNSPECIFIED
    assert timeframe_from_proto(market_pb2.TIMEFRAME_UNSPECIFIED) is None
    with pytest.raises(ValueError):
        timeframe_to_proto("2m")
    with pytest.raises(InvalidArgumentError) as info:
        timeframe_from_proto(99, field="rule.timeframe")
    assert [v.field for v in info.value.violations] == ["rule.timeframe"]


# --- malformed protos ----------------------------------------------------------------------


def _compare(
    left: rules_pb2.Expression | None, op: int = rules_pb2.COMPARE_OPERATOR_GREATER
) -> rules_pb2.Condition:
    """``<left> op 1``; ``op`` may be a value the enum does not have."""
    msg = rules_pb2.Condition()
    msg.compare.op = op  # type: ignore[assignment]
    if left is not None:
        msg.compare.left.CopyFrom(left)
    msg.compare.right.number = 1.0
    return msg


def _series_expr(**fields: object) -> rules_pb2.Expression:
    """An expression holding a series with the given fields."""
    expr = rules_pb2.Expression()
    expr.series.SetInParent()
    for key, value in fields.items():
        if key == "params":
            expr.series.params.extend(cast("list[float]", value))
        else:
            setattr(expr.series, key, value)
    return expr


def _sma(op: int = rules_pb2.COMPARE_OPERATOR_GREATER, **fields: object) -> rules_pb2.Condition:
    """``sma(20, 1h) > 1`` with some series fields replaced."""
    values: dict[str, object] = {
        "name": "sma",
        "params": [20.0],
        "timeframe": market_pb2.TIMEFRAME_1H,
    }
    values.update(fields)
    return _compare(_series_expr(**values), op=op)


def _and(*operands: rules_pb2.Condition) -> rules_pb2.Condition:
    msg = rules_pb2.Condition()
    msg.all_of.SetInParent()
    for operand in operands:
        msg.all_of.operands.add().CopyFrom(operand)
    return msg


def _in_and(inner: rules_pb2.Condition) -> rules_pb2.Condition:
    """``price > 1 and <inner>``: puts ``inner`` at ``rule.condition.all_of.operands[1]``."""
    return _and(condition_to_proto(ast.Compare(">", PRICE, ast.Number(1.0))), inner)


def _channel_test(
    channel: rules_pb2.ChannelExpression | None = None,
    op: int = rules_pb2.CHANNEL_OPERATOR_INSIDE,
) -> rules_pb2.Condition:
    """``1 op <channel>``."""
    msg = rules_pb2.Condition()
    msg.channel_test.op = op  # type: ignore[assignment]
    msg.channel_test.operand.number = 1.0
    if channel is not None:
        msg.channel_test.channel.CopyFrom(channel)
    return msg


def _moves(**kw: object) -> rules_pb2.Condition:
    """``close(1m) moves_up 5% within 15 bars`` with some fields replaced."""
    node = ast.Moves("up", ast.Series("close", timeframe="1m"), 5.0, 15)
    msg = condition_to_proto(node)
    for key, value in kw.items():
        setattr(msg.moves, key, value)
    return msg


def _binary(op: int) -> rules_pb2.Condition:
    """``(1 op 2) > 1``."""
    expr = rules_pb2.Expression()
    expr.binary.op = op  # type: ignore[assignment]
    expr.binary.left.number = 1.0
    expr.binary.right.number = 2.0
    return _compare(expr)


def _bb_channel(**fields: object) -> rules_pb2.ChannelExpression:
    """``bb(20, 2)`` with some fields replaced."""
    channel = rules_pb2.ChannelExpression()
    channel.series_channel.name = "bb"
    channel.series_channel.params.extend([20.0, 2.0])
    for key, value in fields.items():
        if key == "params":
            del channel.series_channel.params[:]
            channel.series_channel.params.extend(cast("list[float]", value))
        else:
            setattr(channel.series_channel, key, value)
    return channel


_EMPTY_RANGE = rules_pb2.ChannelExpression()
_EMPTY_RANGE.range.upper.number = 2.0

_NOT_WITHOUT_OPERAND = rules_pb2.Condition()
_NOT_WITHOUT_OPERAND.negation.SetInParent()

_NEG_WITHOUT_OPERAND = rules_pb2.Expression()
_NEG_WITHOUT_OPERAND.neg.SetInParent()

SL = f"{ROOT}.compare.left.series"  # the series built by _sma / _series_expr

MALFORMED: dict[str, tuple[rules_pb2.Condition, str]] = {
    "empty condition": (rules_pb2.Condition(), ROOT),
    "missing oneof in an operand": (_in_and(rules_pb2.Condition()), f"{ROOT}.all_of.operands[1]"),
    "empty and": (_and(), f"{ROOT}.all_of.operands"),
    "single operand and": (_and(_sma()), f"{ROOT}.all_of.operands"),
    "empty or": (rules_pb2.Condition(any_of=rules_pb2.Or()), f"{ROOT}.any_of.operands"),
    "not without operand": (_NOT_WITHOUT_OPERAND, f"{ROOT}.negation.operand"),
    "compare op unspecified": (_sma(op=0), f"{ROOT}.compare.op"),
    "compare op unknown": (_sma(op=42), f"{ROOT}.compare.op"),
    "compare left missing": (_compare(None), f"{ROOT}.compare.left"),
    "expression without oneof": (_compare(rules_pb2.Expression()), f"{ROOT}.compare.left"),
    "neg without operand": (_compare(_NEG_WITHOUT_OPERAND), f"{ROOT}.compare.left.neg.operand"),
    "nan number": (_compare(rules_pb2.Expression(number=math.nan)), f"{ROOT}.compare.left.number"),
    "infinite number": (
        _compare(rules_pb2.Expression(number=-math.inf)),
        f"{ROOT}.compare.left.number",
    ),
    "binary op unspecified": (_binary(0), f"{ROOT}.compare.left.binary.op"),
    "binary op unknown": (_binary(9), f"{ROOT}.compare.left.binary.op"),
    "series name missing": (_sma(name=""), f"{SL}.name"),
    "series name unknown": (_sma(name="ichimoku"), f"{SL}.name"),
    "too few params": (_sma(params=[]), f"{SL}.params"),
    "too many params": (_sma(params=[20.0, 2.0]), f"{SL}.params"),
    "fractional period": (_sma(params=[20.5]), f"{SL}.params[0]"),
    "period zero": (_sma(params=[0.0]), f"{SL}.params[0]"),
    "period above 1000": (_sma(params=[1001.0]), f"{SL}.params[0]"),
    "nan param": (_sma(params=[math.nan]), f"{SL}.params[0]"),
    "third macd param": (
        _sma(name="macd", params=[12.0, 26.0, 0.0], output="hist"),
        f"{SL}.params[2]",
    ),
    "bb k zero": (_sma(name="bb", params=[20.0, 0.0], output="upper"), f"{SL}.params[1]"),
    "bb k too large": (_sma(name="bb", params=[20.0, 10.5], output="upper"), f"{SL}.params[1]"),
    "output unknown": (_sma(name="macd", params=[12.0, 26.0, 9.0], output="upper"), f"{SL}.output"),
    "output on single-valued": (_sma(output="upper"), f"{SL}.output"),
    "offset above 1000": (_sma(offset=1001), f"{SL}.offset"),
    "timeframe unknown": (_sma(timeframe=99), f"{SL}.timeframe"),
    "timeframe on price": (_sma(name="price", params=[]), f"{SL}.timeframe"),
    "symbol on price": (
        _sma(name="price", params=[], timeframe=0, symbol="ETHUSDT"),
        f"{SL}.symbol",
    ),
    "symbol malformed": (_sma(symbol="ETH USDT"), f"{SL}.symbol"),
    "brief's example path": (
        _in_and(_sma(params=[-3.0])),
        f"{ROOT}.all_of.operands[1].compare.left.series.params[0]",
    ),
    "channel missing": (_channel_test(), f"{ROOT}.channel_test.channel"),
    "channel without oneof": (
        _channel_test(channel=rules_pb2.ChannelExpression()),
        f"{ROOT}.channel_test.channel",
    ),
    "channel op unspecified": (
        _channel_test(op=0, channel=_bb_channel()),
        f"{ROOT}.channel_test.op",
    ),
    "series channel not a channel": (
        _channel_test(channel=_bb_channel(name="sma", params=[20.0])),
        f"{ROOT}.channel_test.channel.series_channel.name",
    ),
    "series channel wrong params": (
        _channel_test(channel=_bb_channel(params=[20.0])),
        f"{ROOT}.channel_test.channel.series_channel.params",
    ),
    "series channel bad timeframe": (
        _channel_test(channel=_bb_channel(timeframe=-1)),
        f"{ROOT}.channel_test.channel.series_channel.timeframe",
    ),
    "range lower missing": (
        _channel_test(channel=_EMPTY_RANGE),
        f"{ROOT}.channel_test.channel.range.lower",
    ),
    "moves direction unspecified": (_moves(direction=0), f"{ROOT}.moves.direction"),
    "moves percent zero": (_moves(percent=0.0), f"{ROOT}.moves.percent"),
    "moves percent nan": (_moves(percent=math.nan), f"{ROOT}.moves.percent"),
    "moves bars zero": (_moves(bars=0), f"{ROOT}.moves.bars"),
    "moves bars above 1000": (_moves(bars=1001), f"{ROOT}.moves.bars"),
    "multi-output series without output": (
        _sma(name="macd", params=[12.0, 26.0, 9.0]),
        f"{SL}.output",
    ),
    "macd fast not below slow": (
        _sma(name="macd", params=[26.0, 26.0, 9.0], output="line"),
        f"{SL}.params[0]",
    ),
    "symbol is a keyword": (_sma(symbol="and"), f"{SL}.symbol"),
    "symbol is a series name": (_sma(symbol="close"), f"{SL}.symbol"),
    "symbol with an uppercase venue": (_sma(symbol="Binance:BTCUSDT"), f"{SL}.symbol"),
    "bare symbol with a dot": (_sma(symbol="BRK.B"), f"{SL}.symbol"),
}


@pytest.mark.parametrize(("msg", "path"), list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_is_refused_with_field_path(msg: rules_pb2.Condition, path: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        condition_from_proto(msg, field=ROOT)
    err = info.value
    assert err.code == "INVALID_ARGUMENT"
    assert err.reason == "INVALID_RULE"
    assert [v.field for v in err.violations] == [path]
    assert err.violations[0].description
    assert path in str(err)


# --- depth limits --------------------------------------------------------------------------

N = catalog.MAX_NESTING
GT_1 = ast.Compare(">", PRICE, ast.Number(1.0))
NOTS = ".negation.operand"


def _nots(node: ast.Condition, count: int) -> ast.Condition:
    for _ in range(count):
        node = ast.Not(node)
    return node


def _negs(node: ast.Arith, count: int) -> ast.Arith:
    for _ in range(count):
        node = ast.Neg(node)
    return node


def _sum_chain(count: int) -> ast.Arith:
    """``1 + 1 + ...`` with ``count`` additions, nested to the left as the parser builds it."""
    node: ast.Arith = ast.Number(1.0)
    for _ in range(count):
        node = ast.BinOp("+", node, ast.Number(1.0))
    return node


# Trees right at a limit, and the same trees one step beyond it with the violations expected.
LIMITS: dict[str, tuple[ast.Condition, ast.Condition, list[str]]] = {
    # `not not ... price > 1`: each `not` nests one level.
    "nots": (_nots(GT_1, N), _nots(GT_1, N + 1), [ROOT + NOTS * (N + 1)]),
    # `-(-(...-(1)))`: each unary minus nests, and so do the parentheses around a constant.
    "unary minus": (
        ast.Compare(">", _negs(ast.Number(1.0), N - 1), ast.Number(0.0)),
        ast.Compare(">", _negs(ast.Number(1.0), N), ast.Number(0.0)),
        [f"{ROOT}.compare.left" + ".neg.operand" * N],
    ),
    # The sign of a negative constant nests like unary minus.
    "negative constant": (
        _nots(ast.Compare(">", PRICE, ast.Number(5.0)), N),
        _nots(ast.Compare(">", PRICE, ast.Number(-5.0)), N),
        [ROOT + NOTS * N + ".compare.right"],
    ),
    # `not (a and b)` needs parentheses.
    "and under not": (
        _nots(ast.And((GT_1, GT_1)), N - 1),
        _nots(ast.And((GT_1, GT_1)), N),
        [ROOT + NOTS * N],
    ),
    # `a and (b or c)` needs them too; `a or b and c` does not.
    "or under and": (
        _nots(ast.Or((GT_1, ast.And((GT_1, GT_1)))), N - 1),
        _nots(ast.And((GT_1, ast.Or((GT_1, GT_1)))), N - 1),
        [ROOT + NOTS * (N - 1) + ".all_of.operands[1]"],
    ),
    # A channel's brackets nest.
    "range channel": (
        _nots(ast.ChannelTest("inside", PRICE, ast.RangeChannel(PRICE, PRICE)), N - 1),
        _nots(ast.ChannelTest("inside", PRICE, ast.RangeChannel(PRICE, PRICE)), N),
        [
            ROOT + NOTS * N + ".channel_test.channel.range.lower",
            ROOT + NOTS * N + ".channel_test.channel.range.upper",
        ],
    ),
    # `2 * (1 + 1)` needs parentheses, `1 + 2 * 1` does not; `1 - (1 - 1)` does.
    "arithmetic parentheses": (
        _nots(
            ast.Compare(">", ast.BinOp("+", ast.Number(1.0), ast.BinOp("*", PRICE, PRICE)), PRICE),
            N,
        ),
        _nots(
            ast.Compare(">", ast.BinOp("-", ast.Number(1.0), ast.BinOp("-", PRICE, PRICE)), PRICE),
            N,
        ),
        [ROOT + NOTS * N + ".compare.left.binary.right"],
    ),
    # A long chain needs no parentheses but makes a deep tree: compare, 39 sums, a leaf.
    "tree depth": (
        ast.Compare(">", _sum_chain(MAX_TREE_DEPTH - 2), ast.Number(0.0)),
        ast.Compare(">", _sum_chain(MAX_TREE_DEPTH - 1), ast.Number(0.0)),
        [
            f"{ROOT}.compare.left" + ".binary.left" * (MAX_TREE_DEPTH - 1),
            f"{ROOT}.compare.left" + ".binary.left" * (MAX_TREE_DEPTH - 2) + ".binary.right",
        ],
    ),
}


@pytest.mark.parametrize(("at_limit", "beyond", "paths"), list(LIMITS.values()), ids=list(LIMITS))
def test_depth_limits(at_limit: ast.Condition, beyond: ast.Condition, paths: list[str]) -> None:
    assert condition_from_proto(condition_to_proto(at_limit)) == at_limit
    with pytest.raises(InvalidArgumentError) as info:
        condition_from_proto(condition_to_proto(beyond), field=ROOT)
    assert [v.field for v in info.value.violations] == paths


def _tree_depth(node: object) -> int:
    """Nodes on the longest root-to-leaf path, as the text parser counts them."""
    children = [
        item
        for value in vars(node).values()
        for item in (value if isinstance(value, tuple) else (value,))
        if hasattr(item, "__dataclass_fields__") and not isinstance(item, ast.Pos)
    ]
    return 1 + max((_tree_depth(child) for child in children), default=0)


def test_deepest_tree_decodes_inside_a_response() -> None:
    """Protobuf decoders refuse messages nested more than 100 deep; the limit keeps clear of it."""
    chain: ast.Arith = ast.Series("macd", (1.0, 2.0, 3.0), "1h", output="line")
    for _ in range(MAX_TREE_DEPTH - 4):
        chain = ast.BinOp("*", chain, PRICE)
    deepest = ast.Or((GT_1, ast.And((GT_1, ast.Compare(">", chain, PRICE)))))
    assert _tree_depth(deepest) == MAX_TREE_DEPTH
    assert condition_from_proto(condition_to_proto(deepest)) == deepest
    response = service_pb2.ListRulesResponse()
    response.rules.add().condition.CopyFrom(condition_to_proto(deepest))
    decoded = service_pb2.ListRulesResponse.FromString(response.SerializeToString())
    assert condition_from_proto(decoded.rules[0].condition) == deepest


def test_all_violations_are_reported() -> None:
    msg = _and(_sma(params=[0.0], offset=5000), rules_pb2.Condition(), _moves(bars=0))
    with pytest.raises(InvalidArgumentError) as info:
        condition_from_proto(msg, field=ROOT)
    assert [v.field for v in info.value.violations] == [
        f"{ROOT}.all_of.operands[0].compare.left.series.offset",
        f"{ROOT}.all_of.operands[0].compare.left.series.params[0]",
        f"{ROOT}.all_of.operands[1]",
        f"{ROOT}.all_of.operands[2].moves.bars",
    ]


def test_violations_are_capped() -> None:
    msg = _and(*[rules_pb2.Condition() for _ in range(MAX_VIOLATIONS + 10)])
    with pytest.raises(InvalidArgumentError) as info:
        condition_from_proto(msg)
    assert len(info.value.violations) == MAX_VIOLATIONS
    assert info.value.violations[0].field == "condition.all_of.operands[0]"


def test_default_root_is_condition() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        condition_from_proto(rules_pb2.Condition())
    assert info.value.violations[0].field == "condition"


def test_json_from_a_client() -> None:
    """What a grpcurl user would type."""
    text = """
    {"anyOf": {"operands": [
      {"compare": {"op": "COMPARE_OPERATOR_GREATER",
                   "left": {"series": {"name": "rsi", "params": [14], "timeframe": "TIMEFRAME_5M"}},
                   "right": {"number": 70}}},
      {"negation": {"operand": {"moves": {"direction": "MOVE_DIRECTION_DOWN",
                                          "operand": {"series": {"name": "price"}},
                                          "percent": 3, "bars": 10}}}}]}}
    """
    msg = json_format.Parse(text, rules_pb2.Condition())
    assert condition_from_proto(msg) == ast.Or(
        (
            ast.Compare(">", RSI, ast.Number(70.0)),
            ast.Not(ast.Moves("down", PRICE, 3.0, 10)),
        )
    )


# --- agreement with the text parser --------------------------------------------------------

_HAS_PARSER = all(
    importlib.util.find_spec(name) is not None
    for name in ("alerts.rules.parser", "alerts.rules.format")
)


@st.composite
def stressed(draw: st.DrawFn) -> ast.Condition:
    """Trees up to MAX_TREE_DEPTH deep that often cross the nesting limit, in every way."""
    budget = draw(st.integers(0, MAX_TREE_DEPTH - 4) | st.just(MAX_TREE_DEPTH - 4))
    expr_wraps = draw(st.integers(0, budget))
    cond_wraps = budget - expr_wraps
    expr = draw(arith(1))
    for _ in range(expr_wraps):
        other = draw(arith(1))
        op = draw(st.sampled_from(ARITH_OPS))
        wrapped: tuple[ast.Arith, ...] = (
            ast.Neg(expr),
            ast.BinOp(op, expr, other),
            ast.BinOp(op, other, expr),
        )
        expr = draw(st.sampled_from(wrapped))
    leaf = draw(arith(1))
    leaves: tuple[ast.Condition, ...] = (
        ast.Compare(">", expr, leaf),
        ast.Cross("crosses", leaf, expr),
        ast.ChannelTest("exits", leaf, ast.RangeChannel(expr, leaf)),
        ast.Moves("down", expr, 2.5, 3),
    )
    cond = draw(st.sampled_from(leaves))
    for _ in range(cond_wraps):
        sibling = draw(conditions(1))
        combined: tuple[ast.Condition, ...] = (
            ast.Not(cond),
            ast.And((cond, sibling)),
            ast.And((sibling, cond)),
            ast.Or((cond, sibling)),
            ast.Or((sibling, cond)),
        )
        cond = draw(st.sampled_from(combined))
    assert _tree_depth(cond) <= MAX_TREE_DEPTH
    return cond


@pytest.mark.skipif(not _HAS_PARSER, reason="alerts.rules.parser is not there yet")
@settings(max_examples=200, deadline=None)
@given(stressed())
def test_proto_accepts_exactly_what_the_text_parser_accepts(node: ast.Condition) -> None:
    """A structured condition is valid exactly when its canonical text is (up to the depth
    limit), so the server can always return both forms."""
    from alerts.rules.format import format_condition
    from alerts.rules.parser import parse_condition

    try:
        text_ok = parse_condition(format_condition(node)) == node
    except RuleSyntaxError:
        text_ok = False
    try:
        proto_ok = condition_from_proto(condition_to_proto(node)) == node
    except InvalidArgumentError:
        proto_ok = False
    assert proto_ok == text_ok


@pytest.mark.skipif(not _HAS_PARSER, reason="alerts.rules.parser is not there yet")
@settings(max_examples=200, deadline=None)
@given(conditions(4))
def test_random_trees_round_trip_through_text_too(node: ast.Condition) -> None:
    from alerts.rules.format import format_condition
    from alerts.rules.parser import parse_condition

    assert parse_condition(format_condition(node)) == node
    assert condition_from_proto(condition_to_proto(node)) == node
