"""Email sender against a real local SMTP server (aiosmtpd) with STARTTLS and AUTH."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from alerts.delivery.channels.base import Delivery
from alerts.delivery.channels.config import DeliverySettings
from alerts.delivery.channels.email import message_id
from alerts.delivery.channels.factory import build_sender
from alerts.errors import FailedPreconditionError, InvalidArgumentError
from tests.delivery.channels.conftest import self_signed

USER, PASSWORD = "alerts", "s3cret"


@dataclass
class Mailbox:
    """The SMTP server's handler: keeps accepted messages; some recipients answer 4xx/5xx."""

    port: int = 0
    ca_file: str = ""
    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    tls_sessions: int = 0
    deferred: set[str] = field(default_factory=set)    # answer 450
    rejected: set[str] = field(default_factory=set)    # answer 550
    data_reply: str = "250 Message accepted"             # the answer to DATA

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.deferred:
            return "450 4.2.1 Mailbox busy, try later"
        if address in self.rejected:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        if not self.data_reply.startswith("250"):
            return self.data_reply
        self.messages.append((envelope, parsed))
        self.tls_sessions += session.ssl is not None
        return self.data_reply


def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: object) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
          and auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest_asyncio.fixture
async def mailbox(tmp_path: Path) -> AsyncIterator[Mailbox]:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    box = Mailbox(ca_file=str(cert))
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(box, hostname="mx.test", tls_context=tls, require_starttls=True,
                     auth_required=True, authenticator=authenticate),
        "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()


def settings(box: Mailbox, **changes: object) -> DeliverySettings:
    base = DeliverySettings(
        smtp_host="127.0.0.1", smtp_port=box.port, smtp_username=USER, smtp_password=PASSWORD,
        smtp_from="alerts@bots.example", smtp_ca_file=box.ca_file, default_timeout_s=5.0)
    return replace(base, **changes)  # type: ignore[arg-type]


async def send_once(box: Mailbox, delivery: Delivery, to: list[str] | None = None,
                    **changes: object):
    s = build_sender("email", {"to_addresses": to or ["ops@desk.example"]},
                     settings(box, **changes))
    try:
        return await s.send(delivery)
    finally:
        await s.close()


@pytest.mark.asyncio
async def test_delivered_over_starttls_with_auth(mailbox: Mailbox, delivery: Delivery) -> None:
    outcome = await send_once(mailbox, delivery, ["ops@desk.example", "risk@desk.example"])
    assert outcome.ok and outcome.status == 250, outcome.error
    ((envelope, msg),) = mailbox.messages
    assert mailbox.tls_sessions == 1
    assert envelope.mail_from == "alerts@bots.example"
    assert envelope.rcpt_tos == ["ops@desk.example", "risk@desk.example"]
    assert msg["Subject"] == "[alert 42] binance:BTCUSDT: BTCUSDT crossed 65000"
    assert msg["X-Alert-Id"] == "42" and msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"] == message_id(42, "ops-hook", "alerts@bots.example")
    assert msg["Message-ID"].startswith("<alert-42.") and msg["Message-ID"].endswith(
        "@bots.example>")
    assert msg.get_content().replace("\r\n", "\n") == "BTCUSDT crossed 65000\n\nalert id: 42\n"


@pytest.mark.asyncio
async def test_rendered_subject_used(mailbox: Mailbox, delivery: Delivery) -> None:
    custom = Delivery(delivery.alert, "ops-hook", "body", subject="BTC above 65k\r\nBcc: x@y")
    assert (await send_once(mailbox, custom)).ok
    ((_, msg),) = mailbox.messages
    assert msg["Subject"] == "BTC above 65k Bcc: x@y" and msg["Bcc"] is None


@pytest.mark.asyncio
async def test_wrong_password_is_permanent(mailbox: Mailbox, delivery: Delivery) -> None:
    outcome = await send_once(mailbox, delivery, smtp_password="wrong")
    assert not outcome.ok and not outcome.retryable and outcome.status == 535
    assert "authentication failed" in outcome.error
    assert mailbox.messages == []


@pytest.mark.asyncio
async def test_untrusted_certificate_is_retryable(mailbox: Mailbox, delivery: Delivery) -> None:
    outcome = await send_once(mailbox, delivery, smtp_ca_file="")
    assert not outcome.ok and outcome.retryable and "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert mailbox.messages == []


@pytest.mark.asyncio
async def test_connection_refused_is_retryable(delivery: Delivery, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = build_sender("email", {"to_addresses": ["ops@desk.example"]},
                     DeliverySettings(smtp_host="127.0.0.1", smtp_port=port))
    try:
        outcome = await s.send(delivery)
    finally:
        await s.close()
    assert not outcome.ok and outcome.retryable and outcome.status == 0


@pytest.mark.asyncio
async def test_deferred_recipient_is_retryable(mailbox: Mailbox, delivery: Delivery) -> None:
    mailbox.deferred.add("busy@desk.example")
    outcome = await send_once(mailbox, delivery, ["busy@desk.example"])
    assert not outcome.ok and outcome.retryable and outcome.status == 450
    assert "busy@desk.example: 450" in outcome.error


@pytest.mark.asyncio
async def test_rejected_recipient_is_permanent(mailbox: Mailbox, delivery: Delivery) -> None:
    mailbox.rejected.add("gone@desk.example")
    outcome = await send_once(mailbox, delivery, ["gone@desk.example"])
    assert not outcome.ok and not outcome.retryable and outcome.status == 550


@pytest.mark.asyncio
async def test_partly_rejected_still_delivers_to_the_rest(mailbox: Mailbox,
                                                          delivery: Delivery) -> None:
    mailbox.rejected.add("gone@desk.example")
    outcome = await send_once(mailbox, delivery, ["gone@desk.example", "ops@desk.example"])
    assert outcome.ok and "gone@desk.example refused: 550" in outcome.error
    assert mailbox.messages[0][0].rcpt_tos == ["ops@desk.example"]


@pytest.mark.asyncio
@pytest.mark.parametrize("reply,retryable", [
    ("451 4.3.0 Temporary local problem, try later", True),
    ("554 5.6.0 Message rejected as spam", False),
])
async def test_data_replies(mailbox: Mailbox, delivery: Delivery, reply: str,
                            retryable: bool) -> None:
    mailbox.data_reply = reply
    outcome = await send_once(mailbox, delivery)
    assert not outcome.ok and outcome.retryable is retryable
    assert outcome.status == int(reply[:3]) and reply[4:] in outcome.error


def test_bad_address() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        build_sender("email", {"to_addresses": ["not an address"]}, DeliverySettings())
    assert err.value.violations[0].field == "channel.email.to_addresses"


def test_unreadable_ca_file(tmp_path: Path) -> None:
    with pytest.raises(FailedPreconditionError) as err:
        build_sender("email", {"to_addresses": ["ops@desk.example"]},
                     DeliverySettings(smtp_ca_file=str(tmp_path / "missing.pem")))
    assert "smtp_ca_file" in err.value.message
