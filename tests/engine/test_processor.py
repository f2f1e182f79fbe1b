"""AlertProcessor: tick batches run off the event loop (on the thread that writes the store,
for SQLite), which serves other tasks meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from alerts.delivery.hub import AlertHub
from alerts.engine.processor import AlertProcessor, TickBatch
from alerts.errors import InvalidArgumentError
from alerts.storage import RuleRecord, open_store

pytestmark = pytest.mark.asyncio

START_MS = 1_700_000_000_000


@pytest_asyncio.fixture
async def processor() -> AsyncIterator[AlertProcessor]:
    store = await open_store("sqlite://:memory:")
    proc = AlertProcessor(store, AlertHub())
    await proc.start()
    rule = RuleRecord(rule_id="every", owner="local", symbol="test:A", condition_text="price > 0",
                      mode="EVERY_TIME", cooldown_ms=0)
    await proc.change_rule(lambda: store.create_rule(rule))
    try:
        yield proc
    finally:
        await proc.stop()
        await store.close()


def ticks(first: int, n: int) -> TickBatch:
    ids = np.arange(first, first + n, dtype=np.int64)
    return TickBatch(symbols=["test:A"] * n, time_ms=START_MS + ids, price=np.ones(n),
                     qty=np.ones(n), trade_id=ids)


async def test_every_batch_runs_off_the_loop_and_ids_follow_commit_order(
        processor: AlertProcessor) -> None:
    ran_on: list[str] = []
    kernel_process = processor.kernel.process

    def process(*args: object) -> object:
        ran_on.append("loop" if threading.current_thread() is threading.main_thread()
                      else "worker")
        return kernel_process(*args)  # type: ignore[arg-type]

    processor.kernel.process = process  # type: ignore[method-assign]
    small = await processor.publish("s", ticks(1, 1))
    large = await processor.publish("s", ticks(2, 500))
    marked = await processor.publish("s", ticks(502, 1), watermark_ms=START_MS)
    assert ran_on == ["worker", "worker", "worker"]     # never on the event loop
    alerts = small.alerts + large.alerts + marked.alerts
    assert [a.trade_id for a in alerts] == list(range(1, 503))
    assert [a.alert_id for a in alerts] == list(range(1, len(alerts) + 1))
    assert (small.accepted, large.accepted, marked.accepted) == (1, 500, 1)


async def test_the_loop_serves_other_tasks_while_a_large_batch_runs(
        processor: AlertProcessor) -> None:
    started = threading.Event()
    release = threading.Event()
    kernel_process = processor.kernel.process

    def process(*args: object) -> object:
        started.set()
        assert release.wait(10)
        return kernel_process(*args)  # type: ignore[arg-type]

    processor.kernel.process = process  # type: ignore[method-assign]
    publishing = asyncio.create_task(processor.publish("s", ticks(1, 3)))
    assert await asyncio.to_thread(started.wait, 10)
    assert not publishing.done()           # the loop runs this while the batch is held
    release.set()
    assert (await publishing).accepted == 3


async def test_qualify_all_qualifies_remembers_and_refuses_a_bad_symbol(
        processor: AlertProcessor) -> None:
    assert processor.qualify_all(["BTCUSDT", "test:A", "", "BTCUSDT"]) == [
        "binance:BTCUSDT", "test:A", "", "binance:BTCUSDT"]
    assert processor.qualify_all(["test:A", "ETHUSDT"]) == ["test:A", "binance:ETHUSDT"]
    with pytest.raises(InvalidArgumentError, match="bad symbol"):
        processor.qualify_all(["test:A", "venue:"])
