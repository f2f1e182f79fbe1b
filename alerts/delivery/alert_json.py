"""The stable JSON form of a stored alert, shared by webhooks and the WebSocket server.

``alert_to_dict`` gives plain JSON types; ``alert_to_json`` the compact UTF-8
bytes. The form, one object per alert (keys always present):

    alert_id         integer, increasing in commit order (receivers deduplicate on it)
    owner, rule_id, symbol, kind, message, condition_text    strings
    rule_display_name  string: the rule's display name when it fired ("" if none)
    rule_labels      object of strings: the rule's labels when it fired
    timeframe        string for bar-close fires, else null
    bar_open_time    RFC 3339 UTC string for bar-close fires, else null
    values           list of {"label": string, "value": number}, in condition order;
                     non-finite values are the strings "NaN", "Infinity", "-Infinity"
                     (as in protobuf's JSON mapping)
    price            number or null
    event_time, commit_time                  RFC 3339 UTC strings, millisecond precision
    receive_time, decide_time                the same, or null when unknown (0)
    trade_id         integer (0: none)
    rank             integer: the fire's index among the rule's fires at that event time
                     (0 for SYSTEM alerts)
    details          object of strings

Times are ``YYYY-MM-DDTHH:MM:SS.mmmZ``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from alerts.storage.records import AlertRecord


def rfc3339_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC)."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _optional_time(epoch_ms: int | None) -> str | None:
    return rfc3339_ms(epoch_ms) if epoch_ms else None


def alert_to_dict(alert: AlertRecord) -> dict[str, Any]:
    """The alert as a dict of JSON types (the form of this module's docstring)."""
    return {
        "alert_id": alert.alert_id,
        "owner": alert.owner,
        "rule_id": alert.rule_id,
        "symbol": alert.symbol,
        "kind": alert.kind,
        "timeframe": alert.timeframe,
        "bar_open_time": None if alert.bar_open_ms is None else rfc3339_ms(alert.bar_open_ms),
        "values": [{"label": label, "value": _number(value)} for label, value in alert.values],
        "message": alert.message,
        "condition_text": alert.condition_text,
        "rule_display_name": alert.rule_display_name,
        "rule_labels": dict(alert.rule_labels),
        "price": None if alert.price is None else _number(alert.price),
        "event_time": rfc3339_ms(alert.event_time_ms),
        "receive_time": _optional_time(alert.receive_time_ms),
        "decide_time": _optional_time(alert.decide_time_ms),
        "commit_time": rfc3339_ms(alert.commit_time_ms),
        "trade_id": alert.trade_id,
        "rank": alert.fire_rank,
        "details": dict(alert.details),
    }


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON (no NaN: callers map non-finite numbers first)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def alert_to_json(alert: AlertRecord) -> bytes:
    """The alert as compact UTF-8 JSON bytes."""
    return dumps(alert_to_dict(alert))
