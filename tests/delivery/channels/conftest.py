"""Local HTTP servers for the sender tests, and a sample stored alert.

``HttpFake`` is a real aiohttp server on 127.0.0.1 (port 0) that records every
request and answers with the handler the test sets (a stand-in for an endpoint,
Discord, Telegram or Twilio, each test giving the exact wire shapes of
``../shared/protocols``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from alerts.delivery.channels.base import Delivery
from alerts.storage.records import AlertRecord


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    raw: web.Request  # for handlers that stream their answer


Handler = Callable[[Received], Awaitable[web.StreamResponse]]


async def no_content(_: Received) -> web.StreamResponse:
    return web.Response(status=204)


@dataclass
class HttpFake:
    """A recording HTTP server; ``handler`` answers each request."""

    handler: Handler = no_content
    requests: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.port is not None
        return self.server.port

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(request.method, request.path, dict(request.query),
                            {k.lower(): v for k, v in request.headers.items()},
                            await request.read(), time.monotonic(), request)
        async with self.changed:
            self.requests.append(received)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.changed.notify_all()
        try:
            return await self.handler(received)
        finally:
            async with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)


@pytest_asyncio.fixture
async def http_fake() -> AsyncIterator[HttpFake]:
    fake = HttpFake()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake._handle)
    fake.server = TestServer(app, host="127.0.0.1", port=0)
    await fake.server.start_server()
    try:
        yield fake
    finally:
        await fake.server.close()


def make_alert(alert_id: int = 42, **changes: object) -> AlertRecord:
    """A stored alert as the engine would produce it."""
    fields: dict[str, object] = {
        "alert_id": alert_id, "owner": "local", "rule_id": "btc-65k", "symbol": "binance:BTCUSDT",
        "kind": "RULE", "timeframe": "5m", "bar_open_ms": 1_767_225_300_000,
        "values": (("close(5m)", 65010.5), ("rsi(14, 5m)", float("nan"))),
        "message": "BTCUSDT crossed 65000", "condition_text": "close(5m) crosses_above 65000",
        "event_time_ms": 1_767_225_600_000, "receive_time_ms": 1_767_225_600_003,
        "decide_time_ms": 1_767_225_600_004, "trade_id": 981, "rank": 0, "price": 65010.5,
        "details": {"venue": "binance"}, "commit_time_ms": 1_767_225_600_009}
    fields.update(changes)
    return AlertRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def delivery() -> Delivery:
    return Delivery(alert=make_alert(), channel_id="ops-hook", text="BTCUSDT crossed 65000")
