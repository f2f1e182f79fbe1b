"""Fixtures for the Binance source: a recording sink, the replay exchange, the expected trades."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio

from alerts.market.base import SourceEvent, Tick
from alerts.market.exchange import ReplayExchange
from tests.support.market_data import (  # noqa: F401 - fixture
    SPOT_TRADES_FILE,
    binance_spot_trades,
    shared_data,
)


@dataclass
class Sink:
    """A ``MarketSink`` that keeps everything, checks the delivery contract, and can be awaited.

    Checked on every call: ticks of the source in non-decreasing event time across
    batches, and no tick older than a watermark already given.
    """

    received: list[Tick] = field(default_factory=list)
    batches: int = 0
    watermarks: list[int] = field(default_factory=list)
    events: list[SourceEvent] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def ticks(self, source: str, ticks: Sequence[Tick]) -> None:  # type: ignore[override]
        floor = max(self.received[-1].time_ms if self.received else 0,
                    self.watermarks[-1] if self.watermarks else 0)
        for t in ticks:
            if t.time_ms < floor:
                self.violations.append(f"tick {t} older than {floor}")
            floor = max(floor, t.time_ms)
        self.received.extend(ticks)
        self.batches += 1
        self._notify()

    async def watermark(self, source: str, time_ms: int) -> None:
        if self.watermarks and time_ms < self.watermarks[-1]:
            self.violations.append(f"watermark {time_ms} after {self.watermarks[-1]}")
        if self.received and time_ms < self.received[-1].time_ms:
            self.violations.append(f"watermark {time_ms} behind tick {self.received[-1]}")
        self.watermarks.append(time_ms)
        self._notify()

    async def event(self, event: SourceEvent) -> None:
        self.events.append(event)
        self._notify()

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()


def expected_ticks(symbol: str, *, after_ms: int | None = None, until_ms: int,
                   venue: str = "binance", frame: Any = None) -> list[Tick]:
    """The trades of ``symbol`` in (after_ms, until_ms] as an uninterrupted feed delivers them."""
    df = binance_spot_trades(symbol) if frame is None else frame
    sel = df[(df["time_ms"] <= until_ms) & (df["time_ms"] > (after_ms or -1))]
    return [Tick(f"{venue}:{symbol}", float(p), float(q), int(t), int(i))
            for p, q, t, i in zip(sel["price"], sel["qty"], sel["time_ms"], sel["trade_id"])]


def by_symbol(ticks: Sequence[Tick]) -> dict[str, list[Tick]]:
    out: dict[str, list[Tick]] = {}
    for t in ticks:
        out.setdefault(t.symbol, []).append(t)
    return out


@pytest_asyncio.fixture
async def spot(shared_data: Path) -> AsyncIterator[ReplayExchange]:  # noqa: F811
    """The spot trades file on a paused exchange at speed 0 (stepped with ``run_until``)."""
    async with ReplayExchange.from_files([shared_data / SPOT_TRADES_FILE], speed=0,
                                         paused=True) as exchange:
        yield exchange
