"""Parser and formatter of rule conditions: trees, precedence, positions and every error kind."""

from __future__ import annotations

import pytest

from alerts.errors import RuleSyntaxError
from alerts.rules import catalog
from alerts.rules.ast import (
    And,
    Arith,
    BinOp,
    ChannelTest,
    Compare,
    Condition,
    Cross,
    Moves,
    Neg,
    Not,
    Number,
    Or,
    Pos,
    RangeChannel,
    Series,
    SeriesChannel,
)
from alerts.rules.catalog import MAX_TREE_DEPTH
from alerts.rules.format import format_condition, format_number
from alerts.rules.parser import parse_condition

PRICE = Series("price")


def num(value: float) -> Number:
    return Number(float(value))


def close(timeframe: str | None = None, symbol: str | None = None, offset: int = 0) -> Series:
    return Series("close", (), timeframe, symbol, offset=offset)


def gt(left: Arith, right: Arith) -> Compare:
    return Compare(">", left, right)


def syntax_error(text: str) -> RuleSyntaxError:
    with pytest.raises(RuleSyntaxError) as info:
        parse_condition(text)
    return info.value


# --------------------------------------------------------------------------- ARCHITECTURE.md

ARCHITECTURE_EXAMPLES: list[tuple[str, Condition]] = [
    ("price > 65000", gt(PRICE, num(65000))),
    ("price crosses_above 65000", Cross("crosses_above", PRICE, num(65000))),
    ("change_pct(3, 5m) >= 3", Compare(">=", Series("change_pct", (3.0,), "5m"), num(3))),
    (
        "rsi(14, 5m) > 70 and volume_z(20, 1m) > 3",
        And(
            (
                gt(Series("rsi", (14.0,), "5m"), num(70)),
                gt(Series("volume_z", (20.0,), "1m"), num(3)),
            )
        ),
    ),
    (
        "close(1h) crosses_above sma(50, 1h)",
        Cross("crosses_above", close("1h"), Series("sma", (50.0,), "1h")),
    ),
    (
        "macd(12, 26, 9, 15m).hist crosses_below 0",
        Cross("crosses_below", Series("macd", (12.0, 26.0, 9.0), "15m", output="hist"), num(0)),
    ),
    (
        "close(4h) exits bb(20, 2, 4h)",
        ChannelTest("exits", close("4h"), SeriesChannel("bb", (20.0, 2.0), "4h")),
    ),
    ("close(1m) moves_up 5% within 15 bars", Moves("up", close("1m"), 5.0, 15)),
    (
        "close(1h, ETHUSDT) / close(1h, BTCUSDT) crosses_above 0.06",
        Cross(
            "crosses_above",
            BinOp("/", close("1h", "ETHUSDT"), close("1h", "BTCUSDT")),
            num(0.06),
        ),
    ),
]


@pytest.mark.parametrize(("text", "tree"), ARCHITECTURE_EXAMPLES)
def test_architecture_examples_parse_to_their_trees(text: str, tree: Condition) -> None:
    assert parse_condition(text) == tree


@pytest.mark.parametrize(("text", "tree"), ARCHITECTURE_EXAMPLES)
def test_architecture_examples_are_canonical_text(text: str, tree: Condition) -> None:
    assert format_condition(tree) == text


# --------------------------------------------------------------------------- trees

A = gt(PRICE, num(1))
B = gt(PRICE, num(2))
C = gt(PRICE, num(3))

PRECEDENCE: list[tuple[str, Condition]] = [
    ("price > 1 or price > 2 and price > 3", Or((A, And((B, C))))),
    ("price > 1 and price > 2 or price > 3", Or((And((A, B)), C))),
    ("price > 1 and price > 2 and price > 3", And((A, B, C))),
    ("price > 1 or price > 2 or price > 3", Or((A, B, C))),
    ("(price > 1 and price > 2) and price > 3", And((And((A, B)), C))),
    ("price > 1 and (price > 2 or price > 3)", And((A, Or((B, C))))),
    ("not price > 1 and price > 2", And((Not(A), B))),
    ("not (price > 1 and price > 2)", Not(And((A, B)))),
    ("not not price > 1", Not(Not(A))),
    ("((price > 1))", A),
    ("not (price) > 1", Not(A)),
    ("(price) > 1", A),
    ("price > 1 + 2 * 3", gt(PRICE, BinOp("+", num(1), BinOp("*", num(2), num(3))))),
    ("price > (1 + 2) * 3", gt(PRICE, BinOp("*", BinOp("+", num(1), num(2)), num(3)))),
    ("price > 1 - 2 - 3", gt(PRICE, BinOp("-", BinOp("-", num(1), num(2)), num(3)))),
    ("price > 1 - (2 - 3)", gt(PRICE, BinOp("-", num(1), BinOp("-", num(2), num(3))))),
    ("price > 8 / 4 / 2", gt(PRICE, BinOp("/", BinOp("/", num(8), num(4)), num(2)))),
    ("(price + 1) * 2 > 3", gt(BinOp("*", BinOp("+", PRICE, num(1)), num(2)), num(3))),
    ("price > -5", gt(PRICE, num(-5))),
    ("price > - 5", gt(PRICE, num(-5))),
    ("price > -(5)", gt(PRICE, Neg(num(5)))),
    ("price > --5", gt(PRICE, Neg(num(-5)))),
    ("-price > 1", gt(Neg(PRICE), num(1))),
    ("-price * 2 > 1", gt(BinOp("*", Neg(PRICE), num(2)), num(1))),
    ("price * -2 > 1", gt(BinOp("*", PRICE, num(-2)), num(1))),
    ("price - -2 > 1", gt(BinOp("-", PRICE, num(-2)), num(1))),
    ("-(price + 1) > 1", gt(Neg(BinOp("+", PRICE, num(1))), num(1))),
    (
        "price > 1 and (price + 1) * 2 > 3 or price < 0",
        Or(
            (
                And((A, gt(BinOp("*", BinOp("+", PRICE, num(1)), num(2)), num(3)))),
                Compare("<", PRICE, num(0)),
            )
        ),
    ),
]


@pytest.mark.parametrize(("text", "tree"), PRECEDENCE)
def test_precedence_and_grouping(text: str, tree: Condition) -> None:
    assert parse_condition(text) == tree


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("price >= 1", Compare(">=", PRICE, num(1))),
        ("price < 1", Compare("<", PRICE, num(1))),
        ("price <= 1", Compare("<=", PRICE, num(1))),
        ("price == 1", Compare("==", PRICE, num(1))),
        ("price crosses 1", Cross("crosses", PRICE, num(1))),
        ("price crosses_below 1", Cross("crosses_below", PRICE, num(1))),
        ("price enters [1, 2]", ChannelTest("enters", PRICE, RangeChannel(num(1), num(2)))),
        ("price inside [1, 2]", ChannelTest("inside", PRICE, RangeChannel(num(1), num(2)))),
        (
            "close() outside [lowest(20), highest(20) * 1.01]",
            ChannelTest(
                "outside",
                close(),
                RangeChannel(
                    Series("lowest", (20.0,)),
                    BinOp("*", Series("highest", (20.0,)), num(1.01)),
                ),
            ),
        ),
        (
            "close(1h) enters donchian(20, 1h, us:SPY)",
            ChannelTest("enters", close("1h"), SeriesChannel("donchian", (20.0,), "1h", "us:SPY")),
        ),
        (
            "price moves_down 2.5% within 3 bars",
            Moves("down", PRICE, 2.5, 3),
        ),
        ("close(1h)[1] > close(1h)", gt(close("1h", offset=1), close("1h"))),
        ("price[3] > 1", gt(Series("price", offset=3), num(1))),
        (
            "macd(12, 26, 9, 1h).hist[1] < 0",
            Compare("<", Series("macd", (12.0, 26.0, 9.0), "1h", output="hist", offset=1), num(0)),
        ),
        (
            "close(1h, binance-usdm:BTCUSDT) > close(1h, binance:ETHUSDT)",
            gt(close("1h", "binance-usdm:BTCUSDT"), close("1h", "binance:ETHUSDT")),
        ),
        ("close(ETHUSDT) > 1", gt(close(None, "ETHUSDT"), num(1))),
        ("vwap() < price", Compare("<", Series("vwap"), PRICE)),
        ("vwap(us:BRK.B) < 1", Compare("<", Series("vwap", symbol="us:BRK.B"), num(1))),
        ("obv(1d) > 0", gt(Series("obv", (), "1d"), num(0))),
        ("sma(20) > 1", gt(Series("sma", (20.0,)), num(1))),
        (
            "stoch(14, 3, 3, 15m).k crosses_above stoch(14, 3, 3, 15m).d",
            Cross(
                "crosses_above",
                Series("stoch", (14.0, 3.0, 3.0), "15m", output="k"),
                Series("stoch", (14.0, 3.0, 3.0), "15m", output="d"),
            ),
        ),
        ("bb(20, 2.5, 4h).pct_b > 1", gt(Series("bb", (20.0, 2.5), "4h", output="pct_b"), num(1))),
        ("bb(20, 10, 1s).width > 1", gt(Series("bb", (20.0, 10.0), "1s", output="width"), num(1))),
        ("price > .5", gt(PRICE, num(0.5))),
        ("price > 12.5", gt(PRICE, num(12.5))),
        ("price > 1e3", gt(PRICE, num(1000))),
        ("price > 2.5e-3", gt(PRICE, num(0.0025))),
        ("price > 1E+2", gt(PRICE, num(100))),
        ("sma(1e3, 1h) > 1", gt(Series("sma", (1000.0,), "1h"), num(1))),
        ("price>1 and(price<2)", And((A, Compare("<", PRICE, num(2))))),
        ("price\n>\n1", A),
    ],
)
def test_condition_kinds_and_arguments(text: str, tree: Condition) -> None:
    assert parse_condition(text) == tree


def test_whole_number_parameters_are_floats_and_offsets_ints() -> None:
    tree = parse_condition("sma(20, 1h)[2] > 1")
    assert isinstance(tree, Compare) and isinstance(tree.left, Series)
    assert tree.left.params == (20.0,) and isinstance(tree.left.params[0], float)
    assert tree.left.offset == 2 and isinstance(tree.left.offset, int)


# --------------------------------------------------------------------------- positions


def test_every_node_gets_its_position_across_lines() -> None:
    text = "rsi(14, 5m) > 70\nand (\n  volume_z(20, 1m) + 1 > 3)"
    tree = parse_condition(text)
    assert isinstance(tree, And) and tree.pos == Pos(1, 1)
    first, second = tree.operands
    assert isinstance(first, Compare) and first.pos == Pos(1, 1)
    assert first.left.pos == Pos(1, 1) and first.right.pos == Pos(1, 15)
    assert isinstance(second, Compare) and second.pos == Pos(3, 3)
    assert isinstance(second.left, BinOp) and second.left.pos == Pos(3, 3)
    assert second.left.left.pos == Pos(3, 3) and second.left.right.pos == Pos(3, 22)
    assert second.right.pos == Pos(3, 26)


def test_positions_of_not_neg_groups_and_channels() -> None:
    tree = parse_condition("not (price + 1) * -(2) > -3 or close() inside [1, bb(2, 1).upper]")
    assert isinstance(tree, Or)
    negated, channel_test = tree.operands
    assert isinstance(negated, Not) and negated.pos == Pos(1, 1)
    compare = negated.operand
    assert isinstance(compare, Compare) and compare.pos == Pos(1, 5)
    product = compare.left
    assert isinstance(product, BinOp) and product.pos == Pos(1, 5)
    assert product.left.pos == Pos(1, 6)
    assert isinstance(product.right, Neg) and product.right.pos == Pos(1, 19)
    assert product.right.operand.pos == Pos(1, 21)
    assert compare.right == num(-3) and compare.right.pos == Pos(1, 26)
    assert isinstance(channel_test, ChannelTest) and channel_test.pos == Pos(1, 32)
    assert isinstance(channel_test.channel, RangeChannel)
    assert channel_test.channel.pos == Pos(1, 47)
    assert channel_test.channel.upper.pos == Pos(1, 51)


# --------------------------------------------------------------------------- errors

TIMEFRAME_LIST = "timeframes are 1s 1m 5m 15m 1h 4h 1d"
CHANNEL_HINT = "use bb(...), donchian(...) or [lower, upper]"
NOT_A_CONDITION = (
    "expected a number or series, not a condition: comparisons are between arithmetic expressions"
)
CHAINED = "follows a complete comparison; join comparisons with 'and'"

ERRORS: list[tuple[str, int, int, str]] = [
    # lexing
    ("sma(20, 3m) > 1", 1, 9, f"unknown timeframe '3m'; {TIMEFRAME_LIST}"),
    ("close(2h) > 1", 1, 7, f"unknown timeframe '2h'; {TIMEFRAME_LIST}"),
    ("close(1w) > 1", 1, 7, f"unknown timeframe '1w'; {TIMEFRAME_LIST}"),
    ("close(1hr) > 1", 1, 7, f"unknown timeframe '1hr'; {TIMEFRAME_LIST}"),
    ("price > 1e999", 1, 9, "number '1e999' is not finite"),
    ("price > inf", 1, 9, "'inf' is not a finite number"),
    ("price > NaN", 1, 9, "'NaN' is not a finite number"),
    ("price > 1e", 1, 9, "malformed number '1e'"),
    ("price > 1e+", 1, 9, "malformed number '1e'"),
    ("price>1and price<2", 1, 7, "put a space between '1' and 'and'"),
    ("price > 12.", 1, 9, "malformed number '12.'"),
    ("price > 5 $", 1, 11, "unexpected character '$'"),
    ("price ≥ 2", 1, 7, "unexpected character '≥'"),
    ("price = 5", 1, 7, "unexpected '='; compare with '=='"),
    ("price != 5", 1, 7, "'!=' is not supported; write 'not a == b'"),
    ("close(1h, binance:) > 1", 1, 18, "expected a symbol after 'binance:'"),
    (
        "close(1h, Binance:ETH) > 1",
        1,
        18,
        "unexpected ':'; a symbol is written venue:SYMBOL with a lowercase venue",
    ),
    # names
    ("smaa(20, 1h) > 1", 1, 1, "unknown indicator 'smaa'; did you mean 'sma'?"),
    ("SMA(20, 1h) > 1", 1, 1, "unknown indicator 'SMA'; did you mean 'sma'?"),
    ("price > foo(1)", 1, 9, "unknown indicator 'foo'"),
    (
        "price > 1 AND price < 3",
        1,
        11,
        "unexpected 'AND' after the end of the condition; keywords are lowercase: 'and'",
    ),
    ("price > and", 1, 9, "expected a number or series, got 'and'"),
    ("1h > 1", 1, 1, "expected a number or series, got '1h'"),
    ("binance:ETHUSDT > 1", 1, 1, "expected a number or series, got 'binance:ETHUSDT'"),
    # argument counts, ranges and order
    ("sma(20, 20, 1h) > 1", 1, 9, "sma takes 1 number (period), got 2"),
    ("sma(1h) > 1", 1, 5, "sma takes 1 number (period), got 0"),
    ("sma() > 1", 1, 5, "sma takes 1 number (period), got 0"),
    ("macd(12, 26, 15m).hist > 0", 1, 14, "macd takes 3 numbers (fast, slow, signal), got 2"),
    ("obv(14, 1h) > 0", 1, 5, "obv takes no numbers, got 1"),
    ("sma(0, 1h) > 1", 1, 5, "period must be a whole number from 1 to 1000, got 0"),
    ("sma(1001, 1h) > 1", 1, 5, "period must be a whole number from 1 to 1000, got 1001"),
    ("sma(2.5, 1h) > 1", 1, 5, "period must be a whole number from 1 to 1000, got 2.5"),
    ("sma(-5, 1h) > 1", 1, 5, "period must be a whole number from 1 to 1000, got -5"),
    ("stoch(14, 3, 0, 1h).k > 80", 1, 14, "d must be a whole number from 1 to 1000, got 0"),
    ("bb(20, 0, 1h).upper > 1", 1, 8, "bb k must be finite, greater than 0 and at most 10, got 0"),
    (
        "bb(20, 10.5, 1h).upper > 1",
        1,
        8,
        "bb k must be finite, greater than 0 and at most 10, got 10.5",
    ),
    (
        "bb(20, -1, 1h).upper > 1",
        1,
        8,
        "bb k must be finite, greater than 0 and at most 10, got -1",
    ),
    ("macd(26, 12, 9, 1h).line > 0", 1, 6, "macd fast (26) must be less than slow (12)"),
    ("macd(12, 12, 9, 1h).line > 0", 1, 6, "macd fast (12) must be less than slow (12)"),
    (
        "sma(1h, 20) > 1",
        1,
        9,
        "numbers must come first in sma(...): numbers, then a timeframe, then a symbol",
    ),
    ("close(ETHUSDT, 1h) > 1", 1, 16, "the timeframe must come before the symbol in close(...)"),
    ("close(1h, 4h) > 1", 1, 11, "close takes one timeframe, got a second: '4h'"),
    ("close(1h, ETHUSDT, BTCUSDT) > 1", 1, 20, "close takes one symbol, got a second: 'BTCUSDT'"),
    ("vwap(1h) > 1", 1, 6, "vwap takes no timeframe"),
    ("vwap(5) > 1", 1, 6, "vwap takes no numbers, got 1"),
    ("price() > 1", 1, 6, "price takes no parentheses"),
    (
        "sma(close, 20) > 1",
        1,
        5,
        (
            "expected a number, timeframe or symbol, got 'close'; arguments are literals, "
            "not other series"
        ),
    ),
    ("sma(20,) > 1", 1, 8, "expected a number, timeframe or symbol, got ')'"),
    ("sma(20 1h) > 1", 1, 8, "expected ',' or ')', got '1h'"),
    ("sma > 1", 1, 5, "expected '(' after 'sma', got '>'"),
    ("sma(20, 1h", 1, 11, "unexpected end of text, expected ',' or ')'"),
    # outputs
    ("macd(12, 26, 9, 1h).foo > 0", 1, 21, "macd has outputs line, signal, hist; got 'foo'"),
    ("macd(12, 26, 9, 1h) > 0", 1, 1, "macd needs an output: .line, .signal or .hist"),
    ("price < bb(20, 2)", 1, 9, "bb needs an output: .upper, .middle, .lower, .pct_b or .width"),
    ("stoch(14, 3, 3) > 80", 1, 1, "stoch needs an output: .k or .d"),
    ("sma(20, 1h).line > 1", 1, 12, "sma has no outputs; remove '.line'"),
    ("price.line > 1", 1, 6, "price has no outputs"),
    ("macd(12, 26, 9, 1h). > 0", 1, 22, "expected an output name after 'macd(...).', got '>'"),
    # channels
    ("close(1h) enters sma(20, 1h)", 1, 18, f"sma is not a channel; {CHANNEL_HINT}"),
    ("close(1h) enters price", 1, 18, f"price is not a channel; {CHANNEL_HINT}"),
    (
        "close(1h) exits bb(20, 2, 1h).upper",
        1,
        30,
        "bb(...).upper is a single series, not a channel; use bb(...) without an output",
    ),
    (
        "close(1h) inside 5",
        1,
        18,
        "expected a channel: bb(...), donchian(...) or [lower, upper], got '5'",
    ),
    (
        "close(1h) inside [1, 2",
        1,
        23,
        "unexpected end of text, expected ']' to close the '[' at 1:18",
    ),
    (
        "close(1h) inside [1 2]",
        1,
        21,
        "expected ',' between the channel's lower and upper bounds, got '2'",
    ),
    ("close(1h) inside [1, price > 2]", 1, 28, "expected ']' to close the '[' at 1:18, got '>'"),
    # offsets
    ("close(1h)[1001] > 1", 1, 11, "offset must be a whole number from 0 to 1000, got 1001"),
    ("close(1h)[1.5] > 1", 1, 11, "offset must be a whole number from 0 to 1000, got 1.5"),
    ("close(1h)[-1] > 1", 1, 11, "offset must be a whole number from 0 to 1000, got -1"),
    ("close(1h)[x] > 1", 1, 11, "expected an offset, got 'x'"),
    ("close(1h)[1 > 1", 1, 13, "expected ']' after the offset, got '>'"),
    # moves
    (
        "close(1m) moves_up 0% within 15 bars",
        1,
        20,
        "moves_up percent must be greater than 0, got 0",
    ),
    (
        "close(1m) moves_down -5% within 15 bars",
        1,
        22,
        "moves_down percent must be greater than 0, got -5",
    ),
    (
        "close(1m) moves_up 5% within 0 bars",
        1,
        30,
        "bars must be a whole number from 1 to 1000, got 0",
    ),
    (
        "close(1m) moves_up 5% within 1.5 bars",
        1,
        30,
        "bars must be a whole number from 1 to 1000, got 1.5",
    ),
    (
        "close(1m) moves_up 5% within 1001 bars",
        1,
        30,
        "bars must be a whole number from 1 to 1000, got 1001",
    ),
    (
        "close(1m) moves_up 5 within 15 bars",
        1,
        22,
        "expected '%' after the percentage, got 'within'",
    ),
    ("close(1m) moves_up 5% in 15 bars", 1, 23, "expected 'within', got 'in'"),
    ("close(1m) moves_up 5% within 15", 1, 32, "unexpected end of text, expected 'bars'"),
    ("close(1m) moves_up x% within 15 bars", 1, 20, "expected a percentage, got 'x'"),
    # structure
    ("", 1, 1, "empty condition"),
    ("  \n\t ", 1, 1, "empty condition"),
    ("rsi(14, 1h)", 1, 12, "unexpected end of text, expected a comparison after 'rsi(14, 1h)'"),
    ("rsi(14, 1h) and price > 1", 1, 13, "expected a comparison after 'rsi(14, 1h)', got 'and'"),
    (
        "price > 1 and close(1h)",
        1,
        24,
        "unexpected end of text, expected a comparison after 'close(1h)'",
    ),
    ("price > 1 or 2", 1, 15, "unexpected end of text, expected a comparison after '2'"),
    ("not price", 1, 10, "unexpected end of text, expected a comparison after 'price'"),
    ("(price) foo", 1, 9, "expected a comparison after '(price)', got 'foo'"),
    ("price > 5 foo", 1, 11, "unexpected 'foo' after the end of the condition"),
    ("price > 5 6", 1, 11, "unexpected '6' after the end of the condition"),
    ("price > 5)", 1, 10, "unmatched ')'"),
    ("(price > 5", 1, 11, "unexpected end of text, expected ')' to close the '(' at 1:1"),
    ("price >", 1, 8, "unexpected end of text, expected a number or series"),
    ("1 < price < 2", 1, 11, f"comparisons cannot be chained: '<' {CHAINED}"),
    ("price > 1 crosses 2", 1, 11, f"comparisons cannot be chained: 'crosses' {CHAINED}"),
    ("(price > 1) > 2", 1, 1, NOT_A_CONDITION),
    ("price > (price > 1)", 1, 9, NOT_A_CONDITION),
    ("(price > 1) * 2 > 3", 1, 1, NOT_A_CONDITION),
    ("2 * (price > 1) > 3", 1, 5, NOT_A_CONDITION),
    ("-(price > 1) and price > 2", 1, 2, NOT_A_CONDITION),
    ("(price > 1) moves_up 5% within 2 bars", 1, 1, NOT_A_CONDITION),
    # multi-line positions
    (
        "rsi(14, 5m) > 70\n  and smaa(20, 1m) > 3",
        2,
        7,
        "unknown indicator 'smaa'; did you mean 'sma'?",
    ),
    (
        "close(1h)\n  crosses_above\n    sma(50, 3h)",
        3,
        13,
        f"unknown timeframe '3h'; {TIMEFRAME_LIST}",
    ),
    ("price >\n\n", 1, 8, "unexpected end of text, expected a number or series"),
    ("price >\t\tfoo", 1, 10, "unknown indicator 'foo'"),
    ("price > 1\r\nand foo > 2", 2, 5, "unknown indicator 'foo'"),
]


@pytest.mark.parametrize(("text", "line", "col", "reason"), ERRORS)
def test_errors_name_the_position_and_reason(text: str, line: int, col: int, reason: str) -> None:
    error = syntax_error(text)
    assert (error.line, error.col, error.reason_text) == (line, col, reason)
    assert str(error) == f"{line}:{col}: {reason}"
    assert error.reason == "INVALID_RULE"


# --------------------------------------------------------------------------- limits

NESTING = f"nesting deeper than {catalog.MAX_NESTING} levels (parentheses, channel brackets, "


def test_text_size_is_counted_in_utf8_bytes() -> None:
    limit = catalog.MAX_TEXT_BYTES
    fits = "price >" + " " * (limit - len("price >1")) + "1"
    assert len(fits) == limit and parse_condition(fits) == A
    error = syntax_error(fits + " ")
    assert (error.line, error.col) == (1, 1)
    assert error.reason_text == f"condition text is {limit + 1} bytes; at most {limit} are allowed"
    wide = "é" * (limit // 2 + 1)  # fewer characters than the limit, more bytes
    assert syntax_error(wide).reason_text.startswith(f"condition text is {limit + 2} bytes")


def test_parentheses_count_towards_nesting() -> None:
    depth = catalog.MAX_NESTING
    assert parse_condition("(" * depth + "price > 1" + ")" * depth) == A
    error = syntax_error("(" * (depth + 1) + "price > 1" + ")" * (depth + 1))
    assert (error.line, error.col) == (1, depth + 1)
    assert error.reason_text.startswith(NESTING)


def test_not_with_parentheses_counts_two_levels() -> None:
    half = catalog.MAX_NESTING // 2
    assert isinstance(parse_condition("not (" * half + "price > 1" + ")" * half), Not)
    error = syntax_error("not (" * (half + 1) + "price > 1" + ")" * (half + 1))
    assert (error.line, error.col) == (1, 5 * half + 1)  # the 17th 'not' opens level 33
    assert error.reason_text.startswith(NESTING)


def test_not_and_unary_minus_count_towards_nesting() -> None:
    depth = catalog.MAX_NESTING
    assert isinstance(parse_condition("not " * depth + "price > 1"), Not)
    error = syntax_error("not " * (depth + 1) + "price > 1")
    assert (error.line, error.col) == (1, 4 * depth + 1)
    assert parse_condition("price > " + "-" * depth + "1") is not None
    error = syntax_error("price > " + "-" * (depth + 1) + "1")
    assert (error.line, error.col) == (1, 8 + depth + 1)
    assert error.reason_text.startswith(NESTING)


def test_channel_brackets_count_towards_nesting() -> None:
    depth = catalog.MAX_NESTING
    inner = depth - 1  # the bracket itself is one level
    ok = "price inside [" + "(" * inner + "1" + ")" * inner + ", 2]"
    assert isinstance(parse_condition(ok), ChannelTest)
    error = syntax_error("price inside [" + "(" * depth + "1" + ")" * depth + ", 2]")
    assert (error.line, error.col) == (1, 14 + depth)
    assert error.reason_text.startswith(NESTING)


def test_argument_lists_and_offsets_do_not_count_towards_nesting() -> None:
    depth = catalog.MAX_NESTING
    text = "(" * depth + "macd(12, 26, 9, 1h).hist[1] > 0" + ")" * depth
    assert isinstance(parse_condition(text), Compare)


def test_long_operator_chains_are_bounded_by_tree_depth() -> None:
    operands = MAX_TREE_DEPTH - 1  # Compare + (operands - 1) BinOps + a leaf
    chain = " + ".join(["1"] * operands)
    assert isinstance(parse_condition("price > " + chain), Compare)
    error = syntax_error("price > " + "+".join(["1"] * (MAX_TREE_DEPTH + 100)))
    assert (error.line, error.col) == (1, 8 + 2 * MAX_TREE_DEPTH)
    assert f"more than {MAX_TREE_DEPTH} levels deep" in error.reason_text


def test_errors_can_be_reported_against_another_field() -> None:
    error = syntax_error("price >").with_field("rule.condition_text")
    assert error.violations[0].field == "rule.condition_text"
    assert (
        error.violations[0].description
        == "1:8: unexpected end of text, expected a number or series"
    )


# --------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (20.0, "20"),
        (0.0, "0"),
        (-0.0, "0"),
        (-5.0, "-5"),
        (0.1, "0.1"),
        (2.5e-3, "0.0025"),
        (1e-7, "1e-07"),
        (123456789012345.0, "123456789012345"),
        (1e16, "1e+16"),
        (12345678901234567890.0, "1.2345678901234567e+19"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
    ],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text
    assert parse_condition(f"price > {text}") == gt(PRICE, num(value))


def test_format_number_refuses_non_finite() -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        format_number(float("inf"))


X = Series("sma", (20.0,), "1h")
Y = close("1h", "binance:ETHUSDT")
Z = Series("macd", (12.0, 26.0, 9.0), "15m", output="hist")


@pytest.mark.parametrize(
    ("tree", "text"),
    [
        (gt(X, num(1)), "sma(20, 1h) > 1"),
        (gt(Y, num(1)), "close(1h, binance:ETHUSDT) > 1"),
        (gt(Z, num(0)), "macd(12, 26, 9, 15m).hist > 0"),
        (
            gt(Series("macd", (12.0, 26.0, 9.0), "1h", "us:SPY", "line", 3), num(0)),
            "macd(12, 26, 9, 1h, us:SPY).line[3] > 0",
        ),
        (gt(Series("obv"), Series("vwap")), "obv() > vwap()"),
        (gt(PRICE, Neg(num(5))), "price > -(5)"),
        (gt(PRICE, num(-5)), "price > -5"),
        (gt(PRICE, Neg(num(-5))), "price > --5"),
        (gt(PRICE, Neg(Neg(num(5)))), "price > --(5)"),
        (gt(Neg(BinOp("+", X, Y)), num(1)), "-(sma(20, 1h) + close(1h, binance:ETHUSDT)) > 1"),
        (
            gt(BinOp("-", X, BinOp("-", Y, Z)), num(1)),
            "sma(20, 1h) - (close(1h, binance:ETHUSDT) - macd(12, 26, 9, 15m).hist) > 1",
        ),
        (
            gt(BinOp("-", BinOp("-", X, Y), Z), num(1)),
            "sma(20, 1h) - close(1h, binance:ETHUSDT) - macd(12, 26, 9, 15m).hist > 1",
        ),
        (gt(BinOp("*", BinOp("+", PRICE, num(1)), num(2)), num(3)), "(price + 1) * 2 > 3"),
        (gt(BinOp("+", PRICE, BinOp("*", num(1), num(2))), num(3)), "price + 1 * 2 > 3"),
        (gt(BinOp("/", PRICE, BinOp("*", num(1), num(2))), num(3)), "price / (1 * 2) > 3"),
        (gt(BinOp("*", Neg(PRICE), num(-2)), num(3)), "-price * -2 > 3"),
        (And((Or((A, B)), C)), "(price > 1 or price > 2) and price > 3"),
        (Or((And((A, B)), C)), "price > 1 and price > 2 or price > 3"),
        (And((And((A, B)), C)), "(price > 1 and price > 2) and price > 3"),
        (Or((A, Or((B, C)))), "price > 1 or (price > 2 or price > 3)"),
        (Not(And((A, B))), "not (price > 1 and price > 2)"),
        (Not(Not(A)), "not not price > 1"),
        (And((Not(A), B)), "not price > 1 and price > 2"),
        (
            ChannelTest("inside", PRICE, RangeChannel(Neg(X), BinOp("*", X, num(2)))),
            "price inside [-sma(20, 1h), sma(20, 1h) * 2]",
        ),
        (
            ChannelTest("enters", PRICE, SeriesChannel("donchian", (20.0,))),
            "price enters donchian(20)",
        ),
        (Moves("down", X, 0.5, 1000), "sma(20, 1h) moves_down 0.5% within 1000 bars"),
    ],
)
def test_format_is_canonical_and_parses_back(tree: Condition, text: str) -> None:
    assert format_condition(tree) == text
    assert parse_condition(text) == tree


@pytest.mark.parametrize(
    ("messy", "canonical"),
    [
        ("sma(20,1h)>1", "sma(20, 1h) > 1"),
        ("macd( 12 ,26,9 , 15m ).hist>0", "macd(12, 26, 9, 15m).hist > 0"),
        ("close(1h,binance:ETHUSDT)>1", "close(1h, binance:ETHUSDT) > 1"),
        ("((price>1))and(price<2.50)", "price > 1 and price < 2.5"),
        ("price > 1e3 * .5", "price > 1000 * 0.5"),
        ("(price + 1) > ((2))", "price + 1 > 2"),
    ],
)
def test_format_normalises_text(messy: str, canonical: str) -> None:
    assert format_condition(parse_condition(messy)) == canonical
