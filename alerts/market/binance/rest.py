"""REST client for Binance market data: klines and aggregate trades.

One ``httpx.AsyncClient`` per venue. Every request waits while the client is
paused (a 429 or 418 answer pauses all of its calls for ``Retry-After``
seconds) and while the minute's request weight (``X-MBX-USED-WEIGHT-1M``) is
near the budget (``WeightTracker``). Binance error bodies
(``{"code": -1121, "msg": "Invalid symbol."}``) become ``BinanceRequestError``;
rate limits that outlast ``max_retries`` become ``BinanceRateLimitError``;
5xx and transport failures are retried with backoff, then
``BinanceUnavailableError``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import structlog

from alerts.errors import InvalidArgumentError
from alerts.market.base import Bar
from alerts.market.binance.errors import (
    BinanceRateLimitError,
    BinanceRequestError,
    BinanceUnavailableError,
)
from alerts.market.binance.limits import full_jitter
from alerts.market.binance.messages import AggTrade, MalformedMessage, agg_trade, kline_bar
from alerts.market.binance.venues import KLINE_INTERVALS, SPOT, Venue
from alerts.market.binance.weight import WEIGHT_HEADER, WeightTracker

log = structlog.get_logger(__name__)

PAGE = 1000
"""Rows per klines / aggTrades call (Binance's maximum)."""

RateLimitHook = Callable[[int, float], Awaitable[None]]
"""Called with (HTTP status, pause seconds) whenever Binance answers 429 or 418."""


class BinanceRestClient:
    """Market-data REST calls of one venue with weight tracking and rate-limit pauses."""

    def __init__(
        self,
        venue: Venue = SPOT,
        *,
        base_url: str | None = None,
        weight_budget: int | None = None,
        max_retries: int = 5,
        timeout_s: float = 10.0,
        default_retry_after_s: float = 60.0,
        on_rate_limited: RateLimitHook | None = None,
        on_recovered: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.venue = venue
        self.weight = WeightTracker(weight_budget or int(venue.weight_limit * 0.8))
        self.max_retries = max_retries
        self.default_retry_after_s = default_retry_after_s
        self.on_rate_limited = on_rate_limited
        self.on_recovered = on_recovered
        self._limited = False
        self.rate_limited = 0
        self.requests = 0
        self._paused_until = 0.0
        self._http = httpx.AsyncClient(base_url=(base_url or venue.rest_url).rstrip("/"),
                                       timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def paused_for(self) -> float:
        """Seconds left of a rate-limit pause (0: not paused)."""
        return max(0.0, self._paused_until - time.monotonic())

    async def _wait_turn(self, cost: int) -> None:
        while True:
            pause = self.paused_for
            if pause <= 0:
                pause = self.weight.delay(cost, time.time())
            if pause <= 0:
                self.weight.spend(cost, time.time())
                return
            await asyncio.sleep(pause)

    async def get(self, endpoint: str, params: dict[str, Any], *, weight: int) -> Any:
        """GET ``<prefix>/<endpoint>`` and the decoded JSON body."""
        path = f"{self.venue.rest_prefix}/{endpoint}"
        failures = 0
        while True:
            await self._wait_turn(weight)
            self.requests += 1
            try:
                resp = await self._http.get(path, params=params)
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.max_retries:
                    raise BinanceUnavailableError(f"GET {path} failed: {exc!r}") from exc
                await asyncio.sleep(full_jitter(failures, base_s=0.2, cap_s=5.0))
                continue
            used = resp.headers.get(WEIGHT_HEADER)
            if used is not None and used.isdigit():
                self.weight.observe(int(used), time.time())
            if resp.status_code in (429, 418):
                failures += 1
                await self._rate_limited(resp, path)
                if failures > self.max_retries:
                    raise BinanceRateLimitError(
                        f"GET {path}: still rate limited (HTTP {resp.status_code}) after "
                        f"{self.max_retries} retries", retry_after_s=self.paused_for)
                continue
            if resp.status_code >= 500:
                failures += 1
                if failures > self.max_retries:
                    raise BinanceUnavailableError(f"GET {path}: HTTP {resp.status_code}")
                await asyncio.sleep(full_jitter(failures, base_s=0.2, cap_s=5.0))
                continue
            body = _json(resp, path)
            if resp.status_code >= 400:
                raise _refused(body, resp.status_code, path)
            if self._limited:
                self._limited = False
                if self.on_recovered is not None:
                    await self.on_recovered()
            return body

    async def _rate_limited(self, resp: httpx.Response, path: str) -> None:
        try:
            pause = float(resp.headers.get("retry-after", ""))
        except ValueError:
            pause = self.default_retry_after_s
        pause = max(pause, 0.0)
        self._paused_until = max(self._paused_until, time.monotonic() + pause)
        self.rate_limited += 1
        self._limited = True
        log.warning("binance_rest_rate_limited", path=path, status=resp.status_code,
                    retry_after_s=pause, venue=self.venue.name)
        if self.on_rate_limited is not None:
            await self.on_rate_limited(resp.status_code, pause)

    async def server_time(self) -> int:
        """The exchange's clock (``GET time``, weight 1), epoch ms."""
        body = await self.get("time", {}, weight=1)
        if not isinstance(body, dict) or type(body.get("serverTime")) is not int:
            raise BinanceUnavailableError(f"time answered {body!r}")
        return int(body["serverTime"])

    async def agg_trades(self, symbol: str, *, from_id: int, limit: int = PAGE) -> list[AggTrade]:
        """Aggregate trades of ``symbol`` from id ``from_id`` on, ascending (at most ``limit``)."""
        body = await self.get("aggTrades", {"symbol": symbol, "fromId": from_id, "limit": limit},
                              weight=self.venue.agg_trades_weight)
        if not isinstance(body, list):
            raise BinanceUnavailableError(f"aggTrades answered {type(body).__name__}, not a list")
        try:
            rows = [agg_trade(row, symbol=symbol) for row in body]
        except MalformedMessage as exc:
            raise BinanceUnavailableError(f"aggTrades row malformed: {exc}") from exc
        return rows

    async def klines(self, symbol: str, interval: str, *, start_ms: int, end_ms: int,
                     limit: int = PAGE) -> list[Any]:
        """Raw kline rows opening in [start_ms, end_ms], ascending (at most ``limit``)."""
        if interval not in KLINE_INTERVALS:
            raise InvalidArgumentError(f"unknown kline interval {interval!r}")
        body = await self.get("klines", {"symbol": symbol, "interval": interval,
                                         "startTime": start_ms, "endTime": end_ms,
                                         "limit": limit}, weight=self.venue.klines_weight)
        if not isinstance(body, list):
            raise BinanceUnavailableError(f"klines answered {type(body).__name__}, not a list")
        return body

    async def history(self, symbol: str, interval: str, start_ms: int, end_ms: int, *,
                      closed_before_ms: int, name: str | None = None) -> list[Bar]:
        """Bars opening in [start_ms, end_ms) that closed before ``closed_before_ms``.

        Pages ``PAGE`` rows per call; ``name`` is the bars' symbol (default ``symbol``).
        """
        bars: list[Bar] = []
        cursor = start_ms
        while cursor < end_ms:
            rows = await self.klines(symbol, interval, start_ms=cursor, end_ms=end_ms - 1)
            if not rows:
                break
            for row in rows:
                try:
                    bar, close_ms = kline_bar(row, name or symbol, interval)
                except MalformedMessage as exc:
                    raise BinanceUnavailableError(f"klines row malformed: {exc}") from exc
                if close_ms >= closed_before_ms:
                    return bars              # the forming bar and anything after it
                fresh = not bars or bar.open_ms > bars[-1].open_ms
                if start_ms <= bar.open_ms < end_ms and fresh:
                    bars.append(bar)
            if len(rows) < PAGE:
                break
            cursor = bars[-1].open_ms + 1 if bars else int(rows[-1][0]) + 1
        return bars


def _json(resp: httpx.Response, path: str) -> Any:
    try:
        return orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        if resp.status_code >= 400:
            raise BinanceRequestError(f"GET {path}: HTTP {resp.status_code}: "
                                      f"{resp.text[:200]!r}", status=resp.status_code) from None
        raise BinanceUnavailableError(f"GET {path}: body is not JSON") from None


def _refused(body: Any, status: int, path: str) -> BinanceRequestError:
    if isinstance(body, dict) and "code" in body:
        code = body.get("code")
        msg = body.get("msg", "")
        return BinanceRequestError(f"Binance refused GET {path}: {msg} (code {code})",
                                   code=code if isinstance(code, int) else 0, status=status)
    return BinanceRequestError(f"GET {path}: HTTP {status}: {str(body)[:200]}", status=status)
