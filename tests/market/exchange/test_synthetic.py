"""The synthetic feed: deterministic for a seed, plausible trades, served like recorded ones."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
import websockets

from alerts.market.exchange import ReplayExchange, SyntheticFeed, TradeChunk
from alerts.market.exchange.trades import merge_chunks

START = 1_750_000_000_000


def _run(seed: int, chunks: int = 30, symbols: int = 12, rate: float = 80.0) -> TradeChunk:
    feed = SyntheticFeed(symbols, seed=seed, rate=rate, start_ms=START)
    parts = [feed.next_chunk() for _ in range(chunks)]
    return merge_chunks([p for p in parts if p is not None])


def test_the_same_seed_gives_the_same_trades() -> None:
    a, b, c = _run(5), _run(5), _run(6)
    for column in ("symbol", "trade_id", "price", "qty", "time_ms", "buyer_maker"):
        assert np.array_equal(getattr(a, column), getattr(b, column))
    assert len(a) != len(c) or not np.array_equal(a.price, c.price)


def test_trades_are_plausible() -> None:
    trades = _run(7, chunks=60, rate=80.0)
    # Poisson arrivals: 60 s at 80/s is 4800 trades, give or take 5 sigma (~350).
    assert abs(len(trades) - 4800) < 350
    assert np.all(np.diff(trades.time_ms) >= 0)
    assert trades.time_ms.min() >= START and trades.time_ms.max() < START + 60_000
    assert np.all(trades.price > 0) and np.all(trades.qty > 0)
    counts = np.bincount(trades.symbol, minlength=12)
    assert counts[0] > counts[-1] > 0            # the first symbols are the busiest
    for index in range(12):
        ids = trades.trade_id[trades.symbol == index]
        assert ids.tolist() == list(range(1, len(ids) + 1))     # contiguous from 1
        prices = trades.price[trades.symbol == index]
        moves = np.abs(np.diff(np.log(prices)))
        assert moves.max() < 0.01                 # a walk, not jumps
    btc = trades.price[trades.symbol == 0]
    assert 60_000 < btc.min() and btc.max() < 70_000
    notional = trades.price * trades.qty
    assert 50 < np.median(notional) < 800
    assert 0.4 < trades.buyer_maker.mean() < 0.6


def test_names() -> None:
    assert list(SyntheticFeed(10).symbols)[:2] == ["BTCUSDT", "ETHUSDT"]
    assert list(SyntheticFeed(10).symbols)[-1] == "SYM00009USDT"
    with pytest.raises(ValueError):
        SyntheticFeed(3, rate=0)


@pytest.mark.asyncio
async def test_served_streams_match_rest_history() -> None:
    async with ReplayExchange.synthetic(50, seed=2, rate=500, start_ms=START,
                                        paused=True) as ex:
        assert len(ex.symbols) == 50
        async with websockets.connect(ex.ws_url + "/ws/ethusdt@aggTrade", max_queue=None) as ws:
            await ex.wait_subscribed("ethusdt@aggTrade", timeout=5)
            await ex.run_until(START + 5_000)
            async with httpx.AsyncClient(base_url=ex.rest_url) as client:
                rows = (await client.get("/api/v3/aggTrades", params={
                    "symbol": "ETHUSDT", "startTime": START, "limit": 1000})).json()
            frames = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in rows]
        assert rows and [{k: f[k] for k in rows[0]} for f in frames] == rows
        assert rows[-1]["T"] <= START + 5_000
