"""Stream frames: raw and combined, trade/aggTrade payloads from the recorded trades, klines."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from alerts.market.exchange import ReplayExchange
from tests.support.market_data import binance_spot_trades

pytestmark = [pytest.mark.asyncio, pytest.mark.data]


async def _frames(ws: websockets.ClientConnection, count: int) -> list[dict]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(count)]


async def test_raw_trade_frames_are_the_recorded_trades(spot: ReplayExchange) -> None:
    trades = binance_spot_trades("BTCUSDT").head(50)
    async with websockets.connect(spot.ws_url + "/ws/btcusdt@trade") as ws:
        await spot.wait_subscribed("btcusdt@trade", timeout=5)
        await spot.run_until(int(trades["time_ms"].iloc[-1]))
        frames = await _frames(ws, len(trades))
    assert [f["t"] for f in frames] == trades["trade_id"].tolist()
    assert [float(f["p"]) for f in frames] == trades["price"].tolist()
    assert [float(f["q"]) for f in frames] == trades["qty"].tolist()
    assert [f["T"] for f in frames] == trades["time_ms"].tolist()
    makers = (trades["is_buyer_maker"].astype(str).str.lower() == "true").tolist()
    assert [f["m"] for f in frames] == makers
    assert set(frames[0]) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
    assert {f["e"] for f in frames} == {"trade"} and {f["s"] for f in frames} == {"BTCUSDT"}


async def test_combined_frames_interleave_symbols_in_time_order(spot: ReplayExchange) -> None:
    btc, eth = binance_spot_trades("BTCUSDT"), binance_spot_trades("ETHUSDT")
    url = spot.ws_url + "/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade"
    until = int(eth["time_ms"].iloc[30])
    expected = sorted(
        [(t, i, "BTCUSDT") for t, i in zip(btc["time_ms"], btc["trade_id"]) if t <= until]
        + [(t, i, "ETHUSDT") for t, i in zip(eth["time_ms"], eth["trade_id"]) if t <= until])
    async with websockets.connect(url) as ws:
        await spot.wait_subscribed("ethusdt@aggTrade", timeout=5)
        await spot.run_until(until)
        frames = await _frames(ws, len(expected))
    assert [set(f) for f in frames[:1]] == [{"stream", "data"}]
    assert [(f["data"]["T"], f["data"]["a"], f["data"]["s"]) for f in frames] == [
        (int(t), int(i), s) for t, i, s in expected]
    assert all(f["stream"] == f["data"]["s"].lower() + "@aggTrade" for f in frames)
    assert all(f["data"]["a"] == f["data"]["f"] == f["data"]["l"] for f in frames)


async def test_subscribe_adds_a_stream_to_a_live_connection(spot: ReplayExchange) -> None:
    eth = binance_spot_trades("ETHUSDT")
    async with websockets.connect(spot.ws_url + "/ws") as ws:
        await ws.send('{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":1}')
        assert await ws.recv() == '{"result":null,"id":1}'
        first = eth[eth["time_ms"] <= eth["time_ms"].iloc[4]]
        await spot.run_until(int(first["time_ms"].iloc[-1]))
        frames = await _frames(ws, len(first))
        assert [f["t"] for f in frames] == first["trade_id"].tolist()
        await ws.send('{"method":"SET_PROPERTY","params":["combined",true],"id":2}')
        assert await ws.recv() == '{"result":null,"id":2}'
        after = eth.iloc[len(first)]
        await spot.run_until(int(after["time_ms"]))
        wrapped = await _frames(ws, 1)
        assert wrapped[0]["stream"] == "ethusdt@trade"
        assert wrapped[0]["data"]["t"] == int(after["trade_id"])


async def test_closed_klines_arrive_at_each_bar_end(spot: ReplayExchange) -> None:
    btc = binance_spot_trades("BTCUSDT")
    first = int(btc["time_ms"].iloc[0])
    minute = first // 60_000 * 60_000
    async with websockets.connect(spot.ws_url + "/ws/btcusdt@kline_1m") as ws:
        await spot.wait_subscribed("btcusdt@kline_1m", timeout=5)
        await spot.run_until(minute + 2 * 60_000)
        frames = await _frames(ws, 2)
    in_first = btc[btc["time_ms"] < minute + 60_000]
    bar = frames[0]["k"]
    assert [f["k"]["x"] for f in frames] == [True, True]
    assert [f["k"]["t"] for f in frames] == [minute, minute + 60_000]
    assert frames[0]["E"] == minute + 60_000 and bar["T"] == minute + 59_999
    assert (bar["f"], bar["L"], bar["n"]) == (int(in_first["trade_id"].iloc[0]),
                                              int(in_first["trade_id"].iloc[-1]), len(in_first))
    assert float(bar["o"]) == in_first["price"].iloc[0]
    assert float(bar["c"]) == in_first["price"].iloc[-1]
    assert float(bar["h"]) == in_first["price"].max()
    assert float(bar["v"]) == pytest.approx(in_first["qty"].sum(), rel=1e-9)
