"""Helpers for delivery tests against a real server: channels, a rule, ticks, and checks.

``prepare`` stores one webhook channel per ``WebhookReceiver`` (``hook-0``,
``hook-1``, ...) and a rule that fires on every tick and names them all;
``fire`` publishes ticks over gRPC; ``check_delivered`` asserts that every
stored alert reached every receiver under one message id and is DELIVERED.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from google.protobuf import timestamp_pb2

from alerts.storage import RuleRecord, open_store
from alerts.storage.records import ChannelRecord, WebhookSettings
from alerts.v1 import alerts_pb2, deliveries_pb2, market_pb2, service_pb2, service_pb2_grpc
from tests.support.webhook_receiver import WebhookReceiver

DELIVERED = deliveries_pb2.Delivery.STATE_DELIVERED


@pytest.fixture
def receivers() -> Iterator[list[WebhookReceiver]]:
    made = [WebhookReceiver().start() for _ in range(2)]
    try:
        yield made
    finally:
        for r in made:
            r.close()


def prepare(store_url: str, receivers: list[WebhookReceiver], *, timeout_ms: int | None = None
            ) -> None:
    """Channels `hook-0`, `hook-1`, ... for the receivers, and a rule firing on every tick."""
    async def go() -> None:
        store = await open_store(store_url)
        try:
            for i, r in enumerate(receivers):
                await store.create_channel(ChannelRecord(
                    channel_id=f"hook-{i}", owner="local",
                    settings=WebhookSettings(url=r.url, timeout_ms=timeout_ms), secret=r.secret))
            await store.create_rule(RuleRecord(
                rule_id="every", owner="local", symbol="binance:BTCUSDT",
                condition_text="price > 0", mode="EVERY_TIME", cooldown_ms=0,
                channels=tuple(f"channels/hook-{i}" for i in range(len(receivers)))))
        finally:
            await store.close()

    asyncio.run(go())


def ts(ms: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(ms)
    return out


def fire(stub: service_pb2_grpc.AlertServiceStub, n: int, *, batch: int = 10) -> None:
    """``n`` ticks, hence ``n`` alerts, in batches (each batch one commit)."""
    start = time.time_ns() // 1_000_000 - 60_000
    ticks = [market_pb2.Tick(symbol="BTCUSDT", price=100.0 + i, quantity=1.0,
                             event_time=ts(start + i), trade_id=i + 1) for i in range(n)]
    requests = [service_pb2.PublishTicksRequest(source="faults", ticks=ticks[i:i + batch])
                for i in range(0, n, batch)]
    stub.PublishTicks(iter(requests), timeout=60)


def stored_alerts(stub: service_pb2_grpc.AlertServiceStub) -> list[alerts_pb2.Alert]:
    out: list[alerts_pb2.Alert] = []
    token = ""
    while True:
        page = stub.ListAlerts(service_pb2.ListAlertsRequest(page_size=1000, page_token=token))
        out += page.alerts
        token = page.next_page_token
        if not token:
            return out


def stored_ids(stub: service_pb2_grpc.AlertServiceStub) -> set[int]:
    """The ids of the stored rule alerts (the ones channels deliver)."""
    return {a.id for a in stored_alerts(stub) if a.kind == alerts_pb2.ALERT_KIND_RULE}


def deliveries(stub: service_pb2_grpc.AlertServiceStub, channel: str,
               state: deliveries_pb2.Delivery.State = deliveries_pb2.Delivery.STATE_UNSPECIFIED,
               ) -> list[deliveries_pb2.Delivery]:
    out: list[deliveries_pb2.Delivery] = []
    token = ""
    while True:
        page = stub.ListDeliveries(service_pb2.ListDeliveriesRequest(
            parent=f"channels/{channel}", state=state, page_size=1000, page_token=token))
        out += page.deliveries
        token = page.next_page_token
        if not token:
            return out


def check_delivered(stub: service_pb2_grpc.AlertServiceStub, receivers: list[WebhookReceiver],
                    n: int) -> set[int]:
    """Every stored alert reached every receiver, each under one id, and no unknown id arrived;
    then the store says DELIVERED for each."""
    ids = stored_ids(stub)
    assert len(ids) == n
    for i, r in enumerate(receivers):
        r.wait_accepted(ids)
        assert {a.alert_id for a in r.arrivals} <= ids, "an alert id the store never issued"
        r.check_one_id_per_alert()
        channel = f"hook-{i}"
        wait_until(lambda channel=channel: {d.alert_id: d.state  # type: ignore[misc]
                                            for d in deliveries(stub, channel)}
                   == dict.fromkeys(ids, DELIVERED), what=f"{channel} all DELIVERED")
    return ids


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll the server's API (another process or thread: no event to share) until ``check``."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s: {what}"
        pause.wait(0.02)
