"""A backfill Binance refuses for good (``-1121``) skips the hole instead of holding the feed.

A small loopback WebSocket server sends one symbol's aggregate trades with
ids 3 and 4 missing; the REST server answers every request with Binance's
``{"code": -1121, "msg": "Invalid symbol."}``. The source must hand on 1, 2,
5, 6 in order, report the unrecoverable GAP, and keep delivering.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from alerts.market.binance import SPOT, BinanceSource
from tests.market.binance.conftest import Scripted, Sink

pytestmark = pytest.mark.asyncio


def frame(agg_id: int) -> str:
    t = 1_767_225_600_000 + agg_id
    return json.dumps({"stream": "abcusdt@aggTrade", "data": {
        "e": "aggTrade", "E": t, "s": "ABCUSDT", "a": agg_id, "p": f"{10 + agg_id}.5",
        "q": "1.25", "f": agg_id, "l": agg_id, "T": t, "m": False, "M": True}})


async def test_refused_backfill_skips_the_hole(scripted: Callable[..., Any]) -> None:
    refusing: Scripted = await scripted(
        lambda path, q: (400, {}, {"code": -1121, "msg": "Invalid symbol."}))
    go_on = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        for agg_id in (1, 2, 5, 6):
            await ws.send(frame(agg_id))
        await go_on.wait()
        await ws.send(frame(7))
        await ws.wait_closed()

    sink = Sink()
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        src = BinanceSource(SPOT, ws_url=f"ws://127.0.0.1:{port}", rest_url=refusing.url,
                            clock_streams=False)
        await src.start(sink)
        try:
            await src.subscribe(["ABCUSDT"])
            await sink.until(lambda: len(sink.received) == 4)
            go_on.set()
            await sink.until(lambda: len(sink.received) == 5)
        finally:
            await src.stop()
    assert [t.trade_id for t in sink.received] == [1, 2, 5, 6, 7]
    gaps = [e for e in sink.events if e.kind == "GAP"]
    assert len(gaps) == 1 and gaps[0].symbol == "binance:ABCUSDT"
    assert "ids 3..4 could not be backfilled" in gaps[0].detail and "-1121" in gaps[0].detail
    assert refusing.seen[0][1:] == ("/api/v3/aggTrades", {"symbol": "ABCUSDT", "fromId": "3",
                                                          "limit": "1000"})


