"""Channel templates: ``{{message}}`` and ``{{id}}`` beside the rule placeholders."""

from __future__ import annotations

import math

from alerts.engine.messages import render, render_alert, unknown_placeholders
from alerts.storage.records import AlertRecord

ALERT = AlertRecord(
    alert_id=42, commit_time_ms=0, owner="o", rule_id="btc-65k", symbol="binance:BTCUSDT",
    timeframe="5m", values=(("close(5m)", 65010.5), ("rsi(14, 5m)", math.nan)),
    message="BTC above 65k", condition_text="close(5m) > 65000",
    event_time_ms=1_700_000_000_123, price=65010.5)


def test_a_channel_template_sees_the_alert_and_its_message() -> None:
    text = render_alert("#{{id}} {{ symbol }} {{price}} [{{values}}] {{timeframe}} "
                        "{{rule}} {{time}}: {{message}} ({{condition}}, {{value}})", ALERT)
    assert text == ("#42 binance:BTCUSDT 65010.5 [close(5m)=65010.5, rsi(14, 5m)=n/a] 5m "
                    "btc-65k 2023-11-14T22:13:20.123+00:00: BTC above 65k "
                    "(close(5m) > 65000, 65010.5)")


def test_an_empty_channel_template_is_the_message() -> None:
    assert render_alert("", ALERT) == "BTC above 65k"


def test_a_rule_template_keeps_message_and_id_as_written() -> None:
    out = render("{{message}} {{id}} {{symbol}}", rule="r", symbol="S", condition="c",
                 price=None, values=(), timeframe=None, time_ms=0)
    assert out == "{{message}} {{id}} S"


def test_unknown_placeholders_are_listed_once_in_order() -> None:
    assert unknown_placeholders("{{prise}} {{message}} {{id}} {{x}} {{prise}}") == ["prise", "x"]
    assert unknown_placeholders("{ symbol } {{symbol}}") == []
