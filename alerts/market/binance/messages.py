"""Binance wire messages to plain values: stream frames, control replies, REST rows.

No I/O here. ``parse_frame`` reads one combined-stream frame (``{"stream":
..., "data": ...}``) or control reply (``{"result": ..., "id": ...}``,
``{"error": {...}, "id": ...}``) and returns one of the small records below;
anything it cannot trust raises ``MalformedMessage`` with the reason, so the
caller counts it and carries on. Prices and quantities arrive as decimal
strings and leave as floats checked finite (price > 0, quantity >= 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from alerts.market.base import Bar


class MalformedMessage(ValueError):
    """A frame or row that does not have the documented shape."""


class AggTrade(NamedTuple):
    """One aggregate trade: ``agg_id`` is contiguous per symbol (a tuple: cheap to make)."""

    symbol: str          # as Binance spells it (upper case, no venue)
    agg_id: int
    price: float
    qty: float
    time_ms: int         # trade time T
    event_ms: int        # event time E (REST rows: T)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """Any other stream payload: only its event time matters (the source clock)."""

    stream: str
    event_ms: int


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a control message; ``error`` is ``(code, msg)`` when refused."""

    id: int | str | None
    result: Any
    error: tuple[int, str] | None


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """The server will close the connection soon: move to a new one."""

    event_ms: int


Frame = AggTrade | StreamEvent | Reply | ServerShutdown


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if type(value) is not int:
        raise MalformedMessage(f"field {key!r} must be an integer, got {value!r}")
    return value


def _decimal(obj: dict[str, Any], key: str) -> float:
    value = obj.get(key)
    if type(value) is not str:
        raise MalformedMessage(f"field {key!r} must be a decimal string, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise MalformedMessage(f"field {key!r} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise MalformedMessage(f"field {key!r} is not finite: {value!r}")
    return number


_INF = math.inf


def agg_trade(obj: Any, *, symbol: str | None = None) -> AggTrade:
    """An aggregate trade from a stream payload (``e`` = aggTrade) or a REST row.

    REST rows carry no symbol and no event time: pass ``symbol``; E becomes T.
    """
    try:                                     # fast path: the documented shape
        sym = obj["s"] if symbol is None else symbol
        agg_id = obj["a"]
        time_ms = obj["T"]
        event_ms = obj.get("E", time_ms)
        p = obj["p"]
        q = obj["q"]
        if (type(sym) is str and sym and type(agg_id) is int and type(time_ms) is int
                and type(event_ms) is int and type(p) is str and type(q) is str
                and agg_id >= 0 and time_ms > 0):
            price = float(p)
            qty = float(q)
            if 0 < price < _INF and 0 <= qty < _INF:
                return AggTrade(sym, agg_id, price, qty, time_ms, event_ms)
    except (KeyError, TypeError, ValueError):
        pass
    return _checked_agg_trade(obj, symbol)


def _checked_agg_trade(obj: Any, symbol: str | None) -> AggTrade:
    """The slow path: the same checks one by one, to say what is wrong."""
    if not isinstance(obj, dict):
        raise MalformedMessage(f"aggregate trade must be an object, got {type(obj).__name__}")
    if symbol is None:
        symbol = obj.get("s")
        if type(symbol) is not str or not symbol:
            raise MalformedMessage(f"field 's' must be a symbol, got {symbol!r}")
    agg_id = _int(obj, "a")
    time_ms = _int(obj, "T")
    event_ms = _int(obj, "E") if "E" in obj else time_ms
    price = _decimal(obj, "p")
    qty = _decimal(obj, "q")
    if price <= 0:
        raise MalformedMessage(f"price must be > 0, got {obj['p']!r}")
    if qty < 0:
        raise MalformedMessage(f"quantity must be >= 0, got {obj['q']!r}")
    if agg_id < 0 or time_ms <= 0:
        raise MalformedMessage(f"aggregate id {agg_id} / time {time_ms} out of range")
    return AggTrade(symbol, agg_id, price, qty, time_ms, event_ms)


def parse_frame(raw: str | bytes) -> Frame:
    """One WebSocket text frame of a combined-stream connection."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"frame must be an object, got {type(obj).__name__}")
    stream = obj.get("stream")
    if stream is None:
        if "id" in obj and ("result" in obj or "error" in obj):
            return _reply(obj)
        if obj.get("e") == "serverShutdown":      # a raw-stream style notice
            return ServerShutdown(_int(obj, "E"))
        raise MalformedMessage("frame has neither 'stream' nor a control reply's 'id'")
    if type(stream) is not str:
        raise MalformedMessage(f"field 'stream' must be a string, got {stream!r}")
    data = obj.get("data")
    if not isinstance(data, dict):
        raise MalformedMessage(f"stream {stream!r}: 'data' must be an object")
    kind = data.get("e")
    if kind == "aggTrade":
        if not stream.endswith("@aggTrade"):
            raise MalformedMessage(f"aggTrade payload on stream {stream!r}")
        return agg_trade(data)
    if stream == "!serverShutdown" or kind == "serverShutdown":
        return ServerShutdown(_int(data, "E"))
    if type(kind) is not str:
        raise MalformedMessage(f"stream {stream!r}: payload has no event type 'e'")
    return StreamEvent(stream, _int(data, "E"))


def _reply(obj: dict[str, Any]) -> Reply:
    rid = obj["id"]
    if rid is not None and type(rid) not in (int, str):
        raise MalformedMessage(f"reply id must be an integer or string, got {rid!r}")
    error = obj.get("error")
    if error is None:
        return Reply(rid, obj.get("result"), None)
    if not isinstance(error, dict):
        raise MalformedMessage(f"reply error must be an object, got {error!r}")
    code = error.get("code")
    msg = error.get("msg")
    return Reply(rid, None, (code if type(code) is int else -1, str(msg)))


def kline_bar(row: Any, symbol: str, timeframe: str) -> tuple[Bar, int]:
    """One REST kline row (12 elements) as a ``Bar`` and its close time (ms)."""
    if not isinstance(row, list) or len(row) < 9:
        raise MalformedMessage(f"kline row must be an array of 12, got {row!r}")
    open_ms, close_ms, trades = row[0], row[6], row[8]
    if type(open_ms) is not int or type(close_ms) is not int or type(trades) is not int:
        raise MalformedMessage(f"kline row times and trade count must be integers: {row!r}")
    values = dict(zip("ohlcvq", (row[1], row[2], row[3], row[4], row[5], row[7])))
    o, h, low, c, v, q = (_decimal(values, k) for k in "ohlcvq")
    return Bar(symbol, timeframe, open_ms, o, h, low, c, v, q, trades), close_ms


def control(method: str, params: list[str], request_id: int) -> bytes:
    """A SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS request."""
    body: dict[str, Any] = {"method": method, "id": request_id}
    if params:
        body["params"] = params
    return orjson.dumps(body)
