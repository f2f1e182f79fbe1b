"""A stored channel (``ChannelRecord``) as its sender's configuration.

``sender_config(rec, now_ms)`` gives the dataclass ``build_sender`` takes: the
record's settings plus its secrets (a webhook's current signing secret and, while
its rotation overlap lasts at ``now_ms``, the previous one). WebSocket channels
have no sender (the WebSocket server serves them): ``None``.
"""

from __future__ import annotations

from alerts.delivery.channels.config import (
    ChannelConfig,
    DiscordConfig,
    EmailConfig,
    SmsConfig,
    TelegramConfig,
    WebhookConfig,
)
from alerts.storage.records import (
    ChannelRecord,
    DiscordSettings,
    EmailSettings,
    SmsSettings,
    TelegramSettings,
    WebhookSettings,
)


def sender_config(rec: ChannelRecord, now_ms: int) -> ChannelConfig | None:
    s = rec.settings
    if isinstance(s, WebhookSettings):
        signing = rec.signing_secrets(now_ms)
        return WebhookConfig(
            url=s.url, signing_secret=signing[0] if signing else "",
            previous_signing_secret=signing[1] if len(signing) > 1 else "",
            headers=dict(s.headers),
            timeout_s=(s.timeout_ms or 0) / 1000)
    if isinstance(s, DiscordSettings):
        return DiscordConfig(webhook_url=rec.secret, username=s.username)
    if isinstance(s, TelegramSettings):
        return TelegramConfig(bot_token=rec.secret, chat_id=s.chat_id)
    if isinstance(s, SmsSettings):
        return SmsConfig(phone_numbers=s.phone_numbers)
    if isinstance(s, EmailSettings):
        return EmailConfig(to_addresses=s.to_addresses, subject_template=s.subject_template)
    return None
