"""``BinanceRestClient`` against a scripted loopback HTTP server with Binance's answers.

The server answers each request from a script (status, headers, JSON body)
and records the path, query and arrival time, so weight headers, 429/418
with ``Retry-After``, error bodies and paging are checked on the wire.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from alerts.errors import InvalidArgumentError
from alerts.market.binance.errors import (
    BinanceRateLimitError,
    BinanceRequestError,
    BinanceUnavailableError,
)
from alerts.market.binance.rest import BinanceRestClient
from alerts.market.binance.venues import SPOT, USDM
from tests.market.binance.conftest import Answer

pytestmark = pytest.mark.asyncio

def agg_rows(first: int, last: int) -> list[dict[str, Any]]:
    return [{"a": i, "p": f"{100 + i % 7}.5", "q": "0.25", "f": i, "l": i, "T": 1_000_000 + i,
             "m": bool(i % 2), "M": True} for i in range(first, last + 1)]


async def test_error_bodies_become_clear_errors(scripted: Any) -> None:
    server = await scripted(lambda path, q: (400, {}, {"code": -1121, "msg": "Invalid symbol."}))
    client = BinanceRestClient(SPOT, base_url=server.url)
    try:
        with pytest.raises(BinanceRequestError, match=r"Invalid symbol\. \(code -1121\)") as err:
            await client.agg_trades("NOPE", from_id=1)
        assert err.value.binance_code == -1121 and err.value.status == 400
        assert isinstance(err.value, InvalidArgumentError)
        assert server.seen[0][1] == "/api/v3/aggTrades"
        assert server.seen[0][2] == {"symbol": "NOPE", "fromId": "1", "limit": "1000"}
    finally:
        await client.aclose()


async def test_429_pauses_every_call_for_retry_after_and_reports_it(scripted: Any) -> None:
    calls = {"n": 0}

    def answer(path: str, q: dict[str, str]) -> Answer:
        calls["n"] += 1
        if calls["n"] == 1:
            return 429, {"Retry-After": "1"}, {"code": -1003, "msg": "Too much request weight"}
        return 200, {"X-MBX-USED-WEIGHT-1M": "12"}, agg_rows(int(q["fromId"]), int(q["fromId"]))

    server = await scripted(answer)
    limited: list[tuple[int, float]] = []
    recovered: list[bool] = []

    later: list[asyncio.Task[Any]] = []

    async def on_limited(status: int, pause: float) -> None:
        limited.append((status, pause))
        # another call made while paused must wait too
        later.append(asyncio.create_task(client.agg_trades("BTCUSDT", from_id=9)))

    async def on_recovered() -> None:
        recovered.append(True)

    client = BinanceRestClient(SPOT, base_url=server.url, on_rate_limited=on_limited,
                               on_recovered=on_recovered)
    try:
        first = await client.agg_trades("BTCUSDT", from_id=5)
        second = await later[0]
        assert [r.agg_id for r in first] == [5] and [r.agg_id for r in second] == [9]
        assert limited == [(429, 1.0)]
        assert recovered == [True]
        assert client.rate_limited == 1 and client.weight.used >= 12
        t_limited = server.seen[0][0]
        # every request after the 429 waited out Retry-After, not just the one refused
        assert all(t - t_limited >= 0.95 for t, _, _ in server.seen[1:])
        assert len(server.seen) == 3
    finally:
        await client.aclose()


async def test_rate_limits_that_last_become_an_error(scripted: Any) -> None:
    server = await scripted(lambda path, q: (418, {"Retry-After": "0"},
                                             {"code": -1003, "msg": "Way too much"}))
    client = BinanceRestClient(SPOT, base_url=server.url, max_retries=2)
    try:
        with pytest.raises(BinanceRateLimitError, match="HTTP 418"):
            await client.agg_trades("BTCUSDT", from_id=1)
        assert len(server.seen) == 3
    finally:
        await client.aclose()


async def test_server_errors_are_retried_then_unavailable(scripted: Any) -> None:
    server = await scripted(lambda path, q: (503, {}, {"msg": "busy"}))
    client = BinanceRestClient(SPOT, base_url=server.url, max_retries=1)
    try:
        with pytest.raises(BinanceUnavailableError, match="HTTP 503"):
            await client.server_time()
        assert len(server.seen) == 2
    finally:
        await client.aclose()


async def test_weight_header_near_the_budget_slows_requests_down(scripted: Any) -> None:
    server = await scripted(lambda path, q: (200, {"X-MBX-USED-WEIGHT-1M": "99"},
                                             {"serverTime": 1}))
    client = BinanceRestClient(SPOT, base_url=server.url, weight_budget=100)
    try:
        assert await client.server_time() == 1
        assert client.weight.used == 99
        # the next call (weight 1) fits exactly; the one after must wait for the next minute
        assert client.weight.delay(1, time.time()) > 0          # spreading: 1 of 1 left
        assert client.weight.delay(2, time.time()) >= 60 - (time.time() % 60)
    finally:
        await client.aclose()


async def test_history_pages_and_keeps_only_closed_bars(scripted: Any) -> None:
    minute = 60_000
    start = 1_700_000_000_000 - 1_700_000_000_000 % minute
    now = start + 2500 * minute + 30_000          # bar 2500 is forming

    def answer(path: str, q: dict[str, str]) -> Answer:
        assert path == "/fapi/v1/klines" and q["interval"] == "1m"
        lo = max(int(q["startTime"]), start)
        lo += (-lo) % minute
        hi = min(int(q["endTime"]), now)
        rows = []
        t = lo
        while t <= hi and len(rows) < int(q["limit"]):
            i = (t - start) // minute
            rows.append([t, f"{i}.0", f"{i + 2}.0", f"{i - 1}.0", f"{i + 1}.0", "10",
                         t + minute - 1, "100", 3, "5", "50", "0"])
            t += minute
        return 200, {"X-MBX-USED-WEIGHT-1M": str(len(server.seen) * 5)}, rows

    server = await scripted(answer)
    client = BinanceRestClient(USDM, base_url=server.url)
    try:
        bars = await client.history("LINKUSDT", "1m", start, start + 3000 * minute,
                                    closed_before_ms=now, name="binance-usdm:LINKUSDT")
        assert len(bars) == 2500                                # 0..2499 closed, 2500 forming
        assert [b.open_ms for b in bars] == [start + i * minute for i in range(2500)]
        assert bars[7].close == 8.0 and bars[7].symbol == "binance-usdm:LINKUSDT"
        assert len(server.seen) == 3                            # 1000 + 1000 + 501 rows
        with pytest.raises(InvalidArgumentError, match="interval"):
            await client.klines("LINKUSDT", "7m", start_ms=start, end_ms=now)
    finally:
        await client.aclose()
