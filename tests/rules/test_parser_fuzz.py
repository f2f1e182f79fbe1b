"""Property tests of the condition parser: bad text fails cleanly and fast; trees round-trip."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.errors import RuleSyntaxError
from alerts.rules import catalog
from alerts.rules.ast import (
    NO_POS,
    And,
    BinOp,
    ChannelTest,
    Compare,
    Condition,
    Cross,
    Moves,
    Neg,
    Not,
    Or,
    RangeChannel,
)
from alerts.rules.format import format_condition
from alerts.rules.parser import KEYWORDS, parse_condition
from tests.rules.strategies import condition_nodes

#: Words, numbers, timeframes, symbols and punctuation of the language, plus near misses.
LANGUAGE_TOKENS: tuple[str, ...] = (
    *sorted(KEYWORDS),
    *sorted(catalog.SERIES),
    *catalog.TIMEFRAMES,
    *("line", "signal", "hist", "upper", "middle", "lower", "pct_b", "width", "k", "d"),
    *("0", "1", "2", "14", "20", "26", "1000", "1001", "12.5", ".5", "1e3", "2.5e-3", "1e999"),
    *("ETHUSDT", "binance:ETHUSDT", "binance-usdm:BTCUSDT", "us:BRK.B"),
    *("(", ")", "[", "]", ",", ".", "%", "+", "-", "*", "/", ">", ">=", "<", "<=", "=="),
    *("3m", "1w", "smaa", "AND", "inf", "=", "!=", ":", "$", "é", "\x00", "1e", "12."),
)
SEPARATORS = st.sampled_from(("", " ", " ", "  ", "\n", "\t", "\r\n"))
SMALL_TREES = condition_nodes(max_depth=2)


@st.composite
def token_soup(draw: st.DrawFn) -> str:
    tokens = draw(st.lists(st.sampled_from(LANGUAGE_TOKENS), max_size=40))
    parts: list[str] = []
    for token in tokens:
        parts.extend((token, draw(SEPARATORS)))
    return "".join(parts)


@st.composite
def mutated_conditions(draw: st.DrawFn) -> str:
    """The text of a valid tree with a few characters deleted, inserted or duplicated."""
    text = format_condition(draw(SMALL_TREES))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        size = draw(st.integers(1, 8))
        action = draw(st.sampled_from(("delete", "insert", "duplicate")))
        if action == "delete":
            text = text[:at] + text[at + size :]
        elif action == "insert":
            text = text[:at] + draw(SEPARATORS) + draw(st.sampled_from(LANGUAGE_TOKENS)) + text[at:]
        else:
            text = text[:at] + text[at : at + size] + text[at:]
    return text


def parse_or_error(text: str) -> Condition | None:
    """Parse; a ``RuleSyntaxError`` must point inside the text (or just past its end)."""
    try:
        return parse_condition(text)
    except RuleSyntaxError as error:
        lines = text.split("\n")
        assert error.reason_text
        if error.line == 1 and error.col == 1:
            return None
        assert 1 <= error.line <= len(lines)
        assert 1 <= error.col <= len(lines[error.line - 1]) + 1
        return None


def children(node: object) -> Iterator[object]:
    if isinstance(node, And | Or):
        yield from node.operands
    elif isinstance(node, Not | Neg):
        yield node.operand
    elif isinstance(node, Compare | Cross | BinOp):
        yield from (node.left, node.right)
    elif isinstance(node, ChannelTest):
        yield from (node.operand, node.channel)
    elif isinstance(node, Moves):
        yield node.operand
    elif isinstance(node, RangeChannel):
        yield from (node.lower, node.upper)


def all_nodes(root: object) -> Iterator[object]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(children(node))


# --------------------------------------------------------------------------- (a) any text


@pytest.mark.timeout(60)
@settings(max_examples=1500, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_fails_only_with_rule_syntax_errors(text: str) -> None:
    parse_or_error(text)


@pytest.mark.timeout(60)
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_soup())
def test_token_soup_fails_cleanly_or_round_trips(text: str) -> None:
    tree = parse_or_error(text)
    if tree is None:
        return
    canonical = format_condition(tree)
    if len(canonical.encode()) <= catalog.MAX_TEXT_BYTES:
        assert parse_condition(canonical) == tree
    assert all(node.pos != NO_POS for node in all_nodes(tree))  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_conditions())
def test_mutated_conditions_fail_cleanly_or_round_trip(text: str) -> None:
    tree = parse_or_error(text)
    if tree is not None:
        assert parse_condition(format_condition(tree)) == tree


# --------------------------------------------------------------------------- (b) valid trees


@pytest.mark.timeout(60)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition_nodes())
def test_valid_trees_round_trip_through_text(tree: Condition) -> None:
    text = format_condition(tree)
    parsed = parse_condition(text)
    assert parsed == tree
    assert format_condition(parsed) == text
    assert all(node.pos != NO_POS for node in all_nodes(parsed))  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- (c) hostile input

HOSTILE: list[str] = [
    "(" * 10_000 + "price > 1" + ")" * 10_000,
    "(" * 2_000 + "price > 1" + ")" * 2_000,
    "(" * 4_000,
    "not " * 1_000 + "price > 1",
    "price > " + "-" * 4_000 + "1",
    "price > " + "-(" * 2_000 + "1",
    "price inside [" * 300 + "1",
    "price > " + "+".join(["1"] * 2_000),
    "price > " + "*".join(["price"] * 600),
    " and ".join(["price > 1"] * 400),
    "price > 1" + " and" * 1_000,
    "a-" * 2_040,
    "a" * 4_096,
    "1" * 4_096,
    "binance-" * 500 + ":",
    "sma(" + "1, " * 1_300 + "1h) > 1",
    "price > 1 " * 500,
    "x" * 5_000,
    "é" * 3_000,
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", HOSTILE, ids=lambda text: f"{text[:12]!r}..{len(text)}")
def test_hostile_input_is_a_quick_clean_error(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(RuleSyntaxError):
        parse_condition(text)
    assert time.perf_counter() - started < 2.0


def test_oversized_input_is_refused_before_lexing() -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse_condition("(" * 10_000 + "price > 1" + ")" * 10_000)
    assert (info.value.line, info.value.col) == (1, 1)
    assert info.value.reason_text.startswith("condition text is 20009 bytes")


def test_deep_nesting_within_the_size_limit_is_a_nesting_error() -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse_condition("(" * 2_000 + "price > 1" + ")" * 2_000)
    assert (info.value.line, info.value.col) == (1, catalog.MAX_NESTING + 1)
    assert info.value.reason_text.startswith("nesting deeper than")
