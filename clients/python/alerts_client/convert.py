"""Plain Python values to ``alerts.v1`` messages: trigger modes, timeframes, durations, ticks.

Trigger modes and timeframes are accepted as the short names people write
(``"EVERY_TIME"``, ``"1m"``), the full enum names (``"TRIGGER_MODE_EVERY_TIME"``,
``"TIMEFRAME_1M"``) or the enum numbers; durations as seconds; times as
milliseconds since the epoch or aware ``datetime``s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from itertools import islice
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from alerts.v1 import market_pb2, rules_pb2, service_pb2

#: A tick as the client takes it: (symbol, event time in ms, price, quantity, trade id).
TickTuple = tuple[str, int, float, float, int]

TIMEFRAMES: Mapping[str, int] = {
    "1s": market_pb2.TIMEFRAME_1S, "1m": market_pb2.TIMEFRAME_1M,
    "5m": market_pb2.TIMEFRAME_5M, "15m": market_pb2.TIMEFRAME_15M,
    "1h": market_pb2.TIMEFRAME_1H, "4h": market_pb2.TIMEFRAME_4H,
    "1d": market_pb2.TIMEFRAME_1D,
}
MAX_TICKS_PER_MESSAGE = 10_000


def trigger_mode(value: str | int) -> int:
    """``"EVERY_TIME"``, ``"TRIGGER_MODE_EVERY_TIME"`` or the enum number."""
    if isinstance(value, int):
        rules_pb2.TriggerMode.Name(value)  # ValueError when unknown
        return value
    name = value.strip().upper()
    if not name.startswith("TRIGGER_MODE_"):
        name = "TRIGGER_MODE_" + name
    try:
        return int(rules_pb2.TriggerMode.Value(name))
    except ValueError:
        raise ValueError(f"unknown trigger mode {value!r}") from None


def timeframe(value: str | int) -> int:
    """``"5m"``, ``"TIMEFRAME_5M"`` or the enum number."""
    if isinstance(value, int):
        market_pb2.Timeframe.Name(value)  # ValueError when unknown
        return value
    if value in TIMEFRAMES:
        return TIMEFRAMES[value]
    try:
        return int(market_pb2.Timeframe.Value(value.strip().upper()))
    except ValueError:
        raise ValueError(f"unknown timeframe {value!r}: use one of {', '.join(TIMEFRAMES)}"
                         ) from None


def duration(seconds: float) -> duration_pb2.Duration:
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite duration: {seconds!r}")
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def timestamp(value: int | datetime) -> timestamp_pb2.Timestamp:
    """Milliseconds since the epoch, or an aware ``datetime``."""
    out = timestamp_pb2.Timestamp()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("use an aware datetime (tzinfo set), not a naive one")
        out.FromDatetime(value)
    else:
        out.FromMilliseconds(int(value))
    return out


def rule_name(rule_id: str) -> str:
    """``"my-rule"`` or ``"rules/my-rule"`` -> ``"rules/my-rule"``."""
    return rule_id if rule_id.startswith("rules/") else f"rules/{rule_id}"


def channel_name(channel_id: str) -> str:
    """``"hook"`` or ``"channels/hook"`` -> ``"channels/hook"``."""
    return channel_id if channel_id.startswith("channels/") else f"channels/{channel_id}"


# Keyword arguments of create_rule/update_rule -> (Rule field, converter).
_RULE_FIELDS: Mapping[str, tuple[str, Any]] = {
    "display_name": ("display_name", str),
    "symbol": ("symbol", str),
    "condition": ("condition_text", str),
    "mode": ("trigger_mode", trigger_mode),
    "timeframe": ("timeframe", timeframe),
    "cooldown": ("cooldown", duration),
    "hold_for": ("hold_for", duration),
    "expire_time": ("expire_time", timestamp),
    "max_fires": ("max_fires", int),
    "hysteresis": ("hysteresis", float),
    "message_template": ("message_template", str),
    "labels": ("labels", dict),
    "paused": ("paused", bool),
    "channels": ("channels", list),
}


def fill_rule(rule: rules_pb2.Rule, fields: Mapping[str, Any]) -> list[str]:
    """Set ``fields`` (keyword names above) on ``rule``; return the Rule field paths set."""
    paths: list[str] = []
    for key, value in fields.items():
        if key not in _RULE_FIELDS:
            raise TypeError(f"unknown rule field {key!r}; known: {', '.join(_RULE_FIELDS)}")
        name, conv = _RULE_FIELDS[key]
        paths.append(name)
        if value is None:          # an update to "unset" (server default)
            rule.ClearField(name)
            continue
        converted = conv(value)
        if name == "labels":
            rule.labels.clear()
            rule.labels.update({str(k): str(v) for k, v in converted.items()})
        elif name == "channels":
            rule.channels[:] = [channel_name(str(c)) for c in converted]
        elif isinstance(converted, (duration_pb2.Duration, timestamp_pb2.Timestamp)):
            getattr(rule, name).CopyFrom(converted)
        else:
            setattr(rule, name, converted)
    return paths


def tick(symbol: str, time_ms: int, price: float, qty: float, trade_id: int) -> market_pb2.Tick:
    return market_pb2.Tick(symbol=symbol, event_time=timestamp(time_ms), price=price,
                           quantity=qty, trade_id=trade_id)


def tick_requests(source: str, ticks: Iterable[TickTuple], batch: int, *,
                  fill_gaps: bool | None = None, watermark_ms: int | None = None
                  ) -> Iterator[service_pb2.PublishTicksRequest]:
    """The PublishTicks messages for ``ticks``, ``batch`` ticks each, built lazily."""
    if not 1 <= batch <= MAX_TICKS_PER_MESSAGE:
        raise ValueError(f"batch must be 1..{MAX_TICKS_PER_MESSAGE}, not {batch}")
    it = iter(ticks)
    first = True
    while True:
        chunk = list(islice(it, batch))
        if not chunk and not first:
            break
        req = service_pb2.PublishTicksRequest(source=source, ticks=[tick(*t) for t in chunk])
        if first and fill_gaps is not None:
            req.fill_gaps = fill_gaps
        first = False
        yield req
        if len(chunk) < batch:
            break
    if watermark_ms is not None:
        yield service_pb2.PublishTicksRequest(source=source, watermark=timestamp(watermark_ms))
