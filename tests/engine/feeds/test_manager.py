"""The DataManager over scripted sources: routing, subscriptions, failover, DATA_QUALITY, metrics."""

from __future__ import annotations

import pandas as pd
import pytest
from prometheus_client import generate_latest

from alerts.delivery.hub import AlertHub
from alerts.engine.feeds import DataManager, parse_routes
from alerts.engine.processor import AlertProcessor
from alerts.errors import InvalidArgumentError
from alerts.market.base import SourceHealth, Tick
from alerts.storage import open_store
from alerts.storage.records import RuleRecord
from tests.engine.feeds.harness import engine, rule_alerts
from tests.support import market_data as md
from tests.support.sources import ScriptedSource

pytestmark = pytest.mark.asyncio

BATCH = 200
RULES = [
    ("cross", "BTCUSDT", "close(1m) crosses_above sma(3, 1m)", "ONCE_PER_BAR_CLOSE"),
    ("rsi", "ETHUSDT", "rsi(7, 1m) crosses 50", "ON_TRUE"),
    ("every", "BTCUSDT", "price > sma(2, 1m)", "EVERY_TIME"),
    ("ratio", "ETHUSDT", "close(1m, BTCUSDT) / close(1m) > 23.05", "ON_TRUE"),
]


def trade_batches() -> list[list[Tick]]:
    md.require_shared_data()
    both = pd.concat([md.binance_spot_trades("BTCUSDT"), md.binance_spot_trades("ETHUSDT")])
    both = both.sort_values(["time_ms", "symbol", "trade_id"], kind="stable")
    ticks = [Tick(f"binance:{s}", float(p), float(q), int(t), int(i))
             for s, p, q, t, i in zip(both.symbol, both.price, both.qty, both.time_ms,
                                      both.trade_id, strict=True)]
    return [ticks[i:i + BATCH] for i in range(0, len(ticks), BATCH)]


async def test_symbols_follow_the_rules_reading_them() -> None:
    ws, rest, yahoo = ScriptedSource("ws"), ScriptedSource("rest"), ScriptedSource("yahoo")
    async with engine("binance=ws,rest;us=yahoo", [ws, rest, yahoo]) as e:
        await e.add_rule("a", "BTCUSDT", "price > 1")
        assert ws.symbols == {"binance:BTCUSDT"}
        assert rest.symbols == set()            # a fallback is cold until it is needed
        await e.add_rule("b", "BTCUSDT", "close(1m, ETHUSDT) > close(1m)")
        assert ws.symbols == {"binance:BTCUSDT", "binance:ETHUSDT"}
        await e.add_rule("c", "us:SPY", "price > 1")
        await e.add_rule("d", "elsewhere:X", "price > 1")       # no route: PublishTicks only
        assert yahoo.symbols == {"us:SPY"}
        await e.delete_rule("a")
        assert ws.symbols == {"binance:BTCUSDT", "binance:ETHUSDT"}   # "b" still reads both
        await e.delete_rule("b")
        assert ws.symbols == set()
        await e.delete_rule("c")
        assert yahoo.symbols == set()
        assert ws.calls.count(("subscribe", ("binance:BTCUSDT",))) == 1


async def test_a_rule_moved_to_another_symbol_moves_the_subscription() -> None:
    ws = ScriptedSource("ws")
    async with engine("binance=ws", [ws]) as e:
        rec = await e.add_rule("a", "BTCUSDT", "price > 1")
        moved = rec.__class__(**{**rec.__dict__, "symbol": "binance:ETHUSDT"})
        await e.processor.change_rule(lambda: e.store.update_rule(moved, expected_etag=None))
        await e.feeds.idle()
        assert ws.symbols == {"binance:ETHUSDT"}


async def test_ticks_reach_the_engine_on_the_venue_clock() -> None:
    ws = ScriptedSource("ws")
    async with engine("binance=ws", [ws]) as e:
        await e.add_rule("hi", "BTCUSDT", "price > 60000")
        t0 = 1_723_161_600_000
        await ws.push([Tick("binance:BTCUSDT", 59_990.0, 1.0, t0, 1),
                       Tick("binance:BTCUSDT", 60_010.0, 1.0, t0 + 5, 2),
                       Tick("binance:ETHUSDT", 2_600.0, 1.0, t0 + 6, 3)])   # nobody reads it
        alerts = await e.alerts()
        assert [(a.rule_id, a.event_time_ms, a.trade_id) for a in alerts] == [("hi", t0 + 5, 2)]
        assert e.processor.source_clock("feed:binance") == t0 + 5
        await ws.mark(t0 + 61_000)
        assert e.processor.source_clock("feed:binance") == t0 + 61_000


async def _run(batches: list[list[Tick]], *, failover: bool) -> tuple[list[object], object]:
    ws, rest = ScriptedSource("ws"), ScriptedSource("rest")
    now = 1_900_000_000_000
    async with engine("binance=ws,rest", [ws, rest], stale_after_ms=0, recover_after_ms=0,
                      clock=lambda: now) as e:
        for rid, symbol, cond, mode in RULES:
            await e.add_rule(rid, symbol, cond, mode=mode)
        n = len(batches)
        k1, k2 = n // 3, 2 * n // 3
        if not failover:
            for b in batches:
                await ws.push(b)
            return rule_alerts(await e.alerts()), None
        for b in batches[:k1]:
            await ws.push(b)
        ws.health_now = SourceHealth(up=False, detail="connection lost")
        await e.feeds.check()
        assert e.feeds.active_source("binance") == "rest"
        assert rest.symbols == {"binance:BTCUSDT", "binance:ETHUSDT"}
        for b in batches[k1 - 3:k2]:          # the fallback starts a little before the failure
            await rest.push(b)
        ws.health_now = SourceHealth(up=True, last_message_ms=now)
        for b in batches[k2 - 5:k2 + 4]:      # reconnected, backfilled: held, not yet applied
            await ws.push(b)
        for b in batches[k2:k2 + 2]:          # the fallback goes on meanwhile
            await rest.push(b)
        await e.feeds.check()
        assert e.feeds.active_source("binance") == "ws"
        assert rest.symbols == set()
        for b in batches[k2 + 4:]:
            await ws.push(b)
        quality = await e.alerts(kind="DATA_QUALITY")
        registry = generate_latest(e.processor.metrics.registry).decode()
        return rule_alerts(await e.alerts()), (quality, registry)


async def test_failover_and_back_fire_the_alerts_of_an_uninterrupted_run() -> None:
    batches = trade_batches()
    plain, _ = await _run(batches, failover=False)
    switched, extra = await _run(batches, failover=True)
    assert len(plain) > 50 and {a[0] for a in plain} == {r[0] for r in RULES}
    assert switched == plain
    quality, registry = extra  # type: ignore[misc]
    assert [(a.details["event"], a.details["source"], a.symbol) for a in quality] == [
        ("STALE", "ws", "binance:*"), ("RECOVERED", "ws", "binance:*")]
    assert "switched to rest" in quality[0].message
    assert 'alerts_source_switches_total{source="rest",venue="binance"} 1.0' in registry
    assert 'alerts_source_ticks_total{outcome="duplicate",source="rest"}' in registry
    assert 'alerts_source_ticks_total{outcome="held",source="ws"}' in registry


async def test_feed_events_become_data_quality_alerts_for_the_owners_concerned() -> None:
    ws, rest = ScriptedSource("ws"), ScriptedSource("rest")
    async with engine("binance=ws,rest", [ws, rest]) as e:
        await e.add_rule("a", "BTCUSDT", "price > 1", owner="alice")
        await e.add_rule("b", "ETHUSDT", "price > 1", owner="bob")
        t = 1_723_161_600_000
        await ws.emit("GAP", t, "3 s missed, backfilled from REST", symbol="binance:BTCUSDT")
        await ws.emit("RECONNECT", t + 1, "connection 1 reopened")
        await ws.emit("RECONNECT", t + 1, "connection 1 reopened")     # the same event again
        await ws.emit("BAD_MESSAGE", t + 2, "not JSON")
        await rest.emit("RATE_LIMITED", t + 3, "429")                 # cold source: no alert
        alice = await e.alerts("alice", kind="DATA_QUALITY")
        bob = await e.alerts("bob", kind="DATA_QUALITY")
        assert [(a.rule_id, a.symbol, a.event_time_ms, a.details["event"]) for a in alice] == [
            ("data-quality", "binance:BTCUSDT", t, "GAP"),
            ("data-quality", "binance:*", t + 1, "RECONNECT")]
        assert [(a.symbol, a.details["event"]) for a in bob] == [("binance:*", "RECONNECT")]
        assert alice[0].message == ("data quality: gap in the data on ws for binance:BTCUSDT: "
                                    "3 s missed, backfilled from REST")
        registry = generate_latest(e.processor.metrics.registry).decode()
        assert 'alerts_source_events_total{kind="BAD_MESSAGE",source="ws"} 1.0' in registry
        assert 'alerts_source_events_total{kind="RATE_LIMITED",source="rest"} 1.0' in registry


async def test_health_gauges_and_serving_status_follow_the_sources() -> None:
    ws, rest = ScriptedSource("ws"), ScriptedSource("rest")
    seen: list[tuple[str, bool]] = []

    async def listener(name: str, serving: bool) -> None:
        seen.append((name, serving))

    async with engine("binance=ws,rest", [ws, rest], stale_after_ms=60_000) as e:
        e.feeds.health_listener = listener
        assert e.feeds.serving("ws") and e.feeds.serving("rest")      # set at start
        await e.feeds.check()
        assert seen == []                                             # told changes only
        ws.health_now = SourceHealth(up=True, lag_ms=250.0, messages=10)
        rest.health_now = SourceHealth(up=False, detail="HTTP 503")
        await e.feeds.check()
        assert seen == [("rest", False)] and e.feeds.serving("ws")
        registry = generate_latest(e.processor.metrics.registry).decode()
        assert 'alerts_source_up{source="rest"} 0.0' in registry
        assert 'alerts_source_up{source="ws"} 1.0' in registry
        assert 'alerts_source_lag_seconds{source="ws"} 0.25' in registry
        assert 'alerts_source_active{source="ws",venue="binance"} 1.0' in registry
        assert 'alerts_source_messages{source="ws"} 10.0' in registry
        assert "alerts_source_messages_per_second" in registry


async def test_a_silent_source_with_symbols_is_stale_and_replaced() -> None:
    ws, rest = ScriptedSource("ws"), ScriptedSource("rest")
    wall = [1_900_000_000_000]
    async with engine("binance=ws,rest", [ws, rest], stale_after_ms=30_000,
                      clock=lambda: wall[0]) as e:
        await e.add_rule("a", "BTCUSDT", "price > 1")
        ws.health_now = SourceHealth(up=True, last_message_ms=wall[0])
        wall[0] += 30_000
        await e.feeds.check()
        assert e.feeds.active_source("binance") == "ws"      # silent for exactly the limit
        wall[0] += 1
        await e.feeds.check()
        assert e.feeds.active_source("binance") == "rest"
        assert rest.symbols == {"binance:BTCUSDT"} and ws.symbols == {"binance:BTCUSDT"}


async def test_a_venue_may_allow_its_sources_more_silence() -> None:
    ws, rest = ScriptedSource("ws"), ScriptedSource("rest")
    wall = [1_900_000_000_000]
    async with engine("binance=ws,rest", [ws, rest], stale_after_ms=30_000,
                      stale_after_by_venue={"binance": 180_000}, clock=lambda: wall[0]) as e:
        await e.add_rule("a", "BTCUSDT", "price > 1")
        ws.health_now = SourceHealth(up=True, last_message_ms=wall[0])
        wall[0] += 120_000
        await e.feeds.check()
        assert e.feeds.active_source("binance") == "ws"
        wall[0] += 60_001
        await e.feeds.check()
        assert e.feeds.active_source("binance") == "rest"


async def test_a_full_standby_is_reported_as_a_gap_at_the_switch_back() -> None:
    ws, rest = ScriptedSource("ws"), ScriptedSource("rest")
    now = 1_900_000_000_000
    async with engine("binance=ws,rest", [ws, rest], stale_after_ms=0, recover_after_ms=0,
                      standby_ticks=5, clock=lambda: now) as e:
        await e.add_rule("a", "BTCUSDT", "price > 1")
        ws.health_now = SourceHealth(up=False)
        await e.feeds.check()
        t0 = 1_723_161_600_000
        await rest.push([Tick("binance:BTCUSDT", 100.0, 1.0, t0, 1)])
        ws.health_now = SourceHealth(up=True, last_message_ms=now)
        await ws.push([Tick("binance:BTCUSDT", 100.0 + i, 1.0, t0 + i, 1 + i)
                       for i in range(20)])
        await e.feeds.check()
        assert e.feeds.active_source("binance") == "ws"
        applied = await e.store.list_alerts("local", after_id=0, limit=100)
        assert [a.trade_id for a in applied if a.kind == "RULE"] == [1]    # ON_TRUE: once
        assert e.processor.source_clock("feed:binance") == t0 + 19   # the last 5 were held
        gaps = [a for a in applied if a.details.get("event") == "GAP"]
        assert len(gaps) == 1 and gaps[0].message.startswith(
            "data quality: gap in the data on ws: 15 ticks ws delivered while recovering")


async def test_a_rule_deleted_while_its_symbol_warms_up_ends_the_warm_up() -> None:
    ws = ScriptedSource("ws")
    async with engine("binance=ws", [ws], warmup_wait_ms=60_000) as e:
        rule = RuleRecord(rule_id="a", owner="local", symbol="binance:BTCUSDT",
                          condition_text="price > 1")
        await e.processor.change_rule(lambda: e.store.create_rule(rule))   # no idle()
        await ws.wait_for(lambda: ws.symbols == {"binance:BTCUSDT"})
        assert e.feeds.warming("binance:BTCUSDT")
        await e.delete_rule("a")          # waits for the warm-up task too
        assert ws.symbols == set() and not e.feeds.warming("binance:BTCUSDT")
        await ws.push([Tick("binance:BTCUSDT", 100.0, 1.0, 1_723_161_600_000, 1)])
        assert e.processor.source_clock("feed:binance") is None      # nothing applied



@pytest.mark.parametrize("routes, names, words", [
    ("binance=ws,rest", ["ws"], "venue binance names unknown source\\(s\\) rest; available: ws"),
    ("binance=ws", ["ws", "extra"], "market sources extra are in no route"),
])
async def test_routes_and_sources_must_agree(routes: str, names: list[str], words: str) -> None:
    with pytest.raises(InvalidArgumentError, match=words):
        async with engine(routes, [ScriptedSource(n) for n in names]):
            pass


async def test_a_source_is_known_by_its_own_name() -> None:
    store = await open_store("sqlite://:memory:")
    try:
        with pytest.raises(InvalidArgumentError, match="named otherwise than their key: ws"):
            DataManager(AlertProcessor(store, AlertHub()), parse_routes("binance=ws"),
                        {"ws": ScriptedSource("other")})
    finally:
        await store.close()
