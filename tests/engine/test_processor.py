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
from alerts.engine import processor as processor_module
from alerts.engine.processor import AlertProcessor, TickBatch
from alerts.errors import InvalidArgumentError
from alerts.storage import RuleRecord, open_store
from alerts.v1 import service_pb2

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


def message(*names: str, first_trade: int = 1) -> bytes:
    req = service_pb2.PublishTicksRequest()
    for k, name in enumerate(names):
        t = req.ticks.add(symbol=name, price=1.0, quantity=1.0, trade_id=first_trade + k)
        t.event_time.FromMilliseconds(START_MS + first_trade + k)
    return req.SerializeToString()


async def test_published_names_are_qualified_once_then_known(
        processor: AlertProcessor, monkeypatch: pytest.MonkeyPatch) -> None:
    first = processor.decode(message("A", "test:A", "BTCUSDT", "A"))
    assert first.ids.tolist() == [-1, -1, -1, -1]           # nothing published before
    assert first.new_names == [b"A", b"test:A", b"BTCUSDT", b"A"]
    done = await processor.publish("s", first)
    assert done.accepted == 4
    # "test:A" fired its rule; "A" is the default venue's, not test:A.
    assert [(a.symbol, a.trade_id) for a in done.alerts] == [("test:A", 2)]
    ids = {name: processor.kernel.find_symbol(name)
           for name in ("binance:A", "test:A", "binance:BTCUSDT")}
    again = processor.decode(message("test:A", "BTCUSDT", "A", first_trade=5))
    assert again.new_names == []
    assert again.ids.tolist() == [ids["test:A"], ids["binance:BTCUSDT"], ids["binance:A"]]
    assert [a.trade_id for a in (await processor.publish("s", again)).alerts] == [5]

    # Past the limit the table starts over, and names are learnt again, to the same ids.
    monkeypatch.setattr(processor_module, "PUBLISHED_NAMES_LIMIT", 1)
    learnt = processor.decode(message("ETHUSDT", first_trade=8))
    await processor.publish("s", learnt)
    relearnt = processor.decode(message("test:A", "ETHUSDT", first_trade=9))
    assert relearnt.new_names == [b"test:A"]
    await processor.publish("s", relearnt)
    assert relearnt.ids[0] == ids["test:A"]


@pytest.mark.parametrize(("names", "path"), [
    (["test:A", ""], "ticks[1].symbol"),
    (["venue:"], "ticks[0].symbol"),
    (["test:A", "test:A", ":A"], "ticks[2].symbol"),
])
async def test_a_bad_symbol_is_refused_by_its_tick(processor: AlertProcessor, names: list[str],
                                                   path: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        processor.decode(message(*names))
    assert [v.field for v in err.value.violations] == [path]
    # A feed's batch is checked by the same rules.
    batch = TickBatch(symbols=names, time_ms=np.full(len(names), START_MS), price=np.ones(len(names)),
                      qty=np.ones(len(names)), trade_id=np.arange(len(names)))
    with pytest.raises(InvalidArgumentError) as err:
        await processor.publish("s", batch)
    assert [v.field for v in err.value.violations] == [path]
