"""Discord sender against a local fake of the execute-webhook endpoint (notify.md shapes)."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from alerts.delivery.channels.base import Delivery
from alerts.delivery.channels.config import DeliverySettings, DiscordConfig
from alerts.delivery.channels.discord import DiscordSender, parse_discord_webhook_url
from alerts.delivery.channels.factory import build_sender
from alerts.errors import InvalidArgumentError
from tests.delivery.channels.conftest import HttpFake, Received, make_alert

HOOK = "https://discord.com/api/webhooks/1234567890/tok-EN_abc"
RATE_HEADERS = {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
                "X-RateLimit-Reset": "1700000001.5", "X-RateLimit-Reset-After": "1.5",
                "X-RateLimit-Bucket": "abcd1234"}


def settings(fake: HttpFake, **changes: object) -> DeliverySettings:
    return DeliverySettings(discord_api_base=f"{fake.url}/api", **changes)  # type: ignore[arg-type]


def message_object(req: Received) -> dict[str, object]:
    sent = json.loads(req.body)
    return {"id": "1180000000000000001", "type": 0, "content": sent["content"],
            "channel_id": "1170000000000000000",
            "author": {"id": "1234567890", "username": sent.get("username", "Alerts"),
                       "bot": True, "discriminator": "0000"},
            "attachments": [], "embeds": [], "mentions": [], "mention_roles": [],
            "pinned": False, "mention_everyone": False, "tts": False,
            "timestamp": "2026-01-01T00:00:00.123000+00:00", "edited_timestamp": None,
            "flags": 0, "components": [], "webhook_id": "1234567890"}


async def created(req: Received) -> web.StreamResponse:
    return web.json_response(message_object(req), headers=RATE_HEADERS)


def answer(status: int, body: dict[str, object] | None, headers: dict[str, str] | None = None):
    async def handler(_: Received) -> web.StreamResponse:
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)
    return handler


async def send_once(fake: HttpFake, delivery: Delivery, **config: object):
    s = build_sender("discord", {"webhook_url": HOOK, **config}, settings(fake))
    try:
        return await s.send(delivery)
    finally:
        await s.close()


@pytest.mark.asyncio
async def test_execute_webhook_body_and_path(http_fake: HttpFake, delivery: Delivery) -> None:
    http_fake.handler = created
    outcome = await send_once(http_fake, delivery, username="Alerts bot")
    assert outcome.ok and outcome.status == 200
    (req,) = http_fake.requests
    assert req.path == "/api/v10/webhooks/1234567890/tok-EN_abc"
    assert req.query == {"wait": "true"}
    assert req.headers["content-type"] == "application/json"
    assert "authorization" not in req.headers
    sent = json.loads(req.body)
    assert sent == {
        "content": "BTCUSDT crossed 65000\n\nalert 42", "username": "Alerts bot",
        "allowed_mentions": {"parse": []},
        "embeds": [{"title": "binance:BTCUSDT \u00b7 btc-65k",
                    "timestamp": "2026-01-01T00:00:00.000Z",
                    "fields": [{"name": "close(5m)", "value": "65010.5", "inline": True},
                               {"name": "rsi(14, 5m)", "value": "undefined", "inline": True}],
                    "footer": {"text": "alert 42"}}]}


def test_embed_within_discord_limits() -> None:
    alert = make_alert(1, symbol="S" * 300, values=tuple((f"{i}" * 300, i / 3) for i in range(30)))
    payload = json.loads(json.dumps(DiscordSender(
        DiscordConfig(webhook_url=HOOK), DeliverySettings()).payload(Delivery(alert, "c", "t"))))
    (embed,) = payload["embeds"]
    assert len(embed["title"]) <= 256 and len(embed["fields"]) == 10
    assert all(len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in embed["fields"])
    text = embed["title"] + embed["footer"]["text"] + "".join(
        f["name"] + f["value"] for f in embed["fields"])
    assert len(text) <= 6000


@pytest.mark.asyncio
async def test_204_is_ok(http_fake: HttpFake, delivery: Delivery) -> None:
    http_fake.handler = answer(204, None)
    outcome = await send_once(http_fake, delivery)
    assert outcome.ok and outcome.status == 204
    assert "username" not in json.loads(http_fake.requests[0].body)


@pytest.mark.asyncio
async def test_long_content_cut_to_2000(http_fake: HttpFake) -> None:
    text = "\U0001F4C8" * 1500 + "tail"  # astral characters: 2 UTF-16 units each
    outcome = await send_once(http_fake, Delivery(make_alert(9), "c", text))
    assert outcome.ok
    content = json.loads(http_fake.requests[0].body)["content"]
    assert len(content.encode("utf-16-le")) // 2 <= 2000
    assert content.endswith("\u2026\n\nalert 9") and content.startswith("\U0001F4C8")


@pytest.mark.asyncio
@pytest.mark.parametrize("body,headers,delay", [
    ({"message": "You are being rate limited.", "retry_after": 64.57, "global": False},
     {"Retry-After": "65", "X-RateLimit-Scope": "user"}, 64.57),
    ({"message": "You are being rate limited.", "global": True},
     {"Retry-After": "3", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}, 3.0),
])
async def test_429_is_retryable_with_retry_after(http_fake: HttpFake, delivery: Delivery,
                                                 body: dict[str, object],
                                                 headers: dict[str, str], delay: float) -> None:
    http_fake.handler = answer(429, body, headers)
    outcome = await send_once(http_fake, delivery)
    assert not outcome.ok and outcome.retryable and outcome.status == 429
    assert outcome.retry_after_s == delay
    assert "rate limited" in outcome.error
    assert ("global" in outcome.error) is bool(body["global"])


@pytest.mark.asyncio
@pytest.mark.parametrize("status,body,gone", [
    (404, {"message": "Unknown Webhook", "code": 10015}, True),
    (401, {"message": "Invalid Webhook Token", "code": 50027}, True),
    (403, {"message": "Missing Permissions", "code": 50013}, True),
    (400, {"message": "Invalid Form Body", "code": 50035,
           "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                               "message": "Must be 2000 or fewer in length."}]}}},
     False),
])
async def test_permanent_failures(http_fake: HttpFake, delivery: Delivery, status: int,
                                  body: dict[str, object], gone: bool) -> None:
    http_fake.handler = answer(status, body)
    outcome = await send_once(http_fake, delivery)
    assert not outcome.ok and not outcome.retryable and outcome.status == status
    assert f"{body['message']} (code {body['code']})" in outcome.error
    assert ("webhook gone" in outcome.error) is gone


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_retryable(http_fake: HttpFake, delivery: Delivery,
                                       status: int) -> None:
    http_fake.handler = answer(status, {"message": "upstream", "code": 0})
    outcome = await send_once(http_fake, delivery)
    assert not outcome.ok and outcome.retryable and outcome.status == status


@pytest.mark.asyncio
async def test_exhausted_bucket_paces_next_send(http_fake: HttpFake, delivery: Delivery) -> None:
    async def last_in_bucket(req: Received) -> web.StreamResponse:
        return web.json_response(message_object(req), headers={
            **RATE_HEADERS, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.4"})

    http_fake.handler = last_in_bucket
    s = build_sender("discord", {"webhook_url": HOOK}, settings(http_fake))
    try:
        first = await s.send(delivery)
        second = await s.send(delivery)
    finally:
        await s.close()
    assert first.ok and second.ok
    assert http_fake.requests[1].at - http_fake.requests[0].at >= 0.35


@pytest.mark.asyncio
async def test_long_reset_returns_retryable_without_sending(http_fake: HttpFake,
                                                            delivery: Delivery) -> None:
    async def last_in_bucket(req: Received) -> web.StreamResponse:
        return web.json_response(message_object(req), headers={
            **RATE_HEADERS, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "30"})

    http_fake.handler = last_in_bucket
    s = DiscordSender(DiscordConfig(webhook_url=HOOK), settings(http_fake, pacing_max_wait_s=1.0))
    try:
        first = await s.send(delivery)
        second = await s.send(delivery)
    finally:
        await s.close()
    assert first.ok
    assert second.retryable and second.status == 0 and second.retry_after_s is not None
    assert 29 < second.retry_after_s <= 30
    assert len(http_fake.requests) == 1


def test_webhook_url_parsing() -> None:
    assert parse_discord_webhook_url(HOOK) == ("1234567890", "tok-EN_abc", None)
    assert parse_discord_webhook_url(
        "https://canary.discordapp.com/api/v10/webhooks/1/t?thread_id=77") == ("1", "t", "77")
    for bad in ["http://discord.com/api/webhooks/1/t", "https://evil.com/api/webhooks/1/t",
                "https://discord.com.evil.com/api/webhooks/1/t",
                "https://discord.com/api/webhooks/abc/t", "https://discord.com/api/webhooks/1",
                "https://discord.com/api/webhooks/1/t?thread_id=x", ""]:
        with pytest.raises(InvalidArgumentError) as err:
            parse_discord_webhook_url(bad)
        assert err.value.violations[0].field == "channel.discord.webhook_url"


@pytest.mark.asyncio
async def test_thread_id_forwarded(http_fake: HttpFake, delivery: Delivery) -> None:
    await send_once(http_fake, delivery, webhook_url=HOOK + "?thread_id=555")
    assert http_fake.requests[0].query == {"wait": "true", "thread_id": "555"}
