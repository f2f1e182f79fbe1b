"""The alert JSON form: every documented key, times, non-finite values."""

from __future__ import annotations

import json

from alerts.delivery.alert_json import alert_to_dict, alert_to_json, rfc3339_ms
from tests.delivery.channels.conftest import make_alert


def test_documented_keys_and_values() -> None:
    data = alert_to_dict(make_alert(42))
    assert data == {
        "alert_id": 42, "owner": "local", "rule_id": "btc-65k", "symbol": "binance:BTCUSDT",
        "kind": "RULE", "timeframe": "5m", "bar_open_time": "2025-12-31T23:55:00.000Z",
        "values": [{"label": "close(5m)", "value": 65010.5},
                   {"label": "rsi(14, 5m)", "value": "NaN"}],
        "message": "BTCUSDT crossed 65000", "condition_text": "close(5m) crosses_above 65000",
        "rule_display_name": "BTC breakout", "rule_labels": {"desk": "crypto"},
        "price": 65010.5, "event_time": "2026-01-01T00:00:00.000Z",
        "receive_time": "2026-01-01T00:00:00.003Z", "decide_time": "2026-01-01T00:00:00.004Z",
        "commit_time": "2026-01-01T00:00:00.009Z", "trade_id": 981, "rank": 0,
        "details": {"venue": "binance"},
    }


def test_tick_level_alert_with_unknown_times_and_infinities() -> None:
    alert = make_alert(5, timeframe=None, bar_open_ms=None, receive_time_ms=0, decide_time_ms=0,
                       price=None, values=(("a", float("-inf")), ("b", float("inf"))),
                       message="é ✓")
    data = json.loads(alert_to_json(alert))
    assert data["timeframe"] is None and data["bar_open_time"] is None
    assert data["receive_time"] is None and data["decide_time"] is None
    assert data["price"] is None
    assert [v["value"] for v in data["values"]] == ["-Infinity", "Infinity"]
    assert data["message"] == "é ✓"
    assert "é ✓".encode() in alert_to_json(alert)  # UTF-8, not \\u escapes


def test_rfc3339_ms() -> None:
    assert rfc3339_ms(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339_ms(1_614_265_330_007) == "2021-02-25T15:02:10.007Z"
