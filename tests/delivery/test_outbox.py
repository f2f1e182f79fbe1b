"""The outbox over a real store (SQLite and PostgreSQL) with in-process senders.

The senders here implement ``ChannelSender`` directly, each scripted per attempt,
so the outbox's own decisions (order, retries, dead letters, pause, isolation,
restart) are checked without the network; the HTTP fault tests are in
``test_faults.py``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import pytest

from alerts.delivery.channels.base import ChannelSender, Delivery, Outcome
from alerts.delivery.outbox import (
    CHANNEL_GONE,
    ChannelTarget,
    Outbox,
    RetryPolicy,
    next_step,
)
from alerts.storage import NewAlert, Store
from alerts.storage.records import AlertRecord

Script = Callable[[Delivery], Awaitable[Outcome]]
FAST = RetryPolicy(first_delay_s=0.02, max_delay_s=0.1, retry_period_s=30.0)


async def delivered(delivery: Delivery) -> Outcome:
    return Outcome(ok=True, status=204)


class RecordingSender(ChannelSender):
    """Runs ``script`` for each attempt and remembers every attempt it saw."""

    def __init__(self, script: Script = delivered) -> None:
        self.script = script
        self.seen: list[Delivery] = []
        self.changed = asyncio.Condition()

    async def send(self, delivery: Delivery) -> Outcome:
        async with self.changed:
            self.seen.append(delivery)
            self.changed.notify_all()
        return await self.script(delivery)

    async def wait_for(self, predicate: Callable[[list[Delivery]], bool],
                       timeout: float = 10.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: predicate(self.seen)), timeout)

    def ids(self) -> list[int]:
        return [d.alert.alert_id for d in self.seen]


class Directory:
    """Channel id -> target, changed by the tests."""

    def __init__(self, **targets: ChannelTarget) -> None:
        self.targets = dict(targets)

    async def target(self, owner: str, channel_id: str) -> ChannelTarget | None:
        return self.targets.get(channel_id) if owner == "alice" else None


async def commit(store: Store, outbox: Outbox | None, n: int, *channels: str,
                 start: int = 0) -> list[AlertRecord]:
    alerts = [NewAlert(owner="alice", rule_id="r1", symbol="binance:BTCUSDT",
                       event_time_ms=1_700_000_000_000 + start + i, message=f"m{start + i}",
                       channels=channels) for i in range(n)]
    records = await store.commit_batch(alerts, [], {})
    if outbox is not None:
        outbox.notify(records)
    return records


async def states(store: Store, channel: str) -> dict[int, str]:
    page, _ = await store.list_deliveries("alice", channel, page_size=1000, page_token=None)
    return {d.alert_id: d.state for d in page}


async def wait_states(store: Store, channel: str, predicate: Callable[[dict[int, str]], bool],
                      timeout: float = 10.0) -> dict[int, str]:
    """Polls the store (the outbox's only output there) until ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        now = await states(store, channel)
        if predicate(now):
            return now
        assert time.monotonic() < deadline, f"timed out; states: {now}"
        await asyncio.sleep(0.01)


# -- the retry policy --------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_a_doubling_ceiling() -> None:
    policy = RetryPolicy(first_delay_s=1.0, max_delay_s=10.0)
    rng = random.Random(7)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (500, 10.0)):
        delays = [policy.backoff_s(failures, rng) for _ in range(2000)]
        assert 0.0 <= min(delays) and max(delays) <= ceiling
        assert max(delays) > 0.9 * ceiling and min(delays) < 0.1 * ceiling  # spread over it


def test_next_step_honours_retry_after_and_ends_with_the_period() -> None:
    policy = RetryPolicy(first_delay_s=1.0, max_delay_s=2.0, retry_period_s=100.0)
    rng = random.Random(1)
    failing = Outcome(ok=False, status=503, retryable=True)
    state, at = next_step(policy, failing, attempts=1, first_attempt_ms=0, now_ms=1000,
                          max_attempts=0, rng=rng)
    assert state == "PENDING" and 1000 <= at <= 2000
    slow_down = Outcome(ok=False, status=429, retryable=True, retry_after_s=30.0)
    assert next_step(policy, slow_down, attempts=1, first_attempt_ms=0, now_ms=1000,
                     max_attempts=0, rng=rng) == ("PENDING", 31_000)
    # the last attempt is at the end of the period, never after it
    assert next_step(policy, slow_down, attempts=5, first_attempt_ms=0, now_ms=90_000,
                     max_attempts=0, rng=rng) == ("PENDING", 100_000)
    assert next_step(policy, failing, attempts=6, first_attempt_ms=0, now_ms=100_000,
                     max_attempts=0, rng=rng) == ("DEAD", 100_000)
    assert next_step(policy, failing, attempts=3, first_attempt_ms=0, now_ms=5000,
                     max_attempts=3, rng=rng)[0] == "DEAD"
    assert next_step(RetryPolicy(max_attempts=2), failing, attempts=2, first_attempt_ms=0,
                     now_ms=5000, max_attempts=0, rng=rng)[0] == "DEAD"
    refused = Outcome(ok=False, status=404, retryable=False)
    assert next_step(policy, refused, attempts=1, first_attempt_ms=0, now_ms=1000,
                     max_attempts=0, rng=rng) == ("DEAD", 1000)
    assert next_step(policy, Outcome(ok=True, status=200), attempts=9, first_attempt_ms=0,
                     now_ms=200_000, max_attempts=1, rng=rng) == ("DELIVERED", 200_000)


# -- the outbox --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_every_alert_reaches_every_channel_in_id_order_with_its_text(
        live_store: Store) -> None:
    hook, mail = RecordingSender(), RecordingSender()
    directory = Directory(
        hook=ChannelTarget("webhook", hook, text=lambda a: f"hook {a.alert_id}"),
        mail=ChannelTarget("email", mail, subject=lambda a: f"subject {a.alert_id}"))
    outbox = Outbox(live_store, directory, policy=FAST, max_in_flight=1)
    await outbox.start()
    try:
        records = await commit(live_store, outbox, 20, "hook", "mail")
        ids = [r.alert_id for r in records]
        await hook.wait_for(lambda seen: len(seen) == 20)
        await mail.wait_for(lambda seen: len(seen) == 20)
        assert hook.ids() == ids and mail.ids() == ids          # one in flight: in id order
        assert [d.text for d in hook.seen] == [f"hook {i}" for i in ids]
        assert [(d.text, d.subject) for d in mail.seen] == [(f"m{i}", f"subject {i + 1}")
                                                            for i in range(20)]
        assert {d.attempt for d in hook.seen} == {1}
        await wait_states(live_store, "hook", lambda s: set(s.values()) == {"DELIVERED"})
        await wait_states(live_store, "mail", lambda s: set(s.values()) == {"DELIVERED"})
        stats = await live_store.channel_delivery_stats("alice", "hook")
        assert (stats.pending, stats.last_delivered_alert_id) == (0, ids[-1])
    finally:
        await outbox.stop()
    assert outbox.metrics.deliveries_pending._value.get() == 0
    counter = outbox.metrics.deliveries
    assert counter.labels("webhook", "delivered")._value.get() == 20
    assert counter.labels("email", "delivered")._value.get() == 20


@pytest.mark.asyncio
async def test_failures_are_retried_with_the_attempt_history_recorded(live_store: Store) -> None:
    async def flaky(delivery: Delivery) -> Outcome:
        if delivery.attempt < 3:
            return Outcome(ok=False, status=503, retryable=True, error="HTTP 503")
        return Outcome(ok=True, status=200, latency_s=0.004)

    hook = RecordingSender(flaky)
    outbox = Outbox(live_store, Directory(hook=ChannelTarget("webhook", hook)), policy=FAST)
    await outbox.start()
    try:
        [rec] = await commit(live_store, outbox, 1, "hook")
        await wait_states(live_store, "hook", lambda s: s == {rec.alert_id: "DELIVERED"})
    finally:
        await outbox.stop()
    [d], _ = await live_store.list_deliveries("alice", "hook", page_size=10, page_token=None)
    assert d.attempts == 3
    assert [(a.seq, a.ok, a.status, a.error) for a in d.history] == [
        (1, False, 503, "HTTP 503"), (2, False, 503, "HTTP 503"), (3, True, 200, "")]
    assert d.history[2].latency_ms == pytest.approx(4.0)
    assert d.history[0].time_ms <= d.history[1].time_ms <= d.history[2].time_ms
    assert [x.attempt for x in hook.seen] == [1, 2, 3]


@pytest.mark.asyncio
async def test_a_stuck_channel_does_not_delay_a_healthy_one(live_store: Store) -> None:
    release = asyncio.Event()

    async def stuck(delivery: Delivery) -> Outcome:
        await release.wait()
        return Outcome(ok=True, status=200)

    slow, fast = RecordingSender(stuck), RecordingSender()
    outbox = Outbox(live_store, Directory(slow=ChannelTarget("webhook", slow),
                                          fast=ChannelTarget("webhook", fast)),
                    policy=FAST, max_in_flight=2)
    await outbox.start()
    try:
        await commit(live_store, outbox, 30, "slow", "fast")
        await fast.wait_for(lambda seen: len(seen) == 30)
        await slow.wait_for(lambda seen: len(seen) == 2)
        # the slow channel holds exactly its in-flight bound, no more
        assert len(slow.seen) == 2
        release.set()
        await slow.wait_for(lambda seen: len(seen) == 30)
        await wait_states(live_store, "slow", lambda s: list(s.values()) == ["DELIVERED"] * 30)
    finally:
        await outbox.stop()


@pytest.mark.asyncio
async def test_a_paused_channel_keeps_its_deliveries_and_sends_them_on_resume(
        live_store: Store) -> None:
    hook = RecordingSender()
    directory = Directory(hook=ChannelTarget("webhook", hook, paused=True))
    outbox = Outbox(live_store, directory, policy=FAST, paused_recheck_s=3600)
    await outbox.start()
    try:
        records = await commit(live_store, outbox, 5, "hook")
        stats = await live_store.channel_delivery_stats("alice", "hook")
        assert stats.pending == 5
        directory.targets["hook"] = ChannelTarget("webhook", hook)
        # a wake is what a resumed channel gets: nothing was sent while paused
        assert hook.seen == []
        outbox.wake("alice", "hook")
        await hook.wait_for(lambda seen: len(seen) == 5)
        assert hook.ids() == [r.alert_id for r in records]
    finally:
        await outbox.stop()


@pytest.mark.asyncio
async def test_dead_letters_come_after_the_retry_period_and_can_be_redelivered(
        live_store: Store) -> None:
    failing = True

    async def down(delivery: Delivery) -> Outcome:
        if failing:
            return Outcome(ok=False, status=0, retryable=True, error="connection refused")
        return Outcome(ok=True, status=200)

    hook = RecordingSender(down)
    policy = RetryPolicy(first_delay_s=0.05, max_delay_s=0.2, retry_period_s=1.0)
    outbox = Outbox(live_store, Directory(hook=ChannelTarget("webhook", hook)), policy=policy)
    await outbox.start()
    try:
        [rec] = await commit(live_store, outbox, 1, "hook")
        await wait_states(live_store, "hook", lambda s: s == {rec.alert_id: "DEAD"})
        [d], _ = await live_store.list_deliveries("alice", "hook", page_size=1, page_token=None)
        assert d.first_attempt_ms is not None and d.done_time_ms is not None
        assert d.done_time_ms - d.first_attempt_ms >= 1000          # not before the period
        assert d.history[-1].time_ms - d.first_attempt_ms >= 1000   # the last try at its end
        assert len(d.history) >= 3
        stats = await live_store.channel_delivery_stats("alice", "hook")
        assert (stats.dead_letters, stats.last_error) == (1, "connection refused")
        assert outbox.metrics.dead_letters._value.get() == 1
        failing = False
        assert await outbox.redeliver("alice", "hook") == 1
        await wait_states(live_store, "hook", lambda s: s == {rec.alert_id: "DELIVERED"})
        assert outbox.metrics.dead_letters._value.get() == 0
        assert await outbox.redeliver("alice", "hook") == 0
    finally:
        await outbox.stop()


@pytest.mark.asyncio
async def test_a_permanent_failure_is_dead_at_once_and_a_deleted_channel_too(
        live_store: Store) -> None:
    async def gone(delivery: Delivery) -> Outcome:
        return Outcome(ok=False, status=410, retryable=False, error="HTTP 410")

    hook = RecordingSender(gone)
    outbox = Outbox(live_store, Directory(hook=ChannelTarget("webhook", hook)), policy=FAST)
    await outbox.start()
    try:
        [a] = await commit(live_store, outbox, 1, "hook")
        [b] = await commit(live_store, outbox, 1, "nowhere", start=1)
        await wait_states(live_store, "hook", lambda s: s == {a.alert_id: "DEAD"})
        await wait_states(live_store, "nowhere", lambda s: s == {b.alert_id: "DEAD"})
        assert len(hook.seen) == 1
        [d], _ = await live_store.list_deliveries("alice", "nowhere", page_size=1,
                                                  page_token=None)
        assert [h.error for h in d.history] == [CHANNEL_GONE]
    finally:
        await outbox.stop()


@pytest.mark.asyncio
async def test_a_restart_resumes_pending_deliveries_and_resends_the_cut_off_one(
        live_store: Store) -> None:
    async def hang(delivery: Delivery) -> Outcome:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    first = RecordingSender(hang)
    outbox = Outbox(live_store, Directory(hook=ChannelTarget("webhook", first)),
                    policy=FAST, max_in_flight=1)
    await outbox.start()
    records = await commit(live_store, outbox, 4, "hook")
    await first.wait_for(lambda seen: len(seen) == 1)
    await outbox.stop(grace_s=0.05)                      # cuts the hanging attempt off
    assert await states(live_store, "hook") == {r.alert_id: "PENDING" for r in records}

    second = RecordingSender()
    again = Outbox(live_store, Directory(hook=ChannelTarget("webhook", second)), policy=FAST,
                   max_in_flight=1)
    await again.start()                                  # no notify: the store is the source
    try:
        await second.wait_for(lambda seen: len(seen) == 4)
        assert second.ids() == [r.alert_id for r in records]
        assert second.seen[0].attempt == 1               # the cut-off attempt left no trace
        await wait_states(live_store, "hook", lambda s: set(s.values()) == {"DELIVERED"})
    finally:
        await again.stop()


@pytest.mark.asyncio
async def test_a_sender_that_raises_or_overruns_counts_as_a_retryable_failure(
        live_store: Store) -> None:
    async def misbehave(delivery: Delivery) -> Outcome:
        if delivery.attempt == 1:
            raise RuntimeError("bug in sender")
        if delivery.attempt == 2:
            await asyncio.sleep(3600)
        return Outcome(ok=True, status=200)

    hook = RecordingSender(misbehave)
    outbox = Outbox(live_store, Directory(hook=ChannelTarget("webhook", hook)), policy=FAST,
                    attempt_timeout_s=0.2)
    await outbox.start()
    try:
        [rec] = await commit(live_store, outbox, 1, "hook")
        await wait_states(live_store, "hook", lambda s: s == {rec.alert_id: "DELIVERED"})
    finally:
        await outbox.stop()
    [d], _ = await live_store.list_deliveries("alice", "hook", page_size=1, page_token=None)
    assert [h.error for h in d.history] == ["RuntimeError: bug in sender",
                                            "no outcome within 0.2 s", ""]
