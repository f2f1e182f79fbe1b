"""Helpers for the Binance tests: a recording sink, the expected trades of the shared
files, and a scripted loopback HTTP server for REST answers the exchange does not give."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest_asyncio

from alerts.market.base import SourceEvent, Tick
from tests.support.market_data import binance_spot_trades


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


Answer = tuple[int, dict[str, str], Any]


@dataclass
class Scripted:
    """An HTTP/1.1 server whose answers come from ``answer(path, query)``."""

    answer: Callable[[str, dict[str, str]], Answer]
    url: str = ""
    seen: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                parts = urlsplit(target)
                query = dict(parse_qsl(parts.query))
                self.seen.append((time.monotonic(), parts.path, query))
                status, headers, body = self.answer(parts.path, query)
                data = json.dumps(body).encode()
                lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json",
                         f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in headers.items())]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[Callable[[Callable[..., Answer]], Scripted]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Callable[..., Answer]) -> Scripted:
        s = Scripted(answer)
        srv = await asyncio.start_server(s.handle, "127.0.0.1", 0)
        servers.append(srv)
        s.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
        return s

    yield start  # type: ignore[misc]
    for srv in servers:
        srv.close()
