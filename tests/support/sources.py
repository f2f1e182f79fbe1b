"""A scripted ``MarketSource`` for engine tests: the test decides every tick, event and bar.

It speaks only the ``alerts.market.base`` interface (the real sources are tested
in ``tests/market``). ``push``/``emit``/``mark`` deliver to the sink the
DataManager gave it; ``history`` serves bars the test put in ``bars``;
``health_now`` is what ``health()`` reports. ``changed`` wakes whoever waits for
a subscription change (``wait_for``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from alerts.market.base import Bar, MarketSink, MarketSource, SourceEvent, SourceHealth, Tick


class ScriptedSource(MarketSource):
    def __init__(self, name: str, *, fill_gaps: bool = True) -> None:
        self.name = name
        self.fill_gaps = fill_gaps
        self.sink: MarketSink | None = None
        self.symbols: set[str] = set()
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.history_calls: list[tuple[str, str, int, int]] = []
        self.bars: dict[tuple[str, str], list[Bar]] = {}
        self.health_now = SourceHealth(up=True)
        self.history_error: Exception | None = None     # raised by history() when set
        self.stopped = False
        self._changed: asyncio.Condition | None = None

    def _cond(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        async with self._cond():
            self._cond().notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds after a subscription change (or at once)."""
        async with self._cond():
            await asyncio.wait_for(self._cond().wait_for(predicate), timeout)

    async def start(self, sink: MarketSink) -> None:
        self.sink = sink

    async def stop(self) -> None:
        self.stopped = True

    async def subscribe(self, symbols: Sequence[str]) -> None:
        self.calls.append(("subscribe", tuple(symbols)))
        self.symbols.update(symbols)
        await self._notify()

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        self.calls.append(("unsubscribe", tuple(symbols)))
        self.symbols.difference_update(symbols)
        await self._notify()

    async def history(self, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> list[Bar]:
        self.history_calls.append((symbol, timeframe, start_ms, end_ms))
        await self._notify()
        if self.history_error is not None:
            raise self.history_error
        return [b for b in self.bars.get((symbol, timeframe), [])
                if start_ms <= b.open_ms < end_ms]

    def health(self) -> SourceHealth:
        return self.health_now

    # the test's side -----------------------------------------------------------
    async def push(self, ticks: Sequence[Tick]) -> None:
        assert self.sink is not None, "not started"
        self.health_now.messages += len(ticks)
        await self.sink.ticks(self.name, ticks)

    async def mark(self, time_ms: int) -> None:
        assert self.sink is not None, "not started"
        await self.sink.watermark(self.name, time_ms)

    async def emit(self, kind: str, time_ms: int, detail: str, symbol: str | None = None) -> None:
        assert self.sink is not None, "not started"
        await self.sink.event(SourceEvent(kind, self.name, time_ms, detail, symbol))
