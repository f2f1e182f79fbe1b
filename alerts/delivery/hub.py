"""In-process fan-out of committed alerts to stream subscribers.

Every subscriber owns a bounded queue. ``publish`` never waits: a subscriber
whose queue is full is ended as a slow consumer (it resumes from its last
alert id and loses nothing, since every alert is in the store first). Alerts
reach each queue in commit order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from alerts.storage.records import AlertRecord

AlertFilter = Callable[[AlertRecord], bool]


class SlowConsumer(Exception):
    """The subscriber's queue overflowed; it was dropped."""


@dataclass(eq=False)
class Subscriber:
    """One stream's view of the hub."""

    owner: str
    accepts: AlertFilter
    queue: asyncio.Queue[AlertRecord | None]
    slow: bool = False

    async def next(self, timeout: float) -> AlertRecord | None:
        """The next alert, or None after `timeout` seconds; raises SlowConsumer when dropped."""
        if self.slow:
            raise SlowConsumer()
        if not self.queue.empty():            # no timer when one is waiting
            item = self.queue.get_nowait()
        else:
            # not wait_for: its task around get() costs two more loop turns to wake up
            try:
                async with asyncio.timeout(timeout):
                    item = await self.queue.get()
            except TimeoutError:
                return None
        if item is None:
            raise SlowConsumer()
        return item


class AlertHub:
    """Subscribers by identity; ``last_id`` is the last committed alert id published."""

    def __init__(self, queue_size: int = 10_000) -> None:
        self.queue_size = queue_size
        self.last_id = 0
        self._subscribers: set[Subscriber] = set()

    def subscribe(self, owner: str, accepts: AlertFilter,
                  queue_size: int | None = None) -> Subscriber:
        """Register a subscriber whose queue holds ``queue_size`` alerts (default: the hub's)."""
        size = self.queue_size if queue_size is None else queue_size
        sub = Subscriber(owner, accepts, asyncio.Queue(size + 1))  # + 1: room for the end mark
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def queue_depths(self) -> list[int]:
        return [s.queue.qsize() for s in self._subscribers]

    def publish(self, records: Iterable[AlertRecord]) -> None:
        """Hand committed alerts (in id order) to every matching subscriber, never waiting."""
        for rec in records:
            self.last_id = max(self.last_id, rec.alert_id)
            for sub in self._subscribers:
                if sub.slow or sub.owner != rec.owner or not sub.accepts(rec):
                    continue
                if sub.queue.qsize() >= sub.queue.maxsize - 1:
                    sub.slow = True
                    sub.queue.put_nowait(None)   # wakes the stream, which ends itself
                else:
                    sub.queue.put_nowait(rec)

    def close(self) -> None:
        """End every stream (shutdown): each sees None and stops."""
        for sub in self._subscribers:
            if not sub.slow:              # a dropped one already holds its end mark
                sub.queue.put_nowait(None)
