"""The outbox's view of stored channels: channel id -> sender, rendered text, paused.

``StoreChannelDirectory`` implements ``alerts.delivery.outbox.ChannelDirectory``
over the store's ``channels`` table and the senders' ``build_sender`` factory.
Each lookup reads the channel record (a primary-key read, so pause, resume and
edits take effect at the worker's next look); a sender is built once per
channel and rebuilt, the old one closed, when the channel's configuration or
its valid signing secrets change. WebSocket channels have no sender: the
WebSocket server serves them from the store by alert id, so the outbox closes
their deliveries at once (``HandedOff``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alerts.delivery.channels.base import ChannelSender, Delivery, Outcome
from alerts.delivery.channels.config import DeliverySettings
from alerts.delivery.channels.factory import build_sender
from alerts.delivery.outbox import ChannelTarget
from alerts.engine.messages import render
from alerts.errors import AlertsError, NotFoundError
from alerts.storage.base import Store
from alerts.storage.records import (
    AlertRecord,
    ChannelRecord,
    DiscordSettings,
    EmailSettings,
    SmsSettings,
    TelegramSettings,
    WebhookSettings,
    WebSocketSettings,
)

CHANNEL_DEFAULT_TEMPLATE = "{{message}}"
_CHANNEL_ONLY = re.compile(r"\{\{\s*(message|id)\s*\}\}")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def render_channel_text(template: str, alert: AlertRecord) -> str:
    """A channel's template for an alert: the rule placeholders plus ``{{message}}``, ``{{id}}``."""
    extra = {"message": alert.message, "id": str(alert.alert_id)}
    text = _CHANNEL_ONLY.sub(lambda m: extra[m.group(1)], template or CHANNEL_DEFAULT_TEMPLATE)
    return render(text, rule=alert.rule_id, symbol=alert.symbol,
                  condition=alert.condition_text, price=alert.price, values=alert.values,
                  timeframe=alert.timeframe, time_ms=alert.event_time_ms)


class HandedOff(ChannelSender):
    """For channels another part of the service delivers (WebSocket): nothing to send."""

    async def send(self, delivery: Delivery) -> Outcome:
        return Outcome(ok=True)


class _Unbuildable(ChannelSender):
    """A stored channel whose configuration no sender accepts: every attempt is permanent."""

    def __init__(self, error: str) -> None:
        self.error = error

    async def send(self, delivery: Delivery) -> Outcome:
        return Outcome(ok=False, retryable=False, error=self.error)


def sender_config(rec: ChannelRecord, now_ms: int) -> dict[str, Any]:
    """The ``build_sender`` configuration of a stored channel (secrets included)."""
    s = rec.settings
    if isinstance(s, WebhookSettings):
        secrets = rec.signing_secrets(now_ms)
        out: dict[str, Any] = {"url": s.url, "signing_secret": secrets[0] if secrets else "",
                               "headers": dict(s.headers)}
        if len(secrets) > 1:
            out["previous_signing_secret"] = secrets[1]
        if s.timeout_ms:
            out["timeout_s"] = s.timeout_ms / 1000
        return out
    if isinstance(s, DiscordSettings):
        return {"webhook_url": rec.secret, "username": s.username}
    if isinstance(s, TelegramSettings):
        return {"bot_token": rec.secret, "chat_id": s.chat_id}
    if isinstance(s, SmsSettings):
        return {"phone_numbers": list(s.phone_numbers)}
    if isinstance(s, EmailSettings):
        return {"to_addresses": list(s.to_addresses), "subject_template": s.subject_template}
    return {}


@dataclass
class _Built:
    key: str
    sender: ChannelSender


class StoreChannelDirectory:
    """``ChannelDirectory`` over stored channels; owns the senders it builds (``close``)."""

    def __init__(self, store: Store, settings: DeliverySettings, *,
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock
        self._built: dict[tuple[str, str], _Built] = {}

    async def target(self, owner: str, channel_id: str) -> ChannelTarget | None:
        try:
            rec = await self.store.get_channel(owner, channel_id)
        except NotFoundError:
            await self._drop((owner, channel_id))
            return None
        sender = await self._sender(rec)
        template = rec.message_template
        subject_template = (rec.settings.subject_template
                            if isinstance(rec.settings, EmailSettings) else "")
        max_attempts = (rec.settings.max_attempts
                        if isinstance(rec.settings, WebhookSettings) else 0)
        return ChannelTarget(
            kind=rec.kind, sender=sender, paused=rec.paused,
            text=lambda alert: render_channel_text(template, alert),
            subject=lambda alert: render_channel_text(subject_template, alert)
            if subject_template else "",
            max_attempts=max_attempts)

    async def _sender(self, rec: ChannelRecord) -> ChannelSender:
        key = (rec.owner, rec.channel_id)
        if isinstance(rec.settings, WebSocketSettings):
            config_key = "websocket"
        else:
            config = sender_config(rec, self._clock())
            config_key = f"{rec.kind}:{sorted(config.items())!r}"
        built = self._built.get(key)
        if built is not None and built.key == config_key:
            return built.sender
        await self._drop(key)
        sender: ChannelSender
        if isinstance(rec.settings, WebSocketSettings):
            sender = HandedOff()
        else:
            try:
                sender = build_sender(rec.kind, config, self.settings)
            except (AlertsError, NotImplementedError) as exc:
                sender = _Unbuildable(f"channel cannot be delivered to: {exc}")
        self._built[key] = _Built(config_key, sender)
        return sender

    async def _drop(self, key: tuple[str, str]) -> None:
        built = self._built.pop(key, None)
        if built is not None:
            await built.sender.close()

    async def close(self) -> None:
        """Close every sender built (after the outbox has stopped)."""
        for key in list(self._built):
            await self._drop(key)
