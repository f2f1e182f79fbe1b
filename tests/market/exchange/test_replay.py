"""The replay clock: speed, pause, progress, deterministic order, the usdm venue, kline updates."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets

from alerts.market.exchange import ReplayExchange, ReplayProgress
from tests.support.market_data import (  # noqa: F401
    SPOT_TRADES_FILE,
    USDM_TRADES_FILE,
    binance_spot_trades,
    binance_usdm_trades,
    shared_data,
)

pytestmark = pytest.mark.asyncio


def _ticks(tmp_path: Path, seconds: int = 10) -> Path:
    rows = ["symbol,trade_id,price,qty,time_ms,is_buyer_maker"]
    rows += [f"AAAUSDT,{i + 1},{100 + i},1,{1_000_000 + 1000 * i},false" for i in range(seconds)]
    path = tmp_path / "ticks.csv.gz"
    path.write_bytes(gzip.compress("\n".join(rows).encode()))
    return path


async def test_speed_scales_the_clock(tmp_path: Path) -> None:
    started = time.monotonic()
    async with ReplayExchange.from_files([_ticks(tmp_path)], speed=20) as ex:
        assert ex.now_ms == 999_999                       # just before the first trade
        await ex.wait_finished(timeout=10)
        elapsed = time.monotonic() - started
        assert ex.now_ms >= 1_009_000
    assert 0.4 <= elapsed < 5                              # 9 s of trades at 20x: 0.45 s


async def test_rest_never_shows_the_future(tmp_path: Path) -> None:
    async with ReplayExchange.from_files([_ticks(tmp_path)], speed=10) as ex, \
            httpx.AsyncClient(base_url=ex.rest_url) as client:
        for _ in range(5):
            await ex.wait_until(ex.now_ms + 1500, timeout=5)
            rows = (await client.get("/api/v3/aggTrades", params={"symbol": "AAAUSDT"})).json()
            now = (await client.get("/api/v3/time")).json()["serverTime"]
            assert rows and rows[-1]["T"] <= now


async def test_pause_freezes_the_clock_and_resume_goes_on(tmp_path: Path) -> None:
    async with ReplayExchange.from_files([_ticks(tmp_path)], speed=10) as ex:
        await ex.wait_until(1_002_000, timeout=5)
        ex.pause()
        frozen = ex.now_ms
        await asyncio.sleep(0.3)
        assert ex.now_ms == frozen
        ex.resume()
        await ex.wait_until(frozen + 2000, timeout=5)
        ex.set_speed(0)
        await ex.wait_finished(timeout=5)


async def test_progress_reports_until_done(tmp_path: Path) -> None:
    seen: list[ReplayProgress] = []
    async with ReplayExchange.from_files([_ticks(tmp_path)], speed=0, progress=seen.append,
                                         progress_every_s=0.0) as ex:
        await ex.wait_finished(timeout=5)
    assert seen[-1] == ReplayProgress(10, 10, 1_009_000, True)
    assert [p.published for p in seen] == sorted(p.published for p in seen)
    assert seen[-1].line() == "replay: 10/10 trades (100.0%), now 1970-01-01T00:16:49Z, done"


@pytest.mark.data
async def test_two_replays_send_the_same_frames(shared_data: Path) -> None:  # noqa: F811
    async def frames() -> list[str]:
        async with ReplayExchange.from_files([shared_data / SPOT_TRADES_FILE], speed=0,
                                             paused=True) as ex, \
                websockets.connect(ex.ws_url + "/stream?streams=btcusdt@trade/ethusdt@aggTrade/"
                                   "btcusdt@kline_1m", max_queue=None) as ws:
            await ex.wait_subscribed("btcusdt@kline_1m", timeout=5)
            ex.resume()
            target = 1_723_161_255_341 + 90_000
            await ex.wait_until(target, timeout=20)
            ex.pause()
            out = []
            with pytest.raises(TimeoutError):
                while True:
                    out.append(await asyncio.wait_for(ws.recv(), 1))  # type: ignore[arg-type]
            return out
    first, second = await frames(), await frames()
    assert len(first) > 1000 and first == second


@pytest.mark.data
async def test_usdm_venue_serves_fapi(shared_data: Path) -> None:  # noqa: F811
    trades = binance_usdm_trades("ETHUSDT")
    async with ReplayExchange.from_files([shared_data / USDM_TRADES_FILE], speed=0,
                                         paused=True, venue="usdm") as ex, \
            httpx.AsyncClient(base_url=ex.rest_url) as client:
        await ex.run_until(int(trades["time_ms"].iloc[-1]))
        assert (await client.get("/api/v3/klines", params={
            "symbol": "ETHUSDT", "interval": "1m"})).status_code == 404
        rows = (await client.get("/fapi/v1/aggTrades", params={"symbol": "ETHUSDT",
                                                               "limit": 3})).json()
        assert [r["a"] for r in rows] == trades["trade_id"].tail(3).tolist()
        assert rows[-1]["p"] == f"{trades['price'].iloc[-1]:.2f}"   # the symbol's own precision
        assert set(rows[0]) == {"a", "p", "q", "f", "l", "T", "m"}
        klines = (await client.get("/fapi/v1/klines", params={"symbol": "ETHUSDT",
                                                              "interval": "5m"})).json()
        assert sum(k[8] for k in klines) == len(trades)
        info = (await client.get("/fapi/v1/exchangeInfo")).json()
        assert info["symbols"][0]["contractType"] == "PERPETUAL"
    async with ReplayExchange.from_files([shared_data / USDM_TRADES_FILE], speed=0,
                                         paused=True, venue="usdm") as ex, \
            websockets.connect(ex.ws_url + "/stream?streams=ethusdt@trade/ethusdt@aggTrade") as ws:
        await ex.wait_subscribed("ethusdt@aggTrade", timeout=5)
        await ex.run_until(int(trades["time_ms"].iloc[0]))
        frames = {f["stream"]: f["data"] for f in
                  [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]}
        assert frames["ethusdt@trade"]["X"] == "MARKET" and "M" not in frames["ethusdt@trade"]
        assert "M" not in frames["ethusdt@aggTrade"]


@pytest.mark.data
async def test_forming_kline_updates(shared_data: Path) -> None:  # noqa: F811
    btc = binance_spot_trades("BTCUSDT")
    first = int(btc["time_ms"].iloc[0])
    minute = first // 60_000 * 60_000
    async with ReplayExchange.from_files([shared_data / SPOT_TRADES_FILE], speed=0,
                                         paused=True, kline_update_s=0.05) as ex, \
            websockets.connect(ex.ws_url + "/ws/btcusdt@kline_1m") as ws:
        await ex.wait_subscribed("btcusdt@kline_1m", timeout=5)
        now = first + 20_000
        await ex.run_until(now)
        update = json.loads(await asyncio.wait_for(ws.recv(), 5))
    so_far = btc[btc["time_ms"] <= now]
    k = update["k"]
    assert update["E"] == now and k["x"] is False and k["t"] == minute
    assert k["n"] == len(so_far) and k["L"] == int(so_far["trade_id"].iloc[-1])
    assert float(k["c"]) == so_far["price"].iloc[-1] and float(k["h"]) == so_far["price"].max()
