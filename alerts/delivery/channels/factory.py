"""``build_sender``: the one way the outbox and the API make a ``ChannelSender``.

``build_sender(kind, config, settings)`` checks ``config`` (a dict with the
proto's keys, or the kind's dataclass from ``config.py``) and returns a sender of
that kind; a bad configuration is an ``InvalidArgumentError`` naming
``channel.<kind>.<key>``. The caller owns the sender and calls ``close()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.delivery.channels.base import ChannelSender
from alerts.delivery.channels.config import (
    ChannelConfig,
    DeliverySettings,
    WebhookConfig,
    channel_config,
)
from alerts.delivery.channels.webhook import WebhookSender


def build_sender(kind: str, config: Mapping[str, Any] | ChannelConfig,
                 settings: DeliverySettings) -> ChannelSender:
    """A sender for one channel of ``kind`` (``webhook discord telegram sms email``)."""
    checked = channel_config(kind, config)
    if isinstance(checked, WebhookConfig):
        return WebhookSender(checked, settings)
    raise NotImplementedError(f"no {kind} sender yet")
