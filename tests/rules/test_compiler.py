"""Rule compilation: timeframe and symbol resolution, mode defaults, refusals with positions."""

from __future__ import annotations

import pytest

from alerts.errors import InvalidArgumentError, RuleSyntaxError
from alerts.rules.compiler import compile_rule, qualify, rule_timeframe
from alerts.rules.parser import parse_condition


def compile_text(text: str, **kw: object):
    kw.setdefault("symbol", "binance:BTCUSDT")
    return compile_rule(parse_condition(text), **kw)  # type: ignore[arg-type]


def test_rule_timeframe_is_the_shortest_named() -> None:
    tree = parse_condition("rsi(14, 1h) > 70 and close(5m) > sma(20, 4h)")
    assert rule_timeframe(tree, None) == "5m"
    assert rule_timeframe(tree, "1d") == "1d"
    assert rule_timeframe(parse_condition("price > 1"), None) is None


def test_series_without_timeframe_take_the_rules() -> None:
    compiled = compile_text("sma(20) < close(15m)")
    assert [(o.kind, o.timeframe) for o in compiled.operands] == [("sma", "15m"),
                                                                  ("close", "15m")]
    assert compiled.timeframe == "15m"


def test_a_series_with_no_timeframe_anywhere_is_refused_at_its_position() -> None:
    with pytest.raises(RuleSyntaxError) as err:
        compile_text("price > 1 and\n  sma(20) > 3")
    assert (err.value.line, err.value.col) == (2, 3)
    assert "needs a timeframe" in err.value.reason_text


def test_bar_modes_need_a_timeframe() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        compile_text("price > 1", mode="ONCE_PER_BAR")
    assert err.value.violations[0].field == "rule.timeframe"
    assert compile_text("price > 1", mode="ONCE_PER_BAR", timeframe="1m").timeframe == "1m"


def test_price_is_the_closed_bars_close_in_bar_close_mode() -> None:
    compiled = compile_text("price > 100", mode="ONCE_PER_BAR_CLOSE", timeframe="1h")
    assert [(o.kind, o.timeframe) for o in compiled.operands] == [("close", "1h")]
    tick = compile_text("price > 100")
    assert [(o.kind, o.timeframe) for o in tick.operands] == [("price", None)]


def test_operand_symbols_take_the_rule_symbols_venue() -> None:
    compiled = compile_text(
        "close(1h, ETHUSDT) / close(1h, binance:BTCUSDT) > close(1h, us:SPY)",
        symbol="binance-usdm:BTCUSDT",
    )
    assert [o.symbol for o in compiled.operands] == [
        "binance-usdm:ETHUSDT", "binance:BTCUSDT", "us:SPY"]
    assert compiled.symbol == "binance-usdm:BTCUSDT"
    assert qualify("BTCUSDT", "binance") == "binance:BTCUSDT"


def test_mode_defaults() -> None:
    assert compile_text("price > 1", mode="EVERY_TIME").cooldown_ms == 1000
    assert compile_text("price > 1", mode="EVERY_TIME", cooldown_ms=0).cooldown_ms == 0
    once = compile_text("price > 1", mode="ONCE")
    assert (once.mode, once.max_fires) == ("ON_TRUE", 1)


@pytest.mark.parametrize(
    ("text", "kw", "needle"),
    [
        ("close(1s) > 1", {}, "1s"),
        ("price > 1", {"timeframe": "2m"}, "timeframe"),
        ("price > 1", {"mode": "SOMETIMES"}, "mode"),
        ("price > 1", {"cooldown_ms": -1}, "cooldown"),
        ("price > 1", {"max_fires": -2}, "max_fires"),
        ("price > 1", {"symbol": ":"}, "symbol"),
    ],
)
def test_bad_settings_are_invalid_arguments(text: str, kw: dict, needle: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        compile_text(text, **kw)
    assert needle in str(err.value)


def test_moves_needs_a_timeframe_and_price_has_no_history() -> None:
    with pytest.raises(RuleSyntaxError, match="timeframe"):
        compile_text("price moves_up 5% within 3 bars")
    assert compile_text("price moves_up 5% within 3 bars", timeframe="1m").moves == (3,)
    for text in ("price[1] > 3", "vwap()[2] > 3"):
        with pytest.raises(RuleSyntaxError, match="no history"):
            compile_text(text, timeframe="1m")


def test_operand_labels_follow_the_text() -> None:
    compiled = compile_text("rsi(14, 5m) > 70 and price enters bb(20, 2, 1h)")
    assert compiled.labels == ("rsi(14, 5m)", "price", "bb(20, 2, 1h).lower",
                               "bb(20, 2, 1h).upper")
