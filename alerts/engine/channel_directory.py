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

import time
from collections.abc import Callable
from dataclasses import dataclass

from alerts.delivery.channels.base import ChannelSender, Delivery, Outcome
from alerts.delivery.channels.config import DeliverySettings
from alerts.delivery.channels.factory import build_sender
from alerts.delivery.channels.record import sender_config
from alerts.delivery.outbox import ChannelTarget
from alerts.engine.messages import render_alert
from alerts.errors import AlertsError, NotFoundError
from alerts.storage.base import Store
from alerts.storage.records import ChannelRecord, EmailSettings, WebhookSettings


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


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
            text=lambda alert: render_alert(template, alert),
            subject=lambda alert: render_alert(subject_template, alert)
            if subject_template else "",
            max_attempts=max_attempts)

    async def _sender(self, rec: ChannelRecord) -> ChannelSender:
        key = (rec.owner, rec.channel_id)
        config = sender_config(rec, self._clock())
        config_key = repr(config)
        built = self._built.get(key)
        if built is not None and built.key == config_key:
            return built.sender
        await self._drop(key)
        sender: ChannelSender
        if config is None:
            sender = HandedOff()
        else:
            try:
                sender = build_sender(rec.kind, config, self.settings)
            except AlertsError as exc:
                sender = _Unbuildable(f"channel cannot be delivered to: {exc.message}")
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
