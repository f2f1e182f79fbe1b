"""Webhook sender against a real local receiver; signatures checked with ``standardwebhooks``."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from alerts.delivery.alert_json import alert_to_dict
from alerts.delivery.channels.base import Delivery
from alerts.delivery.channels.config import DeliverySettings, WebhookConfig
from alerts.delivery.channels.factory import build_sender
from alerts.delivery.channels.signing import generate_webhook_secret, secret_key, sign
from alerts.delivery.channels.url_guard import validate_webhook_url
from alerts.delivery.channels.webhook import WebhookSender, webhook_body, webhook_message_id
from alerts.errors import FailedPreconditionError, InvalidArgumentError
from tests.delivery.channels.conftest import (
    HttpFake,
    Received,
    make_alert,
    running_fake,
    self_signed,
)

LOCAL = DeliverySettings(webhook_allow=("127.0.0.1",), default_timeout_s=5.0)


def sender(fake: HttpFake, secret: str, settings: DeliverySettings = LOCAL,
           **config: object) -> WebhookSender:
    cfg = WebhookConfig(url=f"{fake.url}/hooks/alerts?src=test", signing_secret=secret,
                        **config)  # type: ignore[arg-type]
    return WebhookSender(cfg, settings)


def reply(status: int, body: str = "", headers: dict[str, str] | None = None):
    async def handler(_: Received) -> web.StreamResponse:
        return web.Response(status=status, text=body, headers=headers)
    return handler


def test_doc_test_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    ours = sign([secret_key(secret)], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                b'{"test": 2432232314}')
    assert ours == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    official = Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek",
                                    datetime.fromtimestamp(1614265330, tz=UTC),
                                    '{"test": 2432232314}')
    assert ours == official


@pytest.mark.asyncio
async def test_delivery_verifies_with_standardwebhooks(http_fake: HttpFake,
                                                       delivery: Delivery) -> None:
    secret = generate_webhook_secret()
    s = sender(http_fake, secret, headers={"X-Team": "ops"})
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert outcome.ok and outcome.status == 204 and outcome.latency_s > 0
    (req,) = http_fake.requests
    assert req.method == "POST" and req.path == "/hooks/alerts" and req.query == {"src": "test"}
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-team"] == "ops"
    payload = Webhook(secret).verify(req.body, req.headers)
    assert payload["type"] == "alert.fired"
    assert payload["timestamp"] == "2026-01-01T00:00:00.009Z"
    assert payload["data"]["alert_id"] == 42
    assert payload["data"]["text"] == "BTCUSDT crossed 65000"
    assert payload["data"]["values"][1] == {"label": "rsi(14, 5m)", "value": "NaN"}
    assert abs(int(req.headers["webhook-timestamp"]) - time.time()) < 60


@pytest.mark.asyncio
async def test_webhook_id_stable_across_attempts_and_distinct_per_channel(
        http_fake: HttpFake, delivery: Delivery) -> None:
    s = sender(http_fake, generate_webhook_secret())
    try:
        await s.send(delivery)
        await s.send(Delivery(alert=delivery.alert, channel_id="ops-hook", text=delivery.text,
                              attempt=2))
        await s.send(Delivery(alert=delivery.alert, channel_id="other", text="x"))
        await s.send(Delivery(alert=make_alert(43), channel_id="ops-hook", text="x"))
    finally:
        await s.close()
    ids = [r.headers["webhook-id"] for r in http_fake.requests]
    assert ids[0] == ids[1] == webhook_message_id(42, "ops-hook")
    assert len({ids[0], ids[2], ids[3]}) == 3
    assert http_fake.requests[0].body == http_fake.requests[1].body


@pytest.mark.asyncio
async def test_rotation_sends_two_signatures_each_verifying(http_fake: HttpFake,
                                                            delivery: Delivery) -> None:
    new, old = generate_webhook_secret(), generate_webhook_secret(24)
    s = sender(http_fake, new, previous_signing_secret=old)
    try:
        assert (await s.send(delivery)).ok
    finally:
        await s.close()
    (req,) = http_fake.requests
    entries = req.headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    for secret in (new, old):
        Webhook(secret).verify(req.body, req.headers)


def test_generated_secret_shape() -> None:
    secret = generate_webhook_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert generate_webhook_secret() != secret
    with pytest.raises(ValueError):
        generate_webhook_secret(16)


@pytest.mark.parametrize("secret,problem", [
    ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with"),
    ("whsec_not*base64", "not base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes"),
])
def test_bad_secret_is_invalid_argument(secret: str, problem: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        build_sender("webhook", {"url": "https://example.com/h", "signing_secret": secret}, LOCAL)
    assert problem in err.value.message
    assert err.value.violations[0].field == "channel.webhook.signing_secret"


def test_reserved_header_refused() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        build_sender("webhook", {"url": "https://example.com/h",
                                 "signing_secret": generate_webhook_secret(),
                                 "headers": {"Webhook-Signature": "v1,forged"}}, LOCAL)
    assert err.value.violations[0].field == "channel.webhook.headers"


@pytest.mark.asyncio
@pytest.mark.parametrize("status,headers,retryable,retry_after", [
    (200, {}, None, None),
    (202, {}, None, None),
    (410, {}, False, None),
    (400, {}, False, None),
    (401, {}, False, None),
    (404, {"Retry-After": "3"}, False, None),
    (408, {}, True, None),
    (429, {"Retry-After": "7"}, True, 7.0),
    (500, {}, True, None),
    (502, {"Retry-After": "2.5"}, True, 2.5),
    (503, {}, True, None),
    (504, {}, True, None),
    (301, {"Location": "/elsewhere"}, True, None),
])
async def test_classification(http_fake: HttpFake, delivery: Delivery, status: int,
                              headers: dict[str, str], retryable: bool | None,
                              retry_after: float | None) -> None:
    http_fake.handler = reply(status, "why not", headers)
    s = sender(http_fake, generate_webhook_secret())
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert outcome.status == status
    assert outcome.ok is (retryable is None)
    if retryable is not None:
        assert outcome.retryable is retryable
        assert outcome.retry_after_s == retry_after
        assert str(status) in outcome.error
    assert [r.path for r in http_fake.requests] == ["/hooks/alerts"]  # no redirect followed


@pytest.mark.asyncio
async def test_retry_after_http_date(http_fake: HttpFake, delivery: Delivery) -> None:
    when = datetime.fromtimestamp(int(time.time()) + 120, tz=UTC)
    http_fake.handler = reply(503, headers={"Retry-After": when.strftime(
        "%a, %d %b %Y %H:%M:%S GMT")})
    s = sender(http_fake, generate_webhook_secret())
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert outcome.retryable and outcome.retry_after_s is not None
    assert 100 < outcome.retry_after_s <= 120


@pytest.mark.asyncio
async def test_timeout_is_retryable(http_fake: HttpFake, delivery: Delivery) -> None:
    release = asyncio.Event()

    async def stall(_: Received) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=204)

    http_fake.handler = stall
    s = sender(http_fake, generate_webhook_secret(), timeout_s=0.2)
    try:
        outcome = await s.send(delivery)
    finally:
        release.set()
        await s.close()
    assert not outcome.ok and outcome.retryable and outcome.status == 0
    assert outcome.error.startswith("timeout")
    assert 0.2 <= outcome.latency_s < 3


@pytest.mark.asyncio
async def test_connection_refused_is_retryable(delivery: Delivery) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = build_sender("webhook", {"url": f"http://127.0.0.1:{port}/",
                                 "signing_secret": generate_webhook_secret()}, LOCAL)
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert not outcome.ok and outcome.retryable and outcome.status == 0
    assert "ConnectError" in outcome.error


@pytest.mark.asyncio
async def test_concurrency_limit_per_endpoint(http_fake: HttpFake, delivery: Delivery) -> None:
    release = asyncio.Event()

    async def hold(_: Received) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    http_fake.handler = hold
    s = sender(http_fake, generate_webhook_secret(), max_concurrency=2, rate_per_s=1000.0,
               burst=10)
    try:
        sends = [asyncio.create_task(s.send(delivery)) for _ in range(5)]
        await http_fake.wait_until(lambda: http_fake.in_flight == 2)
        with pytest.raises(TimeoutError):  # a third request does not arrive while two are held
            await http_fake.wait_until(lambda: len(http_fake.requests) > 2, timeout=0.3)
        release.set()
        outcomes = await asyncio.gather(*sends)
    finally:
        release.set()
        await s.close()
    assert all(o.ok for o in outcomes)
    assert len(http_fake.requests) == 5 and http_fake.max_in_flight == 2


@pytest.mark.asyncio
async def test_token_bucket_paces_sends(http_fake: HttpFake, delivery: Delivery) -> None:
    s = sender(http_fake, generate_webhook_secret(), rate_per_s=10.0, burst=1)
    start = time.monotonic()
    try:
        outcomes = await asyncio.gather(*(s.send(delivery) for _ in range(4)))
    finally:
        await s.close()
    assert all(o.ok for o in outcomes)
    times = sorted(r.at for r in http_fake.requests)
    for k, at in enumerate(times):  # the k-th send waits for its token: k / rate
        assert at - start >= k * 0.1 - 0.005, (k, at - start)


@pytest.mark.asyncio
async def test_long_pacing_wait_returns_retryable_without_sending(
        http_fake: HttpFake, delivery: Delivery) -> None:
    settings = DeliverySettings(webhook_allow=("127.0.0.1",), pacing_max_wait_s=0.05)
    s = sender(http_fake, generate_webhook_secret(), settings, rate_per_s=0.5, burst=1)
    try:
        first = await s.send(delivery)
        second = await s.send(delivery)
    finally:
        await s.close()
    assert first.ok
    assert not second.ok and second.retryable and second.status == 0
    assert second.retry_after_s is not None and 1.5 < second.retry_after_s <= 2.0
    assert len(http_fake.requests) == 1


@pytest.mark.asyncio
async def test_429_retry_after_pauses_the_endpoint(http_fake: HttpFake,
                                                   delivery: Delivery) -> None:
    http_fake.handler = reply(429, headers={"Retry-After": "30"})
    settings = DeliverySettings(webhook_allow=("127.0.0.1",), pacing_max_wait_s=1.0)
    s = sender(http_fake, generate_webhook_secret(), settings)
    try:
        limited = await s.send(delivery)
        paused = await s.send(delivery)
    finally:
        await s.close()
    assert limited.status == 429 and limited.retry_after_s == 30.0
    assert paused.status == 0 and paused.retry_after_s is not None and paused.retry_after_s > 25
    assert len(http_fake.requests) == 1


@pytest.mark.asyncio
async def test_pinned_address_keeps_host_header(http_fake: HttpFake, delivery: Delivery) -> None:
    settings = DeliverySettings(webhook_allow=("localhost",))
    s = build_sender("webhook", {"url": f"http://localhost:{http_fake.port}/h",
                                 "signing_secret": generate_webhook_secret()}, settings)
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert outcome.ok, outcome.error
    assert http_fake.requests[0].headers["host"] == f"localhost:{http_fake.port}"


@pytest.mark.asyncio
async def test_refused_url_is_permanent_at_delivery(http_fake: HttpFake,
                                                    delivery: Delivery) -> None:
    s = sender(http_fake, generate_webhook_secret(), DeliverySettings())
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert not outcome.ok and not outcome.retryable
    assert "loopback address 127.0.0.1" in outcome.error
    assert http_fake.requests == []


def test_body_is_the_documented_alert_json() -> None:
    alert = make_alert(7, values=(("price", float("inf")),))
    body = json.loads(webhook_body(Delivery(alert, "c", "BTC is up")))
    assert body == {"type": "alert.fired", "timestamp": "2026-01-01T00:00:00.009Z",
                    "data": {**alert_to_dict(alert), "text": "BTC is up"}}
    assert body["data"]["values"] == [{"label": "price", "value": "Infinity"}]


@pytest.mark.asyncio
async def test_timeout_bounds_a_dripping_answer(http_fake: HttpFake, delivery: Delivery) -> None:
    stop = asyncio.Event()
    http_fake.handler = drip(stop)
    s = sender(http_fake, generate_webhook_secret(), timeout_s=0.5)
    try:
        outcome = await s.send(delivery)
    finally:
        stop.set()
        await s.close()
    assert not outcome.ok and outcome.retryable and outcome.error.startswith("timeout")
    assert outcome.latency_s < 2.0  # each chunk came within the read timeout; the total did not


def drip(stop: asyncio.Event):
    async def handler(req: Received) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(req.raw)
        while not stop.is_set():  # one byte per 0.1 s: never idle long enough for a read timeout
            await response.write(b".")
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except TimeoutError:
                pass
        return response
    return handler


@pytest.mark.asyncio
async def test_host_name_checked_at_delivery(http_fake: HttpFake, delivery: Delivery) -> None:
    s = build_sender("webhook", {"url": f"http://localhost:{http_fake.port}/h",
                                 "signing_secret": generate_webhook_secret()}, DeliverySettings())
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert not outcome.ok and not outcome.retryable and "loopback" in outcome.error
    assert http_fake.requests == []


def test_unpadded_secret_accepted() -> None:
    padded = generate_webhook_secret(31)
    assert padded.endswith("=")
    assert secret_key(padded.rstrip("=")) == secret_key(padded)


class ScriptedDns:
    """A resolver answering from a table the test changes (what a rebinding DNS server does)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


def named_sender(url: str, dns: ScriptedDns, allow: tuple[str, ...]) -> WebhookSender:
    return WebhookSender(WebhookConfig(url=url, signing_secret=generate_webhook_secret()),
                         DeliverySettings(webhook_allow=allow), resolver=dns)


@pytest.mark.asyncio
async def test_request_goes_to_the_checked_address(http_fake: HttpFake,
                                                   delivery: Delivery) -> None:
    dns = ScriptedDns({"receiver.test": ["127.0.0.1"]})
    s = named_sender(f"http://receiver.test:{http_fake.port}/h", dns, ("127.0.0.1",))
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert outcome.ok, outcome.error  # the system resolver does not know receiver.test
    assert http_fake.requests[0].headers["host"] == f"receiver.test:{http_fake.port}"
    assert dns.asked == ["receiver.test"]


@pytest.mark.asyncio
async def test_rebinding_to_a_private_address_is_refused_at_delivery(
        delivery: Delivery) -> None:
    dns = ScriptedDns({"hooks.example": ["93.184.215.14"]})
    assert await validate_webhook_url("https://hooks.example/h", (), dns)  # fine on create
    dns.table["hooks.example"] = ["93.184.215.14", "169.254.169.254"]
    s = named_sender("https://hooks.example/h", dns, ())
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert not outcome.ok and not outcome.retryable
    assert "link-local address 169.254.169.254" in outcome.error


@pytest.mark.asyncio
async def test_next_checked_address_when_one_refuses(http_fake: HttpFake,
                                                     delivery: Delivery) -> None:
    dns = ScriptedDns({"receiver.test": ["127.0.0.2", "127.0.0.1"]})  # nothing on 127.0.0.2
    s = named_sender(f"http://receiver.test:{http_fake.port}/h", dns, ("127.0.0.0/8",))
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert outcome.ok, outcome.error
    assert len(http_fake.requests) == 1


@pytest.mark.asyncio
async def test_unresolvable_host_is_retryable(delivery: Delivery) -> None:
    s = named_sender("https://gone.example/h", ScriptedDns({}), ())
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert not outcome.ok and outcome.retryable and "does not resolve" in outcome.error


@pytest.mark.asyncio
async def test_https_to_pinned_address_verifies_the_host_name(tmp_path: Path,
                                                              delivery: Delivery) -> None:
    cert, key = self_signed(tmp_path, ("receiver.test",))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    dns = ScriptedDns({"receiver.test": ["127.0.0.1"], "impostor.test": ["127.0.0.1"]})
    settings = DeliverySettings(webhook_allow=("127.0.0.1",), webhook_ca_file=str(cert))
    async with running_fake(tls) as fake:
        port = fake.port
        outcomes = []
        for host in ("receiver.test", "impostor.test"):
            s = WebhookSender(WebhookConfig(url=f"https://{host}:{port}/h",
                                            signing_secret=generate_webhook_secret()),
                              settings, resolver=dns)
            try:
                outcomes.append(await s.send(delivery))
            finally:
                await s.close()
    good, impostor = outcomes
    assert good.ok, good.error
    assert [r.headers["host"] for r in fake.requests] == [f"receiver.test:{port}"]
    assert not impostor.ok and impostor.retryable
    assert "not valid for 'impostor.test'" in impostor.error, impostor.error


def test_unreadable_webhook_ca_file(tmp_path: Path) -> None:
    with pytest.raises(FailedPreconditionError):
        build_sender("webhook", {"url": "https://example.com/h",
                                 "signing_secret": generate_webhook_secret()},
                     DeliverySettings(webhook_ca_file=str(tmp_path / "none.pem")))
