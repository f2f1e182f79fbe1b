"""REST market data: klines equal a pandas resample of the same trades, aggTrades pages, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from alerts.market.exchange import ReplayExchange
from tests.support.market_data import binance_spot_trades

pytestmark = [pytest.mark.asyncio, pytest.mark.data]

_RULES = {"1m": "1min", "5m": "5min", "15m": "15min", "1h": "1h", "4h": "4h", "1d": "1D"}


def _reference_klines(trades: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Binance klines computed independently: pandas resample, flat bars carried forward."""
    frame = trades.assign(
        when=pd.to_datetime(trades["time_ms"], unit="ms"),
        quote=trades["price"] * trades["qty"],
        taker=np.where(trades["is_buyer_maker"].astype(str).str.lower() == "true", 0.0,
                       trades["qty"]),
    ).set_index("when")
    bars = frame.resample(rule).agg({"price": ["first", "max", "min", "last", "count"],
                                     "qty": "sum", "quote": "sum", "taker": "sum"})
    bars.columns = ["open", "high", "low", "close", "trades", "volume", "quote_volume",
                    "taker_volume"]
    close = bars["close"].ffill()
    for column in ("open", "high", "low"):
        bars[column] = bars[column].fillna(close)
    bars["close"] = close
    bars["open_ms"] = (bars.index - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
    return bars.reset_index(drop=True)


def _check_rows(rows: list[list], ref: pd.DataFrame, step_ms: int | None) -> None:
    assert [r[0] for r in rows] == ref["open_ms"].tolist()
    for row, bar in zip(rows, ref.itertuples()):
        assert len(row) == 12 and row[11] == "0"
        assert [float(v) for v in row[1:5]] == [bar.open, bar.high, bar.low, bar.close]
        assert float(row[5]) == pytest.approx(bar.volume, rel=1e-9, abs=1e-8)
        assert float(row[7]) == pytest.approx(bar.quote_volume, rel=1e-9, abs=1e-8)
        assert row[8] == bar.trades
        assert float(row[9]) == pytest.approx(bar.taker_volume, rel=1e-9, abs=1e-8)
        if step_ms is not None:
            assert row[6] == row[0] + step_ms - 1


@pytest.mark.parametrize("interval", list(_RULES))
async def test_klines_equal_a_pandas_resample(spot: ReplayExchange, rest: httpx.AsyncClient,
                                              interval: str) -> None:
    trades = binance_spot_trades("BTCUSDT")
    await spot.run_until(int(trades["time_ms"].max()))
    response = await rest.get("/api/v3/klines", params={"symbol": "BTCUSDT",
                                                        "interval": interval})
    assert response.status_code == 200
    ref = _reference_klines(trades, _RULES[interval])
    step = int(pd.Timedelta(_RULES[interval]).total_seconds() * 1000)
    _check_rows(response.json(), ref, step)


async def test_klines_only_up_to_now_and_paged_by_time(spot: ReplayExchange,
                                                       rest: httpx.AsyncClient) -> None:
    trades = binance_spot_trades("ETHUSDT")
    middle = int(trades["time_ms"].iloc[len(trades) // 2])
    await spot.run_until(middle)
    ref = _reference_klines(trades[trades["time_ms"] <= middle], "1min")
    latest = (await rest.get("/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m",
                                                       "limit": 2})).json()
    _check_rows(latest, ref.tail(2), 60_000)
    start = int(ref["open_ms"].iloc[1])
    paged = (await rest.get("/api/v3/klines", params={
        "symbol": "ETHUSDT", "interval": "1m", "startTime": start - 1, "limit": 3})).json()
    _check_rows(paged, ref.iloc[1:4], 60_000)
    ended = (await rest.get("/api/v3/klines", params={
        "symbol": "ETHUSDT", "interval": "1m", "endTime": start + 1, "limit": 1})).json()
    _check_rows(ended, ref.iloc[1:2], 60_000)


async def test_quiet_minutes_are_flat_bars(tmp_path: Path) -> None:
    rows = ["symbol,trade_id,price,qty,time_ms,is_buyer_maker",
            "AAAUSDT,1,10.5,2,60000,false", "AAAUSDT,2,11,1,61000,true",
            "AAAUSDT,3,9.5,1,245000,false", "BBBUSDT,1,3,1,30000,true"]
    path = tmp_path / "gaps.csv.gz"
    path.write_bytes(gzip.compress("\n".join(rows).encode()))
    async with ReplayExchange.from_files([path], speed=0, paused=True) as ex:
        await ex.run_until(300_500)
        async with httpx.AsyncClient(base_url=ex.rest_url) as client:
            got = (await client.get("/api/v3/klines", params={"symbol": "AAAUSDT",
                                                             "interval": "1m"})).json()
    frame = pd.DataFrame([r.split(",") for r in rows[1:4]], columns=rows[0].split(","))
    trades = frame.astype({"trade_id": int, "price": float, "qty": float, "time_ms": int})
    ref = _reference_klines(trades, "1min")
    # Through now (00:05:00.500): the bars after the last trade are flat too.
    tail = pd.DataFrame({"open": 9.5, "high": 9.5, "low": 9.5, "close": 9.5, "trades": 0,
                         "volume": 0.0, "quote_volume": 0.0, "taker_volume": 0.0,
                         "open_ms": [300_000]})
    _check_rows(got, pd.concat([ref, tail], ignore_index=True), 60_000)
    assert got[1][8] == 0 and got[1][1:5] == ["11.00000000"] * 4


async def test_agg_trades_page_with_from_id(spot: ReplayExchange, rest: httpx.AsyncClient) -> None:
    trades = binance_spot_trades("ETHUSDT")
    cut = int(trades["time_ms"].iloc[-200])
    await spot.run_until(cut)
    expected = trades[trades["time_ms"] <= cut]
    pages: list[dict] = []
    from_id = int(trades["trade_id"].iloc[0])
    while True:
        response = await rest.get("/api/v3/aggTrades", params={"symbol": "ETHUSDT",
                                                               "fromId": from_id, "limit": 1000})
        assert response.status_code == 200
        page = response.json()
        if not page:
            break
        pages += page
        from_id = page[-1]["a"] + 1
    assert [p["a"] for p in pages] == expected["trade_id"].tolist()
    assert [p["f"] for p in pages] == [p["l"] for p in pages] == [p["a"] for p in pages]
    assert [float(p["p"]) for p in pages] == expected["price"].tolist()
    assert [p["T"] for p in pages] == expected["time_ms"].tolist()
    latest = (await rest.get("/api/v3/aggTrades", params={"symbol": "ETHUSDT"})).json()
    assert len(latest) == 500 and latest[-1]["a"] == pages[-1]["a"]
    window = (await rest.get("/api/v3/aggTrades", params={
        "symbol": "ETHUSDT", "startTime": pages[10]["T"], "endTime": pages[20]["T"]})).json()
    assert window[0]["T"] == pages[10]["T"] and window[-1]["T"] == pages[20]["T"]


@pytest.mark.parametrize(("path", "params", "status", "body"), [
    ("/api/v3/klines", {"symbol": "NOPEUSDT", "interval": "1m"}, 400,
     {"code": -1121, "msg": "Invalid symbol."}),
    ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "2m"}, 400,
     {"code": -1120, "msg": "Invalid interval."}),
    ("/api/v3/klines", {"interval": "1m"}, 400,
     {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, "
                            "or malformed."}),
    ("/api/v3/depth", {"symbol": "BTCUSDT"}, 404, {"code": -1000, "msg": "Not found."}),
    ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "fromId": "x1"}, 400,
     {"code": -1100, "msg": "Illegal characters found in parameter 'fromId'; legal range is "
                            "'^[0-9]{1,20}$'."}),
])
async def test_errors_have_binance_bodies(rest: httpx.AsyncClient, path: str, params: dict,
                                          status: int, body: dict) -> None:
    response = await rest.get(path, params=params)
    assert (response.status_code, response.json()) == (status, body)
    assert "X-MBX-USED-WEIGHT-1M" in response.headers


async def test_price_time_ping_and_exchange_info(spot: ReplayExchange,
                                                 rest: httpx.AsyncClient) -> None:
    eth = binance_spot_trades("ETHUSDT")
    at = int(eth["time_ms"].iloc[100])
    await spot.run_until(at)
    assert (await rest.get("/api/v3/time")).json() == {"serverTime": at}
    assert (await rest.get("/api/v3/ping")).json() == {}
    price = (await rest.get("/api/v3/ticker/price", params={"symbol": "ETHUSDT"})).json()
    last = eth[eth["time_ms"] <= at]["price"].iloc[-1]
    assert price["symbol"] == "ETHUSDT" and float(price["price"]) == last
    both = (await rest.get("/api/v3/ticker/price",
                           params={"symbols": '["ETHUSDT","BTCUSDT"]'})).json()
    assert [p["symbol"] for p in both] == ["ETHUSDT", "BTCUSDT"]
    info = (await rest.get("/api/v3/exchangeInfo")).json()
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    assert info["symbols"][0]["baseAsset"] == "BTC" and info["symbols"][0]["quoteAsset"] == "USDT"
    assert info["rateLimits"][0] == {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                     "intervalNum": 1, "limit": 6000}
