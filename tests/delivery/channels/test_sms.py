"""SMS sender against a local fake of Twilio's create-message endpoint (notify.md shapes)."""

from __future__ import annotations

import base64
from dataclasses import replace
from urllib.parse import parse_qs

import pytest
from aiohttp import web

from alerts.delivery.channels.base import Delivery
from alerts.delivery.channels.config import DeliverySettings
from alerts.delivery.channels.factory import build_sender
from alerts.errors import FailedPreconditionError, InvalidArgumentError
from tests.delivery.channels.conftest import HttpFake, Received, make_alert

SID = "AC" + "a" * 32
AUTH = "f" * 32
OK, INVALID, BUSY, DOWN = "+14155550100", "+15005550001", "+15005550002", "+15005550003"


def settings(fake: HttpFake, **changes: object) -> DeliverySettings:
    base = DeliverySettings(twilio_api_base=fake.url, twilio_account_sid=SID,
                            twilio_auth_token=AUTH, twilio_from="+14155552345")
    return replace(base, **changes)  # type: ignore[arg-type]


def form(req: Received) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(req.body.decode()).items()}


class Twilio:
    """Answers like Twilio: per-``To`` behaviour, Basic auth checked."""

    def __init__(self) -> None:
        self.busy = True  # BUSY answers 429 until cleared

    async def __call__(self, req: Received) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(f"{SID}:{AUTH}".encode()).decode()
        if req.headers.get("authorization") != expected:
            return self._error(401, 20003, "Authenticate")
        fields = form(req)
        if fields["To"] == INVALID:
            return self._error(400, 21211,
                               f"The 'To' number {fields['To']} is not a valid phone number.")
        if fields["To"] == BUSY and self.busy:
            return self._error(429, 20429, "Too Many Requests", {"Retry-After": "2"})
        if fields["To"] == DOWN:
            return web.Response(status=503, text="<html>Service Unavailable</html>")
        sm = "SM" + "b" * 32
        return web.json_response({
            "account_sid": SID, "api_version": "2010-04-01", "body": fields["Body"],
            "date_created": "Thu, 24 Aug 2023 05:01:45 +0000", "date_sent": None,
            "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000", "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": fields.get("From"),
            "num_media": "0", "num_segments": "1", "price": None, "price_unit": None,
            "messaging_service_sid": fields.get("MessagingServiceSid"), "sid": sm,
            "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{SID}/Messages/{sm}/Media.json"},
            "to": fields["To"], "uri": f"/2010-04-01/Accounts/{SID}/Messages/{sm}.json"},
            status=201)

    @staticmethod
    def _error(status: int, code: int, message: str,
               headers: dict[str, str] | None = None) -> web.StreamResponse:
        return web.json_response({"code": code, "message": message,
                                  "more_info": f"https://www.twilio.com/docs/errors/{code}",
                                  "status": status}, status=status, headers=headers)


@pytest.mark.asyncio
async def test_each_number_gets_the_message(http_fake: HttpFake, delivery: Delivery) -> None:
    http_fake.handler = Twilio()
    s = build_sender("sms", {"phone_numbers": [OK, "+442071838750"]}, settings(http_fake))
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert outcome.ok and outcome.status == 201
    assert [r.path for r in http_fake.requests] == [
        f"/2010-04-01/Accounts/{SID}/Messages.json"] * 2
    assert [form(r) for r in http_fake.requests] == [
        {"To": number, "From": "+14155552345", "Body": "BTCUSDT crossed 65000\n\nalert 42"}
        for number in (OK, "+442071838750")]
    assert http_fake.requests[0].headers["content-type"] == "application/x-www-form-urlencoded"


@pytest.mark.asyncio
async def test_messaging_service_and_body_limit(http_fake: HttpFake) -> None:
    http_fake.handler = Twilio()
    s = build_sender("sms", {"phone_numbers": [OK]}, settings(
        http_fake, twilio_from="", twilio_messaging_service_sid="MG" + "c" * 32))
    try:
        outcome = await s.send(Delivery(make_alert(77), "c", "x" * 5000))
    finally:
        await s.close()
    assert outcome.ok
    fields = form(http_fake.requests[0])
    assert fields["MessagingServiceSid"] == "MG" + "c" * 32 and "From" not in fields
    assert len(fields["Body"]) == 1600 and fields["Body"].endswith("\n\nalert 77")


@pytest.mark.asyncio
async def test_retry_goes_only_to_pending_numbers(http_fake: HttpFake,
                                                  delivery: Delivery) -> None:
    twilio = Twilio()
    http_fake.handler = twilio
    s = build_sender("sms", {"phone_numbers": [OK, BUSY]}, settings(http_fake))
    try:
        first = await s.send(delivery)
        twilio.busy = False
        second = await s.send(Delivery(delivery.alert, delivery.channel_id, delivery.text,
                                       attempt=2))
        other_alert = await s.send(Delivery(make_alert(43), delivery.channel_id, "again"))
    finally:
        await s.close()
    assert not first.ok and first.retryable and first.status == 429
    assert first.retry_after_s == 2.0 and "20429" in first.error and BUSY in first.error
    assert second.ok
    assert [form(r)["To"] for r in http_fake.requests] == [OK, BUSY, BUSY, OK, BUSY]
    assert other_alert.ok


@pytest.mark.asyncio
async def test_invalid_number_is_permanent_and_not_resent(http_fake: HttpFake,
                                                          delivery: Delivery) -> None:
    http_fake.handler = Twilio()
    s = build_sender("sms", {"phone_numbers": [INVALID, DOWN]}, settings(http_fake))
    try:
        first = await s.send(delivery)
        second = await s.send(delivery)
    finally:
        await s.close()
    assert first.retryable and first.status == 503  # DOWN may recover
    assert second.retryable
    assert [form(r)["To"] for r in http_fake.requests] == [INVALID, DOWN, DOWN]


@pytest.mark.asyncio
async def test_all_refused_is_permanent_with_twilio_message(http_fake: HttpFake,
                                                            delivery: Delivery) -> None:
    http_fake.handler = Twilio()
    s = build_sender("sms", {"phone_numbers": [INVALID]}, settings(http_fake))
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert not outcome.ok and not outcome.retryable and outcome.status == 400
    assert outcome.error == (f"{INVALID}: HTTP 400: 21211 The 'To' number {INVALID} "
                             "is not a valid phone number.")


@pytest.mark.asyncio
async def test_wrong_credentials_permanent(http_fake: HttpFake, delivery: Delivery) -> None:
    http_fake.handler = Twilio()
    s = build_sender("sms", {"phone_numbers": [OK]}, settings(http_fake, twilio_auth_token="x"))
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert not outcome.retryable and outcome.status == 401 and "20003" in outcome.error


def test_configuration_errors() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        build_sender("sms", {"phone_numbers": ["4155550100"]},
                     DeliverySettings(twilio_account_sid=SID, twilio_auth_token=AUTH,
                                      twilio_from="+14155552345"))
    assert err.value.violations[0].field == "channel.sms.phone_numbers"
    with pytest.raises(FailedPreconditionError) as missing:
        build_sender("sms", {"phone_numbers": [OK]}, DeliverySettings())
    assert missing.value.reason == "SMS_NOT_CONFIGURED"
