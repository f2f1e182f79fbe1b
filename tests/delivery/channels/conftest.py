"""Local HTTP servers for the sender tests, and a sample stored alert.

``HttpFake`` is a real aiohttp server on 127.0.0.1 (port 0) that records every
request and answers with the handler the test sets (a stand-in for an endpoint,
Discord, Telegram or Twilio, each test giving the exact wire shapes of
``../shared/protocols``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def self_signed(directory: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1"),
                ) -> tuple[Path, Path]:
    """A self-signed certificate for ``names`` (host names or IP addresses) and its key,
    written as PEM files; the certificate doubles as the CA file that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{names[0]}.crt", directory / f"{names[0]}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextlib.asynccontextmanager
async def running_fake(tls: ssl.SSLContext | None = None) -> AsyncIterator[HttpFake]:
    """An ``HttpFake`` listening on 127.0.0.1 (port 0), with TLS when ``tls`` is given."""
    fake = HttpFake()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake._handle)
    fake.server = TestServer(app, host="127.0.0.1", port=0)
    await fake.server.start_server(ssl=tls)
    try:
        yield fake
    finally:
        await fake.server.close()


@pytest_asyncio.fixture
async def http_fake() -> AsyncIterator[HttpFake]:
    async with running_fake() as fake:
        yield fake


def make_alert(alert_id: int = 42, **changes: object) -> AlertRecord:
    """A stored alert as the engine would produce it."""
    fields: dict[str, object] = {
        "alert_id": alert_id, "owner": "local", "rule_id": "btc-65k", "symbol": "binance:BTCUSDT",
        "kind": "RULE", "timeframe": "5m", "bar_open_ms": 1_767_225_300_000,
        "values": (("close(5m)", 65010.5), ("rsi(14, 5m)", float("nan"))),
        "message": "BTCUSDT crossed 65000", "condition_text": "close(5m) crosses_above 65000",
        "rule_display_name": "BTC breakout", "rule_labels": (("desk", "crypto"),),
        "event_time_ms": 1_767_225_600_000, "receive_time_ms": 1_767_225_600_003,
        "decide_time_ms": 1_767_225_600_004, "trade_id": 981, "rank": 0, "price": 65010.5,
        "details": {"venue": "binance"}, "commit_time_ms": 1_767_225_600_009}
    fields.update(changes)
    return AlertRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def delivery() -> Delivery:
    return Delivery(alert=make_alert(), channel_id="ops-hook", text="BTCUSDT crossed 65000")
