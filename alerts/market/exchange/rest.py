"""The exchange's REST market-data endpoints, as Binance answers them.

Spot paths live under ``/api/v3``, USDⓈ-M ones under ``/fapi/v1``: ``klines``
(weight 2), ``aggTrades`` (4), ``ticker/price`` (2 with ``symbol``, else 4),
``exchangeInfo`` (20), ``time`` (1), ``ping`` (1). Every answer carries
``X-MBX-USED-WEIGHT-1M``; errors are Binance's JSON bodies (``-1100``,
``-1102``, ``-1120``, ``-1121``, ``-1130``; ``-1003`` with 429/418 and
``Retry-After``). Nothing after the exchange's ``now`` is ever returned.
``limit`` above the maximum is clamped to it (as Binance does); below 1 it
is -1130. A symbol before its first trade has price ``0`` in ``ticker/price``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from alerts.market.exchange.book import SymbolBook
from alerts.market.exchange.intervals import parse_interval
from alerts.market.exchange.limits import Verdict, WeightLimiter
from alerts.market.exchange.streams import dumps

PREFIXES = {"spot": "/api/v3", "usdm": "/fapi/v1"}
MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "USD")
_INT_PATTERN = "^[0-9]{1,20}$"
_SYMBOL_PATTERN = "^[A-Z0-9-_.]{1,20}$"
_WEIGHTS = {"klines": 2, "aggTrades": 4, "exchangeInfo": 20, "time": 1, "ping": 1}


@dataclass(frozen=True)
class HttpAnswer:
    """A complete HTTP answer: status, extra headers and a JSON body."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """A Binance error body: ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def _missing(name: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                           "or malformed.")


def _illegal(name: str, pattern: str) -> ApiError:
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                           f"'{pattern}'.")


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a symbol such as ``BTCUSDT`` (quote guessed from common suffixes)."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol[:-3], symbol[-3:]


class RestApi:
    """Answers GET requests for one venue over ``books`` at the clock ``now_ms()``."""

    def __init__(self, venue: str, books: Mapping[str, SymbolBook], now_ms: Callable[[], int],
                 limiter: WeightLimiter) -> None:
        self.venue = venue
        self.prefix = PREFIXES[venue]
        self.books = books
        self.now_ms = now_ms
        self.limiter = limiter
        self.requests = 0

    def answer(self, target: str, client_ip: str) -> HttpAnswer:
        """The answer to ``GET target`` (path and query) from ``client_ip``."""
        self.requests += 1
        parts = urlsplit(target)
        endpoint = parts.path[len(self.prefix) + 1:]
        handler = _ROUTES.get(endpoint) if parts.path.startswith(self.prefix + "/") else None
        if handler is None:
            return HttpAnswer(404, dumps({"code": -1000, "msg": "Not found."}),
                              {"X-MBX-USED-WEIGHT-1M": str(self.limiter.used(client_ip))})
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        weight = _weight(endpoint, params)
        verdict = self.limiter.charge(client_ip, weight)
        headers = {"X-MBX-USED-WEIGHT-1M": str(verdict.used)}
        if verdict.status != 200:
            return self._refusal(verdict, headers)
        try:
            body = handler(self, params)
        except ApiError as err:
            return HttpAnswer(err.status, dumps({"code": err.code, "msg": err.msg}), headers)
        return HttpAnswer(200, dumps(body), headers)

    def _refusal(self, verdict: Verdict, headers: dict[str, str]) -> HttpAnswer:
        headers["Retry-After"] = str(verdict.retry_after_s)
        if verdict.status == 418:
            msg = (f"Way too much request weight used; IP banned until "
                   f"{verdict.banned_until_ms}. Please use WebSocket Streams for live updates "
                   "to avoid bans.")
        else:
            msg = (f"Too much request weight used; current limit is {self.limiter.limit} "
                   "request weight per 1 MINUTE. Please use WebSocket Streams for live "
                   "updates to avoid polling the API.")
        return HttpAnswer(verdict.status, dumps({"code": -1003, "msg": msg}), headers)

    # ------------------------------------------------------------------ parameters

    def _book(self, params: dict[str, str]) -> SymbolBook:
        symbol = params.get("symbol", "")
        if not symbol:
            raise _missing("symbol")
        if not re.match(_SYMBOL_PATTERN, symbol):
            raise _illegal("symbol", _SYMBOL_PATTERN)
        book = self.books.get(symbol)
        if book is None:
            raise ApiError(-1121, "Invalid symbol.")
        return book

    # ------------------------------------------------------------------ endpoints

    def klines(self, params: dict[str, str]) -> Any:
        book = self._book(params)
        if not params.get("interval"):
            raise _missing("interval")
        interval = parse_interval(params["interval"])
        if interval is None:
            raise ApiError(-1120, "Invalid interval.")
        start, end, limit = _int(params, "startTime"), _int(params, "endTime"), _limit(params)
        now = self.now_ms()
        opens = book.bar_opens(interval, now, start_ms=start, end_ms=end, limit=limit)
        return book.kline_rows(book.bars(interval, opens, now))

    def agg_trades(self, params: dict[str, str]) -> Any:
        book = self._book(params)
        rows = book.agg_trades(self.now_ms(), from_id=_int(params, "fromId"),
                               start_ms=_int(params, "startTime"),
                               end_ms=_int(params, "endTime"), limit=_limit(params))
        if self.venue == "usdm":          # USDⓈ-M rows have no ignored "M"
            for row in rows:
                del row["M"]
        return rows

    def ticker_price(self, params: dict[str, str]) -> Any:
        now = self.now_ms()
        if "symbol" in params:
            return self._price(self._book(params), now)
        if "symbols" in params:
            try:
                names = json.loads(params["symbols"])
            except json.JSONDecodeError:
                names = None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise _illegal("symbols", r"^\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\]$")
            return [self._price(self._book({"symbol": n}), now) for n in names]
        return [self._price(book, now) for book in self.books.values()]

    def _price(self, book: SymbolBook, now: int) -> dict[str, str]:
        price = book.last_price(now)
        return {"symbol": book.name, "price": book.precision.price_text(price or 0.0)}

    def exchange_info(self, params: dict[str, str]) -> Any:
        books = list(self.books.values())
        if "symbol" in params:
            books = [self._book(params)]
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                            "intervalNum": 1, "limit": self.limiter.limit}],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(book) for book in books],
        }

    def _symbol_info(self, book: SymbolBook) -> dict[str, Any]:
        base, quote = split_symbol(book.name)
        p = book.precision
        info: dict[str, Any] = {
            "symbol": book.name, "status": "TRADING", "baseAsset": base,
            "baseAssetPrecision": 8, "quoteAsset": quote, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": p.price_text(10.0 ** -p.price),
                 "maxPrice": p.price_text(1e7), "tickSize": p.price_text(10.0 ** -p.price)},
                {"filterType": "LOT_SIZE", "minQty": p.qty_text(10.0 ** -p.qty),
                 "maxQty": p.qty_text(9e6), "stepSize": p.qty_text(10.0 ** -p.qty)},
            ],
        }
        if self.venue == "usdm":
            info.update({"pair": book.name, "contractType": "PERPETUAL",
                         "marginAsset": quote, "pricePrecision": p.price,
                         "quantityPrecision": p.qty})
        else:
            info.update({"isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                         "permissionSets": [["SPOT"]]})
        return info

    def time(self, params: dict[str, str]) -> Any:
        return {"serverTime": self.now_ms()}

    def ping(self, params: dict[str, str]) -> Any:
        return {}


_ROUTES: dict[str, Callable[[RestApi, dict[str, str]], Any]] = {
    "klines": RestApi.klines,
    "aggTrades": RestApi.agg_trades,
    "ticker/price": RestApi.ticker_price,
    "exchangeInfo": RestApi.exchange_info,
    "time": RestApi.time,
    "ping": RestApi.ping,
}


def _weight(endpoint: str, params: dict[str, str]) -> int:
    if endpoint == "ticker/price":
        return 2 if "symbol" in params else 4
    return _WEIGHTS[endpoint]


def _int(params: dict[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    if not re.match(_INT_PATTERN, text):
        raise _illegal(name, _INT_PATTERN)
    return int(text)


def _limit(params: dict[str, str]) -> int:
    limit = _int(params, "limit")
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise ApiError(-1130, "Invalid data sent for a parameter.")
    return min(limit, MAX_LIMIT)
