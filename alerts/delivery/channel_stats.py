"""Delivery figures of a channel, as the API shows them: the outbox's hook.

A ``Channel``'s output-only fields (``state`` FAILING, ``last_delivered_alert_id``,
``last_delivery_time``, ``last_error``, ``dead_letter_count``) come from whoever
delivers: the outbox implements ``ChannelStatsProvider`` and is handed to the
servicer. Until it does, ``NoDeliveries`` answers zeros for every channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """One channel's delivery figures; the defaults mean "nothing delivered yet"."""

    failing: bool = False                    # recent attempts failed and are being retried
    last_delivered_alert_id: int = 0
    last_delivery_time_ms: int | None = None
    last_error: str = ""                     # the latest failure; empty after a success
    dead_letter_count: int = 0


class ChannelStatsProvider(Protocol):
    """Answers the delivery figures of some of an owner's channels."""

    async def channel_stats(self, owner: str,
                            channel_ids: Sequence[str]) -> Mapping[str, ChannelStats]:
        """Figures by channel id; an id left out has ``ChannelStats()``."""
        ...


class NoDeliveries:
    """The provider while nothing delivers to channels: every channel has zeros."""

    async def channel_stats(self, owner: str,
                            channel_ids: Sequence[str]) -> Mapping[str, ChannelStats]:
        return {}
