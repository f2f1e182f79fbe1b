"""Rule warnings for ValidateRule: each reason, its thresholds, field paths, and rules with none."""

from __future__ import annotations

import itertools
import random

import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings

from alerts.api.conditions import condition_to_proto
from alerts.rules.ast import Compare, CompareOp, Condition, Number, Or, Series
from alerts.rules.parser import parse_condition
from alerts.rules.warnings import RuleWarning, rule_warnings
from tests.rules.strategies import condition_nodes


def warn(text: str, **kw: object) -> list[RuleWarning]:
    """Warnings for a rule; by default on a server loading 500 bars of history (Binance)."""
    kw.setdefault("history_bars", 500)
    return rule_warnings(parse_condition(text), **kw)  # type: ignore[arg-type]


def reasons(text: str, **kw: object) -> list[str]:
    return [w.reason for w in warn(text, **kw)]


def only(text: str, reason: str, **kw: object) -> RuleWarning:
    found = warn(text, **kw)
    assert [w.reason for w in found] == [reason], found
    return found[0]


# --------------------------------------------------------------------------- no warnings

@pytest.mark.parametrize("text", [
    "price > 65000",
    "price crosses_above 65000",
    "change_pct(3, 5m) >= 3",
    "rsi(14, 5m) > 70 and volume_z(20, 1m) > 3",
    "close(1h) crosses_above sma(50, 1h)",
    "macd(12, 26, 9, 15m).hist crosses_below 0",
    "close(4h) exits bb(20, 2, 4h)",
    "close(1m) moves_up 5% within 15 bars",
    "close(1h, ETHUSDT) / close(1h, BTCUSDT) crosses_above 0.06",
    "rsi(14, 1h) >= 100 or rsi(14, 1h) <= 0",        # reachable extremes
    "rsi(14, 1h) > 30 and rsi(14, 1h) < 70",          # a band, not a contradiction
    "rsi(14, 1h) > 70 or rsi(14, 1h) < 70",           # misses exactly 70
    "volume(1m) == 0",                                # counts may be compared exactly
    "trades(1h) == 0 and obv(1h) == obv(1h)[1]",
    "close(1h) > close(1h)[1]",                       # an offset is another value
    "close(1h) > close(1h, ETHUSDT)",                 # another symbol is another value
    "price inside [60000, 70000]",
    "change_pct(1, 1h) > -100",
    "sma(24, 1h) > sma(24, 1h) * 1.01",
])
def test_ordinary_rules_get_no_warning(text: str) -> None:
    assert warn(text) == []


@pytest.mark.parametrize("text", [
    "price > 65000", "rsi(14, 1h) > 70", "close(1m) crosses_above ema(200, 1m)",
    "close(4h) exits bb(6, 2, 4h)", "change_pct(23, 1h) > 5",
])
def test_short_warm_ups_get_no_warning_without_history(text: str) -> None:
    assert warn(text, history_bars=0) == []


def test_no_warning_in_bar_close_mode_for_an_ordinary_rule() -> None:
    assert warn("close(1h) > sma(20, 1h)", trigger_mode="ONCE_PER_BAR_CLOSE") == []


# --------------------------------------------------------------------------- CONSTANT_CONDITION

@pytest.mark.parametrize(("text", "kind", "says"), [
    ("1 > 0", "compare", "always true"),
    ("1 > 2", "compare", "always false"),
    ("-(3) * 2 == -6", "compare", "always true"),
    ("price > price", "compare", "never true"),
    ("price >= price", "compare", "true whenever it is defined"),
    ("sma(20, 1h) + 1 == sma(20, 1h) + 1", "compare", "true whenever it is defined"),
    ("close(1h) crosses_above close(1h)", "cross", "never true"),
    ("1 crosses 2", "cross", "always false"),
    ("rsi(14, 1h) > 100", "compare", "never true"),
    ("100 < rsi(14, 1h)", "compare", "never true"),
    ("stoch(14, 3, 3, 1h).k < 0", "compare", "never true"),
    ("rsi(14, 1h) <= 100", "compare", "true whenever it is defined"),
    ("close(1h) > 0", "compare", "true whenever it is defined"),
    ("volume(1h) >= 0", "compare", "true whenever it is defined"),
    ("price / 0 > 1", "compare", "never defined"),
    ("close(1h) crosses_above sma(20, 1h) / (2 - 2)", "cross", "never defined"),
    ("price inside [70000, 60000]", "channel_test", "never true"),
    ("price enters [70000, 60000]", "channel_test", "never true"),
    ("price outside [70000, 60000]", "channel_test", "true whenever it is defined"),
    ("5 inside [1, 10]", "channel_test", "always true"),
    ("5 moves_up 1% within 3 bars", "moves", "never true"),
])
def test_a_test_independent_of_the_market_is_constant(text: str, kind: str, says: str) -> None:
    w = only(text, "CONSTANT_CONDITION", timeframe="1h")
    assert w.field == f"rule.condition.{kind}"
    assert says in w.message
    assert "never fires" not in w.message      # the test is the whole condition


def test_a_constant_operand_says_what_it_does_to_the_whole_rule() -> None:
    w = only("price > 65000 and 1 > 2", "CONSTANT_CONDITION")
    assert w.field == "rule.condition.all_of.operands[1].compare"
    assert "`1 > 2` is always false" in w.message
    assert "the rule never fires" in w.message
    # an always-true operand of `and` changes nothing for the rest: no claim about the rule
    w = only("price > 65000 and 2 > 1", "CONSTANT_CONDITION")
    assert "never fires" not in w.message and "always true" in w.message
    # a never-true branch of `or` leaves the rule able to fire
    w = only("price > 65000 or price > price", "CONSTANT_CONDITION")
    assert "never fires" not in w.message


def test_contradictory_comparisons_in_and_are_reported_on_the_and() -> None:
    w = only("rsi(14, 1h) > 70 and rsi(14) < 30", "CONSTANT_CONDITION", timeframe="1h")
    assert w.field == "rule.condition.all_of"
    assert "never true" in w.message and "rsi(14, 1h) cannot satisfy" in w.message
    # with the series' own range: close > 0, so close < 0 contradicts nothing new, but
    # close(1h) <= 5 and close(1h) >= 6 is empty
    assert reasons("close(1h) <= 5 and close(1h) >= 6") == ["CONSTANT_CONDITION"]
    assert reasons("close(1h) <= 5 and close(1h) >= 5") == []        # exactly 5 is possible
    # nested: the inner `and` is reported, and the `or` around it can still fire
    w = only("price > 1 or (macd(12, 26, 9, 1h).hist > 1 and macd(12, 26, 9, 1h).hist < -1)",
             "CONSTANT_CONDITION")
    assert w.field == "rule.condition.any_of.operands[1].all_of"
    assert "never fires" not in w.message


def test_comparisons_in_or_that_cover_every_value_are_reported_on_the_or() -> None:
    w = only("macd(12, 26, 9, 1h).line > 0 or macd(12, 26, 9, 1h).line <= 0",
             "CONSTANT_CONDITION")
    assert w.field == "rule.condition.any_of"
    assert "true whenever it is defined" in w.message
    # rsi's own range [0, 100] is covered by these two
    assert reasons("rsi(14, 1h) >= 50 or rsi(14, 1h) <= 60") == ["CONSTANT_CONDITION"]
    assert reasons("rsi(14, 1h) > 50 or rsi(14, 1h) < 50") == []


def _holds(op: CompareOp, x: float, c: float) -> bool:
    return {">": x > c, ">=": x >= c, "<": x < c, "<=": x <= c, "==": x == c}[op]


@pytest.mark.parametrize("seed", range(40))
def test_and_or_claims_agree_with_brute_force(seed: int) -> None:
    """Random comparisons of one unbounded series with constants, checked on sample values."""
    rng = random.Random(seed)
    ops: list[CompareOp] = [">", ">=", "<", "<=", "=="]
    seen: set[bool] = set()
    for _ in range(25):
        tests = [(rng.choice(ops), float(rng.randint(-3, 3))) for _ in range(rng.randint(2, 3))]
        samples = [c + d for c in range(-5, 6) for d in (-0.5, 0.0, 0.5)]
        for combine in ("and", "or"):
            text = f" {combine} ".join(f"macd(12, 26, 9, 1h).line {op} {c:g}" for op, c in tests)
            truths = [[_holds(op, x, c) for op, c in tests] for x in samples]
            found = [w for w in warn(text) if w.reason != "EXACT_EQUALITY"]
            if combine == "and":
                expected = not any(all(t) for t in truths)
            else:
                expected = all(any(t) for t in truths)
            assert [w.reason for w in found] == ["CONSTANT_CONDITION"] * expected, (text, found)
            seen.add(expected)
    assert seen == {True, False}        # both kinds of answer were checked


def test_price_is_the_bar_close_in_bar_close_mode() -> None:
    w = only("price > close(1h)", "CONSTANT_CONDITION", trigger_mode="ONCE_PER_BAR_CLOSE")
    assert "never true" in w.message and "price is that bar's close" in w.message
    assert warn("price > close(1h)") == []          # intrabar they differ


# --------------------------------------------------------------------------- EXACT_EQUALITY

@pytest.mark.parametrize("text", [
    "price == 65000",
    "sma(20, 1h) == close(1h)",
    "rsi(14, 1h) == 50",
    "volume(1h) / close(1h) == 2",
])
def test_exact_equality_on_prices_and_indicators(text: str) -> None:
    w = only(text, "EXACT_EQUALITY")
    assert w.field == "rule.condition.compare"
    assert "crosses" in w.message


def test_exact_equality_only_for_equality() -> None:
    assert warn("price >= 65000") == []
    assert reasons("not price == 65000 and price > 1") == ["EXACT_EQUALITY"]


# --------------------------------------------------------------------------- MOVES_WINDOW_TIMEFRAME

def test_moves_window_counts_bars_of_the_rule_timeframe() -> None:
    w = only("close(1h) moves_up 5% within 3 bars and volume_z(20, 1m) > 3",
             "MOVES_WINDOW_TIMEFRAME")
    assert w.field == "rule.condition.all_of.operands[0].moves.bars"
    assert "1m" in w.message and "~3 minutes" in w.message
    assert "shortest its condition names" in w.message
    assert "`within 180 bars`" in w.message
    # the rule's timeframe set explicitly to a coarser one
    w = only("close(1m) moves_down 2% within 10 bars", "MOVES_WINDOW_TIMEFRAME", timeframe="1h")
    assert "~10 hours" in w.message and "shortest" not in w.message


def test_moves_window_in_its_own_timeframe_is_fine() -> None:
    assert warn("close(1h) moves_up 5% within 3 bars") == []
    assert warn("close() moves_up 5% within 3 bars and rsi(14, 1h) > 50", timeframe="1h") == []
    assert warn("price moves_up 1% within 5 bars", timeframe="1m") == []


# --------------------------------------------------------------------------- LONG_WARM_UP

def test_long_warm_up_without_history() -> None:
    w = only("close(1d) > sma(200, 1d)", "LONG_WARM_UP", history_bars=0)
    assert w.field == "rule.condition.compare.right.series"
    assert "sma(200, 1d) is undefined until 200 1d bars" in w.message
    assert "~200 days" in w.message


@pytest.mark.parametrize(("text", "bars"), [
    ("sma(25, 1h) > 1", 25),          # look-back n - 1
    ("ema(25, 1h) > 1", 25),
    ("rsi(24, 1h) > 1", 25),          # look-back n
    ("atr(24, 1h) > 1", 25),
    ("highest(24, 1h) > 1", 25),      # the n bars before the current one
    ("volume_z(24, 1h) > 1", 25),
    ("change_pct(24, 1h) > 1", 25),
    ("macd(12, 20, 6, 1h).hist > 1", 25),   # slow - 1 + signal - 1
    ("stoch(20, 4, 3, 1h).d > 1", 25),      # k - 1 + smooth - 1 + d - 1
    ("close(1h)[24] > 1", 25),
    ("sma(20, 1h)[5] > 1", 25),
])
def test_bars_needed_follow_the_look_back(text: str, bars: int) -> None:
    w = only(text, "LONG_WARM_UP", history_bars=0)
    assert f"until {bars} 1h bars" in w.message
    # exactly `bars` hours of live data: not longer than a threshold of that much
    assert warn(text, history_bars=0, long_warm_up_ms=bars * 3_600_000) == []
    assert reasons(text, history_bars=0,
                   long_warm_up_ms=bars * 3_600_000 - 1) == ["LONG_WARM_UP"]


@pytest.mark.parametrize("text", [
    "sma(24, 1h) > 1", "rsi(23, 1h) > 1", "macd(12, 20, 5, 1h).hist > 1", "close(1h)[23] > 1",
    "sma(1000, 1m) > 1", "rsi(14, 5m) > 1", "ema(200, 1m) > price",
])
def test_warm_up_of_a_day_or_less_is_not_long(text: str) -> None:
    assert warn(text, history_bars=0) == []


def test_history_shortens_the_wait_except_for_1s() -> None:
    assert warn("sma(200, 1d) > 1", history_bars=500) == []
    w = only("sma(1000, 4h) > 1", "LONG_WARM_UP", history_bars=500)
    assert "about 500 more (~83 days) must come live" in w.message
    assert warn("sma(1000, 4h) > 1", history_bars=999) == []
    w = only("sma(1000, 1s) > 1 and sma(500, 1d) > 1", "LONG_WARM_UP", history_bars=500,
             long_warm_up_ms=60_000)
    assert "sma(1000, 1s)" in w.message and "never loaded from history" in w.message


def test_long_warm_up_once_per_series_with_its_resolved_timeframe() -> None:
    found = warn("sma(200) crosses_above close(1d) or sma(200, 1d) > ema(100, 1d)",
                 history_bars=0)
    assert [(w.reason, w.field) for w in found] == [
        ("LONG_WARM_UP", "rule.condition.any_of.operands[0].cross.left.series"),
        ("LONG_WARM_UP", "rule.condition.any_of.operands[1].compare.right.series"),
    ]
    assert "sma(200, 1d)" in found[0].message and "ema(100, 1d)" in found[1].message


def test_long_warm_up_of_channels_and_symbols() -> None:
    w = only("close(1d) enters bb(100, 2, 1d, ETHUSDT)", "LONG_WARM_UP", history_bars=0)
    assert w.field == "rule.condition.channel_test.channel.series_channel"
    assert "for ETHUSDT" in w.message


def test_long_moves_window() -> None:
    w = only("close(1d) moves_up 5% within 30 bars", "LONG_WARM_UP", history_bars=500)
    assert w.field == "rule.condition.moves.bars"
    assert "~30 days" in w.message and "history" in w.message
    assert "history" not in warn("close(1d) moves_up 5% within 30 bars", history_bars=0)[0].message
    assert warn("close(1h) moves_up 5% within 24 bars", history_bars=0) == []


# --------------------------------------------------------------------------- REPEATED_FIRING

def test_every_time_on_a_level_condition_fires_at_every_trade() -> None:
    w = only("rsi(14, 5m) > 70", "REPEATED_FIRING", trigger_mode="EVERY_TIME")
    assert w.field == "rule.trigger_mode" and "1 s" in w.message
    w = only("rsi(14, 5m) > 70", "REPEATED_FIRING", trigger_mode="EVERY_TIME", cooldown_ms=0)
    assert w.field == "rule.cooldown" and "no limit" in w.message
    w = only("price > 1 and not price crosses 5", "REPEATED_FIRING", trigger_mode="EVERY_TIME",
             rule_field="rules[2]")
    assert w.field == "rules[2].trigger_mode"


@pytest.mark.parametrize(("text", "kw"), [
    ("rsi(14, 5m) > 70", {"trigger_mode": "EVERY_TIME", "cooldown_ms": 60_000}),
    ("rsi(14, 5m) crosses_above 70", {"trigger_mode": "EVERY_TIME"}),
    ("close(4h) exits bb(20, 2, 4h) or price crosses 5", {"trigger_mode": "EVERY_TIME"}),
    ("price crosses 5 and rsi(14, 1m) > 50", {"trigger_mode": "EVERY_TIME", "cooldown_ms": 0}),
    ("rsi(14, 5m) > 70", {"trigger_mode": "ON_TRUE"}),
    ("rsi(14, 5m) > 70", {"trigger_mode": "ONCE_PER_BAR"}),
])
def test_no_repeated_firing_warning(text: str, kw: dict[str, object]) -> None:
    assert warn(text, **kw) == []


# --------------------------------------------------------------------------- fields

def test_text_form_fields_and_positions() -> None:
    found = warn("price > 65000 and\n  1 > 2 and sma(300, 1d) > 1", condition_text=True,
                 history_bars=0)
    assert [(w.reason, w.field) for w in found] == [
        ("CONSTANT_CONDITION", "rule.condition_text"),
        ("LONG_WARM_UP", "rule.condition_text"),
    ]
    assert found[0].message.startswith("2:3: `1 > 2`")
    assert found[1].message.startswith("2:13: sma(300, 1d)")
    # a tree without positions (from the structured form) gives no line:col
    tree = Or((Compare(">", Number(1.0), Number(2.0)),
               Compare(">", Series("price"), Number(1.0))))
    (w,) = rule_warnings(tree, condition_text=True, history_bars=0)
    assert w.message.startswith("`1 > 2`")


def _resolve(msg: Message, path: str) -> None:
    """Follow ``a.b[1].c`` from a proto message; fail unless every step is a set field."""
    node: object = msg
    for step in path.split("."):
        name, _, index = step.partition("[")
        assert isinstance(node, Message), (path, step)
        fields = {fd.name: value for fd, value in node.ListFields()}
        assert name in fields, (path, step, sorted(fields))
        node = fields[name][int(index[:-1])] if index else fields[name]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition_nodes())
def test_structured_paths_name_real_fields(tree: Condition) -> None:
    for mode, tf in itertools.product(("ON_TRUE", "EVERY_TIME", "ONCE_PER_BAR_CLOSE"),
                                      (None, "1h")):
        found = rule_warnings(tree, trigger_mode=mode, timeframe=tf, history_bars=0,
                              long_warm_up_ms=0)
        proto = condition_to_proto(tree)
        for w in found:
            assert w.reason in {"CONSTANT_CONDITION", "EXACT_EQUALITY", "MOVES_WINDOW_TIMEFRAME",
                                "LONG_WARM_UP", "REPEATED_FIRING"}
            assert w.message
            if w.reason == "REPEATED_FIRING":
                assert w.field in ("rule.trigger_mode", "rule.cooldown")
                continue
            assert w.field.startswith("rule.condition.")
            _resolve(proto, w.field.removeprefix("rule.condition."))
