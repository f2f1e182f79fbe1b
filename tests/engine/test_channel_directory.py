"""``StoreChannelDirectory``: stored channels as the outbox's targets (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio

from alerts.delivery.channels.base import Delivery
from alerts.delivery.channels.config import DeliverySettings
from alerts.delivery.channels.webhook import WebhookSender
from alerts.engine.channel_directory import HandedOff, StoreChannelDirectory
from alerts.storage import Store, open_store
from alerts.storage.records import (
    AlertRecord,
    ChannelRecord,
    EmailSettings,
    WebhookSettings,
    WebSocketSettings,
)
from tests.storage.conftest import postgres_database, store_url
from tests.support.webhook_receiver import new_secret

__all__ = ["postgres_database", "store_url"]
pytestmark = pytest.mark.asyncio

ALERT = AlertRecord(alert_id=7, owner="local", rule_id="r1", symbol="binance:BTCUSDT",
                    event_time_ms=1_767_225_600_000, commit_time_ms=1_767_225_600_001,
                    message="BTC above 65000", price=65010.5)


@pytest_asyncio.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()


async def test_targets_follow_the_stored_channel(store: Store) -> None:
    directory = StoreChannelDirectory(
        store, DeliverySettings(webhook_allow=("127.0.0.1",)))
    hook = await store.create_channel(ChannelRecord(
        channel_id="hook", owner="local", secret=new_secret(),
        message_template="#{{id}} {{symbol}}: {{message}}",
        settings=WebhookSettings(url="http://127.0.0.1:9/hook", max_attempts=3)))
    await store.create_channel(ChannelRecord(channel_id="ws", owner="local",
                                             settings=WebSocketSettings()))
    await store.create_channel(ChannelRecord(
        channel_id="mail", owner="local",
        settings=EmailSettings(to_addresses=("ops@example.com",),
                               subject_template="{{rule}} on {{symbol}}")))
    try:
        target = await directory.target("local", "hook")
        assert target is not None
        assert (target.kind, target.paused, target.max_attempts) == ("webhook", False, 3)
        assert isinstance(target.sender, WebhookSender)
        assert target.text(ALERT) == "#7 binance:BTCUSDT: BTC above 65000"
        # the same configuration keeps its sender; a new secret builds a new one
        assert (await directory.target("local", "hook")).sender is target.sender  # type: ignore[union-attr]
        paused = await store.update_channel(replace(hook, paused=True, secret=new_secret()),
                                            expected_etag=None)
        again = await directory.target("local", "hook")
        assert again is not None and again.paused and again.sender is not target.sender
        assert paused.paused

        ws = await directory.target("local", "ws")
        assert ws is not None and isinstance(ws.sender, HandedOff)
        assert (await ws.sender.send(Delivery(alert=ALERT, channel_id="ws", text=""))).ok

        mail = await directory.target("local", "mail")
        assert mail is not None and mail.subject(ALERT) == "r1 on binance:BTCUSDT"
        assert mail.text(ALERT) == "BTC above 65000"

        await store.delete_channel("local", "hook")
        assert await directory.target("local", "hook") is None
        assert await directory.target("someone-else", "ws") is None
    finally:
        await directory.close()
