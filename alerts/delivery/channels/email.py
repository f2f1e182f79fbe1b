"""Email sender: one SMTP session per attempt through ``aiosmtplib``.

The relay is service-wide (``DeliverySettings.smtp_*``): STARTTLS (required when
``smtp_starttls``) or implicit TLS, certificates verified against the system's
CAs or ``smtp_ca_file``, AUTH when a user name is set. One message goes to all
of the channel's addresses: ``Subject`` is ``Delivery.subject`` (default
``[alert <id>] <symbol>: <message>``), the text body ends with ``alert id:
<id>``, ``Message-ID`` is ``<alert-<id>.<channel hash>@<from domain>>`` (the
same on every attempt, so mail systems and readers can deduplicate) and
``X-Alert-Id`` carries the id.

Classification: accepted by the relay ok (recipients it refused for good are
named in a permanent error only when none was accepted; one it refused with a
4xx makes the attempt retryable); authentication failure permanent; connection
refused, timeouts, disconnects, TLS failures and 4xx replies retryable; other
5xx replies permanent.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from alerts.delivery.channels._common import truncate
from alerts.delivery.channels.base import ChannelSender, Delivery, Outcome
from alerts.delivery.channels.config import DeliverySettings, EmailConfig, config_error
from alerts.errors import FailedPreconditionError

SUBJECT_LIMIT = 200


def message_id(alert_id: int, channel_id: str, sender: str) -> str:
    """The ``Message-ID`` of an (alert, channel): stable across attempts."""
    digest = hashlib.sha256(channel_id.encode()).hexdigest()[:16]
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<alert-{alert_id}.{digest}@{domain}>"


class EmailSender(ChannelSender):
    """Mails alerts to a fixed list of addresses through the service's SMTP relay."""

    def __init__(self, config: EmailConfig, settings: DeliverySettings) -> None:
        for address in config.to_addresses:
            local, _, domain = address.partition("@")
            if not local or not domain or any(c.isspace() or c in "<>," for c in address):
                raise config_error("email", "to_addresses", f"{address!r} is not an address")
        self._to = tuple(dict.fromkeys(config.to_addresses))
        self._settings = settings
        self._timeout = config.timeout_s or settings.default_timeout_s
        self._tls: ssl.SSLContext | None = None
        if settings.smtp_starttls or settings.smtp_implicit_tls:
            try:
                self._tls = ssl.create_default_context(cafile=settings.smtp_ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise FailedPreconditionError(
                    f"smtp_ca_file {settings.smtp_ca_file!r} cannot be used: {exc}",
                    reason="SMTP_NOT_CONFIGURED") from None
            if not settings.smtp_verify_tls:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE

    def message(self, delivery: Delivery) -> EmailMessage:
        """The message for ``delivery``."""
        alert = delivery.alert
        msg = EmailMessage()
        msg["From"] = self._settings.smtp_from
        msg["To"] = ", ".join(self._to)
        subject = delivery.subject or f"[alert {alert.alert_id}] {alert.symbol}: {alert.message}"
        msg["Subject"] = truncate(" ".join(subject.split()), SUBJECT_LIMIT)
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id(alert.alert_id, delivery.channel_id,
                                       self._settings.smtp_from)
        msg["X-Alert-Id"] = str(alert.alert_id)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        msg.set_content(f"{delivery.text.rstrip()}\n\nalert id: {alert.alert_id}\n")
        return msg

    async def send(self, delivery: Delivery) -> Outcome:
        s = self._settings
        started = time.perf_counter()
        try:
            refused, _reply = await aiosmtplib.send(
                self.message(delivery), hostname=s.smtp_host, port=s.smtp_port,
                username=s.smtp_username or None, password=s.smtp_password or None,
                use_tls=s.smtp_implicit_tls, start_tls=s.smtp_starttls and not s.smtp_implicit_tls,
                tls_context=self._tls, timeout=self._timeout)
        except aiosmtplib.SMTPAuthenticationError as exc:
            return _failed(started, exc.code, False, f"SMTP authentication failed: {exc.message}")
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            return _failed(started, max(codes, default=0), any(400 <= c < 500 for c in codes),
                           "recipients refused: " + "; ".join(
                               f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients))
        except aiosmtplib.SMTPResponseException as exc:
            return _failed(started, exc.code, 400 <= exc.code < 500,
                           f"SMTP {exc.code}: {exc.message}")
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            return _failed(started, 0, True, f"{type(exc).__name__}: {exc}")
        latency = time.perf_counter() - started
        temporary = {r: v for r, v in refused.items() if 400 <= v.code < 500}
        if temporary:
            return Outcome(ok=False, status=max(v.code for v in temporary.values()),
                           latency_s=latency, retryable=True,
                           error="recipients deferred: " + "; ".join(
                               f"{r}: {v.code} {v.message}" for r, v in temporary.items()))
        return Outcome(ok=True, status=250, latency_s=latency,
                       error="; ".join(f"{r} refused: {v.code} {v.message}"
                                       for r, v in refused.items()))


def _failed(started: float, code: int, retryable: bool, error: str) -> Outcome:
    return Outcome(ok=False, status=code, latency_s=time.perf_counter() - started,
                   retryable=retryable, error=error)
