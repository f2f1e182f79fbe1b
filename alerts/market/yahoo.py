"""Yahoo Finance's chart API as a polled stock source (interval=1m, includePrePost).

Wire format: ``GET {base}/v8/finance/chart/{ticker}?period1=&period2=&interval=1m
&includePrePost=true`` (protocols/stocks.md; unofficial, undocumented by Yahoo).
Timestamps are unix seconds of each bar's open; OHLCV are parallel arrays that
may hold ``null``: a point with any of open/high/low/close null is a minute
without trades and is skipped (a null volume counts as 0); a point that is not
on a minute boundary is the live, still forming minute and is skipped too. No
data is ``timestamp`` missing with ``quote: [{}]``. Errors: 404 with a JSON
``chart.error`` is an unknown symbol; 422 (range too old) and other statuses
are provider errors; 429 is plain text ("Too Many Requests") and pauses the
budget for ``Retry-After`` seconds, else a minute.

Polling asks from a few minutes before the symbol's known time (to notice
corrections) to now, never further back than Yahoo serves 1m bars (7 days).
``history()`` asks in 7-day windows. The default budget is conservative: 30
requests a minute. How the bars reach the engine is ``alerts.market.polling``'s
docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

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

RATE_LIMIT_WAIT_S = 60.0
WINDOW_MS = 7 * 86_400_000          # Yahoo serves 1m bars in windows of at most 8 days
OVERLAP_MS = 5 * 60_000             # re-read this much before the known time
_FIELDS = ("open", "high", "low", "close", "volume")


def _error_text(payload: Any) -> str:
    try:
        error = payload["chart"]["error"]
        return f"{error['code']}: {error['description']}"
    except (KeyError, TypeError):
        return repr(payload)[:200]


def _value(x: Any, what: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise BadPayloadError(f"{what} is not a number: {x!r}")
    return float(x)


def parse_chart(payload: Any, symbol: str, timeframe: str) -> list[Bar]:
    """Bars of a 200 chart answer, oldest first (null and off-boundary points skipped)."""
    try:
        chart = payload["chart"]
        error = chart.get("error")
        results = chart["result"]
    except (KeyError, TypeError, AttributeError):
        raise BadPayloadError("no 'chart.result' in the answer") from None
    if error:
        raise ProviderError(_error_text(payload))
    if not results:
        return []
    try:
        result = results[0]
        stamps = result.get("timestamp") or []
        quote_arrays = result["indicators"]["quote"][0]
    except (KeyError, IndexError, TypeError, AttributeError):
        raise BadPayloadError("no 'indicators.quote[0]' in the chart result") from None
    if not isinstance(stamps, list) or not isinstance(quote_arrays, dict):
        raise BadPayloadError("'timestamp' is not a list or 'quote[0]' not an object")
    if not stamps:
        return []
    columns = []
    for name in _FIELDS:
        column = quote_arrays.get(name)
        if not isinstance(column, list) or len(column) != len(stamps):
            raise BadPayloadError(f"'{name}' is not a list of {len(stamps)} values")
        columns.append(column)
    tf_ms = TIMEFRAME_MS[timeframe]
    bars: dict[int, Bar] = {}
    for i, stamp in enumerate(stamps):
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            raise BadPayloadError(f"timestamp[{i}] is not an integer: {stamp!r}")
        o, h, low, c, v = (_value(col[i], f"{name}[{i}]") for col, name in zip(columns, _FIELDS))
        open_ms = stamp * 1000
        if o is None or h is None or low is None or c is None or open_ms % tf_ms:
            continue
        bars[open_ms] = checked_bar(Bar(symbol, timeframe, open_ms, o, h, low, c, v or 0.0))
    return [bars[k] for k in sorted(bars)]


def _retry_after_s(response: httpx.Response) -> float:
    try:
        return max(1.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return RATE_LIMIT_WAIT_S


class YahooSource(PollingSource):
    """Yahoo chart API 1-minute bars, polled within a per-minute budget."""

    provider: ClassVar[str] = "yahoo"
    default_base_url: ClassVar[str] = "https://query1.finance.yahoo.com"
    default_limits: ClassVar[BudgetLimits] = BudgetLimits(per_minute=30, min_interval_s=0.5)
    timeframes: ClassVar[Mapping[str, str]] = {"1m": "1m", "5m": "5m", "15m": "15m"}

    async def _chart(self, symbol: str, ticker: str, timeframe: str,
                     window: Callable[[int], tuple[int, int]], *, paced: bool) -> list[Bar]:
        def params(sent_ms: int) -> dict[str, str]:
            start_ms, end_ms = window(sent_ms)
            return {"period1": str(start_ms // 1000), "period2": str(-(-end_ms // 1000)),
                    "interval": self.timeframes[timeframe], "includePrePost": "true"}

        response = await self._get(f"/v8/finance/chart/{quote(ticker, safe='')}", params,
                                   paced=paced)
        status = response.status_code
        if status == 429:
            raise SourceRateLimitedError(f"HTTP 429: {response.text.strip()[:100]}",
                                         retry_after_s=_retry_after_s(response))
        try:
            payload = response.json()
        except ValueError:
            if status != 200:
                raise ProviderError(f"HTTP {status}: {response.text.strip()[:200]}") from None
            raise BadPayloadError("malformed JSON") from None
        if status == 404:
            raise UnknownSymbolError(_error_text(payload))
        if status != 200:
            raise ProviderError(f"HTTP {status}: {_error_text(payload)}")
        return parse_chart(payload, symbol, timeframe)

    async def _poll_bars(self, symbol: str, ticker: str, since_ms: int) -> list[Bar]:
        def window(sent_ms: int) -> tuple[int, int]:
            return max(since_ms - OVERLAP_MS, sent_ms - WINDOW_MS), sent_ms

        return await self._chart(symbol, ticker, "1m", window, paced=True)

    async def _history_bars(self, symbol: str, ticker: str, timeframe: str, start_ms: int,
                            end_ms: int) -> list[Bar]:
        bars: list[Bar] = []
        t = start_ms
        while t < end_ms:
            stop = min(end_ms, t + WINDOW_MS)

            def window(_: int, t: int = t, stop: int = stop) -> tuple[int, int]:
                return t, stop

            bars.extend(await self._chart(symbol, ticker, timeframe, window, paced=False))
            t = stop
        return bars
