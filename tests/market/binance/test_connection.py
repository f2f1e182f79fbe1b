"""``StreamConnection`` against a loopback WebSocket server speaking Binance's control protocol.

The server here is deliberately small (the full replay exchange is tested
elsewhere): it answers SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS with the
documented replies, refuses stream names it does not know with the wrapped
error frame, records when each control message arrived, and pings.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import pytest_asyncio
from websockets.asyncio.server import ServerConnection, serve

from alerts.market.binance.connection import ConnectionSettings, LinkState, StreamConnection
from alerts.market.binance.errors import BinanceRequestError
from alerts.market.binance.limits import SlidingWindowLimiter
from alerts.market.binance.messages import Reply, parse_frame

pytestmark = pytest.mark.asyncio


class Changes:
    """Notified on every recorded change, to wait on instead of sleeping."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def until(self, predicate: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._event.wait()


@dataclass
class MiniServer:
    changes: Changes
    url: str = ""
    paths: list[str] = field(default_factory=list)
    controls: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    streams: set[str] = field(default_factory=set)
    sockets: list[ServerConnection] = field(default_factory=list)
    life: list[tuple[str, int]] = field(default_factory=list)   # ("open"|"closed", socket no.)

    async def handle(self, ws: ServerConnection) -> None:
        self.sockets.append(ws)
        number = len(self.sockets)
        assert ws.request is not None
        self.paths.append(ws.request.path)
        self.life.append(("open", number))
        self.changes.notify()
        query = parse_qs(urlparse(ws.request.path).query)
        self.streams.update(query.get("streams", [""])[0].split("/"))
        try:
            await self._serve(ws)
        finally:
            self.life.append(("closed", number))
            self.changes.notify()

    async def _serve(self, ws: ServerConnection) -> None:
        async for text in ws:
            msg = json.loads(text)
            self.controls.append((time.monotonic(), msg))
            params = msg.get("params", [])
            if any(p.startswith("bad") for p in params):
                await ws.send(json.dumps({"error": {"code": 2, "msg": "Invalid request: invalid "
                                                    "stream"}, "id": msg["id"]}))
            elif msg["method"] == "SUBSCRIBE":
                self.streams.update(params)
                await ws.send(json.dumps({"result": None, "id": msg["id"]}))
            elif msg["method"] == "UNSUBSCRIBE":
                self.streams.difference_update(params)
                await ws.send(json.dumps({"result": None, "id": msg["id"]}))
            elif msg["method"] == "LIST_SUBSCRIPTIONS":
                await ws.send(json.dumps({"result": sorted(self.streams), "id": msg["id"]}))


class Recorder:
    """The FrameHandler side: frames and lifecycle calls, in order."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self.frames: list[str | bytes] = []
        self.connected = 0
        self.lost: list[str] = []

    def on_frame(self, state: LinkState, raw: str | bytes) -> bool:
        self.frames.append(raw)
        frame = parse_frame(raw)
        if isinstance(frame, Reply):
            state.resolve(frame)
        return False

    async def wait_room(self) -> None:
        return None

    async def on_connected(self, conn: StreamConnection, *, first: bool) -> None:
        self.connected += 1
        self.changes.notify()

    async def on_lost(self, conn: StreamConnection, why: str, *, stale: bool) -> None:
        self.lost.append(why)
        self.changes.notify()

    async def on_rotated(self, conn: StreamConnection, why: str) -> None:
        return None


@pytest_asyncio.fixture
async def server() -> AsyncIterator[MiniServer]:
    mini = MiniServer(Changes())
    async with serve(mini.handle, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        mini.url = f"ws://127.0.0.1:{port}"
        yield mini


async def _connected(server: MiniServer, streams: list[str], **kw: Any
                     ) -> tuple[StreamConnection, Recorder]:
    rec = Recorder(server.changes)
    conn = StreamConnection(1, ConnectionSettings(ws_url=server.url, **kw), rec,
                            SlidingWindowLimiter(300, 300.0), capacity=10)
    conn.start(streams)
    await asyncio.wait_for(conn.connected.wait(), 5)
    return conn, rec


async def test_initial_streams_go_in_the_combined_url(server: MiniServer) -> None:
    conn, _ = await _connected(server, ["btcusdt@aggTrade", "ethusdt@aggTrade"])
    try:
        assert server.paths == ["/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade"]
        assert await conn.list_subscriptions() == ["btcusdt@aggTrade", "ethusdt@aggTrade"]
    finally:
        await conn.stop()


async def test_live_subscribe_and_unsubscribe_wait_for_their_reply(server: MiniServer) -> None:
    conn, _ = await _connected(server, ["btcusdt@aggTrade"])
    try:
        await conn.subscribe(["ethusdt@aggTrade"])
        assert "ethusdt@aggTrade" in server.streams       # the reply came after the server did it
        await conn.unsubscribe(["btcusdt@aggTrade"])
        assert await conn.list_subscriptions() == ["ethusdt@aggTrade"]
        assert conn.streams == {"ethusdt@aggTrade"}
        methods = [m["method"] for _, m in server.controls]
        assert methods == ["SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS"]
        assert len({m["id"] for _, m in server.controls}) == 3
    finally:
        await conn.stop()


async def test_an_error_reply_is_a_clear_error_and_the_streams_are_not_kept(
        server: MiniServer) -> None:
    conn, _ = await _connected(server, ["btcusdt@aggTrade"])
    try:
        with pytest.raises(BinanceRequestError, match="invalid stream.*code 2"):
            await conn.subscribe(["bad@aggTrade"])
        assert conn.streams == {"btcusdt@aggTrade"}
    finally:
        await conn.stop()


async def test_control_messages_are_paced(server: MiniServer) -> None:
    conn, _ = await _connected(server, ["s0@aggTrade"], control_per_s=4)
    try:
        for i in range(1, 10):
            await conn.subscribe([f"s{i}@aggTrade"])
        times = [t for t, _ in server.controls]
        assert len(times) == 9
        for t0 in times:     # never more than 4 in a second (arrival times, loaded-box slack)
            assert sum(1 for t in times if t0 <= t < t0 + 0.8) <= 4
    finally:
        await conn.stop()


async def test_server_pings_are_answered(server: MiniServer) -> None:
    conn, _ = await _connected(server, ["btcusdt@aggTrade"], ping_interval_s=None)
    try:
        ws = server.sockets[0]
        for payload in (b"p1", b"p2"):
            waiter = await ws.ping(payload)
            latency = await asyncio.wait_for(waiter, 5)   # resolves only on the matching pong
            assert latency >= 0
        assert conn.state is not None and conn.connected.is_set()
    finally:
        await conn.stop()


async def test_a_dropped_socket_is_reopened_with_every_stream(server: MiniServer) -> None:
    conn, rec = await _connected(server, ["btcusdt@aggTrade"], backoff_base_s=0.01)
    try:
        await conn.subscribe(["ethusdt@aggTrade"])
        first = server.sockets[0]
        await first.close()
        await server.changes.until(lambda: rec.connected == 2)
        assert rec.lost == ["closed"]
        assert server.paths[1] == "/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade"
        assert rec.connected == 2
    finally:
        await conn.stop()


async def test_a_silent_socket_is_stale_and_replaced(server: MiniServer) -> None:
    conn, rec = await _connected(server, ["btcusdt@aggTrade"], stale_after_s=0.3,
                                 backoff_base_s=0.01)
    try:
        await server.changes.until(lambda: rec.connected == 2)
        assert rec.lost[0] == "stale"
        assert server.paths[1] == server.paths[0]
    finally:
        await conn.stop()


async def test_rotation_opens_the_successor_before_closing(server: MiniServer) -> None:
    conn, rec = await _connected(server, ["btcusdt@aggTrade"], max_age_s=0.3)
    try:
        await server.changes.until(lambda: ("closed", 2) in server.life)
        assert rec.lost == []                      # rotations are not losses
        assert rec.connected == 1
        assert server.paths[1] == server.paths[0]
        # each successor was open before its predecessor closed
        assert server.life.index(("open", 2)) < server.life.index(("closed", 1))
        assert server.life.index(("open", 3)) < server.life.index(("closed", 2))
    finally:
        await conn.stop()


async def test_connection_attempts_share_the_source_limit(server: MiniServer) -> None:
    rec = Recorder(server.changes)
    attempts = SlidingWindowLimiter(2, 300.0)          # 2 attempts per 5 minutes
    conn = StreamConnection(1, ConnectionSettings(ws_url=server.url, backoff_base_s=0.001), rec,
                            attempts, capacity=10)
    conn.start(["btcusdt@aggTrade"])
    try:
        await server.changes.until(lambda: len(server.sockets) == 1)
        await server.sockets[0].close()
        await server.changes.until(lambda: len(server.sockets) == 2)
        await server.sockets[1].close()
        await server.changes.until(lambda: rec.lost == ["closed", "closed"])
        # the third attempt waits for the window (about 300 s): none arrives meanwhile
        with pytest.raises(TimeoutError):
            await server.changes.until(lambda: len(server.sockets) == 3, timeout=0.5)
        assert attempts.delay() > 290
    finally:
        await conn.stop()


@pytest.mark.parametrize("stable_after_s, grows", [(60.0, True), (0.0, False)])
async def test_backoff_grows_over_short_lived_sockets(server: MiniServer, stable_after_s: float,
                                                      grows: bool) -> None:
    rec = Recorder(server.changes)
    settings = ConnectionSettings(ws_url=server.url, backoff_base_s=0.001, backoff_cap_s=0.01,
                                  stable_after_s=stable_after_s)
    conn = StreamConnection(1, settings, rec, SlidingWindowLimiter(300, 300.0), capacity=10)
    conn.start(["btcusdt@aggTrade"])
    try:
        for n in range(1, 5):
            await server.changes.until(lambda n=n: len(server.sockets) == n)
            await server.sockets[n - 1].close()
            await server.changes.until(lambda n=n: len(rec.lost) == n)
        assert conn.failures == (4 if grows else 1)
    finally:
        await conn.stop()
