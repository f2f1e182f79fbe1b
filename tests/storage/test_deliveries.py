"""The outbox part of the ``Store`` contract (deliveries and attempts), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from alerts.errors import InvalidArgumentError
from alerts.storage import NewAlert, Store
from alerts.storage.records import DeliveryAttempt
from tests.storage.conftest import START_MS, FakeClock

pytestmark = pytest.mark.asyncio


def alert(n: int, *channels: str, owner: str = "alice") -> NewAlert:
    return NewAlert(owner=owner, rule_id="r1", symbol="binance:BTCUSDT", event_time_ms=START_MS + n,
                    message=f"alert {n}", channels=channels)


def failed(seq: int, time_ms: int, error: str = "HTTP 500", status: int = 500) -> DeliveryAttempt:
    return DeliveryAttempt(seq=seq, time_ms=time_ms, ok=False, status=status, latency_ms=3.5,
                           error=error)


def ok(seq: int, time_ms: int) -> DeliveryAttempt:
    return DeliveryAttempt(seq=seq, time_ms=time_ms, ok=True, status=204, latency_ms=1.25)


async def test_commit_batch_creates_one_pending_delivery_per_distinct_channel(
    store: Store, clock: FakeClock
) -> None:
    stored = await store.commit_batch(
        [alert(0, "hook", "mail", "hook"), alert(1), alert(2, "hook")], [], {})
    assert [a.channels for a in stored] == [("hook", "mail", "hook"), (), ("hook",)]
    due = await store.due_deliveries("alice", "hook", now_ms=START_MS, limit=10)
    assert [(d.alert.alert_id, d.alert.message) for d in due] == [(1, "alert 0"), (3, "alert 2")]
    first = due[0].delivery
    assert (first.state, first.attempts, first.attempt_seq) == ("PENDING", 0, 0)
    assert first.create_time_ms == first.next_attempt_ms == START_MS
    assert [d.alert.alert_id for d in
            await store.due_deliveries("alice", "mail", now_ms=START_MS, limit=10)] == [1]
    assert await store.pending_channels() == [("alice", "hook"), ("alice", "mail")]
    assert await store.delivery_counts() == {"PENDING": 3}
    # A repeated alert (skipped by identity) creates no second delivery.
    assert await store.commit_batch([alert(0, "hook")], [], {}) == []
    assert await store.delivery_counts() == {"PENDING": 3}


async def test_due_deliveries_respect_time_limit_owner_and_channel(
    store: Store, clock: FakeClock
) -> None:
    await store.commit_batch([alert(i, "hook") for i in range(5)], [], {})
    await store.commit_batch([alert(9, "hook", owner="bob")], [], {})
    assert [d.alert.alert_id for d in
            await store.due_deliveries("alice", "hook", now_ms=START_MS, limit=3)] == [1, 2, 3]
    assert await store.due_deliveries("alice", "hook", now_ms=START_MS - 1, limit=3) == []
    assert [d.alert.alert_id for d in
            await store.due_deliveries("bob", "hook", now_ms=START_MS, limit=9)] == [6]
    # A retry scheduled later leaves the queue until its time.
    assert await store.record_attempt("alice", "hook", 1, failed(1, START_MS + 10),
                                      state="PENDING", next_attempt_ms=START_MS + 5000)
    assert [d.alert.alert_id for d in
            await store.due_deliveries("alice", "hook", now_ms=START_MS + 20, limit=9)] == [
        2, 3, 4, 5]
    assert await store.next_attempt_time("alice", "hook", after_ms=START_MS + 20) == START_MS + 5000
    assert await store.next_attempt_time("alice", "hook", after_ms=START_MS + 5000) is None
    later = await store.due_deliveries("alice", "hook", now_ms=START_MS + 5000, limit=1)
    assert [(d.alert.alert_id, d.delivery.attempts, d.delivery.first_attempt_ms,
             d.delivery.last_error) for d in later] == [(1, 1, START_MS + 10, "HTTP 500")]


async def test_record_attempt_moves_state_once_and_refuses_a_stale_attempt(
    store: Store, clock: FakeClock
) -> None:
    await store.commit_batch([alert(0, "hook")], [], {})
    assert await store.record_attempt("alice", "hook", 1, failed(1, START_MS + 1),
                                      state="PENDING", next_attempt_ms=START_MS + 100)
    # The same attempt number again (a second worker, a replay) changes nothing.
    assert not await store.record_attempt("alice", "hook", 1, ok(1, START_MS + 2),
                                          state="DELIVERED", next_attempt_ms=0)
    clock.now_ms = START_MS + 150
    assert await store.record_attempt("alice", "hook", 1, ok(2, START_MS + 120),
                                      state="DELIVERED", next_attempt_ms=0)
    # Nothing moves a delivered one.
    assert not await store.record_attempt("alice", "hook", 1, failed(3, START_MS + 200),
                                          state="DEAD", next_attempt_ms=0)
    assert not await store.record_attempt("alice", "nope", 1, ok(1, START_MS),
                                          state="DELIVERED", next_attempt_ms=0)
    [d], token = await store.list_deliveries("alice", "hook", page_size=10, page_token=None)
    assert token is None
    assert (d.state, d.attempts, d.attempt_seq, d.first_attempt_ms, d.last_attempt_ms,
            d.last_status, d.done_time_ms) == ("DELIVERED", 2, 2, START_MS + 1, START_MS + 120,
                                               204, START_MS + 150)
    assert d.history == (failed(1, START_MS + 1), ok(2, START_MS + 120))
    assert await store.pending_channels() == []
    with pytest.raises(InvalidArgumentError):
        await store.record_attempt("alice", "hook", 1, ok(3, START_MS), state="LOST",
                                   next_attempt_ms=0)


async def test_dead_letters_are_redelivered_with_a_fresh_count_and_kept_history(
    store: Store, clock: FakeClock
) -> None:
    await store.commit_batch([alert(i, "hook") for i in range(3)], [], {})
    for alert_id in (1, 2):
        assert await store.record_attempt("alice", "hook", alert_id,
                                          failed(1, START_MS + 5, "HTTP 410", 410),
                                          state="DEAD", next_attempt_ms=0)
    dead, _ = await store.list_deliveries("alice", "hook", state="DEAD", page_size=10,
                                          page_token=None)
    assert [(d.alert_id, d.state, d.done_time_ms) for d in dead] == [
        (1, "DEAD", START_MS + 5), (2, "DEAD", START_MS + 5)]
    assert await store.redeliver("alice", "hook", alert_ids=[2, 2, 3], now_ms=START_MS + 50) == 1
    assert await store.redeliver("alice", "hook", alert_ids=None, now_ms=START_MS + 60) == 1
    assert await store.redeliver("alice", "hook", alert_ids=None, now_ms=START_MS + 70) == 0
    due = await store.due_deliveries("alice", "hook", now_ms=START_MS + 60, limit=10)
    assert [(d.alert.alert_id, d.delivery.attempts, d.delivery.attempt_seq,
             d.delivery.first_attempt_ms, d.delivery.next_attempt_ms) for d in due] == [
        (1, 0, 1, None, START_MS + 60), (2, 0, 1, None, START_MS + 50), (3, 0, 0, None, START_MS)]
    # The next attempt continues the sequence; the old attempt stays in the history.
    assert await store.record_attempt("alice", "hook", 2, ok(2, START_MS + 80),
                                      state="DELIVERED", next_attempt_ms=0)
    page, _ = await store.list_deliveries("alice", "hook", state="DELIVERED", page_size=10,
                                          page_token=None)
    assert [(d.alert_id, d.attempts, [a.seq for a in d.history]) for d in page] == [(2, 1, [1, 2])]


async def test_list_deliveries_pages_by_alert_id_with_tokens_bound_to_the_filter(
    store: Store,
) -> None:
    await store.commit_batch([alert(i, "hook") for i in range(7)], [], {})
    await store.record_attempt("alice", "hook", 3, failed(1, START_MS), state="DEAD",
                               next_attempt_ms=0)
    seen: list[int] = []
    token = None
    while True:
        page, token = await store.list_deliveries("alice", "hook", page_size=3,
                                                  page_token=token)
        seen += [d.alert_id for d in page]
        assert len(page) <= 3
        if token is None:
            break
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    pending, token = await store.list_deliveries("alice", "hook", state="PENDING", page_size=5,
                                                 page_token=None)
    assert [d.alert_id for d in pending] == [1, 2, 4, 5, 6]
    assert token is not None
    with pytest.raises(InvalidArgumentError) as err:
        await store.list_deliveries("alice", "hook", state="DEAD", page_size=5, page_token=token)
    assert err.value.violations[0].field == "page_token"
    with pytest.raises(InvalidArgumentError):
        await store.list_deliveries("alice", "hook", state="SOMETIMES", page_size=5,
                                    page_token=None)
    with pytest.raises(InvalidArgumentError):
        await store.list_deliveries("alice", "hook", page_size=-1, page_token=None)
    assert await store.list_deliveries("bob", "hook", page_size=5, page_token=None) == ([], None)


async def test_channel_stats_follow_deliveries_and_errors(store: Store, clock: FakeClock) -> None:
    empty = await store.channel_delivery_stats("alice", "hook")
    assert (empty.pending, empty.dead_letters, empty.last_delivered_alert_id,
            empty.last_delivery_time_ms, empty.last_error) == (0, 0, 0, None, "")
    await store.commit_batch([alert(i, "hook") for i in range(4)], [], {})
    clock.now_ms = START_MS + 10
    await store.record_attempt("alice", "hook", 2, ok(1, START_MS + 9), state="DELIVERED",
                               next_attempt_ms=0)
    await store.record_attempt("alice", "hook", 1, failed(1, START_MS + 11, "timed out", 0),
                               state="DEAD", next_attempt_ms=0)
    stats = await store.channel_delivery_stats("alice", "hook")
    assert (stats.pending, stats.dead_letters, stats.last_delivered_alert_id,
            stats.last_delivery_time_ms, stats.last_error, stats.last_error_time_ms) == (
        2, 1, 2, START_MS + 10, "timed out", START_MS + 11)
    # A later success clears the channel's error.
    clock.now_ms = START_MS + 30
    await store.record_attempt("alice", "hook", 3, ok(1, START_MS + 20), state="DELIVERED",
                               next_attempt_ms=0)
    stats = await store.channel_delivery_stats("alice", "hook")
    assert (stats.pending, stats.last_delivered_alert_id, stats.last_delivery_time_ms,
            stats.last_error) == (1, 3, START_MS + 30, "")
    assert await store.delivery_counts() == {"DEAD": 1, "DELIVERED": 2, "PENDING": 1}


async def test_pruned_alerts_take_their_deliveries_along(store: Store, clock: FakeClock) -> None:
    await store.commit_batch([alert(0, "hook")], [], {})
    await store.record_attempt("alice", "hook", 1, failed(1, START_MS), state="PENDING",
                               next_attempt_ms=START_MS + 1)
    clock.now_ms = START_MS + 1000
    await store.commit_batch([alert(1, "hook")], [], {})
    assert await store.prune_alerts(START_MS + 500) == 1
    page, _ = await store.list_deliveries("alice", "hook", page_size=10, page_token=None)
    assert [(d.alert_id, d.history) for d in page] == [(2, ())]


async def test_a_failed_batch_leaves_no_delivery(store: Store) -> None:
    bad = replace(alert(1, "hook"), kind=None)  # type: ignore[arg-type]  # NOT NULL column
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error
        await store.commit_batch([alert(0, "hook"), bad], [], {})
    assert await store.delivery_counts() == {}
    assert await store.pending_channels() == []


async def test_a_read_sees_every_commit_made_before_it_while_other_reads_interleave(
    store: Store,
) -> None:
    """The outbox relies on it: a delivery recorded before a read never reads as due."""
    stop = False

    async def reader() -> None:
        while not stop:
            await store.list_alerts(None, limit=1000)

    readers = [asyncio.create_task(reader()) for _ in range(4)]
    try:
        for i in range(150):
            [rec] = await store.commit_batch([alert(i, "hook")], [], {})
            due = await store.due_deliveries("alice", "hook", now_ms=START_MS + 10**9,
                                             limit=1)
            assert [d.alert.alert_id for d in due] == [rec.alert_id]
            assert await store.record_attempt("alice", "hook", rec.alert_id,
                                              ok(1, START_MS + i), state="DELIVERED",
                                              next_attempt_ms=0)
            assert await store.due_deliveries("alice", "hook", now_ms=START_MS + 10**9,
                                              limit=1) == []
    finally:
        stop = True
        await asyncio.gather(*readers)
