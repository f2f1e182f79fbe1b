"""Stored channels as sender configurations: secrets included, the rotation overlap kept."""

from __future__ import annotations

from alerts.delivery.channels.config import (
    DiscordConfig,
    EmailConfig,
    SmsConfig,
    TelegramConfig,
    WebhookConfig,
)
from alerts.delivery.channels.record import sender_config
from alerts.storage.records import (
    ChannelRecord,
    DiscordSettings,
    EmailSettings,
    SmsSettings,
    TelegramSettings,
    WebhookSettings,
    WebSocketSettings,
)

NEW, OLD = "whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3", "whsec_b2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xk"


def test_a_webhook_signs_with_the_previous_secret_until_its_overlap_ends() -> None:
    rec = ChannelRecord(channel_id="h", owner="o", settings=WebhookSettings(
        url="https://example.com/in", headers=(("X-A", "1"),), timeout_ms=2500),
        secret=NEW, previous_secret=OLD, previous_secret_expire_ms=1000)
    assert sender_config(rec, 999) == WebhookConfig(
        url="https://example.com/in", signing_secret=NEW, previous_signing_secret=OLD,
        headers={"X-A": "1"}, timeout_s=2.5)
    after = sender_config(rec, 1000)
    assert isinstance(after, WebhookConfig) and after.previous_signing_secret == ""


def test_every_other_kind() -> None:
    def rec(settings: object, secret: str = "") -> ChannelRecord:
        return ChannelRecord(channel_id="c", owner="o", settings=settings,  # type: ignore[arg-type]
                             secret=secret)
    url = "https://discord.com/api/webhooks/1/t"
    assert sender_config(rec(DiscordSettings(username="u"), url), 0) == DiscordConfig(
        webhook_url=url, username="u")
    assert sender_config(rec(TelegramSettings(chat_id="@c"), "1:tok"), 0) == TelegramConfig(
        bot_token="1:tok", chat_id="@c")
    assert sender_config(rec(SmsSettings(phone_numbers=("+1555",))), 0) == SmsConfig(
        phone_numbers=("+1555",))
    assert sender_config(rec(EmailSettings(to_addresses=("a@b.c",), subject_template="s")),
                         0) == EmailConfig(to_addresses=("a@b.c",), subject_template="s")
    assert sender_config(rec(WebSocketSettings()), 0) is None
