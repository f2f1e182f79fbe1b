"""``BinanceSource`` against the replay exchange over loopback: exact delivery under faults.

The exchange replays the recorded spot trades (each trade is its own aggregate
trade, ids contiguous per symbol) paused at speed 0, stepped with
``run_until``; forming klines tick every 0.1 s of wall time so a healthy
socket is never silent. Every test compares the ticks the sink received with
the trades of the file up to the replay clock, per symbol and in order
(``by_symbol``); the sink itself checks that event time never goes back and
that no tick arrives behind a watermark.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import structlog

from alerts.errors import InvalidArgumentError
from alerts.market.base import Tick
from alerts.market.binance import SPOT, USDM, BinanceRequestError, BinanceSource
from alerts.market.exchange import ReplayExchange
from tests.market.binance.conftest import Sink, by_symbol, expected_ticks
from tests.support.market_data import (  # noqa: F401 - fixture
    SPOT_TRADES_FILE,
    USDM_TRADES_FILE,
    binance_spot_trades,
    binance_usdm_trades,
    shared_data,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.data]

MIN = 60_000


def t0() -> int:
    """The first trade of the spot file."""
    return min(int(binance_spot_trades(s)["time_ms"].iloc[0]) for s in ("BTCUSDT", "ETHUSDT"))


def want(until_ms: int, *symbols: str, after_ms: int | None = None) -> list[Tick]:
    out: list[Tick] = []
    for sym in symbols or ("BTCUSDT", "ETHUSDT"):
        out += expected_ticks(sym, until_ms=until_ms, after_ms=after_ms)
    return out


@pytest_asyncio.fixture
async def spot(shared_data: Path) -> AsyncIterator[ReplayExchange]:  # noqa: F811
    async with ReplayExchange.from_files([shared_data / SPOT_TRADES_FILE], speed=0,
                                         paused=True, kline_update_s=0.1) as exchange:
        yield exchange


@asynccontextmanager
async def running(ex: ReplayExchange, sink: Sink, venue: Any = SPOT, **kw: Any
                  ) -> AsyncIterator[BinanceSource]:
    kw.setdefault("backoff_base_s", 0.05)
    src = BinanceSource(venue, ws_url=ex.ws_url, rest_url=ex.rest_url, **kw)
    await src.start(sink)
    try:
        yield src
    finally:
        await src.stop()


async def first_minute(spot: ReplayExchange, sink: Sink, src: BinanceSource, start: int
                       ) -> None:
    """Follow both symbols and deliver the file's first minute, uninterrupted."""
    await src.subscribe(["BTCUSDT", "ETHUSDT"])
    await spot.wait_subscribed("ethusdt@aggTrade", timeout=5)
    await spot.run_until(start + MIN)
    await delivered(sink, want(start + MIN))


async def delivered(sink: Sink, expected: list[Tick], timeout: float = 30.0) -> None:
    """Wait until the sink holds as many ticks as expected, then compare exactly."""
    await sink.until(lambda: len(sink.received) >= len(expected), timeout)
    assert by_symbol(sink.received) == by_symbol(expected)
    assert len(sink.received) == len(expected)
    assert sink.violations == []


async def test_uninterrupted_run_delivers_every_trade_and_watermarks(spot: ReplayExchange) -> None:
    sink = Sink()
    async with running(spot, sink) as src:
        await src.subscribe(["binance:BTCUSDT", "ETHUSDT"])
        await spot.wait_subscribed("ethusdt@aggTrade", timeout=5)
        end = t0() + 3 * MIN
        await spot.run_until(end)
        await delivered(sink, want(end))
        # quiet but alive (paused): the forming klines carry the clock to the exchange's now
        await sink.until(lambda: bool(sink.watermarks) and sink.watermarks[-1] == end)
        h = src.health()
        assert h.up and h.bad_messages == 0 and h.reconnects == 0
        assert h.messages >= len(sink.received)
        assert h.last_message_ms is not None and abs(h.last_message_ms - time.time() * 1000) < 5000
        # recorded in 2024: the lag is the wall clock minus the last tick's event time
        assert h.lag_ms >= time.time() * 1000 - sink.received[-1].time_ms - 5000
        assert h.extra["connections"] == 1 and h.extra["streams"] == 4
        assert sink.events == []
        assert sink.batches < len(sink.received)            # batched, not one call per tick
    assert not src.health().up
    await spot.wait_connections(0, timeout=5)              # the socket was closed
    await src.stop()                                       # stopping twice is harmless


async def test_live_subscribe_and_unsubscribe(spot: ReplayExchange) -> None:
    sink = Sink()
    start = t0()
    async with running(spot, sink) as src:
        await src.subscribe(["BTCUSDT"])
        await spot.wait_subscribed("btcusdt@aggTrade", timeout=5)
        await spot.run_until(start + MIN)
        await delivered(sink, want(start + MIN, "BTCUSDT"))
        await src.subscribe(["ETHUSDT"])                   # SUBSCRIBE on the live socket
        assert spot.subscribers("ethusdt@aggTrade") == 1 and spot.connections == 1
        await spot.run_until(start + 2 * MIN)
        expected = want(start + 2 * MIN, "BTCUSDT") + want(start + 2 * MIN, "ETHUSDT",
                                                           after_ms=start + MIN)
        await delivered(sink, expected)
        await src.unsubscribe(["binance:BTCUSDT"])
        assert spot.subscribers("btcusdt@aggTrade") == 0
        assert spot.subscribers("btcusdt@kline_1m") == 0
        await spot.run_until(start + 3 * MIN)
        expected += want(start + 3 * MIN, "ETHUSDT", after_ms=start + 2 * MIN)
        await delivered(sink, expected)
        assert spot.connections == 1
        await src.unsubscribe(["ETHUSDT"])                  # the last one: the socket closes
        await spot.wait_connections(0, timeout=5)
        assert src.health().extra["connections"] == 0


async def test_streams_are_split_over_connections(spot: ReplayExchange) -> None:
    sink = Sink()
    async with running(spot, sink, streams_per_connection=2) as src:
        await src.subscribe(["BTCUSDT", "ETHUSDT"])
        await spot.wait_connections(2, timeout=5)
        assert spot.subscribers("btcusdt@aggTrade") == spot.subscribers("ethusdt@aggTrade") == 1
        end = t0() + 2 * MIN
        await spot.run_until(end)
        await delivered(sink, want(end))
        assert src.health().extra["connections"] == 2
        # the source clock is the slower connection's: watermarks never pass a live socket
        await sink.until(lambda: bool(sink.watermarks) and sink.watermarks[-1] == end)


async def test_a_dropped_connection_is_reconnected_and_backfilled(spot: ReplayExchange) -> None:
    sink = Sink()
    start = t0()
    with structlog.testing.capture_logs() as logs:
        async with running(spot, sink, progress_every_s=0) as src:
            await _dropped_and_backfilled(spot, sink, src, start)
    progress = [e for e in logs if e["event"] == "binance_backfill_progress"]
    assert progress and all(e["trades"] > 0 and e["next_id"] > 0 for e in progress)
    assert {e["symbol"] for e in progress} <= {"BTCUSDT", "ETHUSDT"}


async def _dropped_and_backfilled(spot: ReplayExchange, sink: Sink, src: BinanceSource,
                                  start: int) -> None:
    """Subscribe, run, cut the connection mid-stream: every trade still arrives."""
    await first_minute(spot, sink, src, start)
    spot.faults.drop(after_messages=300)           # cut mid-stream; the rest is lost to it
    await spot.run_until(start + 4 * MIN)
    await delivered(sink, want(start + 4 * MIN))
    kinds = sink.kinds()
    assert "RECONNECT" in kinds and "GAP" in kinds
    await sink.until(lambda: sink.kinds()[-1] == "RECOVERED")
    gaps = [e for e in sink.events if e.kind == "GAP"]
    assert all("aggregate ids" in e.detail and e.symbol in ("binance:BTCUSDT",
                                                            "binance:ETHUSDT") for e in gaps)
    h = src.health()
    assert h.reconnects == 1 and h.extra["backfilled"] > 0 and h.up


async def test_a_silent_stall_is_stale_then_backfilled(spot: ReplayExchange) -> None:
    sink = Sink()
    start = t0()
    async with running(spot, sink, stale_after_s=0.6) as src:
        await first_minute(spot, sink, src, start)
        spot.faults.stall(3.0)                         # no frames, no pings, nothing read
        await spot.run_until(start + 3 * MIN)          # published into the void
        await delivered(sink, want(start + 3 * MIN))
        kinds = sink.kinds()
        assert kinds.index("STALE") < kinds.index("RECONNECT") < kinds.index("GAP")
        assert src.health().reconnects == 1


async def test_a_short_silence_is_probed_for_lost_trades(spot: ReplayExchange) -> None:
    sink = Sink()
    start = t0()
    async with running(spot, sink, stale_after_s=30.0, probe_after_s=0.5) as src:
        await first_minute(spot, sink, src, start)
        spot.faults.stall(1.5)                         # shorter than stale: no reconnect
        await spot.run_until(start + 2 * MIN)          # lost; the exchange then stays paused,
        # so no later trade reveals the hole: only the probe after the silence finds it
        await delivered(sink, want(start + 2 * MIN))
        assert "GAP" in sink.kinds() and "RECONNECT" not in sink.kinds()
        assert src.health().reconnects == 0


async def test_bad_frames_are_counted_and_never_stop_the_source(spot: ReplayExchange) -> None:
    sink = Sink()
    start = t0()
    async with running(spot, sink) as src:
        await first_minute(spot, sink, src, start)
        spot.faults.malformed_json(3)
        spot.faults.wrong_fields(4)
        await spot.run_until(start + 2 * MIN)
        await delivered(sink, want(start + 2 * MIN))
        await sink.until(lambda: sink.kinds().count("BAD_MESSAGE") == 7)
        assert src.health().bad_messages == 7
        assert "GAP" not in sink.kinds() and "RECONNECT" not in sink.kinds()
        bad = [e.detail for e in sink.events]
        assert sum("not JSON" in d for d in bad) == 3


async def test_out_of_order_frames_are_counted_and_the_order_restored(
        spot: ReplayExchange) -> None:
    sink = Sink()
    start = t0()
    async with running(spot, sink, clock_streams=False) as src:  # every frame a BTC trade
        await src.subscribe(["BTCUSDT"])
        await spot.wait_subscribed("btcusdt@aggTrade", timeout=5)
        await spot.run_until(start + MIN)
        await delivered(sink, want(start + MIN, "BTCUSDT"))
        spot.faults.reorder(3)
        await spot.run_until(start + 2 * MIN)
        await delivered(sink, want(start + 2 * MIN, "BTCUSDT"))
        await sink.until(lambda: sink.kinds().count("BAD_MESSAGE") == 3)
        assert src.health().bad_messages == 3
        assert all("out of order" in e.detail for e in sink.events if e.kind == "BAD_MESSAGE")


async def test_rest_rate_limit_during_backfill(spot: ReplayExchange) -> None:
    sink = Sink()
    start = t0()
    async with running(spot, sink) as src:
        await first_minute(spot, sink, src, start)
        spot.faults.rate_limit(1.5)
        spot.faults.drop(after_messages=100)
        await spot.run_until(start + 3 * MIN)
        await delivered(sink, want(start + 3 * MIN))
        assert "RATE_LIMITED" in sink.kinds()
        await sink.until(lambda: sink.kinds()[-1] == "RECOVERED")
        assert src.health().rate_limited >= 1


async def test_rotation_has_no_gap_and_no_duplicate(spot: ReplayExchange) -> None:
    sink = Sink()
    start = t0()
    async with running(spot, sink, max_age_s=0.4) as src:
        await src.subscribe(["BTCUSDT", "ETHUSDT"])
        await spot.wait_subscribed("ethusdt@aggTrade", timeout=5)
        spot.set_speed(60.0)                           # a minute of trades per wall second
        spot.resume()
        await spot.wait_until(start + 2 * MIN + 30_000, timeout=30)
        spot.pause()
        await delivered(sink, want(spot.now_ms))
        assert src.health().extra["rotations"] >= 2
        assert not {"GAP", "RECONNECT", "STALE"} & set(sink.kinds())


async def test_server_shutdown_moves_to_a_new_connection(spot: ReplayExchange) -> None:
    sink = Sink()
    start = t0()
    async with running(spot, sink) as src:
        await first_minute(spot, sink, src, start)
        await spot.shutdown_connections()              # serverShutdown, then close 1001
        await spot.wait_subscribed("ethusdt@aggTrade", timeout=5)
        await spot.run_until(start + 2 * MIN)
        await delivered(sink, want(start + 2 * MIN))
        h = src.health()
        assert h.extra["rotations"] + h.reconnects >= 1


async def test_history_equals_the_exchange_klines(spot: ReplayExchange) -> None:
    sink = Sink()
    start = t0()
    floor = start - start % MIN
    now = floor + 7 * MIN + 20_000
    await spot.run_until(now)
    async with running(spot, sink) as src:
        bars = await src.history("binance:BTCUSDT", "1m", floor - 10 * MIN, floor + 60 * MIN)
    async with httpx.AsyncClient(base_url=spot.rest_url) as http:
        rows = (await http.get("/api/v3/klines", params={
            "symbol": "BTCUSDT", "interval": "1m", "startTime": floor - 10 * MIN,
            "limit": 1000})).json()
    closed = [r for r in rows if r[6] < now]
    assert len(closed) == 7 and len(rows) == 8                   # the 8th is forming
    assert [(b.open_ms, b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.trades)
            for b in bars] == [(r[0], float(r[1]), float(r[2]), float(r[3]), float(r[4]),
                                float(r[5]), float(r[7]), r[8]) for r in closed]
    # and they are the file's trades, minute by minute
    df = binance_spot_trades("BTCUSDT")
    for b in bars:
        m = df[(df["time_ms"] >= b.open_ms) & (df["time_ms"] < b.open_ms + MIN)]
        assert (b.open, b.close, b.trades) == (m["price"].iloc[0], m["price"].iloc[-1], len(m))
        assert b.high == m["price"].max() and b.low == m["price"].min()
        assert b.volume == pytest.approx(m["qty"].sum(), rel=1e-9)
    assert all(b.symbol == "binance:BTCUSDT" and b.timeframe == "1m" for b in bars)


async def test_bad_requests_are_clear_errors(spot: ReplayExchange) -> None:
    sink = Sink()
    async with running(spot, sink) as src:
        with pytest.raises(BinanceRequestError, match="code -1121"):
            await src.history("binance:NOPEUSDT", "1m", 0, MIN)
        with pytest.raises(InvalidArgumentError, match="timeframe"):
            await src.history("binance:BTCUSDT", "2m", 0, MIN)
        with pytest.raises(InvalidArgumentError, match="not on venue"):
            await src.subscribe(["binance-usdm:BTCUSDT"])
        with pytest.raises(InvalidArgumentError, match="invalid Binance symbol"):
            await src.subscribe(["binance:BTC/USDT"])
        # a name Binance refuses in the stream URL (HTTP 400, code 2): a clear error, no retrying
        with pytest.raises(BinanceRequestError, match="HTTP 400.*invalid stream"):
            await src.subscribe(["binance:BTC_USDT"])
        h = src.health()
        assert h.extra["connections"] == 0 and spot.connections == 0 and h.up
        await src.subscribe(["BTCUSDT"])                     # the source is still fine
        await spot.wait_subscribed("btcusdt@aggTrade", timeout=5)


async def test_usdm_futures_venue(shared_data: Path) -> None:  # noqa: F811
    frame = binance_usdm_trades("BTCUSDT")
    start = int(frame["time_ms"].iloc[0])
    async with ReplayExchange.from_files([shared_data / USDM_TRADES_FILE], speed=0, paused=True,
                                         venue="usdm", kline_update_s=0.1) as ex:
        sink = Sink()
        async with running(ex, sink, USDM) as src:
            assert src.name == "binance-usdm"
            await src.subscribe(["binance-usdm:BTCUSDT"])
            await ex.wait_subscribed("btcusdt@aggTrade", timeout=5)
            await ex.run_until(start + MIN)
            expected = expected_ticks("BTCUSDT", until_ms=start + MIN, venue="binance-usdm",
                                      frame=frame)
            await delivered(sink, expected)
            ex.faults.drop()
            await ex.run_until(start + 2 * MIN)
            await delivered(sink, expected_ticks("BTCUSDT", until_ms=start + 2 * MIN,
                                                 venue="binance-usdm", frame=frame))
            bars = await src.history("binance-usdm:BTCUSDT", "1m", start - MIN, start + 5 * MIN)
            assert bars and all(b.symbol == "binance-usdm:BTCUSDT" for b in bars)
            assert bars[-1].open_ms + MIN <= ex.now_ms


async def test_many_symbols_split_over_connections_with_paced_live_subscribes() -> None:
    start = 1_767_225_600_000
    names = [f"SYM{i:05d}USDT" for i in range(12)]
    async with ReplayExchange.synthetic(names, seed=3, rate=100.0, start_ms=start, speed=0,
                                        paused=True, kline_update_s=0.1) as ex:
        sink = Sink()
        async with running(ex, sink, streams_per_connection=18) as src:   # 9 symbols each
            for name in names:        # one call each: 8 live SUBSCRIBEs on the first socket
                await src.subscribe([name])
            await ex.wait_connections(2, timeout=5)
            assert all(ex.subscribers(f"{n.lower()}@aggTrade") == 1 for n in names)
            await ex.run_until(start + 30_000)
            async with httpx.AsyncClient(base_url=ex.rest_url) as http:
                expected: list[Tick] = []
                for name in names:
                    rows = (await http.get("/api/v3/aggTrades", params={
                        "symbol": name, "fromId": 1, "limit": 1000})).json()
                    assert 0 < len(rows) < 1000
                    expected += [Tick(f"binance:{name}", float(r["p"]), float(r["q"]), r["T"],
                                      r["a"]) for r in rows]
            await delivered(sink, expected)
            h = src.health()
            # Binance cuts a socket sending more than 5 messages a second: none was cut
            assert h.reconnects == 0 and h.extra["connections"] == 2 and ex.connections == 2


async def test_pings_answered_and_rotation_beats_the_lifetime_limit(shared_data: Path  # noqa: F811
                                                                    ) -> None:
    start = t0()
    # the exchange pings every 0.1 s (no pong in 0.3 s: cut) and ends a socket after 0.6 s
    async with ReplayExchange.from_files([shared_data / SPOT_TRADES_FILE], speed=0, paused=True,
                                         kline_update_s=0.1, ping_interval_s=0.1,
                                         pong_timeout_s=0.3, max_lifetime_s=0.6) as ex:
        sink = Sink()
        async with running(ex, sink, max_age_s=0.35) as src:
            await src.subscribe(["BTCUSDT", "ETHUSDT"])
            await ex.wait_subscribed("ethusdt@aggTrade", timeout=5)
            ex.set_speed(60.0)
            ex.resume()
            await ex.wait_until(start + 2 * MIN, timeout=30)
            ex.pause()
            await delivered(sink, want(ex.now_ms))
            h = src.health()
            assert h.extra["rotations"] >= 3 and h.reconnects == 0
            assert not {"GAP", "RECONNECT", "STALE"} & set(sink.kinds())
