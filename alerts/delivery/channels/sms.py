"""SMS sender for a Twilio-compatible REST API.

One attempt sends the alert to every configured number that has not yet taken
it: per number one form POST to
``{settings.twilio_api_base}/2010-04-01/Accounts/{sid}/Messages.json`` with HTTP
Basic auth (account SID, auth token), ``To``, ``From`` (or
``MessagingServiceSid``) and ``Body`` (the text and a last line ``alert <id>``,
cut to 1600 characters). The sender remembers, per (channel, alert, number),
the numbers that accepted the message (201) or refused it for good, so a retry
only goes to the numbers still pending; this memory lives in the process (the
newest 10,000 entries), so after a restart a retry may reach a number twice
(at least once, and the text names the alert id).

Per number: 200/201 ok; 429 (code 20429) and 5xx retryable (``Retry-After``
honoured); other 4xx permanent with Twilio's ``code`` and ``message``. The
attempt is ok when every number took the message; retryable when any number
failed in a retryable way (the longest ``Retry-After`` wins); else permanent,
naming each refused number.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict

import httpx

from alerts.delivery.channels._common import (
    http_client,
    json_object,
    parse_retry_after,
    post,
    short,
    with_alert_id,
)
from alerts.delivery.channels.base import ChannelSender, Delivery, Outcome
from alerts.delivery.channels.config import DeliverySettings, SmsConfig, config_error
from alerts.errors import FailedPreconditionError

BODY_LIMIT = 1600
_E164 = re.compile(r"\+[1-9]\d{1,14}")
_MEMORY = 10_000


class SmsSender(ChannelSender):
    """Texts one alert to a list of phone numbers."""

    def __init__(self, config: SmsConfig, settings: DeliverySettings) -> None:
        for number in config.phone_numbers:
            if not _E164.fullmatch(number):
                raise config_error("sms", "phone_numbers",
                                   f"{number!r} is not an E.164 number like +14155550100")
        if not (settings.twilio_account_sid and settings.twilio_auth_token
                and (settings.twilio_from or settings.twilio_messaging_service_sid)):
            raise FailedPreconditionError(
                "SMS is not configured: set twilio_account_sid, twilio_auth_token and "
                "twilio_from (or twilio_messaging_service_sid)", reason="SMS_NOT_CONFIGURED")
        self._numbers = tuple(dict.fromkeys(config.phone_numbers))
        self._url = (f"{settings.twilio_api_base}/2010-04-01/Accounts/"
                     f"{settings.twilio_account_sid}/Messages.json")
        self._sender = ({"From": settings.twilio_from} if settings.twilio_from
                        else {"MessagingServiceSid": settings.twilio_messaging_service_sid})
        self._secret = settings.twilio_auth_token
        self._client = http_client(
            config.timeout_s or settings.default_timeout_s, settings.user_agent,
            auth=httpx.BasicAuth(settings.twilio_account_sid, settings.twilio_auth_token))
        self._settled: OrderedDict[tuple[str, int, str], str] = OrderedDict()  # "" = delivered

    async def send(self, delivery: Delivery) -> Outcome:
        started = time.perf_counter()
        body = with_alert_id(delivery.text, delivery.alert.alert_id, BODY_LIMIT)
        retry: list[tuple[str, Outcome]] = []
        refused: list[str] = []
        status = 0
        for number in self._numbers:
            key = (delivery.channel_id, delivery.alert.alert_id, number)
            if key in self._settled:
                if self._settled[key]:
                    refused.append(f"{number}: {self._settled[key]}")
                continue
            outcome = await self._send_one(number, body)
            status = outcome.status
            if outcome.ok or not outcome.retryable:
                self._remember(key, "" if outcome.ok else outcome.error)
            if not outcome.ok and outcome.retryable:
                retry.append((number, outcome))
            elif not outcome.ok:
                refused.append(f"{number}: {outcome.error}")
        latency = time.perf_counter() - started
        if retry:
            delays = [o.retry_after_s for _, o in retry if o.retry_after_s is not None]
            return Outcome(ok=False, status=retry[-1][1].status, latency_s=latency,
                           retryable=True, retry_after_s=max(delays) if delays else None,
                           error="; ".join(f"{n}: {o.error}" for n, o in retry))
        if refused:
            return Outcome(ok=False, status=status, latency_s=latency, retryable=False,
                           error="; ".join(refused))
        return Outcome(ok=True, status=status, latency_s=latency)

    def _remember(self, key: tuple[str, int, str], result: str) -> None:
        self._settled[key] = result
        while len(self._settled) > _MEMORY:
            self._settled.popitem(last=False)

    async def _send_one(self, number: str, body: str) -> Outcome:
        answer = await post(self._client, self._url, data={"To": number, **self._sender,
                                                           "Body": body}, redact=self._secret)
        if isinstance(answer, Outcome):
            return answer
        response, text, latency = answer
        status = response.status_code
        if status in (200, 201):
            return Outcome(ok=True, status=status, latency_s=latency)
        error = json_object(text)
        code = f"{error['code']} " if "code" in error else ""
        detail = (f"HTTP {status}: {code}{error['message']}" if "message" in error
                  else f"HTTP {status}: {short(text)}")
        retryable = status == 429 or status >= 500
        return Outcome(ok=False, status=status, latency_s=latency, retryable=retryable,
                       retry_after_s=(parse_retry_after(response.headers.get("retry-after"))
                                      if retryable else None),
                       error=detail)

    async def close(self) -> None:
        await self._client.aclose()
