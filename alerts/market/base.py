"""The shape every market source has, and the plain values it hands on.

A source turns an outside feed into ``Tick`` batches (and, for warm-up and
backfill, closed ``Bar`` lists) and reports what happens to the feed as
``SourceEvent``s. It never imports the engine: it is handed a ``MarketSink``
(implemented in ``alerts.engine``), which is the only place sources and the
engine meet. Symbols here are venue-qualified (``binance:BTCUSDT``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

EVENT_KINDS = ("STALE", "GAP", "RECONNECT", "RATE_LIMITED", "BAD_MESSAGE", "RECOVERED")
"""Values of ``SourceEvent.kind``; all but BAD_MESSAGE become DATA_QUALITY alerts."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade, normalised: price > 0, qty >= 0, event time in epoch ms."""

    symbol: str
    price: float
    qty: float
    time_ms: int
    trade_id: int = 0      # 0: no id (never deduplicated)


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed OHLCV bar of ``timeframe`` opening at ``open_ms``."""

    symbol: str
    timeframe: str
    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float = 0.0
    trades: int = 0


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """Something that happened to a feed (one of ``EVENT_KINDS``)."""

    kind: str
    source: str
    time_ms: int
    detail: str
    symbol: str | None = None   # None: the whole source


@dataclass
class SourceHealth:
    """What a source says about itself (metrics, the health service, DATA_QUALITY alerts)."""

    up: bool = False
    last_message_ms: int | None = None    # wall clock of the last message received
    lag_ms: float = 0.0                   # wall clock - event time of the last tick
    messages: int = 0
    bad_messages: int = 0
    reconnects: int = 0
    rate_limited: int = 0
    detail: str = ""
    extra: dict[str, float] = field(default_factory=dict)


class MarketSink(Protocol):
    """Where a source delivers (implemented by the engine side)."""

    async def ticks(self, source: str, ticks: Sequence[Tick]) -> None:
        """Apply ticks in non-decreasing event time (one batch; returns after commit)."""

    async def watermark(self, source: str, time_ms: int) -> None:
        """The source's clock reached ``time_ms`` with no more ticks before it."""

    async def event(self, event: SourceEvent) -> None:
        """Record a feed event (DATA_QUALITY alert, metric, log)."""


class MarketSource(ABC):
    """One feed. ``name`` is its clock's name in the engine; ``fill_gaps`` its bar policy;
    ``grace_ms`` how long after its end a bar closes on the watermark (None: the service's
    ``grace_ms``; 0 for a source whose watermarks are exact)."""

    name: str
    fill_gaps: bool = True
    grace_ms: int | None = None

    @abstractmethod
    async def start(self, sink: MarketSink) -> None:
        """Begin delivering to ``sink`` (returns once running; work goes on in owned tasks)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop every task and connection; stopping twice is harmless."""

    @abstractmethod
    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Start following these symbols (already followed ones are ignored)."""

    @abstractmethod
    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        """Stop following these symbols."""

    @abstractmethod
    async def history(self, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> list[Bar]:
        """Closed bars of ``symbol`` opening in [start_ms, end_ms), oldest first (warm-up)."""

    @abstractmethod
    def health(self) -> SourceHealth:
        """The source's current health."""
