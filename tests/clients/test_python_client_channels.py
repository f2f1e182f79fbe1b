"""The Python client's channel methods against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
from alerts_client import AlertsClient, AlertsError, Channel

from alerts.v1 import channels_pb2
from tests.support.server import running_server, server_config


@pytest.fixture
def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    with (running_server(server_config(tmp_path, webhook_allow="127.0.0.0/8")) as (server, _),
          AlertsClient(server.target, timeout=10) as c):
        yield c


def test_channel_methods(client: AlertsClient) -> None:
    hook = client.create_channel(Channel(webhook=channels_pb2.WebhookConfig(
        url="http://127.0.0.1:8080/in")), channel_id="hook", request_id="r-1")
    assert hook.webhook.signing_secret.startswith("whsec_")
    again = client.create_channel(Channel(webhook=channels_pb2.WebhookConfig(
        url="http://127.0.0.1:8080/in")), request_id="r-1")
    assert again == hook
    got = client.get_channel("hook")
    assert got.name == "channels/hook" and got.webhook.signing_secret == ""
    client.create_channel(Channel(websocket=channels_pb2.WebSocketConfig()), channel_id="ws")
    assert [c.name for c in client.list_channels(page_size=1)] == ["channels/hook",
                                                                    "channels/ws"]
    changed = client.update_channel(Channel(name="channels/ws", paused=True, etag=""),
                                    ["paused"])
    assert changed.state == channels_pb2.Channel.STATE_PAUSED
    assert [c.name for c in client.list_channels(filter="paused = true")] == ["channels/ws"]
    rule = client.create_rule("X", "price > 1", channels=["hook", "channels/ws"])
    assert list(rule.channels) == ["channels/hook", "channels/ws"]
    with pytest.raises(AlertsError) as err:
        client.delete_channel("ws")
    assert err.value.reason == "CHANNEL_IN_USE"
    client.delete_channel("ws", force=True)
    assert list(client.get_rule(rule.name).channels) == ["channels/hook"]
    with pytest.raises(AlertsError) as missing:
        client.delete_channel("ws")
    assert missing.value.code.name == "NOT_FOUND"
    with pytest.raises(AlertsError) as bad:
        client.create_channel(Channel(sms=channels_pb2.SmsConfig(phone_numbers=["555"])))
    assert [v.field for v in bad.value.field_violations] == ["channel.sms.phone_numbers[0]"]
