"""Channel configuration dicts: proto keys in, clear field errors out."""

from __future__ import annotations

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


def test_settings_from_toml_table_and_environment_strings() -> None:
    from_toml = DeliverySettings.from_mapping({"webhook_allow": ["127.0.0.1", "10.0.0.0/8"],
                                               "smtp_port": 2525, "smtp_starttls": False})
    assert from_toml.webhook_allow == ("127.0.0.1", "10.0.0.0/8")
    assert from_toml.smtp_port == 2525 and from_toml.smtp_starttls is False
    from_env = DeliverySettings.from_mapping({"webhook-allow": "127.0.0.1, ::1",
                                              "default_timeout_s": "2.5",
                                              "smtp_verify_tls": "false"})
    assert from_env.webhook_allow == ("127.0.0.1", "::1")
    assert from_env.default_timeout_s == 2.5 and from_env.smtp_verify_tls is False
    with pytest.raises(InvalidArgumentError, match="unknown setting 'smtp_hots'"):
        DeliverySettings.from_mapping({"smtp_hots": "x"})
    with pytest.raises(InvalidArgumentError, match="smtp_port = 'abc' is not a int"):
        DeliverySettings.from_mapping({"smtp_port": "abc"})


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
