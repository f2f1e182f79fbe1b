"""The ``Store`` contract, one suite run against SQLite and the real PostgreSQL.

Every test takes the ``store`` fixture (parametrised over both back ends, on a fake
clock) unless it is about opening stores itself.
"""

from __future__ import annotations

import asyncio
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from alerts.errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from alerts.storage import (
    AlertRecord,
    Checkpoint,
    NewAlert,
    RuleRecord,
    Store,
    SubscriptionRecord,
    TriggerState,
    migrations,
    open_store,
    store_from_url,
)
from alerts.storage._sql import SqlStore
from alerts.storage.base import REQUEST_ID_RETENTION_MS, BatchWrite
from tests.storage.conftest import START_MS, FakeClock

pytestmark = pytest.mark.asyncio

HOUR_MS = 3600 * 1000


def rule(rule_id: str = "r1", owner: str = "alice", **fields: object) -> RuleRecord:
    base = RuleRecord(
        rule_id=rule_id,
        owner=owner,
        display_name=f"rule {rule_id}",
        symbol="binance:BTCUSDT",
        condition_text="price > 65000",
        mode="ONCE_PER_BAR_CLOSE",
        timeframe="5m",
        cooldown_ms=1000,
        expire_time_ms=START_MS + 86_400_000,
        max_fires=3,
        hysteresis=0.5,
        hold_for_ms=2000,
        message_template="{symbol} above {price}",
        labels=(("team", "grid"), ("bot", "b1")),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def alert(
    n: int = 0, *, owner: str = "alice", rule_id: str = "r1", rank: int = 0, **fields: object
) -> NewAlert:
    base = NewAlert(
        owner=owner,
        rule_id=rule_id,
        symbol="binance:BTCUSDT",
        kind="RULE",
        timeframe="5m",
        bar_open_ms=START_MS - 300_000,
        values=(("close(5m)", 65_001.5), ("sma(20, 5m)", 64_000.25)),
        message=f"alert {n}",
        condition_text="close(5m) > sma(20, 5m)",
        rule_display_name=f"Rule {rule_id} ✓",
        rule_labels=(("bot", "b1"), ("team", "grid")),
        event_time_ms=START_MS + n,
        receive_time_ms=START_MS + n + 1,
        decide_time_ms=START_MS + n + 2,
        trade_id=1000 + n,
        rank=rank,
        price=65_001.5,
        details={"source": "replay"},
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def without_storage_fields(rec: AlertRecord) -> NewAlert:
    """The ``NewAlert`` part of a stored alert, for comparison with what was committed."""
    fields = {name: getattr(rec, name) for name in NewAlert.__dataclass_fields__}
    return NewAlert(**fields)


# -- rules ---------------------------------------------------------------------------------


async def test_create_then_get_round_trips_every_field(store: Store, clock: FakeClock) -> None:
    created = await store.create_rule(rule())
    assert created.create_time_ms == created.update_time_ms == START_MS
    assert created.revision == 1
    assert created.etag
    assert created.labels == (("bot", "b1"), ("team", "grid"))  # sorted
    assert replace(created, create_time_ms=0, update_time_ms=0, etag="", revision=0) == replace(
        rule(), labels=(("bot", "b1"), ("team", "grid"))
    )
    assert await store.get_rule("alice", "r1") == created
    minimal = await store.create_rule(
        RuleRecord(rule_id="m", owner="alice", symbol="us:SPY", condition_text="price > 1")
    )
    assert await store.get_rule("alice", "m") == minimal
    assert minimal.timeframe is None and minimal.cooldown_ms is None
    assert minimal.expire_time_ms is None and minimal.channels == () and minimal.labels == ()


async def test_a_taken_rule_id_is_already_exists_but_only_per_owner(store: Store) -> None:
    await store.create_rule(rule())
    with pytest.raises(AlreadyExistsError):
        await store.create_rule(rule(display_name="other"))
    bob = await store.create_rule(rule(owner="bob"))
    assert bob.owner == "bob"
    assert (await store.get_rule("alice", "r1")).display_name == "rule r1"


async def test_another_owners_rule_is_not_found_exactly_like_a_missing_one(
    store: Store,
) -> None:
    await store.create_rule(rule(owner="bob"))
    with pytest.raises(NotFoundError) as theirs:
        await store.get_rule("alice", "r1")
    await store.delete_rule("bob", "r1")
    with pytest.raises(NotFoundError) as missing:
        await store.get_rule("bob", "r1")
    assert str(theirs.value) == str(missing.value)
    assert theirs.value.reason == missing.value.reason
    assert theirs.value.metadata == missing.value.metadata


async def test_a_repeated_request_id_returns_the_original_rule(
    store: Store, clock: FakeClock
) -> None:
    first = await store.create_rule(rule(), request_id="req-1")
    clock.advance(1000)
    # The retry carries the same request id; a different body does not matter (AIP-155).
    again = await store.create_rule(rule(display_name="retry"), request_id="req-1")
    assert again == first
    updated = await store.update_rule(rule(display_name="renamed"), expected_etag=None)
    clock.advance(HOUR_MS)
    assert await store.create_rule(rule(), request_id="req-1") == updated  # its current state
    # Request ids are per owner.
    bobs = await store.create_rule(rule(owner="bob"), request_id="req-1")
    assert bobs.owner == "bob"
    # Remembered for 24 h: after that the same id is a new request.
    clock.advance(REQUEST_ID_RETENTION_MS)
    with pytest.raises(AlreadyExistsError):
        await store.create_rule(rule(), request_id="req-1")
    fresh = await store.create_rule(rule("r2"), request_id="req-1")
    assert fresh.rule_id == "r2"


async def test_a_request_id_whose_rule_was_deleted_is_not_found(store: Store) -> None:
    await store.create_rule(rule(), request_id="req-1")
    await store.delete_rule("alice", "r1")
    with pytest.raises(NotFoundError, match="since been deleted"):
        await store.create_rule(rule(), request_id="req-1")
    assert await store.create_rule(rule(), request_id="req-2")


async def test_list_rules_pages_in_create_time_then_id_order(
    store: Store, clock: FakeClock
) -> None:
    ids = ["e", "b", "d", "a", "c", "g", "f"]
    for i, rule_id in enumerate(ids):
        clock.now_ms = START_MS + (i // 3) * 10  # three rules share each millisecond
        await store.create_rule(
            rule(rule_id, symbol="us:SPY" if i % 2 else "binance:BTCUSDT", paused=i == 4)
        )
    await store.create_rule(rule("z", owner="bob"))
    expected = ["b", "d", "e", "a", "c", "g", "f"]

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page, token = await store.list_rules("alice", page_size=3, page_token=token)
        seen += [r.rule_id for r in page]
        pages += 1
        assert len(page) == 3 or token is None
        if token is None:
            break
    assert seen == expected and pages == 3

    everything, last = await store.list_rules("alice", page_size=0, page_token=None)
    assert [r.rule_id for r in everything] == expected and last is None
    assert await store.count_rules("alice") == len(expected)
    assert await store.count_rules("nobody") == 0

    spy, _ = await store.list_rules("alice", page_size=10, page_token=None, symbol="us:SPY")
    assert [r.rule_id for r in spy] == ["b", "a", "g"]
    paused, _ = await store.list_rules("alice", page_size=10, page_token=None, paused=True)
    assert [r.rule_id for r in paused] == ["c"]
    active, _ = await store.list_rules("alice", page_size=10, page_token=None, paused=False)
    assert "c" not in [r.rule_id for r in active] and len(active) == 6

    # A page boundary keyed by (time, id) is not shifted by a deletion meanwhile.
    first, token = await store.list_rules("alice", page_size=2, page_token=None)
    await store.delete_rule("alice", first[0].rule_id)
    second, _ = await store.list_rules("alice", page_size=2, page_token=token)
    assert [r.rule_id for r in second] == ["e", "a"]


@pytest.mark.parametrize(
    "token", ["garbage!", "bm90IGpzb24", "WzEsImEiLCJiIiwiYyJd", "W10", "eyJhIjoxfQ"]
)
async def test_a_bad_page_token_is_invalid_argument_on_page_token(
    store: Store, token: str
) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await store.list_rules("alice", page_size=5, page_token=token)
    assert [v.field for v in err.value.violations] == ["page_token"]


async def test_a_page_token_only_works_with_its_own_filters(store: Store) -> None:
    for rule_id in "abc":
        await store.create_rule(rule(rule_id))
    _, token = await store.list_rules("alice", page_size=1, page_token=None)
    assert token is not None
    for kwargs in ({"symbol": "us:SPY"}, {"paused": True}):
        with pytest.raises(InvalidArgumentError) as err:
            await store.list_rules("alice", page_size=1, page_token=token, **kwargs)
        assert err.value.violations[0].field == "page_token"
    with pytest.raises(InvalidArgumentError):
        await store.list_rules("bob", page_size=1, page_token=token)
    with pytest.raises(InvalidArgumentError) as size:
        await store.list_rules("alice", page_size=-1, page_token=None)
    assert size.value.violations[0].field == "page_size"


async def test_update_bumps_revision_and_etag_and_checks_the_etag(
    store: Store, clock: FakeClock
) -> None:
    created = await store.create_rule(rule())
    clock.advance(5000)
    updated = await store.update_rule(
        rule(condition_text="price > 70000", labels=(("z", "1"),), paused=True),
        expected_etag=created.etag,
    )
    assert updated.revision == 2
    assert updated.etag != created.etag
    assert updated.create_time_ms == created.create_time_ms
    assert updated.update_time_ms == START_MS + 5000
    assert updated.condition_text == "price > 70000" and updated.paused
    assert await store.get_rule("alice", "r1") == updated

    with pytest.raises(AbortedError) as stale:
        await store.update_rule(rule(display_name="late"), expected_etag=created.etag)
    assert stale.value.reason == "ETAG_MISMATCH"
    assert await store.get_rule("alice", "r1") == updated

    # No etag: unconditional; a change of nothing still renews revision and etag.
    again = await store.update_rule(updated, expected_etag=None)
    assert again.revision == 3 and again.etag != updated.etag

    with pytest.raises(NotFoundError):
        await store.update_rule(rule("missing"), expected_etag=None)
    with pytest.raises(NotFoundError):
        await store.update_rule(rule(owner="bob"), expected_etag=None)


async def test_concurrent_updates_each_bump_the_revision_once(store: Store) -> None:
    await store.create_rule(rule())
    results = await asyncio.gather(
        *(store.update_rule(rule(display_name=f"n{i}"), expected_etag=None) for i in range(8))
    )
    assert sorted(r.revision for r in results) == list(range(2, 10))
    assert (await store.get_rule("alice", "r1")).revision == 9


async def test_delete_removes_the_rule_and_its_trigger_state(store: Store) -> None:
    created = await store.create_rule(rule())
    await store.create_rule(rule("r2"))
    await store.commit_batch(
        [], [TriggerState(rule_id="r1", owner="alice", fires=2), TriggerState(
            rule_id="r2", owner="alice", fires=1)], {}
    )
    with pytest.raises(AbortedError):
        await store.delete_rule("alice", "r1", expected_etag="stale")
    with pytest.raises(NotFoundError):
        await store.delete_rule("bob", "r1")
    await store.delete_rule("alice", "r1", expected_etag=created.etag)
    with pytest.raises(NotFoundError):
        await store.get_rule("alice", "r1")
    with pytest.raises(NotFoundError):
        await store.delete_rule("alice", "r1")
    assert [s.rule_id for s in await store.trigger_states()] == ["r2"]
    # A rule created again under the same id starts without the old state.
    await store.create_rule(rule())
    assert [s.rule_id for s in await store.trigger_states()] == ["r2"]


async def test_all_rules_lists_every_owner(store: Store, clock: FakeClock) -> None:
    for owner in ("carol", "alice", "bob"):
        for rule_id in ("y", "x"):
            clock.advance(1)
            await store.create_rule(rule(rule_id, owner=owner))
    got = [(r.owner, r.rule_id) for r in await store.all_rules()]
    assert got == [(o, i) for o in ("alice", "bob", "carol") for i in ("y", "x")]


# -- alerts --------------------------------------------------------------------------------


async def test_commit_batch_stores_alerts_states_and_watermarks(
    store: Store, clock: FakeClock
) -> None:
    assert await store.last_alert_id() == 0
    assert await store.first_alert_id() is None
    await store.create_rule(rule())
    batch = [alert(0), alert(1), alert(1, rank=1)]
    states = [
        TriggerState(rule_id="r1", owner="alice", fires=3, last_fire_ms=START_MS + 1, armed=False),
        TriggerState(rule_id="ghost", owner="alice", fires=9),  # no such rule: skipped
    ]
    stored = await store.commit_batch(batch, states, {"binance": START_MS + 5, "replay": 7})
    assert [a.alert_id for a in stored] == [1, 2, 3]
    assert all(a.commit_time_ms == START_MS for a in stored)
    assert [without_storage_fields(a) for a in stored] == batch
    assert await store.list_alerts("alice", limit=10) == stored
    assert await store.trigger_states() == [states[0]]
    assert await store.watermarks() == {"binance": START_MS + 5, "replay": 7}

    # States and watermarks are upserted; a batch may carry no alerts at all.
    done = TriggerState(rule_id="r1", owner="alice", fires=4, last_fire_ms=START_MS + 9,
                        armed=True, completed=True, expired=True)
    assert await store.commit_batch([], [done], {"binance": START_MS + 50}) == []
    assert await store.trigger_states() == [done]
    assert await store.watermarks() == {"binance": START_MS + 50, "replay": 7}
    assert await store.last_alert_id() == 3
    assert await store.first_alert_id() == 1


async def test_a_repeated_identity_is_skipped_not_an_error(store: Store) -> None:
    first = await store.commit_batch([alert(0), alert(1)], [], {})
    # Again after a "crash": the old alerts are skipped, the new one gets the next id,
    # and a repeat within one batch is skipped as well.
    again = await store.commit_batch(
        [alert(1, message="resent"), alert(2), alert(2, message="twin"), alert(0)], [], {}
    )
    assert [a.alert_id for a in first] == [1, 2]
    assert [(a.alert_id, a.message) for a in again] == [(3, "alert 2")]
    assert await store.commit_batch([alert(0), alert(2)], [], {}) == []
    # Each part of the identity counts: rank, owner, rule, symbol, event time.
    distinct = [
        alert(0, rank=1),
        alert(0, owner="bob"),
        alert(0, rule_id="r2"),
        alert(0, symbol="us:SPY"),
        alert(3),
    ]
    more = await store.commit_batch(distinct, [], {})
    assert [a.alert_id for a in more] == [4, 5, 6, 7, 8]
    assert await store.last_alert_id() == 8
    stored = await store.list_alerts("alice", limit=100)
    assert [a.alert_id for a in stored] == [1, 2, 3, 4, 6, 7, 8]
    assert [a.message for a in stored[:3]] == ["alert 0", "alert 1", "alert 2"]


async def test_a_failure_mid_batch_leaves_nothing(store: Store) -> None:
    await store.create_rule(rule())
    await store.commit_batch([alert(0)], [TriggerState(rule_id="r1", owner="alice", fires=1)],
                             {"src": 1})
    # The alerts go in first; the state's fire count then overflows a 64-bit column.
    too_big = TriggerState(rule_id="r1", owner="alice", fires=2**70)
    with pytest.raises((OverflowError, asyncpg.DataError)):
        await store.commit_batch([alert(1), alert(2)], [too_big], {"src": 2})
    assert [a.alert_id for a in await store.list_alerts("alice", limit=10)] == [1]
    assert await store.last_alert_id() == 1
    assert await store.trigger_states() == [TriggerState(rule_id="r1", owner="alice", fires=1)]
    assert await store.watermarks() == {"src": 1}
    # The store is still usable and ids continue from the last committed one.
    after = await store.commit_batch([alert(1)], [], {"src": 3})
    assert [a.alert_id for a in after] == [2]


async def test_commit_produced_writes_what_runs_off_the_loop(store: Store) -> None:
    await store.create_rule(rule())
    ran_on: list[str] = []
    state = TriggerState(rule_id="r1", owner="alice", fires=2)

    def produce() -> tuple[BatchWrite, str]:
        ran_on.append(threading.current_thread().name)
        return BatchWrite([alert(0), alert(1)], [state], {"src": 5}), "extra"

    with ThreadPoolExecutor(1, thread_name_prefix="given") as executor:
        stored, extra = await store.commit_produced(produce, executor)
        assert extra == "extra"
        assert [a.alert_id for a in stored] == [1, 2]
        assert await store.list_alerts("alice", limit=10) == stored
        assert await store.trigger_states() == [state]
        assert await store.watermarks() == {"src": 5}
        # Never on the event loop's thread: the executor's, or the back end's writer's.
        assert len(ran_on) == 1 and ran_on[0] != threading.current_thread().name

        def fail() -> tuple[BatchWrite, str]:
            raise ValueError("engine failed")

        with pytest.raises(ValueError, match="engine failed"):
            await store.commit_produced(fail, executor)
        # Nothing of a failed produce is written, and the store goes on.
        assert await store.last_alert_id() == 2
        again, _ = await store.commit_produced(
            lambda: (BatchWrite([alert(2)], [], {"src": 6}), None), executor)
    assert [a.alert_id for a in again] == [3]
    assert await store.watermarks() == {"src": 6}


async def test_ids_follow_commit_order_under_concurrent_committers(
    store: Store, clock: FakeClock
) -> None:
    clock.step = 1  # every commit reads a later time
    committers, per_batch = 50, 3
    done = asyncio.Event()
    snapshots = 0

    async def committer(c: int) -> list[AlertRecord]:
        batch = [alert(c * 10 + k, rule_id=f"r{c}") for k in range(per_batch)]
        return await store.commit_batch(batch, [], {f"s{c % 5}": c})

    async def reader() -> None:
        # Ids must become visible in order: every snapshot is 1..N with no hole.
        nonlocal snapshots
        while not done.is_set():
            ids = [a.alert_id for a in await store.list_alerts("alice", limit=10_000)]
            assert ids == list(range(1, len(ids) + 1))
            snapshots += 1
            await asyncio.sleep(0)

    watcher = asyncio.create_task(reader())
    try:
        batches = await asyncio.gather(*(committer(c) for c in range(committers)))
    finally:
        done.set()
        await watcher
    assert snapshots > 0

    assert all(len(b) == per_batch for b in batches)
    for b in batches:  # one batch: consecutive ids, one commit time
        assert [a.alert_id for a in b] == list(range(b[0].alert_id, b[0].alert_id + per_batch))
        assert len({a.commit_time_ms for a in b}) == 1
    by_time = sorted(batches, key=lambda b: b[0].commit_time_ms)
    ids_in_commit_order = [a.alert_id for b in by_time for a in b]
    assert ids_in_commit_order == list(range(1, committers * per_batch + 1))
    assert [b[0].commit_time_ms for b in by_time] == sorted({b[0].commit_time_ms for b in batches})

    listed = await store.list_alerts("alice", limit=10_000)
    assert listed == [a for b in by_time for a in b]
    assert await store.last_alert_id() == committers * per_batch


async def test_cancelled_commits_leave_the_store_usable(store: Store) -> None:
    for delay in (0.0, 0.0005, 0.001, 0.002, 0.005):
        tasks = [
            asyncio.create_task(store.commit_batch([alert(i, rule_id=f"c{delay}")], [], {}))
            for i in range(10)
        ]
        await asyncio.sleep(delay)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    [last] = await store.commit_batch([alert(0, rule_id="after")], [], {})
    ids = [a.alert_id for a in await store.list_alerts("alice", limit=1000)]
    assert ids == list(range(1, len(ids) + 1))
    assert last.alert_id == ids[-1] == await store.last_alert_id()


async def test_operand_values_round_trip_including_nan_and_infinities(store: Store) -> None:
    odd = alert(
        0,
        values=(("a", math.nan), ("b", math.inf), ("c", -math.inf), ("d", -0.0), ("e", 1e-300),
                ("f", 0.1 + 0.2)),
        price=None,
        timeframe=None,
        bar_open_ms=None,
        details={},
        kind="DATA_QUALITY",
        message="ünïcødé ✓",
    )
    [stored] = await store.commit_batch([odd], [], {})
    [read] = await store.list_alerts("alice", limit=1)
    for got in (stored.values, read.values):
        labels, numbers = zip(*got, strict=True)
        assert labels == ("a", "b", "c", "d", "e", "f")
        assert math.isnan(numbers[0])
        assert numbers[1:] == (math.inf, -math.inf, -0.0, 1e-300, 0.1 + 0.2)
        assert math.copysign(1.0, numbers[3]) == -1.0
    assert read.price is None and read.timeframe is None and read.bar_open_ms is None
    assert read.details == {} and read.kind == "DATA_QUALITY" and read.message == "ünïcødé ✓"


async def test_list_alerts_filters(store: Store) -> None:
    batch = [
        alert(0),
        alert(10, rule_id="r2"),
        alert(20, symbol="us:SPY"),
        alert(30, kind="SYSTEM", rule_id=""),
        alert(40, owner="bob"),
        alert(50),
    ]
    await store.commit_batch(batch, [], {})

    async def ids(**kwargs: object) -> list[int]:
        rows = await store.list_alerts("alice", **{"limit": 100, **kwargs})  # type: ignore[arg-type]
        return [a.alert_id for a in rows]

    assert await ids() == [1, 2, 3, 4, 6]
    assert await ids(after_id=2) == [3, 4, 6]
    assert await ids(after_id=2, limit=2) == [3, 4]
    assert await ids(rule_id="r1") == [1, 3, 6]
    assert await ids(symbol="us:SPY") == [3]
    assert await ids(kind="SYSTEM") == [4]
    assert await ids(kind="RULE", rule_id="r1", symbol="binance:BTCUSDT") == [1, 6]
    assert await ids(since_ms=START_MS + 10) == [2, 3, 4, 6]
    assert await ids(until_ms=START_MS + 20) == [1, 2]  # until is exclusive
    assert await ids(since_ms=START_MS + 10, until_ms=START_MS + 31) == [2, 3, 4]
    assert [a.alert_id for a in await store.list_alerts("bob", limit=10)] == [5]
    everyone = await store.list_alerts(None, limit=10, after_id=3)
    assert [a.alert_id for a in everyone] == [4, 5, 6]
    assert await store.list_alerts("nobody", limit=10) == []
    with pytest.raises(InvalidArgumentError):
        await store.list_alerts("alice", limit=0)


async def test_alert_channels_round_trip_and_filter_exactly(store: Store) -> None:
    batch = [
        alert(0, channels=("ops",)),
        alert(10, channels=("ops", "desk-2")),
        alert(20),
        alert(30, channels=("desk-2",)),
        alert(40, owner="bob", channels=("ops",)),
        alert(50, channels=("opsx", "xops")),
        alert(60, channels=("ops",)),
    ]
    stored = await store.commit_batch(batch, [], {})
    assert [a.channels for a in stored] == [a.channels for a in batch]
    assert await store.list_alerts("alice", limit=10) == [a for a in stored if a.owner == "alice"]

    async def ids(channel_id: str, **kwargs: object) -> list[int]:
        rows = await store.list_alerts(
            "alice", channel_id=channel_id, **{"limit": 100, **kwargs})  # type: ignore[arg-type]
        return [a.alert_id for a in rows]

    assert await ids("ops") == [1, 2, 7]
    assert await ids("desk-2") == [2, 4]
    assert await ids("ops", after_id=1, descending=True, limit=1) == [7]
    assert await ids("ops", before_id=7, descending=True) == [2, 1]
    # a part of an id, or LIKE wildcards, match nothing
    assert await ids("op") == [] and await ids("o_s") == [] and await ids("%") == []
    assert [a.alert_id for a in await store.list_alerts(None, channel_id="ops", limit=9)] == [
        1, 2, 5, 7]


async def test_prune_keeps_a_suffix_of_ids_and_the_last_id(
    store: Store, clock: FakeClock
) -> None:
    for i in range(6):
        clock.now_ms = START_MS + i * 1000
        await store.commit_batch([alert(i)], [], {})
    assert await store.prune_alerts(START_MS + 2500) == 3
    assert await store.first_alert_id() == 4
    assert [a.alert_id for a in await store.list_alerts("alice", limit=10)] == [4, 5, 6]
    assert await store.prune_alerts(START_MS + 2500) == 0
    # A clock that steps back does not make commit times (and so pruning) go backwards.
    clock.now_ms = START_MS
    [late] = await store.commit_batch([alert(6)], [], {})
    assert late.commit_time_ms == START_MS + 5000
    assert await store.prune_alerts(START_MS + 10_000) == 4
    assert await store.first_alert_id() is None
    assert await store.last_alert_id() == 7
    [next_one] = await store.commit_batch([alert(7)], [], {})
    assert next_one.alert_id == 8  # never reused


# -- subscriptions and checkpoints ---------------------------------------------------------


async def test_subscriptions_are_saved_per_owner(store: Store) -> None:
    assert await store.get_subscription("alice", "sub-1") is None
    sub = SubscriptionRecord(
        subscription_id="sub-1",
        owner="alice",
        acked_id=0,
        filters={"symbol": "binance:BTCUSDT", "rule_id": "r1"},
        max_unacked=100,
        update_time_ms=START_MS,
    )
    await store.save_subscription(sub)
    assert await store.get_subscription("alice", "sub-1") == sub
    assert await store.get_subscription("bob", "sub-1") is None
    acked = replace(sub, acked_id=42, max_unacked=10, filters={}, update_time_ms=START_MS + 1)
    await store.save_subscription(acked)
    assert await store.get_subscription("alice", "sub-1") == acked
    bobs = replace(sub, owner="bob", acked_id=7)
    await store.save_subscription(bobs)
    assert await store.get_subscription("bob", "sub-1") == bobs
    assert await store.get_subscription("alice", "sub-1") == acked


async def test_checkpoints_keep_the_latest(store: Store) -> None:
    assert await store.load_checkpoint() is None
    blob = bytes(range(256)) * (4 * 4096)  # 4 MiB, every byte value
    first = Checkpoint(blob=blob, watermarks={"binance": START_MS, "replay": 5},
                       create_time_ms=START_MS)
    await store.save_checkpoint(first)
    assert await store.load_checkpoint() == first
    second = Checkpoint(blob=b"\x00small\xff", watermarks={}, create_time_ms=START_MS + 60_000)
    await store.save_checkpoint(second)
    assert await store.load_checkpoint() == second


# -- opening, migrations, URLs -------------------------------------------------------------


async def test_opening_twice_migrates_once_and_shares_the_data(
    store: Store, store_url: str, clock: FakeClock
) -> None:
    await store.create_rule(rule())
    await store.commit_batch([alert(0)], [], {"src": 1})
    async with await open_store(store_url, clock=clock) as second:
        assert isinstance(second, SqlStore)
        assert await second.schema_version() == migrations.latest_version()
        assert (await second.get_rule("alice", "r1")).rule_id == "r1"
        [next_alert] = await second.commit_batch([alert(1)], [], {})
        assert next_alert.alert_id == 2
    assert await store.last_alert_id() == 2
    await store.open()  # opening an open store is harmless


@pytest.mark.parametrize("version", [3, 4])
async def test_alerts_stored_at_an_older_version_read_with_the_defaults_of_newer_columns(
    store_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, version: int
) -> None:
    older = tuple(m for m in migrations.MIGRATIONS if m.version <= version)
    monkeypatch.setattr(migrations, "MIGRATIONS", older)
    async with await open_store(store_url, clock=clock) as old:
        assert isinstance(old, SqlStore)
        async with old._write() as tx:   # the columns every version has
            await tx.execute(
                "INSERT INTO alerts (alert_id, owner, rule_id, symbol, kind, operand_values,"
                " message, condition_text, event_time_ms, receive_time_ms, decide_time_ms,"
                " trade_id, fire_rank, details, commit_time_ms) VALUES"
                " (1, 'alice', 'r1', 'binance:BTCUSDT', 'RULE', '[]', 'old', 'price > 1',"
                " $1, $1, $1, 0, 0, '{}', $1)", START_MS)
            await tx.execute("UPDATE alert_counter SET last_id = 1")
    monkeypatch.undo()
    async with await open_store(store_url, clock=clock) as store:
        assert isinstance(store, SqlStore)
        assert await store.schema_version() == migrations.latest_version() >= 5
        [old_alert] = await store.list_alerts("alice", limit=5)
        # step 4: the rule's name and labels at fire time; step 5: the alert's channels
        assert (old_alert.message, old_alert.rule_display_name, old_alert.rule_labels,
                old_alert.channels) == ("old", "", (), ())
        [new_alert] = await store.commit_batch([alert(1, channels=("ops",))], [], {})
        assert new_alert.alert_id == 2
        assert new_alert.rule_labels == (("bot", "b1"), ("team", "grid"))
        assert await store.list_alerts("alice", after_id=1, limit=5) == [new_alert]
        assert await store.list_alerts("alice", channel_id="ops", limit=5) == [new_alert]


async def test_a_newer_schema_is_refused(
    store: Store, store_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = migrations.latest_version()
    future = migrations.Migration(
        version=known + 1,
        description="from a newer build",
        statements=("CREATE TABLE future_things (id INTEGER PRIMARY KEY)",),
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, future))
    newer = await open_store(store_url, clock=clock)
    await newer.close()
    monkeypatch.undo()
    with pytest.raises(FailedPreconditionError) as err:
        await open_store(store_url, clock=clock)
    assert err.value.reason == "SCHEMA_TOO_NEW"
    assert f"version {known + 1}" in str(err.value)


async def test_in_memory_sqlite_store_works() -> None:
    async with await open_store("sqlite://:memory:") as store:
        await store.create_rule(rule())
        [stored] = await store.commit_batch([alert(0)], [], {})
        assert await store.list_alerts("alice", limit=5) == [stored]
        results = await asyncio.gather(*(store.commit_batch([alert(i)], [], {})
                                         for i in range(1, 20)))
        assert sorted(r[0].alert_id for r in results) == list(range(2, 21))


@pytest.mark.parametrize(
    "url",
    ["", "alerts.db", "mysql://root@localhost/x", "sqlite:", "sqlite://", "sqlite:///",
     "sqlite://relative.db", "sqlite:///x.db?mode=ro", "redis://127.0.0.1:6379"],
)
async def test_a_bad_url_is_invalid_argument(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        store_from_url(url)


async def test_a_url_with_credentials_is_not_echoed() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        store_from_url("mysql://admin:s3cret@db.example:3306/alerts")
    assert "s3cret" not in str(err.value)


async def test_an_unreachable_postgres_is_unavailable_naming_host_and_port() -> None:
    with pytest.raises(UnavailableError) as err:
        await open_store("postgresql://postgres:s3cret@127.0.0.1:1/test")
    message = str(err.value)
    assert "127.0.0.1:1" in message and "\n" not in message and "s3cret" not in message


async def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError) as err:
        await open_store(f"sqlite:///{tmp_path}/no/such/dir/alerts.db")
    assert "no/such/dir" in str(err.value) and "\n" not in str(err.value)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UnavailableError):
        await open_store(f"sqlite:///{garbage}")


async def test_a_closed_store_refuses_calls_and_calls_in_flight_end(store_url: str) -> None:
    store = await open_store(store_url)
    [stored] = await store.commit_batch([alert(0)], [], {})
    reads = [asyncio.create_task(store.list_alerts("alice", limit=5)) for _ in range(20)]
    await store.close()
    outcomes = await asyncio.wait_for(asyncio.gather(*reads, return_exceptions=True), 10)
    for outcome in outcomes:
        assert outcome == [stored] or isinstance(outcome, UnavailableError), outcome
    with pytest.raises(UnavailableError):
        await store.list_alerts("alice", limit=5)
    with pytest.raises(UnavailableError):
        await store.commit_batch([alert(1)], [], {})
