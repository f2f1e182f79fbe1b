"""The Python client (clients/python/alerts_client) against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from alerts_client import Alert, AlertsClient, AlertsError

from tests.support.server import ServerThread, running_server, server_config

WAIT = 30.0


def now_ms() -> int:
    return int(time.time() * 1000)


class Collector:
    """Runs ``client.alerts(...)`` in a thread; the test takes alerts with a timeout."""

    def __init__(self, client: AlertsClient, *, hold: threading.Event | None = None,
                 **kwargs: object) -> None:
        self.client = client
        self.hold = hold             # while not set, reconnects wait
        self.alerts: queue.Queue[Alert] = queue.Queue()
        self.reconnects: list[AlertsError | None] = []
        self.error: BaseException | None = None
        self._caught_up = 0
        self._cond = threading.Condition()
        self._stream = client.alerts(on_caught_up=self._on_caught_up,
                                     on_reconnect=self._on_reconnect,
                                     **kwargs)  # type: ignore[arg-type]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_caught_up(self, _cursor: int) -> None:
        with self._cond:
            self._caught_up += 1
            self._cond.notify_all()

    def _on_reconnect(self, err: AlertsError | None, _delay: float) -> None:
        self.reconnects.append(err)
        if self.hold is not None:
            assert self.hold.wait(WAIT)

    def _run(self) -> None:
        try:
            for alert in self._stream:
                self.alerts.put(alert)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            with self._cond:
                self._cond.notify_all()

    def wait_caught_up(self, times: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self._caught_up >= times or self.error, WAIT), \
                f"stream not caught up {times} times in {WAIT} s"
        assert self.error is None, self.error

    def take(self, n: int) -> list[Alert]:
        out = []
        for _ in range(n):
            try:
                out.append(self.alerts.get(timeout=WAIT))
            except queue.Empty:
                raise AssertionError(f"got {len(out)} of {n} alerts; error: {self.error}") from None
        return out

    def stop(self) -> None:
        self.client.close()          # cancels the stream; the thread ends
        self._thread.join(WAIT)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerThread]:
    with running_server(server_config(tmp_path)) as (server, _):
        yield server


@pytest.fixture
def client(served: ServerThread) -> Iterator[AlertsClient]:
    with AlertsClient(served.target, initial_backoff=0.05, max_backoff=0.5) as c:
        yield c


def ticks(symbol: str, base_ms: int, prices: list[float], first_id: int = 1
          ) -> list[tuple[str, int, float, float, int]]:
    return [(symbol, base_ms + i * 1000, p, 1.0, first_id + i) for i, p in enumerate(prices)]


def test_rule_crud_round_trip(client: AlertsClient) -> None:
    rule = client.create_rule("test:AAA", "price > 100", mode="EVERY_TIME", cooldown=2.5,
                              rule_id="crud", display_name="first", labels={"bot": "grid"})
    assert rule.name == "rules/crud"
    assert rule.condition_text == "price > 100"
    assert rule.cooldown.ToMilliseconds() == 2500
    assert client.get_rule("crud") == rule
    assert client.get_rule("rules/crud") == rule

    for i in range(4):
        client.create_rule("test:BBB", f"price > {i}")
    names = [r.name for r in client.list_rules(page_size=2)]     # three pages
    assert len(names) == 5 and len(set(names)) == 5
    assert [r.name for r in client.list_rules(filter='symbol = "test:AAA"')] == ["rules/crud"]

    updated = client.update_rule("crud", display_name="second", paused=True,
                                 condition="price >= 101")
    assert (updated.display_name, updated.paused) == ("second", True)
    assert updated.condition_text == "price >= 101"
    assert updated.cooldown.ToMilliseconds() == 2500          # untouched: not in the mask
    assert dict(updated.labels) == {"bot": "grid"}
    assert updated.etag != rule.etag

    client.delete_rule("crud")
    with pytest.raises(AlertsError) as err:
        client.get_rule("crud")
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert len(list(client.list_rules())) == 4


def test_create_with_a_fixed_request_id_is_idempotent(client: AlertsClient) -> None:
    a = client.create_rule("test:AAA", "price > 1", request_id="2f1c4c2e-0000-4000-8000-000000000001")
    b = client.create_rule("test:AAA", "price > 1", request_id="2f1c4c2e-0000-4000-8000-000000000001")
    assert a.name == b.name
    c = client.create_rule("test:AAA", "price > 1")            # a fresh uuid each call
    assert c.name != a.name
    assert len(list(client.list_rules())) == 2


def test_invalid_argument_surfaces_with_its_field_violation(client: AlertsClient) -> None:
    with pytest.raises(AlertsError) as err:
        client.create_rule("test:AAA", "rsi(14, 5m) > 70 and volme_z(20, 1m) > 3")
    e = err.value
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (e.reason, e.domain) == ("INVALID_RULE", "alerts.v1")
    assert e.violation is not None and e.violation.field == "rule.condition_text"
    assert e.violation.description.startswith("1:22: unknown indicator 'volme_z'")
    assert "rule.condition_text" in str(e)

    with pytest.raises(AlertsError) as err:
        client.publish_ticks("bad", [("test:AAA", now_ms(), 1.0, 1.0, 1),
                                     ("test:AAA", now_ms(), math.nan, 1.0, 2)])
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.value.field_violations] == ["ticks[1].price"]

    checked = client.validate("test:AAA", "close(1h) crosses_above sma(50, 1h)")
    assert checked.canonical_text == "close(1h) crosses_above sma(50, 1h)"
    assert list(client.list_rules()) == []


def test_alerts_receives_alerts_published_after_it_started(client: AlertsClient,
                                                           served: ServerThread) -> None:
    rule = client.create_rule("test:AAA", "price > 100", mode="EVERY_TIME", cooldown=0)
    other = client.create_rule("test:BBB", "price > 100", mode="EVERY_TIME", cooldown=0)
    base = now_ms() - 20_000
    client.publish_ticks("early", ticks("test:AAA", base, [101.0]))     # before: not streamed
    with AlertsClient(served.target) as stream_client:
        collector = Collector(stream_client, rules=[rule.name])
        collector.wait_caught_up(1)
        reply = client.publish_ticks("live", ticks("test:AAA", base + 1000, [99, 101, 102, 103])
                                     + ticks("test:BBB", base + 5000, [150.0]))
        assert reply.accepted_count == 5
        got = collector.take(3)
        collector.stop()
    assert [a.price for a in got] == [101, 102, 103]
    assert {a.rule for a in got} == {rule.name} != {other.name}
    listed = [a.id for a in client.list_alerts(rules=[rule.name])]
    assert [a.id for a in got] == listed[1:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_alerts_resume_across_a_server_restart_with_no_gap_and_no_duplicate(
        tmp_path: Path) -> None:
    config = server_config(tmp_path)
    base = now_ms() - 40_000
    with running_server(config) as (first, _):
        port = first.port
        client = AlertsClient(first.target, initial_backoff=0.05, max_backoff=0.5)
        rule = client.create_rule("test:AAA", "price > 100", mode="EVERY_TIME", cooldown=0)
        hold = threading.Event()
        collector = Collector(client, rules=[rule.name], heartbeat=1.0, hold=hold)
        collector.wait_caught_up(1)
        client.publish_ticks("feed", ticks("test:AAA", base, [101, 102, 103], first_id=1))
        got = collector.take(3)
    # the first server is gone: the stream ended with UNAVAILABLE; its reconnect is held
    again = replace(config, grpc_listen=f"127.0.0.1:{port}")       # same store, same port
    with running_server(again) as (second, _):
        with AlertsClient(second.target) as publisher:
            # committed while the stream is away: the resumed stream replays them ...
            publisher.publish_ticks("feed", ticks("test:AAA", base + 3000, [104, 105, 106],
                                                  first_id=4))
            hold.set()
            collector.wait_caught_up(2)
            assert collector.alerts.qsize() == 3          # ... before its caught_up
            # ... and then goes live
            publisher.publish_ticks("feed", ticks("test:AAA", base + 6000, [107, 108, 109],
                                                  first_id=7))
            got += collector.take(6)
            listed = [a.id for a in publisher.list_alerts(rules=[rule.name])]
        collector.stop()
    ids = [a.id for a in got]
    assert ids == listed
    assert ids == list(range(ids[0], ids[0] + 9)), ids            # increasing, contiguous
    assert [a.price for a in got] == [101, 102, 103, 104, 105, 106, 107, 108, 109]
    assert collector.reconnects and collector.reconnects[0] is not None
    assert collector.reconnects[0].code == grpc.StatusCode.UNAVAILABLE
    assert collector.alerts.empty()


def test_a_slow_consumer_is_resumed_after_its_retry_delay(tmp_path: Path) -> None:
    with (running_server(server_config(tmp_path, subscriber_queue=2)) as (server, _),
          AlertsClient(server.target) as client):
        rule = client.create_rule("test:AAA", "price > 100", mode="EVERY_TIME", cooldown=0)
        collector = Collector(AlertsClient(server.target), rules=[rule.name])
        collector.wait_caught_up(1)
        # one batch of 8 alerts overflows the 2-deep queue: SLOW_CONSUMER
        client.publish_ticks("burst", ticks("test:AAA", now_ms() - 20_000, [101.0] * 8))
        got = collector.take(8)
        listed = [a.id for a in client.list_alerts()]
        collector.stop()
    assert [a.id for a in got] == listed
    slow = [e for e in collector.reconnects if e is not None]
    assert slow and slow[0].code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert slow[0].reason == "SLOW_CONSUMER" and slow[0].retry_delay is not None


def test_a_silent_stream_is_reopened(served: ServerThread, client: AlertsClient) -> None:
    rule = client.create_rule("test:AAA", "price > 100", mode="EVERY_TIME", cooldown=0)
    # heartbeats every 0.1 s: a stream silent for 2 * 0.1 + 0.5 s is taken for dead
    watcher = AlertsClient(served.target, timeout=0.5, initial_backoff=0.05, max_backoff=0.2)
    collector = Collector(watcher, rules=[rule.name], heartbeat=0.1)
    collector.wait_caught_up(1)
    stall = threading.Event()

    async def freeze_the_server() -> None:
        stall.wait(WAIT)                      # blocks the server's event loop: no heartbeats

    frozen = asyncio.run_coroutine_threadsafe(freeze_the_server(), served.loop)
    deadline = time.monotonic() + WAIT
    while not collector.reconnects and time.monotonic() < deadline:
        time.sleep(0.05)
    stall.set()
    frozen.result(WAIT)
    collector.wait_caught_up(2)
    client.publish_ticks("after", ticks("test:AAA", now_ms() - 10_000, [101.0, 102.0]))
    got = collector.take(2)
    collector.stop()
    assert [a.price for a in got] == [101.0, 102.0]
    first = collector.reconnects[0]
    assert first is not None and "no message on the alert stream" in first.message


def test_unary_calls_retry_unavailable_until_the_server_is_up(tmp_path: Path) -> None:
    port = free_port()
    with contextlib.ExitStack() as stack:
        sleeps: list[float] = []

        def start_server_on_first_retry(delay: float) -> None:
            sleeps.append(delay)
            if len(sleeps) == 1:
                stack.enter_context(running_server(server_config(
                    tmp_path, grpc_listen=f"127.0.0.1:{port}")))
            time.sleep(delay)

        client = stack.enter_context(AlertsClient(f"127.0.0.1:{port}", max_attempts=20,
                                                  initial_backoff=0.05, max_backoff=0.2))
        client._sleep = start_server_on_first_retry
        rule = client.create_rule("test:AAA", "price > 1")
        assert len(sleeps) >= 1 and all(0 <= s <= 0.2 for s in sleeps)
        assert [r.name for r in client.list_rules()] == [rule.name]

    with AlertsClient(f"127.0.0.1:{port}", max_attempts=3, initial_backoff=0.01,
                      max_backoff=0.01) as down:
        tries: list[float] = []
        down._sleep = tries.append
        with pytest.raises(AlertsError) as err:
            down.get_rule("x")
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        assert len(tries) == 2                                      # 3 attempts, 2 waits
