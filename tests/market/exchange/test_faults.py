"""Faults: dropped connections, stalls, malformed and wrong frames, reordering, REST rate limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import pytest_asyncio
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from alerts.market.exchange import ReplayExchange

pytestmark = pytest.mark.asyncio

START = 1_700_000_000_000


@pytest_asyncio.fixture
async def ex() -> AsyncIterator[ReplayExchange]:
    async with ReplayExchange.synthetic(["AAAUSDT"], seed=3, rate=200, start_ms=START,
                                        paused=True) as exchange:
        yield exchange


@pytest_asyncio.fixture
async def ws(ex: ReplayExchange) -> AsyncIterator[websockets.ClientConnection]:
    async with websockets.connect(ex.ws_url + "/ws/aaausdt@trade", ping_interval=None) as client:
        await ex.wait_subscribed("aaausdt@trade", timeout=5)
        yield client


async def _ids(ex: ReplayExchange, until_ms: int) -> list[int]:
    """Trade ids the exchange holds up to ``until_ms`` (from REST, independent of the stream)."""
    async with httpx.AsyncClient(base_url=ex.rest_url) as client:
        rows = (await client.get("/api/v3/aggTrades", params={
            "symbol": "AAAUSDT", "startTime": START, "endTime": until_ms, "limit": 1000})).json()
    return [r["a"] for r in rows]


async def _recv(ws: websockets.ClientConnection, count: int) -> list[str]:
    return [await asyncio.wait_for(ws.recv(), 5) for _ in range(count)]  # type: ignore[misc]


async def test_drop_now_cuts_every_connection(ex: ReplayExchange,
                                              ws: websockets.ClientConnection) -> None:
    async with websockets.connect(ex.ws_url + "/stream?streams=aaausdt@aggTrade") as other:
        await ex.wait_connections(2, timeout=5)
        assert ex.faults.drop() == 2
        for client in (ws, other):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 5)
            assert closed.value.rcvd is None        # no close frame: the TCP connection was cut
    await ex.wait_connections(0, timeout=5)
    async with websockets.connect(ex.ws_url + "/ws/aaausdt@trade", max_queue=None) as again:
        await ex.wait_subscribed("aaausdt@trade", timeout=5)
        await ex.run_until(START + 1000)
        assert json.loads(await asyncio.wait_for(again.recv(), 5))["e"] == "trade"


async def test_drop_after_n_messages(ex: ReplayExchange, ws: websockets.ClientConnection) -> None:
    ex.faults.drop(after_messages=5)
    await ex.run_until(START + 1000)
    expected = await _ids(ex, START + 1000)
    assert len(expected) > 5
    got = [json.loads(m)["t"] for m in await _recv(ws, 5)]
    assert got == expected[:5]
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is None


async def test_drop_after_for_every_new_connection() -> None:
    async with ReplayExchange.synthetic(["AAAUSDT"], seed=3, rate=200, start_ms=START,
                                        paused=True, drop_after_messages=3) as ex, \
            websockets.connect(ex.ws_url + "/ws/aaausdt@trade") as client:
        await ex.wait_subscribed("aaausdt@trade", timeout=5)
        await ex.run_until(START + 1000)
        assert len(await _recv(client, 3)) == 3
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.recv(), 5)


async def test_stall_is_silent_then_the_stream_resumes(ex: ReplayExchange,
                                                       ws: websockets.ClientConnection) -> None:
    assert ex.faults.stall(1.0) == 1
    await ex.run_until(START + 500)                          # published during the stall: lost
    pong = await ws.ping()
    with pytest.raises(TimeoutError):                          # nothing arrives, not even a pong
        await asyncio.wait_for(ws.recv(), 0.6)
    assert not pong.done()
    await asyncio.wait_for(pong, 5)                            # read again after the stall
    await asyncio.sleep(0)
    stalled_ids = set(await _ids(ex, START + 500))
    await ex.run_until(START + 1000)
    after = [i for i in await _ids(ex, START + 1000) if i not in stalled_ids]
    got = [json.loads(m)["t"] for m in await _recv(ws, len(after))]
    assert got == after


async def test_malformed_and_wrong_frames_come_before_real_ones(
        ex: ReplayExchange, ws: websockets.ClientConnection) -> None:
    ex.faults.malformed_json(2)
    ex.faults.wrong_fields(1)
    await ex.run_until(START + 1000)
    expected = await _ids(ex, START + 1000)
    frames = await _recv(ws, 3 + len(expected))
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[0])
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[2])
    wrong = json.loads(frames[4])
    assert wrong["e"] == "trade" and wrong["p"] == "not-a-number" and wrong["s"] == 0
    good = [json.loads(f) for i, f in enumerate(frames) if i not in (0, 2, 4)]
    assert [g["t"] for g in good] == expected


async def test_reorder_swaps_pairs(ex: ReplayExchange, ws: websockets.ClientConnection) -> None:
    ex.faults.reorder(2)
    await ex.run_until(START + 1000)
    expected = await _ids(ex, START + 1000)
    got = [json.loads(m)["t"] for m in await _recv(ws, len(expected))]
    swapped = expected[:]
    swapped[0:2], swapped[2:4] = swapped[1::-1], swapped[3:1:-1]
    assert got == swapped
    assert sorted(got) == expected and not np.all(np.diff(got) > 0)


async def test_rate_limit_fault_then_ban_for_ignoring_it() -> None:
    async with ReplayExchange.synthetic(["AAAUSDT"], seed=3, start_ms=START, paused=True,
                                        ban_after=2) as ex, \
            httpx.AsyncClient(base_url=ex.rest_url) as client:
        assert (await client.get("/api/v3/ping")).status_code == 200
        ex.faults.rate_limit(30)
        first = await client.get("/api/v3/time")
        assert first.status_code == 429 and first.json()["code"] == -1003
        assert 29 <= int(first.headers["Retry-After"]) <= 30
        assert (await client.get("/api/v3/time")).status_code == 429
        banned = await client.get("/api/v3/time")
        assert banned.status_code == 418 and banned.json()["code"] == -1003
        assert int(banned.headers["Retry-After"]) == 120


async def test_refused_connections_during_an_outage(ex: ReplayExchange) -> None:
    ex.faults.refuse_connections(0.5)
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(ex.ws_url + "/ws/aaausdt@trade"):
            pass
    assert refused.value.response.status_code == 503
    assert json.loads(refused.value.response.body)["code"] == -1008
    async with httpx.AsyncClient(base_url=ex.rest_url) as client:   # REST still answers
        assert (await client.get("/api/v3/ping")).status_code == 200
    async with asyncio.timeout(5):
        while True:                      # a client retrying with back-off gets in afterwards
            try:
                async with websockets.connect(ex.ws_url + "/ws/aaausdt@trade"):
                    break
            except InvalidStatus:
                await asyncio.sleep(0.1)


async def test_a_held_frame_is_not_lost_when_the_stream_goes_quiet(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("symbol,trade_id,price,qty,time_ms\nAAAUSDT,1,5,1,1000\n"
                    "AAAUSDT,2,6,1,5000\nAAAUSDT,3,7,1,6000\n")
    async with ReplayExchange.from_files([path], speed=0, paused=True) as ex, \
            websockets.connect(ex.ws_url + "/ws/aaausdt@trade") as client:
        await ex.wait_subscribed("aaausdt@trade", timeout=5)
        ex.faults.reorder(1)
        await ex.run_until(1000)
        assert [json.loads(m)["t"] for m in await _recv(client, 1)] == [1]   # held, then sent
        await ex.run_until(6000)
        assert [json.loads(m)["t"] for m in await _recv(client, 2)] == [2, 3]
