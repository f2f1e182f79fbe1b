"""Channel configuration dicts: proto keys in, clear field errors out."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.delivery.channels.config import (
    DeliverySettings,
    EmailConfig,
    SmsConfig,
    WebhookConfig,
    channel_config,
)
from alerts.delivery.channels.factory import build_sender
from alerts.errors import InvalidArgumentError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_webhook_dict_to_dataclass() -> None:
    cfg = channel_config("webhook", {"url": "https://h.example/x", "signing_secret": SECRET,
                                     "headers": {"X-A": "1"}, "timeout": 3, "max_attempts": 9})
    assert cfg == WebhookConfig(url="https://h.example/x", signing_secret=SECRET,
                                headers={"X-A": "1"}, timeout_s=3.0)


def test_lists_are_tuples() -> None:
    assert channel_config("sms", {"phone_numbers": ["+14155550100"]}) == SmsConfig(
        phone_numbers=("+14155550100",))
    assert channel_config("email", {"to_addresses": ["a@x.test"], "subject_template": "s"}) == \
        EmailConfig(to_addresses=("a@x.test",), subject_template="s")


@pytest.mark.parametrize("kind,data,field", [
    ("webhook", {"signing_secret": SECRET}, "channel.webhook.url"),
    ("webhook", {"url": "https://h/x"}, "channel.webhook.signing_secret"),
    ("webhook", {"url": "https://h/x", "signing_secret": SECRET, "colour": "red"},
     "channel.webhook.colour"),
    ("webhook", {"url": 5, "signing_secret": SECRET}, "channel.webhook.url"),
    ("webhook", {"url": "https://h/x", "signing_secret": SECRET, "timeout_s": -1},
     "channel.webhook.timeout_s"),
    ("webhook", {"url": "https://h/x", "signing_secret": SECRET, "headers": {"a": 1}},
     "channel.webhook.headers"),
    ("sms", {"phone_numbers": []}, "channel.sms.phone_numbers"),
    ("sms", {"phone_numbers": "+14155550100"}, "channel.sms.phone_numbers"),
    ("email", {}, "channel.email.to_addresses"),
    ("telegram", {"bot_token": "1:x"}, "channel.telegram.chat_id"),
    ("discord", {"username": "bot"}, "channel.discord.webhook_url"),
])
def test_bad_configs(kind: str, data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        channel_config(kind, data)
    assert err.value.violations[0].field == field


def test_unknown_kind() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        build_sender("websocket", {}, DeliverySettings())
    assert "websocket" in err.value.message


def test_settings_come_from_the_service_configuration(tmp_path: Path) -> None:
    from alerts.api.server import delivery_settings_of
    from alerts.config import Config

    toml = tmp_path / "alerts.toml"
    toml.write_text('webhook_allow = "127.0.0.1, 10.0.0.0/8"\nsmtp_port = 2525\n'
                    'smtp_starttls = false\nwebhook_rate_per_s = 2.5\n')
    settings = delivery_settings_of(Config.load(str(toml), env={
        "ALERTS_DEFAULT_TIMEOUT_S": "2.5", "ALERTS_SMTP_VERIFY_TLS": "false",
        "ALERTS_TWILIO_ACCOUNT_SID": "AC1", "ALERTS_TELEGRAM_API_BASE": "http://127.0.0.1:9"}))
    assert settings.webhook_allow == ("127.0.0.1", "10.0.0.0/8")
    assert settings.smtp_port == 2525 and settings.smtp_starttls is False
    assert settings.default_timeout_s == 2.5 and settings.smtp_verify_tls is False
    assert settings.twilio_account_sid == "AC1"
    assert settings.telegram_api_base == "http://127.0.0.1:9"
    assert (settings.webhook_rate_per_s, settings.webhook_burst) == (2.5, 3)
    with pytest.raises(InvalidArgumentError, match="unknown setting 'smtp_hots'"):
        Config.load(None, env={}, smtp_hots="x")
    with pytest.raises(InvalidArgumentError, match="smtp_port = 'abc' is not a int"):
        Config.load(env={"ALERTS_SMTP_PORT": "abc"})
    with pytest.raises(InvalidArgumentError, match="smtp_port must be 1..65535"):
        delivery_settings_of(Config(smtp_port=0))


@pytest.mark.parametrize("changes,problem", [
    ({"webhook_rate_per_s": 0}, "webhook_rate_per_s must be > 0"),
    ({"default_timeout_s": -1}, "default_timeout_s must be > 0"),
    ({"webhook_max_concurrency": 0}, "webhook_max_concurrency must be >= 1"),
    ({"pacing_max_wait_s": -0.5}, "pacing_max_wait_s must be >= 0"),
    ({"smtp_port": 70000}, "smtp_port must be 1..65535"),
    ({"webhook_allow": ("10.0.0.0/40",)}, "is not a network"),
])
def test_bad_settings(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidArgumentError, match=problem):
        DeliverySettings(**changes)  # type: ignore[arg-type]


def test_channel_limits_must_be_usable() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        channel_config("webhook", {"url": "https://h/x", "signing_secret": SECRET,
                                   "max_concurrency": -2})
    assert err.value.violations[0].field == "channel.webhook.max_concurrency"
