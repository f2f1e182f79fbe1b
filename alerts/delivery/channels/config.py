"""Typed configuration of the channel senders: one dataclass per kind, and the service's settings.

A channel's configuration arrives as a plain dict whose keys are the proto's field
names (``WebhookConfig``, ``DiscordConfig``, ``TelegramConfig``, ``SmsConfig``,
``EmailConfig`` in ``proto/alerts/v1/channels.proto``) plus a few sender-only
keys listed on each class; ``channel_config(kind, data)`` checks it and gives the
dataclass. An unknown key or a bad value is an ``InvalidArgumentError`` whose
field violation names ``channel.<kind>.<key>``. Keys the outbox owns
(``max_attempts``) are accepted and ignored here.

``DeliverySettings`` holds what is service-wide: API base URLs (tests point them
at local fakes), Twilio credentials, the SMTP relay, the webhook SSRF allow-list,
default timeout and limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any

from alerts.delivery.channels.url_guard import AllowList
from alerts.errors import FieldViolation, InvalidArgumentError

KINDS = ("webhook", "discord", "telegram", "sms", "email")
"""Kinds that have a ``ChannelSender`` (WebSocket channels are served by the WebSocket server)."""

_OUTBOX_KEYS = frozenset({"max_attempts"})


def config_error(kind: str, key: str, description: str) -> InvalidArgumentError:
    """An ``InvalidArgumentError`` with one violation on ``channel.<kind>.<key>``."""
    path = f"channel.{kind}.{key}"
    return InvalidArgumentError(f"{path}: {description}",
                                violations=(FieldViolation(path, description),))


@dataclass(frozen=True)
class DeliverySettings:
    """Service-wide delivery settings (one instance for every sender)."""

    default_timeout_s: float = 10.0          # one attempt, when a channel sets none
    pacing_max_wait_s: float = 10.0          # longer local rate-limit waits return retryable
    user_agent: str = "symbol-alerts/0.1"
    # Webhooks: SSRF allow-list (networks like "10.0.0.0/8", addresses, or host names)
    webhook_allow: tuple[str, ...] = ()
    webhook_max_concurrency: int = 4         # requests in flight per endpoint
    webhook_rate_per_s: float = 20.0         # token bucket per endpoint
    webhook_burst: int = 20
    webhook_ca_file: str = ""                # extra CAs for https endpoints; empty: the system's
    # Discord, Telegram, Twilio: API bases (no trailing slash)
    discord_api_base: str = "https://discord.com/api"
    telegram_api_base: str = "https://api.telegram.org"
    telegram_chat_rate_per_s: float = 1.0    # Telegram's ~1 message/s per chat
    twilio_api_base: str = "https://api.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""                    # E.164 sender number ...
    twilio_messaging_service_sid: str = ""   # ... or a messaging service
    # SMTP relay
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str = ""                  # empty: no AUTH
    smtp_password: str = ""
    smtp_from: str = "alerts@localhost"
    smtp_starttls: bool = True               # STARTTLS after connecting (required when true)
    smtp_implicit_tls: bool = False          # TLS from the first byte (port 465)
    smtp_ca_file: str = ""                   # empty: the system's CAs
    smtp_verify_tls: bool = True

    def __post_init__(self) -> None:
        positive = ("default_timeout_s", "webhook_rate_per_s", "telegram_chat_rate_per_s")
        at_least_one = ("webhook_max_concurrency", "webhook_burst")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InvalidArgumentError(f"delivery setting {name} must be > 0")
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"delivery setting {name} must be >= 1")
        if self.pacing_max_wait_s < 0:
            raise InvalidArgumentError("delivery setting pacing_max_wait_s must be >= 0")
        if not 0 < self.smtp_port < 65536:
            raise InvalidArgumentError("delivery setting smtp_port must be 1..65535")
        AllowList.parse(self.webhook_allow)  # a malformed network is refused here


@dataclass(frozen=True)
class WebhookConfig:
    """Keys: ``url``, ``signing_secret`` (current), ``previous_signing_secret`` (still
    valid during rotation: requests carry both signatures), ``headers``, ``timeout_s``
    (or ``timeout`` as seconds), and sender-only ``max_concurrency``, ``rate_per_s``,
    ``burst`` (0: the settings' defaults)."""

    url: str
    signing_secret: str
    previous_signing_secret: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 0.0                   # 0: settings.default_timeout_s
    max_concurrency: int = 0
    rate_per_s: float = 0.0
    burst: int = 0


@dataclass(frozen=True)
class DiscordConfig:
    """Keys: ``webhook_url``, ``username``, ``timeout_s``."""

    webhook_url: str
    username: str = ""
    timeout_s: float = 0.0


@dataclass(frozen=True)
class TelegramConfig:
    """Keys: ``bot_token``, ``chat_id``, ``timeout_s``."""

    bot_token: str
    chat_id: str
    timeout_s: float = 0.0


@dataclass(frozen=True)
class SmsConfig:
    """Keys: ``phone_numbers`` (E.164, at least one), ``timeout_s``."""

    phone_numbers: tuple[str, ...]
    timeout_s: float = 0.0


@dataclass(frozen=True)
class EmailConfig:
    """Keys: ``to_addresses`` (at least one), ``subject_template`` (rendered by the
    caller into ``Delivery.subject``), ``timeout_s``."""

    to_addresses: tuple[str, ...]
    subject_template: str = ""
    timeout_s: float = 0.0


ChannelConfig = WebhookConfig | DiscordConfig | TelegramConfig | SmsConfig | EmailConfig

_CLASSES: dict[str, type[Any]] = {
    "webhook": WebhookConfig, "discord": DiscordConfig, "telegram": TelegramConfig,
    "sms": SmsConfig, "email": EmailConfig,
}
_REQUIRED = {
    "webhook": ("url", "signing_secret"), "discord": ("webhook_url",),
    "telegram": ("bot_token", "chat_id"), "sms": ("phone_numbers",), "email": ("to_addresses",),
}


def _coerce(kind: str, key: str, value: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError
            return float(value)
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError
            return value
        if isinstance(default, str):
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        raise config_error(kind, key, f"{value!r} is not a valid "
                                      f"{'non-negative ' if not isinstance(default, str) else ''}"
                                      f"{type(default).__name__}") from None
    return value


def _strings(kind: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) for v in value or ()):
        raise config_error(kind, key, "must be a list of strings")
    items = tuple(v.strip() for v in value)
    if not items or not all(items):
        raise config_error(kind, key, "must name at least one non-empty value")
    return items


def channel_config(kind: str, data: Mapping[str, Any] | ChannelConfig) -> ChannelConfig:
    """Check a channel's configuration dict and return its dataclass (dataclasses pass through)."""
    if kind not in _CLASSES:
        raise InvalidArgumentError(
            f"channel kind {kind!r} has no sender (kinds: {', '.join(KINDS)})",
            violations=(FieldViolation("channel.config", f"unknown kind {kind!r}"),))
    cls = _CLASSES[kind]
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise config_error(kind, "config", f"expected a mapping, got {type(data).__name__}")
    defaults = {name: "" if f.default is MISSING else f.default  # required fields are strings
                for name, f in cls.__dataclass_fields__.items()}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _OUTBOX_KEYS:
            continue
        if key == "timeout" and "timeout_s" in defaults:
            key = "timeout_s"
        if key not in defaults:
            raise config_error(kind, key, "unknown key")
        if key in ("phone_numbers", "to_addresses"):
            values[key] = _strings(kind, key, value)
        elif key == "headers":
            if not isinstance(value, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise config_error(kind, key, "must map header names to string values")
            values[key] = dict(value)
        else:
            values[key] = _coerce(kind, key, value, defaults[key])
    for key in _REQUIRED[kind]:
        if not values.get(key):
            raise config_error(kind, key, "is required")
    return cls(**values)
