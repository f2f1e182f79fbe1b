"""Webhook sender: signed JSON POSTs per Standard Webhooks, guarded against SSRF.

One attempt = one POST of ``{"type":"alert.fired","timestamp":<commit time>,
"data":<alert JSON>}`` (``alerts.delivery.alert_json``, plus ``"text"``: the
channel's rendered template; the body is the same on every attempt) with the headers ``webhook-id`` (``msg_<alert id>_<channel
hash>``: the same on every attempt, the receiver's idempotency key),
``webhook-timestamp`` (now, unix seconds) and ``webhook-signature`` (one ``v1``
entry per valid secret: two during rotation), plus the channel's extra headers.

Before each attempt the host is resolved and checked by the SSRF guard and the
request goes to a checked address (with the original ``Host`` header and TLS
server name; the next one when a connection is refused). Redirects are not
followed. Classification: 2xx ok; 410 permanent (endpoint gone); 408, 429, 3xx,
5xx, timeouts, connection failures and an unresolvable host retryable, with
``Retry-After`` (seconds or HTTP date) as the delay when given (the timeout
bounds the whole attempt: resolution, connection and answer); other 4xx and a
refused URL permanent. Per endpoint (= per sender) at most
``max_concurrency`` requests are in flight and a token bucket paces sends; a 429
or 503 with ``Retry-After`` also pauses the bucket for that long.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import ssl
import time

import httpx

from alerts.delivery.alert_json import alert_to_dict, dumps, rfc3339_ms
from alerts.delivery.channels._common import (
    http_client,
    paced_out,
    parse_retry_after,
    read_some,
    short,
    timed_out,
    total_timeout,
    transport_failure,
)
from alerts.delivery.channels.base import ChannelSender, Delivery, Outcome
from alerts.delivery.channels.config import DeliverySettings, WebhookConfig, config_error
from alerts.delivery.channels.pacing import Pacer
from alerts.delivery.channels.signing import secret_key, sign
from alerts.delivery.channels.url_guard import (
    AllowList,
    HostNotFoundError,
    Resolver,
    UrlNotAllowedError,
    parse_webhook_url,
    resolve_checked,
    system_resolver,
)
from alerts.errors import FailedPreconditionError

EVENT_TYPE = "alert.fired"
_RESERVED_HEADERS = frozenset({
    "webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length",
    "host", "transfer-encoding", "connection",
})


def webhook_message_id(alert_id: int, channel_id: str) -> str:
    """The ``webhook-id`` of an (alert, channel): stable across attempts and restarts."""
    digest = hashlib.sha256(channel_id.encode()).hexdigest()[:16]
    return f"msg_{alert_id}_{digest}"


def webhook_body(delivery: Delivery) -> bytes:
    """The request body: the alert's JSON form plus ``text``, the channel's rendered text."""
    alert = delivery.alert
    return dumps({"type": EVENT_TYPE, "timestamp": rfc3339_ms(alert.commit_time_ms),
                  "data": {**alert_to_dict(alert), "text": delivery.text}})


class WebhookSender(ChannelSender):
    """Delivers to one webhook endpoint."""

    def __init__(self, config: WebhookConfig, settings: DeliverySettings,
                 *, resolver: Resolver = system_resolver) -> None:
        self._url = parse_webhook_url(config.url)
        self._keys = [secret_key(config.signing_secret)]
        if config.previous_signing_secret:
            self._keys.append(secret_key(config.previous_signing_secret,
                                         "channel.webhook.previous_signing_secret"))
        for name in config.headers:
            if name.lower() in _RESERVED_HEADERS:
                raise config_error("webhook", "headers", f"header {name!r} is set by the sender")
        self._headers = dict(config.headers)
        self._allow = AllowList.parse(settings.webhook_allow)
        self._max_wait_s = settings.pacing_max_wait_s
        self._limit = asyncio.Semaphore(config.max_concurrency
                                        or settings.webhook_max_concurrency)
        self._pacer = Pacer(config.rate_per_s or settings.webhook_rate_per_s,
                            config.burst or settings.webhook_burst)
        timeout = config.timeout_s or settings.default_timeout_s
        self._resolver = resolver
        self._client = http_client(timeout, settings.user_agent,
                                   verify=_tls_context(settings.webhook_ca_file))

    async def send(self, delivery: Delivery) -> Outcome:
        wait = await self._pacer.wait_turn(self._max_wait_s)
        if wait is not None:
            return paced_out(wait)
        async with self._limit:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(total_timeout(self._client)):
                    return await self._attempt(delivery, started)
            except TimeoutError:
                return timed_out(started)

    async def _attempt(self, delivery: Delivery, started: float) -> Outcome:
        try:
            addresses = await resolve_checked(self._url, self._allow, self._resolver)
        except UrlNotAllowedError as exc:
            return Outcome(ok=False, latency_s=time.perf_counter() - started, retryable=False,
                           error=exc.message)
        except HostNotFoundError as exc:
            return Outcome(ok=False, latency_s=time.perf_counter() - started, retryable=True,
                           error=exc.message)
        body = webhook_body(delivery)
        msg_id = webhook_message_id(delivery.alert.alert_id, delivery.channel_id)
        timestamp = int(time.time())
        headers = {
            **self._headers,
            "host": self._url.netloc.decode("ascii"),
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._keys, msg_id, timestamp, body),
        }
        extensions = {}
        if self._url.scheme == "https" and not _is_literal(self._url.host):
            extensions["sni_hostname"] = self._url.host
        for index, address in enumerate(addresses):
            request = self._client.build_request(
                "POST", self._url.copy_with(host=str(address)), content=body,
                headers=headers, extensions=extensions)
            try:
                response = await self._client.send(request, stream=True)
                try:
                    latency = time.perf_counter() - started
                    text = await read_some(response)
                finally:
                    await response.aclose()
            except httpx.ConnectError as exc:
                if index + 1 < len(addresses):
                    continue  # the host's next checked address
                return transport_failure(exc, started)
            except httpx.HTTPError as exc:
                return transport_failure(exc, started)
            return self._classify(response, text, latency)
        raise AssertionError("resolve_checked returns at least one address")

    def _classify(self, response: httpx.Response, text: str, latency: float) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(ok=True, status=status, latency_s=latency)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status in (429, 503) and retry_after is not None:
            self._pacer.hold_for(retry_after)
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            return Outcome(ok=False, status=status, latency_s=latency, retryable=True,
                           retry_after_s=retry_after,
                           error=f"HTTP {status}: redirect to {location} not followed")
        retryable = status >= 500 or status in (408, 429)
        error = f"HTTP {status}: {short(text)}" if text.strip() else f"HTTP {status}"
        if status == 410:
            error = f"HTTP 410: endpoint gone; {short(text)}".rstrip("; ")
        return Outcome(ok=False, status=status, latency_s=latency, retryable=retryable,
                       retry_after_s=retry_after if retryable else None, error=error)

    async def close(self) -> None:
        await self._client.aclose()


def _tls_context(ca_file: str) -> ssl.SSLContext | bool:
    if not ca_file:
        return True
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise FailedPreconditionError(f"webhook_ca_file {ca_file!r} cannot be used: {exc}",
                                      reason="WEBHOOK_NOT_CONFIGURED") from None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

