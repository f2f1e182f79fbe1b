"""The shape of one delivery channel, and the outcome of one delivery attempt.

A ``ChannelSender`` performs exactly one attempt to deliver one alert and
classifies the result; it never sleeps or retries by itself. Retries, backoff,
dead letters and the per-(alert, channel) state belong to the outbox
(``alerts.delivery.outbox``), which calls senders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from alerts.storage.records import AlertRecord


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one attempt sends: the stored alert plus its rendered text."""

    alert: AlertRecord
    channel_id: str
    text: str             # the channel's template rendered for this alert
    subject: str = ""     # email only
    attempt: int = 1      # 1 for the first attempt


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt.

    ``ok``: delivered. Otherwise ``retryable`` says whether another attempt may
    succeed (timeouts, 5xx, 429) and ``retry_after_s`` carries the destination's
    own delay (Retry-After, Discord ``retry_after``, Telegram
    ``parameters.retry_after``) when it gave one. ``status`` is the HTTP (or SMTP)
    code, 0 when no answer came.
    """

    ok: bool
    status: int = 0
    latency_s: float = 0.0
    retryable: bool = False
    retry_after_s: float | None = None
    error: str = ""


class ChannelSender(ABC):
    """Delivers to one configured destination."""

    @abstractmethod
    async def send(self, delivery: Delivery) -> Outcome:
        """One attempt; never raises for a destination's failure (returns an ``Outcome``)."""

    async def close(self) -> None:
        """Release connections (HTTP clients, SMTP sessions)."""
