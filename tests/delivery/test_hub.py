"""The in-process hub: per-subscriber queue sizes, slow subscribers, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from alerts.delivery.hub import AlertHub, SlowConsumer
from alerts.storage.records import AlertRecord


def alert(alert_id: int, owner: str = "local") -> AlertRecord:
    return AlertRecord(alert_id=alert_id, owner=owner, rule_id="r", symbol="test:A",
                       event_time_ms=alert_id, commit_time_ms=alert_id)


def test_a_subscriber_may_have_its_own_queue_size() -> None:
    async def run() -> None:
        hub = AlertHub(queue_size=100)
        small = hub.subscribe("local", lambda _: True, queue_size=2)
        default = hub.subscribe("local", lambda _: True)
        hub.publish([alert(1), alert(2), alert(3)])
        assert not default.slow and [await default.next(1) for _ in range(3)] == [
            alert(1), alert(2), alert(3)]
        assert small.slow
        with pytest.raises(SlowConsumer):
            await small.next(1)
    asyncio.run(run())


def test_queued_alerts_come_in_order_then_a_timeout_gives_none() -> None:
    async def run() -> None:
        hub = AlertHub()
        sub = hub.subscribe("local", lambda rec: rec.alert_id != 2)
        hub.publish([alert(1), alert(2), alert(3, owner="bob"), alert(4)])
        assert [await sub.next(1), await sub.next(1)] == [alert(1), alert(4)]
        assert await sub.next(0.01) is None
        assert hub.last_id == 4
    asyncio.run(run())


def test_a_waiting_subscriber_gets_an_alert_published_meanwhile() -> None:
    async def run() -> None:
        hub = AlertHub()
        sub = hub.subscribe("local", lambda _: True)
        asyncio.get_running_loop().call_soon(hub.publish, [alert(7)])  # once next() waits
        assert sub.queue.empty()
        assert await sub.next(5) == alert(7)
    asyncio.run(run())


def test_close_ends_every_subscriber_even_one_already_dropped() -> None:
    async def run() -> None:
        hub = AlertHub(queue_size=1)
        dropped = hub.subscribe("local", lambda _: True)
        waiting = hub.subscribe("bob", lambda _: True)
        hub.publish([alert(1), alert(2)])         # overflows "local": its queue is full
        assert dropped.slow
        hub.close()
        with pytest.raises(SlowConsumer):
            await waiting.next(1)
        with pytest.raises(SlowConsumer):
            await dropped.next(1)
    asyncio.run(run())
