"""Exponential backoff with full jitter, shared by unary retries and stream reconnects.

Attempt ``n`` (from 0) waits a uniformly random time in ``[0, min(maximum,
initial * 2**n)]``, so many clients cut off at once do not come back in step.
A server's ``RetryInfo`` delay, when given, replaces the random one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts; ``delay(n)`` is the wait after the ``n``-th failure (from 0)."""

    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and multiplier >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt ``attempt`` may wait."""
        return min(self.maximum, self.initial * self.multiplier ** min(attempt, 64))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait: the server's ``retry_after`` if given, else full jitter."""
        if retry_after is not None and retry_after >= 0:
            return retry_after
        return self.rng.uniform(0.0, self.ceiling(attempt))
