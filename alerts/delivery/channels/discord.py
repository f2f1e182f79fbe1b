"""Discord sender: one execute-webhook POST per attempt.

The channel's ``webhook_url`` must be a Discord webhook URL
(``https://discord.com/api[/vN]/webhooks/{id}/{token}``, also ``discordapp.com``,
``ptb.`` and ``canary.``; an optional ``thread_id`` query is kept); the request
goes to ``{settings.discord_api_base}/v10/webhooks/{id}/{token}?wait=true``, so a
test points the base at a local fake and a success carries the created message.
Body: ``content`` (the text and a last line ``alert <id>``, cut to 2000
characters), one embed (symbol and rule, operand values, event time, the alert
id in the footer), ``username`` when configured, and ``allowed_mentions`` empty
so an alert never pings anyone.

Classification: 200/204 ok; 429 retryable after the body's ``retry_after``
(float seconds; else ``Retry-After``), which also pauses this webhook; 404, 401,
403 permanent (the webhook is gone or its token wrong: Discord asks senders to
stop); other 4xx permanent with Discord's message and code; 5xx and no answer
retryable. Every answer with ``X-RateLimit-Remaining: 0`` pauses the next send
for ``X-RateLimit-Reset-After`` seconds (pacing, in this process).
"""

from __future__ import annotations

import math
import re

import httpx

from alerts.delivery.alert_json import rfc3339_ms
from alerts.delivery.channels._common import (
    http_client,
    json_object,
    paced_out,
    parse_retry_after,
    post,
    seconds_value,
    short,
    truncate,
    with_alert_id,
)
from alerts.delivery.channels.base import ChannelSender, Delivery, Outcome
from alerts.delivery.channels.config import DeliverySettings, DiscordConfig, config_error
from alerts.delivery.channels.pacing import Pacer
from alerts.storage.records import AlertRecord

CONTENT_LIMIT = 2000
EMBED_FIELDS = 10
_URL = re.compile(
    r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api(?:/v\d+)?/webhooks/"
    r"(?P<id>\d{1,25})/(?P<token>[A-Za-z0-9_.\-]{1,200})/?")


def parse_discord_webhook_url(url: str) -> tuple[str, str, str | None]:
    """(webhook id, token, thread id or None) of a Discord webhook URL; else a config error."""
    parsed = httpx.URL(url) if url else None
    match = _URL.fullmatch(str(parsed.copy_with(query=None, fragment=None))) if parsed else None
    if parsed is None or match is None:
        raise config_error("discord", "webhook_url",
                           "must be https://discord.com/api/webhooks/{id}/{token}")
    thread = parsed.params.get("thread_id")
    if thread is not None and not thread.isdigit():
        raise config_error("discord", "webhook_url", "thread_id must be a number")
    return match["id"], match["token"], thread


def alert_embed(alert: AlertRecord) -> dict[str, object]:
    """One embed: symbol and rule as title, the operand values as fields (at most
    ``EMBED_FIELDS``), the event time, and the alert id in the footer; every text within
    Discord's limits (the whole embed stays far below 6000 characters)."""
    fields = [{"name": truncate(label, 256), "value": truncate(_value(value), 64),
               "inline": True} for label, value in alert.values[:EMBED_FIELDS]]
    return {"title": truncate(f"{alert.symbol} \u00b7 {alert.rule_id}", 256),
            "timestamp": rfc3339_ms(alert.event_time_ms),
            "fields": fields,
            "footer": {"text": f"alert {alert.alert_id}"}}


def _value(value: float) -> str:
    return "undefined" if math.isnan(value) else f"{value:.10g}"


class DiscordSender(ChannelSender):
    """Posts to one Discord webhook."""

    rate_per_s = 2.5     # local pacing; Discord's headers refine it
    burst = 5

    def __init__(self, config: DiscordConfig, settings: DeliverySettings) -> None:
        webhook_id, self._token, thread = parse_discord_webhook_url(config.webhook_url)
        self._url = f"{settings.discord_api_base}/v10/webhooks/{webhook_id}/{self._token}"
        self._params = {"wait": "true"} | ({"thread_id": thread} if thread else {})
        self._username = config.username
        self._pacer = Pacer(self.rate_per_s, self.burst)
        self._max_wait_s = settings.pacing_max_wait_s
        self._client = http_client(config.timeout_s or settings.default_timeout_s,
                                   settings.user_agent)

    def payload(self, delivery: Delivery) -> dict[str, object]:
        """The JSON body for ``delivery``."""
        body: dict[str, object] = {
            "content": with_alert_id(delivery.text, delivery.alert.alert_id, CONTENT_LIMIT),
            "embeds": [alert_embed(delivery.alert)],
            "allowed_mentions": {"parse": []},
        }
        if self._username:
            body["username"] = self._username
        return body

    async def send(self, delivery: Delivery) -> Outcome:
        wait = await self._pacer.wait_turn(self._max_wait_s)
        if wait is not None:
            return paced_out(wait)
        answer = await post(self._client, self._url, params=self._params,
                            json=self.payload(delivery), redact=self._token)
        if isinstance(answer, Outcome):
            return answer
        response, text, latency = answer
        status = response.status_code
        headers = response.headers
        if headers.get("x-ratelimit-remaining") == "0":
            reset_after = parse_retry_after(headers.get("x-ratelimit-reset-after"))
            if reset_after is not None:
                self._pacer.hold_for(reset_after)
        if status in (200, 204):
            return Outcome(ok=True, status=status, latency_s=latency)
        body = json_object(text)
        detail = _describe(status, body, text)
        if status == 429:
            retry_after = seconds_value(body.get("retry_after"))
            if retry_after is None:
                retry_after = parse_retry_after(headers.get("retry-after"))
            if retry_after is not None:
                self._pacer.hold_for(retry_after)
            scope = "global " if body.get("global") or headers.get("x-ratelimit-global") else ""
            return Outcome(ok=False, status=status, latency_s=latency, retryable=True,
                           retry_after_s=retry_after, error=f"{scope}rate limited: {detail}")
        if status >= 500:
            return Outcome(ok=False, status=status, latency_s=latency, retryable=True,
                           retry_after_s=parse_retry_after(headers.get("retry-after")),
                           error=detail)
        if status in (401, 403, 404):
            detail = f"webhook gone or not authorised: {detail}"
        return Outcome(ok=False, status=status, latency_s=latency, retryable=False, error=detail)

    async def close(self) -> None:
        await self._client.aclose()



def _describe(status: int, body: dict[str, object], text: str) -> str:
    if "message" in body:
        code = f" (code {body['code']})" if "code" in body else ""
        return f"HTTP {status}: {body['message']}{code}"
    return f"HTTP {status}: {short(text)}" if text.strip() else f"HTTP {status}"
