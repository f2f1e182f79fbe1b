"""The wall clock a polling source reads and sleeps on, injectable for tests.

Polling sources pace their requests, judge which bars are final and notice
stale feeds by wall time. They read it only through a ``Clock`` so that tests
can run hours of polling in virtual time without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Epoch seconds now, and a way to wait."""

    def time(self) -> float:
        """Seconds since the Unix epoch."""

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock's time."""


class SystemClock:
    """The real clock: ``time.time`` and ``asyncio.sleep``."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
