"""``build_sender``: the one way the outbox and the API make a ``ChannelSender``.

``build_sender(kind, config, settings)`` checks ``config`` (a dict with the
proto's keys, or the kind's dataclass from ``config.py``) and returns a sender of
that kind; a bad configuration is an ``InvalidArgumentError`` naming
``channel.<kind>.<key>`` (SMS without Twilio settings: ``FailedPreconditionError``).
Building does no I/O (a webhook URL's addresses are checked at each attempt; the
API calls ``url_guard.validate_webhook_url`` on create). The caller owns the
sender and calls ``close()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.delivery.channels.base import ChannelSender
from alerts.delivery.channels.config import (
    ChannelConfig,
    DeliverySettings,
    DiscordConfig,
    EmailConfig,
    SmsConfig,
    TelegramConfig,
    WebhookConfig,
    channel_config,
)
from alerts.delivery.channels.discord import DiscordSender
from alerts.delivery.channels.email import EmailSender
from alerts.delivery.channels.sms import SmsSender
from alerts.delivery.channels.telegram import TelegramSender
from alerts.delivery.channels.webhook import WebhookSender


def build_sender(kind: str, config: Mapping[str, Any] | ChannelConfig,
                 settings: DeliverySettings) -> ChannelSender:
    """A sender for one channel of ``kind`` (``webhook discord telegram sms email``)."""
    checked = channel_config(kind, config)
    match checked:
        case WebhookConfig():
            return WebhookSender(checked, settings)
        case DiscordConfig():
            return DiscordSender(checked, settings)
        case TelegramConfig():
            return TelegramSender(checked, settings)
        case SmsConfig():
            return SmsSender(checked, settings)
        case EmailConfig():
            return EmailSender(checked, settings)
    raise AssertionError(f"unhandled kind {kind!r}")
