"""Killed with SIGKILL at a random point and restarted: the same alerts, none twice.

A publisher streams real Binance trades (BTCUSDT and ETHUSDT merged by time)
into a server process; the server is killed with SIGKILL after a random batch
(sometimes while a batch is in flight), restarted on the same store, and the
publisher resends from the watermark an empty PublishTicks returns. The alerts
at the end equal those of an uninterrupted run (by rule, symbol and event
time), and no alert identity appears twice. One rule expires in the last batch
before the kill, after the last checkpoint as a rule, so the restarted server
replays its expiry: its RULE_EXPIRED alert, written with its batch, must still
be there once. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from google.protobuf import timestamp_pb2

from alerts.v1 import market_pb2, rules_pb2, service_pb2, service_pb2_grpc
from tests.support import market_data as md
from tests.support.postgres import fresh_databases
from tests.support.server import ServeProcess

RULES = [
    ("cross", "BTCUSDT", "close(1m) crosses_above sma(3, 1m)", "ONCE_PER_BAR_CLOSE"),
    ("rsi", "ETHUSDT", "rsi(7, 1m) crosses 50", "ON_TRUE"),
    ("every", "BTCUSDT", "price > sma(2, 1m)", "EVERY_TIME"),
    ("ratio", "ETHUSDT", "close(1m, BTCUSDT) / close(1m) > 23.05", "ON_TRUE"),
    ("band", "BTCUSDT", "price exits bb(5, 1.5, 1m)", "ON_TRUE"),
]
BATCH = 400


def trades() -> pd.DataFrame:
    md.require_shared_data()
    both = pd.concat([md.binance_spot_trades("BTCUSDT"), md.binance_spot_trades("ETHUSDT")])
    return both.sort_values(["time_ms", "symbol", "trade_id"], kind="stable").reset_index(
        drop=True)


def ts(ms: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(ms)
    return out


def publish(stub: service_pb2_grpc.AlertServiceStub, df: pd.DataFrame) -> None:
    ticks = [market_pb2.Tick(symbol=s, price=p, quantity=q, event_time=ts(t), trade_id=i)
             for s, p, q, t, i in zip(df["symbol"], df["price"], df["qty"], df["time_ms"],
                                      df["trade_id"], strict=True)]
    stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="replay", ticks=ticks)]),
                      timeout=60)


def watermark(stub: service_pb2_grpc.AlertServiceStub) -> int | None:
    reply = stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="replay")]),
                              timeout=60)
    return reply.watermark.ToMilliseconds() if reply.HasField("watermark") else None


def run(store_url: str, data: pd.DataFrame, kill_after: int | None, seed: int,
        expire_ms: int) -> list[tuple]:
    server = ServeProcess(store_url, ALERTS_CHECKPOINT_INTERVAL_MS="20000")
    for rid, symbol, cond, mode in RULES:
        server.stub.CreateRule(service_pb2.CreateRuleRequest(
            rule_id=rid, rule=rules_pb2.Rule(symbol=symbol, condition_text=cond,
                                             trigger_mode=rules_pb2.TriggerMode.Value(
                                                 f"TRIGGER_MODE_{mode}"))))
    server.stub.CreateRule(service_pb2.CreateRuleRequest(
        rule_id="lapse", rule=rules_pb2.Rule(symbol="ETHUSDT", condition_text="price > 0",
                                             expire_time=ts(expire_ms))))
    start = 0
    if kill_after is not None:
        for start in range(0, kill_after * BATCH, BATCH):
            publish(server.stub, data.iloc[start:start + BATCH])
        start += BATCH
        if random.Random(seed).random() < 0.5:
            # kill while the next batch is in flight
            sender = threading.Thread(target=_try_publish,
                                      args=(server.stub, data.iloc[start:start + BATCH]))
            sender.start()
            server.kill()
            sender.join()
        else:
            server.kill()
        server = ServeProcess(store_url, ALERTS_CHECKPOINT_INTERVAL_MS="20000")
        mark = watermark(server.stub)
        start = 0 if mark is None else int(np.searchsorted(data["time_ms"].to_numpy(), mark))
    for s in range(start, len(data), BATCH):
        publish(server.stub, data.iloc[s:s + BATCH])
    alerts = []
    token = ""
    while True:
        page = server.stub.ListAlerts(service_pb2.ListAlertsRequest(page_size=1000,
                                                                    page_token=token))
        alerts += [(a.rule, a.system.resource, a.symbol, a.event_time.ToMilliseconds(),
                    a.fire_rank) for a in page.alerts]
        token = page.next_page_token
        if not token:
            break
    server.stop()
    return alerts


def _try_publish(stub: service_pb2_grpc.AlertServiceStub, df: pd.DataFrame) -> None:
    try:
        publish(stub, df)
    except grpc.RpcError:
        pass                       # the server died under it: the batch is resent later


@pytest.fixture(params=["sqlite", "postgresql"])
def store_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
        return
    with fresh_databases(2, "alerts_restart") as urls:
        yield urls[0], urls[1]


@pytest.mark.data
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_restart_gives_the_alerts_of_an_uninterrupted_run(
        store_urls: tuple[str, str], seed: int) -> None:
    data = trades()
    n_batches = (len(data) + BATCH - 1) // BATCH
    kill_after = random.Random(seed).randrange(3, n_batches - 3)
    expire_ms = int(data["time_ms"].iloc[kill_after * BATCH - BATCH // 2])
    reference = run(store_urls[0], data, None, seed, expire_ms)
    interrupted = run(store_urls[1], data, kill_after, seed, expire_ms)
    assert len(reference) > 50
    expired = [a for a in reference if a[1] == "rules/lapse"]
    assert [a[3] for a in expired] == [expire_ms]
    assert len(set(interrupted)) == len(interrupted), "an alert identity appears twice"
    assert sorted(interrupted) == sorted(reference)
