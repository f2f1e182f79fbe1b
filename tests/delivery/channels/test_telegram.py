"""Telegram sender against a local fake of the Bot API ``sendMessage`` (notify.md shapes)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from alerts.delivery.channels.base import Delivery
from alerts.delivery.channels.config import DeliverySettings
from alerts.delivery.channels.factory import build_sender
from alerts.errors import InvalidArgumentError
from tests.delivery.channels.conftest import HttpFake, Received, make_alert

TOKEN = "5927593490:AAH-secret_token"


def settings(fake: HttpFake, **changes: object) -> DeliverySettings:
    return DeliverySettings(telegram_api_base=fake.url, **changes)  # type: ignore[arg-type]


async def sent_message(req: Received) -> web.StreamResponse:
    sent = json.loads(req.body)
    return web.json_response({"ok": True, "result": {
        "message_id": 156,
        "from": {"id": 5927593490, "is_bot": True, "first_name": "Bot", "username": "my_bot"},
        "chat": {"id": sent["chat_id"], "first_name": "Alice", "type": "private"},
        "date": 1700000000, "text": sent["text"]}})


def error(code: int, description: str, parameters: dict[str, object] | None = None):
    body: dict[str, object] = {"ok": False, "error_code": code, "description": description}
    if parameters is not None:
        body["parameters"] = parameters

    async def handler(_: Received) -> web.StreamResponse:
        return web.json_response(body, status=code)
    return handler


async def send_once(fake: HttpFake, delivery: Delivery, chat_id: str = "987654321"):
    s = build_sender("telegram", {"bot_token": TOKEN, "chat_id": chat_id}, settings(fake))
    try:
        return await s.send(delivery)
    finally:
        await s.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("chat_id,sent_chat", [("987654321", 987654321),
                                               ("-1001234567890", -1001234567890),
                                               ("@alerts_channel", "@alerts_channel")])
async def test_send_message(http_fake: HttpFake, delivery: Delivery, chat_id: str,
                            sent_chat: int | str) -> None:
    http_fake.handler = sent_message
    outcome = await send_once(http_fake, delivery, chat_id)
    assert outcome.ok and outcome.status == 200
    (req,) = http_fake.requests
    assert req.method == "POST" and req.path == f"/bot{TOKEN}/sendMessage"
    assert req.headers["content-type"] == "application/json"
    assert json.loads(req.body) == {"chat_id": sent_chat,
                                    "text": "BTCUSDT crossed 65000\n\nalert 42"}


@pytest.mark.asyncio
async def test_text_cut_to_4096_units(http_fake: HttpFake) -> None:
    http_fake.handler = sent_message
    outcome = await send_once(http_fake, Delivery(make_alert(3), "c", "é\U0001F680" * 3000))
    assert outcome.ok
    text = json.loads(http_fake.requests[0].body)["text"]
    assert len(text.encode("utf-16-le")) // 2 <= 4096 and text.endswith("\n\nalert 3")


@pytest.mark.asyncio
async def test_429_retry_after_from_parameters(http_fake: HttpFake, delivery: Delivery) -> None:
    http_fake.handler = error(429, "Too Many Requests: retry after 5", {"retry_after": 5})
    outcome = await send_once(http_fake, delivery)
    assert not outcome.ok and outcome.retryable and outcome.status == 429
    assert outcome.retry_after_s == 5.0
    assert outcome.error == "Too Many Requests: retry after 5"


@pytest.mark.asyncio
@pytest.mark.parametrize("code,description", [
    (400, "Bad Request: chat not found"),
    (400, "Bad Request: message text is empty"),
    (401, "Unauthorized"),
    (403, "Forbidden: bot was blocked by the user"),
    (404, "Not Found"),
])
async def test_permanent_with_description(http_fake: HttpFake, delivery: Delivery, code: int,
                                          description: str) -> None:
    http_fake.handler = error(code, description)
    outcome = await send_once(http_fake, delivery)
    assert not outcome.ok and not outcome.retryable and outcome.status == code
    assert outcome.error == description


@pytest.mark.asyncio
async def test_migrated_group_names_new_chat(http_fake: HttpFake, delivery: Delivery) -> None:
    http_fake.handler = error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                              {"migrate_to_chat_id": -1001987654321})
    outcome = await send_once(http_fake, delivery, "-4242")
    assert not outcome.retryable and "-1001987654321" in outcome.error


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [500, 502])
async def test_server_errors_retryable(http_fake: HttpFake, delivery: Delivery,
                                       code: int) -> None:
    http_fake.handler = error(code, "Internal Server Error")
    outcome = await send_once(http_fake, delivery)
    assert not outcome.ok and outcome.retryable and outcome.status == code


@pytest.mark.asyncio
async def test_paced_per_chat(http_fake: HttpFake, delivery: Delivery) -> None:
    http_fake.handler = sent_message
    s = build_sender("telegram", {"bot_token": TOKEN, "chat_id": "1"},
                     settings(http_fake, telegram_chat_rate_per_s=5.0))
    start = time.monotonic()
    try:
        outcomes = await asyncio.gather(*(s.send(delivery) for _ in range(3)))
    finally:
        await s.close()
    assert all(o.ok for o in outcomes)
    for k, at in enumerate(sorted(r.at for r in http_fake.requests)):
        assert at - start >= k * 0.2 - 0.005, (k, at - start)


@pytest.mark.asyncio
async def test_429_pauses_the_chat(http_fake: HttpFake, delivery: Delivery) -> None:
    http_fake.handler = error(429, "Too Many Requests: retry after 40", {"retry_after": 40})
    s = build_sender("telegram", {"bot_token": TOKEN, "chat_id": "1"},
                     settings(http_fake, pacing_max_wait_s=2.0))
    try:
        await s.send(delivery)
        paused = await s.send(delivery)
    finally:
        await s.close()
    assert paused.status == 0 and paused.retry_after_s is not None and paused.retry_after_s > 35
    assert len(http_fake.requests) == 1


@pytest.mark.asyncio
async def test_token_not_in_errors(http_fake: HttpFake, delivery: Delivery) -> None:
    async def echo_path(req: Received) -> web.StreamResponse:
        return web.Response(status=502, text=f"bad gateway for {req.path}")

    http_fake.handler = echo_path
    outcome = await send_once(http_fake, delivery)
    assert outcome.retryable and "bad gateway" in outcome.error
    assert TOKEN not in outcome.error and "<redacted>" in outcome.error


@pytest.mark.parametrize("data,field", [
    ({"bot_token": "nonsense", "chat_id": "1"}, "channel.telegram.bot_token"),
    ({"bot_token": TOKEN, "chat_id": "alice"}, "channel.telegram.chat_id"),
])
def test_bad_config(data: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        build_sender("telegram", data, DeliverySettings())
    assert err.value.violations[0].field == field
