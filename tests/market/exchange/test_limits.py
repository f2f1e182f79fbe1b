"""Binance's limits: request weight (429, then 418), 5 messages/s, the stream cap, pings,
connection lifetime and the serverShutdown event."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from alerts.market.exchange import ReplayExchange
from alerts.market.exchange.limits import WeightLimiter


class FrozenClock:
    """A wall clock that moves only when told (REST weight minutes)."""

    def __init__(self, start: float = 1_699_999_990.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def small() -> AsyncIterator[ReplayExchange]:
    """A synthetic exchange with short timers, paused."""
    async with ReplayExchange.synthetic(3, seed=1, rate=20, start_ms=1_700_000_000_000,
                                        paused=True, ping_interval_s=0.3, pong_timeout_s=0.7,
                                        max_lifetime_s=60) as ex:
        yield ex


async def _closed(ws: websockets.ClientConnection, timeout: float = 5) -> ConnectionClosed:
    """Read until the connection closes; return how it closed."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc
    raise AssertionError("still open")


@pytest.mark.asyncio
async def test_weight_headers_then_429_then_418() -> None:
    clock = FrozenClock()
    async with ReplayExchange.synthetic(2, seed=1, start_ms=0, paused=True, weight_limit=10,
                                        ban_after=2, ban_s=300, wall_clock=clock) as ex, \
            httpx.AsyncClient(base_url=ex.rest_url) as client:
        used = []
        for _ in range(2):   # klines weigh 2, aggTrades 4
            r = await client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"})
            used.append(int(r.headers["X-MBX-USED-WEIGHT-1M"]))
            r = await client.get("/api/v3/aggTrades", params={"symbol": "BTCUSDT"})
            used.append(int(r.headers["X-MBX-USED-WEIGHT-1M"]))
        assert used == [2, 6, 8, 12]
        assert r.status_code == 429
        assert r.json() == {"code": -1003, "msg": "Too much request weight used; current limit "
                            "is 10 request weight per 1 MINUTE. Please use WebSocket Streams "
                            "for live updates to avoid polling the API."}
        assert r.headers["Retry-After"] == "50"        # the minute ends 50 s later
        clock.now += 10                                   # ignoring Retry-After: strikes
        r = await client.get("/api/v3/ping")
        assert (r.status_code, r.headers["Retry-After"]) == (429, "40")
        r = await client.get("/api/v3/ping")
        assert r.status_code == 418
        banned_until = int((clock.now + 300) * 1000)
        assert r.json() == {"code": -1003, "msg": f"Way too much request weight used; IP banned "
                            f"until {banned_until}. Please use WebSocket Streams for live "
                            "updates to avoid bans."}
        assert r.headers["Retry-After"] == "300"
        clock.now += 120                                  # a new minute, still banned
        assert (await client.get("/api/v3/ping")).status_code == 418
        clock.now += 181
        r = await client.get("/api/v3/ping")
        assert (r.status_code, r.headers["X-MBX-USED-WEIGHT-1M"]) == (200, "1")


def test_a_client_that_waits_for_retry_after_is_never_banned() -> None:
    clock = FrozenClock(60.0)
    limiter = WeightLimiter(4, ban_after=1, clock=clock)
    assert [limiter.charge("ip", 2).status for _ in range(3)] == [200, 200, 429]
    clock.now = 120.0
    assert limiter.charge("ip", 2).status == 200
    limiter.force(5)
    verdict = limiter.charge("ip", 1)
    assert (verdict.status, verdict.retry_after_s) == (429, 5)
    clock.now += 5
    assert limiter.charge("ip", 1).status == 200
    assert limiter.charge("other", 100).status == 429     # weight is per IP


@pytest.mark.asyncio
async def test_more_than_five_messages_a_second_disconnects(small: ReplayExchange) -> None:
    async with websockets.connect(small.ws_url + "/ws") as ws:
        for i in range(5):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        replies = [json.loads(await ws.recv())["id"] for _ in range(5)]
        assert replies == [0, 1, 2, 3, 4]
        await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":5}')
        closed = await _closed(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1008


@pytest.mark.asyncio
async def test_pings_count_as_messages(small: ReplayExchange) -> None:
    async with websockets.connect(small.ws_url + "/ws", ping_interval=None) as ws:
        for _ in range(6):
            await ws.ping()
        closed = await _closed(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1008


@pytest.mark.asyncio
async def test_five_messages_spread_over_time_are_fine() -> None:
    async with ReplayExchange.synthetic(2, seed=1, start_ms=0, paused=True) as small, \
            websockets.connect(small.ws_url + "/ws", ping_interval=None) as ws:
        loop = asyncio.get_running_loop()
        for i in range(8):
            started = loop.time()
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            assert json.loads(await ws.recv()) == {"result": [], "id": i}
            await asyncio.sleep(max(0.0, 0.25 - (loop.time() - started)))
        assert small.connections == 1


@pytest.mark.asyncio
async def test_stream_cap() -> None:
    async with ReplayExchange.synthetic(2, seed=1, start_ms=0, paused=True,
                                        max_streams=3) as ex:
        names = ["btcusdt@trade", "ethusdt@trade", "btcusdt@aggTrade", "ethusdt@aggTrade"]
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(ex.ws_url + "/stream?streams=" + "/".join(names)):
                pass
        assert refused.value.response.status_code == 400
        assert json.loads(refused.value.response.body) == {
            "code": 2, "msg": "Invalid request: too many streams"}
        async with websockets.connect(ex.ws_url + "/stream?streams=" + "/".join(names[:3])) as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": names[3:], "id": 1}))
            assert json.loads(await ws.recv()) == {
                "error": {"code": 2, "msg": "Invalid request: too many streams"}, "id": 1}
            assert ex.subscribers("ethusdt@aggTrade") == 0


@pytest.mark.asyncio
async def test_default_cap_is_1024_streams() -> None:
    async with ReplayExchange.synthetic(2, seed=1, start_ms=0, paused=True) as ex, \
            websockets.connect(ex.ws_url + "/ws") as ws:
        names = [f"s{i}usdt@trade" for i in range(1025)]
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": names[:1024], "id": 1}))
        assert await ws.recv() == '{"result":null,"id":1}'
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": names[1024:], "id": 2}))
        assert json.loads(await ws.recv())["error"]["code"] == 2


@pytest.mark.asyncio
async def test_server_pings_carry_a_payload_and_pongs_keep_the_connection(
        small: ReplayExchange) -> None:
    async with websockets.connect(small.ws_url + "/ws", ping_interval=None) as ws:
        pings: list[bytes] = []
        three = asyncio.Event()
        original = ws.protocol.recv_frame

        def spy(frame):  # type: ignore[no-untyped-def]
            if frame.opcode.name == "PING":
                pings.append(bytes(frame.data))
                if len(pings) == 3:
                    three.set()
            original(frame)

        ws.protocol.recv_frame = spy  # type: ignore[method-assign]
        started = time.monotonic()
        await asyncio.wait_for(three.wait(), 5)
        assert time.monotonic() - started > 0.7      # past the pong timeout: pongs kept it open
        assert len(set(pings)) == len(pings) and all(p.isdigit() for p in pings)
        await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')
        assert await ws.recv() == '{"result":[],"id":1}'


@pytest.mark.asyncio
async def test_no_pong_in_time_disconnects(small: ReplayExchange) -> None:
    async with websockets.connect(small.ws_url + "/ws", ping_interval=None) as ws:
        ws.transport.pause_reading()          # never sees the pings, so never answers
        started = time.monotonic()
        await small.wait_connections(0, timeout=5)
        elapsed = time.monotonic() - started
        ws.transport.resume_reading()
        closed = await _closed(ws)
    assert 0.7 <= elapsed < 4
    assert closed.rcvd is None or closed.rcvd.code == 1008


@pytest.mark.asyncio
async def test_connections_end_at_their_max_lifetime() -> None:
    async with ReplayExchange.synthetic(2, seed=1, start_ms=0, paused=True,
                                        max_lifetime_s=0.5) as ex, \
            websockets.connect(ex.ws_url + "/ws/btcusdt@trade") as ws:
        started = time.monotonic()
        closed = await _closed(ws)
        assert time.monotonic() - started >= 0.4
    assert closed.rcvd is not None and closed.rcvd.code == 1001


@pytest.mark.asyncio
async def test_server_shutdown_event_raw_and_combined() -> None:
    ex = ReplayExchange.synthetic(2, seed=1, start_ms=5_000, paused=True)
    await ex.start()
    raw = await websockets.connect(ex.ws_url + "/ws/btcusdt@trade")
    combined = await websockets.connect(ex.ws_url + "/stream?streams=btcusdt@trade")
    await ex.wait_connections(2, timeout=5)
    await ex.stop()
    assert json.loads(await raw.recv()) == {"e": "serverShutdown", "E": 4_999}
    assert json.loads(await combined.recv()) == {
        "stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 4_999}}
    for ws in (raw, combined):
        closed = await _closed(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1001
