"""Alpha Vantage as a polled stock source (TIME_SERIES_INTRADAY, 1-minute bars).

Wire format: ``GET {base}/query?function=...&apikey=...`` (protocols/stocks.md).
Numbers are strings in objects keyed ``"N. name"``; intraday timestamps are the
bar's open in US/Eastern (the zone named by ``Meta Data``), converted to UTC
with ``zoneinfo`` (the repeated hour when daylight saving ends, 01:00-02:00,
is outside extended hours). Every error and limit is HTTP 200 with one key:
``Error Message`` (a bad call - for an intraday call usually an unknown symbol,
which one GLOBAL_QUOTE answering ``{"Global Quote":{}}`` confirms),
``Information`` (a premium endpoint: a provider error; the 1-per-second burst
warning: wait a few seconds; the daily cap: wait for the next UTC day) and
the legacy ``Note`` (per-minute cap: wait a minute).

Polling asks for ``outputsize=compact`` (the last 100 bars) while the symbol's
known time is within that reach, ``full`` otherwise; ``history()`` asks month
by month (``month=YYYY-MM&outputsize=full``). Prices are unadjusted
(``adjusted=false``) so bars agree with live trade prices; extended hours are
included. Defaults follow the free tier: 25 requests a day, one a second, so a
request goes out about every 58 minutes, shared round-robin by the symbols.
How the bars reach the engine is ``alerts.market.polling``'s docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from alerts.market.base import Bar
from alerts.market.budget import BudgetLimits
from alerts.market.polling import (
    TIMEFRAME_MS,
    BadPayloadError,
    PollingSource,
    ProviderError,
    SourceRateLimitedError,
    UnknownSymbolError,
    checked_bar,
)

EASTERN = ZoneInfo("US/Eastern")
COMPACT_BARS = 100
BURST_WAIT_S = 5.0
MINUTE_CAP_WAIT_S = 60.0
_BAR_FIELDS = ("1. open", "2. high", "3. low", "4. close", "5. volume")


@dataclass(frozen=True, slots=True)
class GlobalQuote:
    """A GLOBAL_QUOTE answer (the latest trading day's figures)."""

    symbol: str
    open: float
    high: float
    low: float
    price: float
    volume: float
    latest_trading_day: date
    previous_close: float


def _number(text: Any, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadPayloadError(f"{what} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise BadPayloadError(f"{what} is not finite: {text!r}")
    return value


def _seconds_to_next_utc_day(now_s: float) -> float:
    now = datetime.fromtimestamp(now_s, UTC)
    tomorrow = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return (tomorrow - now).total_seconds()


def raise_for_message(payload: Any, now_s: float) -> None:
    """Raise the error an Alpha Vantage message body stands for (HTTP 200, one key)."""
    if not isinstance(payload, dict):
        raise BadPayloadError(f"expected a JSON object, got {type(payload).__name__}")
    if "Error Message" in payload:
        raise ProviderError(str(payload["Error Message"]))
    for key in ("Information", "Note"):
        if key not in payload:
            continue
        text = str(payload[key])
        lowered = text.lower()
        if "is a premium endpoint" in lowered:
            raise ProviderError(text)
        if "per second" in lowered or "sparingly" in lowered:
            raise SourceRateLimitedError(text, retry_after_s=BURST_WAIT_S)
        if key == "Note" or "per minute" in lowered:
            raise SourceRateLimitedError(text, retry_after_s=MINUTE_CAP_WAIT_S)
        if "per day" in lowered:
            raise SourceRateLimitedError(text, retry_after_s=_seconds_to_next_utc_day(now_s))
        raise SourceRateLimitedError(text, retry_after_s=MINUTE_CAP_WAIT_S)


def parse_intraday(payload: Any, symbol: str, timeframe: str, now_s: float) -> list[Bar]:
    """Bars of a TIME_SERIES_INTRADAY answer, oldest first (times converted to UTC ms)."""
    raise_for_message(payload, now_s)
    meta = payload.get("Meta Data")
    series_key = next((k for k in payload if k.startswith("Time Series")), None)
    if not isinstance(meta, dict) or series_key is None:
        raise BadPayloadError(f"no 'Meta Data' or 'Time Series' in keys {sorted(payload)}")
    series = payload[series_key]
    if not isinstance(series, dict):
        raise BadPayloadError(f"{series_key!r} is not an object")
    zone_name = meta.get("6. Time Zone", "US/Eastern")
    try:
        zone = ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        raise BadPayloadError(f"unknown time zone {zone_name!r}") from None
    tf_ms = TIMEFRAME_MS[timeframe]
    bars: list[Bar] = []
    for stamp, row in series.items():
        try:
            local = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
        except (TypeError, ValueError):
            raise BadPayloadError(f"bad timestamp {stamp!r}") from None
        if not isinstance(row, dict):
            raise BadPayloadError(f"bar {stamp!r} is not an object")
        open_ms = int(local.timestamp()) * 1000
        if open_ms % tf_ms:
            raise BadPayloadError(f"bar {stamp!r} is not on a {timeframe} boundary")
        o, h, low, c, v = (_number(row.get(k), f"{stamp} {k!r}") for k in _BAR_FIELDS)
        bars.append(checked_bar(Bar(symbol, timeframe, open_ms, o, h, low, c, v)))
    bars.sort(key=lambda b: b.open_ms)
    return bars


def parse_global_quote(payload: Any, now_s: float) -> GlobalQuote | None:
    """A GLOBAL_QUOTE answer; None for an unknown symbol (``{"Global Quote":{}}``)."""
    raise_for_message(payload, now_s)
    quote = payload.get("Global Quote")
    if not isinstance(quote, dict):
        raise BadPayloadError(f"no 'Global Quote' object in keys {sorted(payload)}")
    if not quote:
        return None
    try:
        day = date.fromisoformat(str(quote.get("07. latest trading day")))
    except ValueError:
        raise BadPayloadError(f"bad trading day {quote.get('07. latest trading day')!r}") from None
    return GlobalQuote(
        symbol=str(quote.get("01. symbol", "")),
        open=_number(quote.get("02. open"), "02. open"),
        high=_number(quote.get("03. high"), "03. high"),
        low=_number(quote.get("04. low"), "04. low"),
        price=_number(quote.get("05. price"), "05. price"),
        volume=_number(quote.get("06. volume"), "06. volume"),
        latest_trading_day=day,
        previous_close=_number(quote.get("08. previous close"), "08. previous close"),
    )


def _json(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise ProviderError(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        return response.json()
    except ValueError as exc:
        raise BadPayloadError(f"malformed JSON: {exc}") from None


def _months(start_ms: int, end_ms: int) -> list[str]:
    """The US/Eastern months (YYYY-MM) that [start_ms, end_ms) touches."""
    first = datetime.fromtimestamp(start_ms / 1000, EASTERN)
    last = datetime.fromtimestamp((end_ms - 1) / 1000, EASTERN)
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


class AlphaVantageSource(PollingSource):
    """Alpha Vantage TIME_SERIES_INTRADAY, polled within the key's limits."""

    provider: ClassVar[str] = "alphavantage"
    default_base_url: ClassVar[str] = "https://www.alphavantage.co"
    default_limits: ClassVar[BudgetLimits] = BudgetLimits(per_day=25, min_interval_s=1.0)
    timeframes: ClassVar[Mapping[str, str]] = {
        "1m": "1min", "5m": "5min", "15m": "15min", "1h": "60min"}

    def __init__(self, *, api_key: str, **kwargs: Any) -> None:
        if not api_key:
            raise ValueError("an Alpha Vantage API key is required")
        super().__init__(**kwargs)
        self._api_key = api_key

    async def _query(self, params: dict[str, str] | Callable[[int], dict[str, str]], *,
                     paced: bool) -> Any:
        def query(sent_ms: int) -> dict[str, str]:
            given = params(sent_ms) if callable(params) else params
            return {**given, "apikey": self._api_key}

        return _json(await self._get("/query", query, paced=paced))

    async def _intraday(self, symbol: str, ticker: str, timeframe: str,
                        extra: Callable[[int], dict[str, str]], *, paced: bool) -> list[Bar]:
        def params(sent_ms: int) -> dict[str, str]:
            return {"function": "TIME_SERIES_INTRADAY", "symbol": ticker,
                    "interval": self.timeframes[timeframe], "adjusted": "false",
                    "extended_hours": "true", **extra(sent_ms)}

        payload = await self._query(params, paced=paced)
        try:
            return parse_intraday(payload, symbol, timeframe, self.clock.time())
        except ProviderError as exc:
            if "Error Message" not in payload:
                raise
            await self._confirm_symbol(ticker, exc, paced=paced)
            raise

    async def _confirm_symbol(self, ticker: str, error: ProviderError, *, paced: bool) -> None:
        """After an ``Error Message``: an empty GLOBAL_QUOTE means the symbol is unknown."""
        payload = await self._query({"function": "GLOBAL_QUOTE", "symbol": ticker}, paced=paced)
        if parse_global_quote(payload, self.clock.time()) is None:
            raise UnknownSymbolError(f"{error.message} (GLOBAL_QUOTE is empty)")

    async def _poll_bars(self, symbol: str, ticker: str, since_ms: int) -> list[Bar]:
        reach_ms = (COMPACT_BARS - 2) * TIMEFRAME_MS["1m"] - int(self.settings.settle_s * 1000)

        def size(sent_ms: int) -> dict[str, str]:
            return {"outputsize": "compact" if sent_ms - since_ms <= reach_ms else "full"}

        return await self._intraday(symbol, ticker, "1m", size, paced=True)

    async def _history_bars(self, symbol: str, ticker: str, timeframe: str, start_ms: int,
                            end_ms: int) -> list[Bar]:
        bars: list[Bar] = []
        for month in _months(start_ms, end_ms):
            def whole(_: int, month: str = month) -> dict[str, str]:
                return {"month": month, "outputsize": "full"}

            bars.extend(await self._intraday(symbol, ticker, timeframe, whole, paced=False))
        return bars
