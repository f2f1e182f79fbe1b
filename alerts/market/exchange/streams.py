"""Binance stream names and the payloads of the streams the exchange serves.

Served: ``<symbol>@trade``, ``<symbol>@aggTrade`` and ``<symbol>@kline_<interval>``.
The other documented market streams (tickers, book ticker, depth, average
price, ``!miniTicker@arr``) are accepted by SUBSCRIBE, as Binance accepts
them, but carry nothing here. Symbols in stream names are lower case; a name
that is not a Binance stream is refused (``Invalid request: invalid stream``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from alerts.market.exchange.intervals import INTERVAL_NAMES

_SYMBOL = r"[a-z0-9]{1,32}"
_INTERVALS = "|".join(INTERVAL_NAMES)
_SERVED = re.compile(rf"^(?P<symbol>{_SYMBOL})@(?P<kind>trade|aggTrade|kline_(?P<interval>{_INTERVALS}))$")
_SILENT = re.compile(
    rf"^(?:{_SYMBOL}@(?:miniTicker|ticker|ticker_(?:1h|4h|1d)|bookTicker|avgPrice"
    rf"|depth(?:5|10|20)?(?:@100ms)?)|!miniTicker@arr|!ticker_(?:1h|4h|1d)@arr)$")


@dataclass(frozen=True)
class Stream:
    """A valid stream name; ``symbol`` upper case and ``kind`` set when the exchange feeds it."""

    name: str
    symbol: str | None = None
    kind: str | None = None         # "trade" | "aggTrade" | "kline"
    interval: str | None = None


def parse_stream(name: str) -> Stream | None:
    """The stream called ``name``, or None when it is not a Binance stream name."""
    served = _SERVED.match(name)
    if served:
        kind = served.group("kind")
        return Stream(name, served.group("symbol").upper(),
                      "kline" if kind.startswith("kline_") else kind, served.group("interval"))
    if _SILENT.match(name):
        return Stream(name)
    return None


def trade_stream(symbol: str) -> str:
    return f"{symbol.lower()}@trade"


def agg_trade_stream(symbol: str) -> str:
    return f"{symbol.lower()}@aggTrade"


def kline_stream(symbol: str, interval: str) -> str:
    return f"{symbol.lower()}@kline_{interval}"


def dumps(value: Any) -> str:
    """Compact JSON as Binance writes it (no spaces)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def combined_frame(stream: str, payload_json: str) -> str:
    """The ``/stream`` wrapping ``{"stream":...,"data":...}`` of an already encoded payload.

    Stream names are validated (letters, digits, ``@_!``), so they need no escaping.
    """
    return f'{{"stream":"{stream}","data":{payload_json}}}'


def trade_payload(symbol: str, event_ms: int, trade_id: int, price: str, qty: str,
                  time_ms: int, buyer_maker: bool, *, venue: str = "spot") -> dict[str, Any]:
    """Spot has the ignored ``M``; USDⓈ-M has ``X`` (order type) instead."""
    payload: dict[str, Any] = {"e": "trade", "E": event_ms, "s": symbol, "t": trade_id,
                               "p": price, "q": qty, "T": time_ms, "m": buyer_maker}
    if venue == "spot":
        payload["M"] = True
    else:
        payload["X"] = "MARKET"
    return payload


def agg_trade_payload(symbol: str, event_ms: int, agg_id: int, price: str, qty: str,
                      first_id: int, last_id: int, time_ms: int, buyer_maker: bool, *,
                      venue: str = "spot") -> dict[str, Any]:
    """Spot has the ignored ``M``; USDⓈ-M has none."""
    payload: dict[str, Any] = {"e": "aggTrade", "E": event_ms, "s": symbol, "a": agg_id,
                               "p": price, "q": qty, "f": first_id, "l": last_id,
                               "T": time_ms, "m": buyer_maker}
    if venue == "spot":
        payload["M"] = True
    return payload


def shutdown_payload(event_ms: int) -> dict[str, Any]:
    return {"e": "serverShutdown", "E": event_ms}


SHUTDOWN_STREAM = "!serverShutdown"
