"""Between ``ChannelRecord`` and ``alerts.v1.Channel``: validation in, secrets never out.

``channel_input(msg, ...)`` checks a client's Channel and returns the stored form
(``ChannelInput``); every problem found is reported at once, as field violations
(``channel.webhook.url``, ``channel.email.to_addresses[1]`` ...) of one
INVALID_ARGUMENT with reason ``INVALID_CHANNEL`` (or the URL check's own reason,
``URL_NOT_ALLOWED`` / ``HOST_NOT_FOUND``, when that is the only problem).
``channel_to_proto`` fills every output field and never a secret: the webhook
signing secret, the Discord webhook URL and the Telegram bot token are INPUT_ONLY.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from google.protobuf import duration_pb2
from google.rpc import code_pb2, status_pb2

from alerts.api import convert
from alerts.delivery.channel_stats import ChannelStats
from alerts.delivery.channels.discord import parse_discord_webhook_url
from alerts.delivery.channels.signing import secret_key
from alerts.delivery.channels.url_guard import AllowList, validate_webhook_url
from alerts.engine.messages import (
    CHANNEL_PLACEHOLDERS,
    MAX_TEMPLATE_BYTES,
    unknown_placeholders,
)
from alerts.errors import FieldViolation, InvalidArgumentError
from alerts.storage.records import (
    ChannelRecord,
    ChannelSettings,
    DiscordSettings,
    EmailSettings,
    SmsSettings,
    TelegramSettings,
    WebhookSettings,
    WebSocketSettings,
)
from alerts.v1 import channels_pb2

CHANNEL_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
MAX_RECIPIENTS = 50
MAX_TIMEOUT_MS = 60_000
MAX_ATTEMPTS = 100
MAX_REPLAY = 100_000
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
TELEGRAM_CHAT = re.compile(r"-?[1-9][0-9]{0,19}|@[A-Za-z][A-Za-z0-9_]{4,31}")
TELEGRAM_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{30,80}")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
RESERVED_HEADERS = frozenset({
    "webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length",
    "host", "transfer-encoding", "connection", "user-agent",
})
KIND_FIELDS = ("webhook", "websocket", "email", "sms", "discord", "telegram")


def channel_name(channel_id: str) -> str:
    return f"channels/{channel_id}"


def channel_id_of(name: str, field: str = "name") -> str:
    prefix, _, cid = name.partition("/")
    if prefix != "channels" or not CHANNEL_ID.fullmatch(cid):
        raise convert.invalid(field, f"expected channels/{{channel}}, got {name!r}")
    return cid


def check_channel_id(channel_id: str, field: str = "channel_id") -> str:
    if not CHANNEL_ID.fullmatch(channel_id):
        raise convert.invalid(field, "1-63 characters of a-z, 0-9 and '-', starting with a "
                                     "letter")
    return channel_id


@dataclass(frozen=True)
class ChannelInput:
    """The client-settable part of a channel, checked. ``secret`` empty: none given."""

    display_name: str
    settings: ChannelSettings
    secret: str
    message_template: str
    paused: bool
    labels: tuple[tuple[str, str], ...]


class _Checker:
    """Collects field violations, and the reason of the URL check when it refused."""

    def __init__(self, allow: AllowList) -> None:
        self.allow = allow
        self.violations: list[FieldViolation] = []
        self.reasons: set[str] = set()

    def bad(self, field: str, why: str, reason: str = "INVALID_CHANNEL") -> None:
        self.violations.append(FieldViolation(field, why))
        self.reasons.add(reason)

    def template(self, field: str, text: str) -> None:
        if len(text.encode()) > MAX_TEMPLATE_BYTES:
            self.bad(field, f"at most {MAX_TEMPLATE_BYTES} bytes (UTF-8), got "
                            f"{len(text.encode())}")
        unknown = unknown_placeholders(text)
        if unknown:
            self.bad(field, f"unknown placeholder {{{{{unknown[0]}}}}}; known: "
                            f"{', '.join(sorted(CHANNEL_PLACEHOLDERS))}")

    async def url(self, field: str, url: str) -> bool:
        """The SSRF guard of the webhook sender, reported on ``field``."""
        try:
            await validate_webhook_url(url, self.allow)
        except InvalidArgumentError as exc:
            for v in exc.violations:
                self.bad(field, v.description, exc.reason)
            return False
        return True

    def error(self) -> InvalidArgumentError:
        reason = next(iter(self.reasons)) if len(self.reasons) == 1 else "INVALID_CHANNEL"
        first = self.violations[0]
        more = f" (and {len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        return InvalidArgumentError(f"{first.field}: {first.description}{more}",
                                    reason=reason, violations=tuple(self.violations))


async def channel_input(msg: channels_pb2.Channel, *, allow: AllowList, creating: bool,
                        field: str = "channel") -> ChannelInput:
    """Check ``msg``; on update (``creating`` false) an empty secret keeps the stored one."""
    check = _Checker(allow)
    check.template(f"{field}.message_template", msg.message_template)
    kind = msg.WhichOneof("config")
    settings: ChannelSettings | None = None
    secret = ""
    if kind is None:
        check.bad(field, f"set exactly one of {', '.join(KIND_FIELDS)}")
    elif kind == "webhook":
        settings, secret = await _webhook(check, msg.webhook, f"{field}.webhook")
    elif kind == "websocket":
        if msg.websocket.replay_limit > MAX_REPLAY:
            check.bad(f"{field}.websocket.replay_limit", f"at most {MAX_REPLAY}")
        settings = WebSocketSettings(replay_limit=msg.websocket.replay_limit)
    elif kind == "email":
        settings = _email(check, msg.email, f"{field}.email")
    elif kind == "sms":
        numbers = _recipients(check, f"{field}.sms.phone_numbers", msg.sms.phone_numbers)
        for i, number in enumerate(numbers):
            if not E164.fullmatch(number):
                check.bad(f"{field}.sms.phone_numbers[{i}]",
                          f"{number!r} is not an E.164 number such as +14155550100")
        settings = SmsSettings(phone_numbers=numbers)
    elif kind == "discord":
        path = f"{field}.discord.webhook_url"
        secret = msg.discord.webhook_url.strip()
        if secret:
            try:   # the sender's own parser: a real Discord URL (so no SSRF check needed)
                parse_discord_webhook_url(secret)
            except InvalidArgumentError as exc:
                check.bad(path, exc.violations[0].description)
        elif creating:
            check.bad(path, "the Discord webhook URL is required")
        if len(msg.discord.username) > 80:
            check.bad(f"{field}.discord.username", "at most 80 characters")
        settings = DiscordSettings(username=msg.discord.username)
    else:
        tg = msg.telegram
        secret = tg.bot_token.strip()
        if secret and not TELEGRAM_TOKEN.fullmatch(secret):
            check.bad(f"{field}.telegram.bot_token",
                      "expected a BotFather token such as 123456789:AAH...")
        elif not secret and creating:
            check.bad(f"{field}.telegram.bot_token", "the bot token is required")
        if not TELEGRAM_CHAT.fullmatch(tg.chat_id.strip()):
            check.bad(f"{field}.telegram.chat_id",
                      f"expected a chat id (a number such as -1001234567890) or "
                      f"@channelusername, got {tg.chat_id!r}")
        settings = TelegramSettings(chat_id=tg.chat_id.strip())
    if check.violations:
        raise check.error()
    assert settings is not None
    return ChannelInput(display_name=msg.display_name, settings=settings, secret=secret,
                        message_template=msg.message_template, paused=msg.paused,
                        labels=tuple(sorted(msg.labels.items())))


async def _webhook(check: _Checker, cfg: channels_pb2.WebhookConfig,
                   field: str) -> tuple[WebhookSettings, str]:
    url = cfg.url.strip()
    if not url:
        check.bad(f"{field}.url", "a URL is required")
    else:
        await check.url(f"{field}.url", url)
    secret = cfg.signing_secret.strip()
    if secret:
        try:
            secret_key(secret, f"{field}.signing_secret")
        except InvalidArgumentError as exc:
            check.violations += exc.violations
            check.reasons.add("INVALID_CHANNEL")
    headers: list[tuple[str, str]] = []
    for name, value in sorted(cfg.headers.items()):
        path = f'{field}.headers["{name}"]'
        if not HEADER_NAME.fullmatch(name):
            check.bad(path, "not a valid HTTP header name")
        elif name.lower() in RESERVED_HEADERS:
            check.bad(path, "set by the server; cannot be overridden")
        elif any(c in value for c in "\r\n\0") or len(value) > 4096:
            check.bad(path, "a header value is one line of at most 4096 characters")
        headers.append((name, value))
    timeout_ms: int | None = None
    if cfg.HasField("timeout"):
        timeout_ms = cfg.timeout.ToMilliseconds()
        if not 0 < timeout_ms <= MAX_TIMEOUT_MS or cfg.timeout.nanos < 0:
            check.bad(f"{field}.timeout", f"from 1 ms to {MAX_TIMEOUT_MS // 1000} s")
    if cfg.max_attempts > MAX_ATTEMPTS:
        check.bad(f"{field}.max_attempts", f"at most {MAX_ATTEMPTS}")
    return WebhookSettings(url=url, headers=tuple(headers), timeout_ms=timeout_ms,
                           max_attempts=cfg.max_attempts), secret


def _recipients(check: _Checker, field: str, values: Iterable[str]) -> tuple[str, ...]:
    out = tuple(v.strip() for v in values)
    if not out:
        check.bad(field, "at least one is required")
    elif len(out) > MAX_RECIPIENTS:
        check.bad(field, f"at most {MAX_RECIPIENTS}")
    return out


def _email(check: _Checker, cfg: channels_pb2.EmailConfig, field: str) -> EmailSettings:
    addresses = _recipients(check, f"{field}.to_addresses", cfg.to_addresses)
    normal: list[str] = []
    for i, address in enumerate(addresses):
        try:
            normal.append(validate_email(address, check_deliverability=False).normalized)
        except EmailNotValidError as exc:
            check.bad(f"{field}.to_addresses[{i}]", f"{address!r}: {exc}")
    check.template(f"{field}.subject_template", cfg.subject_template)
    return EmailSettings(to_addresses=tuple(normal), subject_template=cfg.subject_template)


def channel_to_proto(rec: ChannelRecord, stats: ChannelStats) -> channels_pb2.Channel:
    """The API's view of a channel, without its secrets; ``stats`` gives the delivery
    figures (a ``last_error`` is reported with code UNAVAILABLE)."""
    out = channels_pb2.Channel(
        name=channel_name(rec.channel_id), owner=rec.owner, display_name=rec.display_name,
        message_template=rec.message_template, paused=rec.paused, labels=dict(rec.labels),
        last_delivered_alert_id=stats.last_delivered_alert_id,
        dead_letter_count=stats.dead_letter_count, etag=rec.etag,
        create_time=convert.ts(rec.create_time_ms), update_time=convert.ts(rec.update_time_ms),
    )
    s = rec.settings
    if isinstance(s, WebhookSettings):
        out.webhook.url = s.url
        out.webhook.headers.update(dict(s.headers))
        out.webhook.max_attempts = s.max_attempts
        if s.timeout_ms is not None:
            out.webhook.timeout.CopyFrom(duration_pb2.Duration(
                seconds=s.timeout_ms // 1000, nanos=s.timeout_ms % 1000 * 1_000_000))
    elif isinstance(s, WebSocketSettings):
        out.websocket.replay_limit = s.replay_limit
    elif isinstance(s, EmailSettings):
        out.email.to_addresses.extend(s.to_addresses)
        out.email.subject_template = s.subject_template
    elif isinstance(s, SmsSettings):
        out.sms.phone_numbers.extend(s.phone_numbers)
    elif isinstance(s, DiscordSettings):
        out.discord.username = s.username
    else:
        out.telegram.chat_id = s.chat_id
    if rec.paused:
        out.state = channels_pb2.Channel.STATE_PAUSED
    elif stats.failing:
        out.state = channels_pb2.Channel.STATE_FAILING
    else:
        out.state = channels_pb2.Channel.STATE_ACTIVE
    if stats.last_delivery_time_ms is not None:
        out.last_delivery_time.CopyFrom(convert.ts(stats.last_delivery_time_ms))
    if stats.last_error:
        out.last_error.CopyFrom(status_pb2.Status(code=code_pb2.UNAVAILABLE,
                                                  message=stats.last_error))
    return out
