"""Channel RPCs end to end over real gRPC on loopback (SQLite store): every RPC, every
validation error, secrets never echoed, etags and masks, paging, owners, rules naming
channels."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.protobuf.message import Message
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from alerts.delivery.channel_stats import ChannelStats
from alerts.storage.records import ChannelRecord
from alerts.v1 import channels_pb2, rules_pb2, service_pb2
from tests.api.test_service import details
from tests.support.http_receiver import receiving
from tests.support.postgres import fresh_databases
from tests.support.server import running_server, server_config

DISCORD_URL = "https://discord.com/api/webhooks/123456/SeCrEtDiScOrDtOkEn_abc"
TELEGRAM_TOKEN = "123456789:AAHsecretTelegramTokenXYZ_0123456789ab"
CLIENT_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
SECRETS = ("SeCrEtDiScOrDtOkEn", "AAHsecretTelegramToken", "whsec_", CLIENT_SECRET)
OVERLAP_S = 3600.0


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = server_config(tmp_path, webhook_allow="127.0.0.0/8, ::1",
                           webhook_secret_overlap_s=OVERLAP_S)
    with running_server(config) as pair:
        yield pair


@pytest.fixture(params=["sqlite", "postgresql"])
def served_on_each_store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    with ExitStack() as stack:
        config = server_config(tmp_path, webhook_allow="127.0.0.0/8, ::1")
        if request.param == "postgresql":
            [url] = stack.enter_context(fresh_databases(1, "alerts_channels"))
            config = replace(config, store_url=url)
        yield stack.enter_context(running_server(config))


def every_kind() -> dict[str, channels_pb2.Channel]:
    return {
        "hook": channels_pb2.Channel(
            display_name="hook", webhook=channels_pb2.WebhookConfig(
                url="http://127.0.0.1:8080/in", headers={"X-Bot": "grid"},
                timeout=duration_pb2.Duration(seconds=5), max_attempts=3),
            message_template="{{symbol}} {{message}} #{{id}}", labels={"team": "a"}),
        "ws": channels_pb2.Channel(websocket=channels_pb2.WebSocketConfig(replay_limit=10)),
        "mail": channels_pb2.Channel(email=channels_pb2.EmailConfig(
            to_addresses=["ops@example.com", "Desk@Example.COM"],
            subject_template="{{rule}} fired")),
        "text": channels_pb2.Channel(sms=channels_pb2.SmsConfig(phone_numbers=["+14155550100"])),
        "disc": channels_pb2.Channel(discord=channels_pb2.DiscordConfig(
            webhook_url=DISCORD_URL, username="alerts")),
        "tg": channels_pb2.Channel(telegram=channels_pb2.TelegramConfig(
            bot_token=TELEGRAM_TOKEN, chat_id="-1001234567890")),
    }


def assert_no_secret(*messages: Message) -> None:
    for msg in messages:
        raw = msg.SerializeToString()
        for secret in SECRETS:
            assert secret.encode() not in raw, (secret, msg)


def rpc_error(call, *args):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        call(*args)
    return err.value


def violations(err: grpc.RpcError) -> list[str]:
    return [v.field for v in details(err)["BadRequest"].field_violations]  # type: ignore[attr-defined]


def reason(err: grpc.RpcError) -> str:
    return details(err)["ErrorInfo"].reason  # type: ignore[attr-defined]


def stored(server, channel_id: str, owner: str = "local") -> ChannelRecord:  # type: ignore[no-untyped-def]
    return server.call(server.app.store.get_channel(owner, channel_id))


def test_every_kind_round_trips_without_its_secrets(served_on_each_store) -> None:  # type: ignore[no-untyped-def]
    server, stub = served_on_each_store
    made = {}
    for cid, channel in every_kind().items():
        made[cid] = stub.CreateChannel(service_pb2.CreateChannelRequest(
            channel=channel, channel_id=cid))
        got = stub.GetChannel(service_pb2.GetChannelRequest(name=f"channels/{cid}"))
        assert got.name == f"channels/{cid}" and got.owner == "local"
        assert got.state == channels_pb2.Channel.STATE_ACTIVE and got.etag
        assert got.WhichOneof("config") == channel.WhichOneof("config")
        assert_no_secret(got)
    hook = stub.GetChannel(service_pb2.GetChannelRequest(name="channels/hook"))
    assert hook.webhook.url == "http://127.0.0.1:8080/in"
    assert dict(hook.webhook.headers) == {"X-Bot": "grid"}
    assert hook.webhook.timeout.seconds == 5 and hook.webhook.max_attempts == 3
    assert hook.message_template == "{{symbol}} {{message}} #{{id}}"
    assert dict(hook.labels) == {"team": "a"}
    mail = stub.GetChannel(service_pb2.GetChannelRequest(name="channels/mail"))
    assert list(mail.email.to_addresses) == ["ops@example.com", "Desk@example.com"]
    assert mail.email.subject_template == "{{rule}} fired"
    disc = stub.GetChannel(service_pb2.GetChannelRequest(name="channels/disc"))
    assert (disc.discord.webhook_url, disc.discord.username) == ("", "alerts")
    tg = stub.GetChannel(service_pb2.GetChannelRequest(name="channels/tg"))
    assert (tg.telegram.bot_token, tg.telegram.chat_id) == ("", "-1001234567890")
    # stored, though never returned
    assert stored(server, "disc").secret == DISCORD_URL
    assert stored(server, "tg").secret == TELEGRAM_TOKEN
    listed = stub.ListChannels(service_pb2.ListChannelsRequest())
    assert [c.name for c in listed.channels] == [f"channels/{c}" for c in every_kind()]
    assert listed.total_size == 6
    assert_no_secret(listed, *(m for k, m in made.items() if k != "hook"))
    for cid in every_kind():
        stub.DeleteChannel(service_pb2.DeleteChannelRequest(name=f"channels/{cid}"))
    assert stub.ListChannels(service_pb2.ListChannelsRequest()).channels == []
    err = rpc_error(stub.GetChannel, service_pb2.GetChannelRequest(name="channels/hook"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_a_generated_webhook_secret_appears_once(served) -> None:  # type: ignore[no-untyped-def]
    server, stub = served
    channel = every_kind()["hook"]
    preview = stub.CreateChannel(service_pb2.CreateChannelRequest(
        channel=channel, channel_id="hook", validate_only=True))
    assert preview.webhook.signing_secret == "" and preview.name == "channels/hook"
    assert stub.ListChannels(service_pb2.ListChannelsRequest()).total_size == 0
    made = stub.CreateChannel(service_pb2.CreateChannelRequest(channel=channel,
                                                               channel_id="hook"))
    secret = made.webhook.signing_secret
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert stored(server, "hook").secret == secret
    other = stub.CreateChannel(service_pb2.CreateChannelRequest(channel=channel))
    assert other.webhook.signing_secret not in ("", secret)  # fresh for each channel
    assert other.name.startswith("channels/c")
    renamed = stub.UpdateChannel(service_pb2.UpdateChannelRequest(
        channel=channels_pb2.Channel(name="channels/hook", display_name="renamed"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])))
    assert_no_secret(stub.GetChannel(service_pb2.GetChannelRequest(name="channels/hook")),
                     stub.ListChannels(service_pb2.ListChannelsRequest()), renamed)
    # a client's own secret is stored as given and not echoed
    own = stub.CreateChannel(service_pb2.CreateChannelRequest(
        channel_id="own", channel=channels_pb2.Channel(webhook=channels_pb2.WebhookConfig(
            url="http://127.0.0.1:1/x", signing_secret=CLIENT_SECRET))))
    assert_no_secret(own)
    assert stored(server, "own").secret == CLIENT_SECRET


def test_a_new_secret_keeps_the_old_one_valid_for_the_overlap(served) -> None:  # type: ignore[no-untyped-def]
    server, stub = served
    made = stub.CreateChannel(service_pb2.CreateChannelRequest(
        channel=every_kind()["hook"], channel_id="hook"))
    old = made.webhook.signing_secret
    before = stored(server, "hook")
    updated = stub.UpdateChannel(service_pb2.UpdateChannelRequest(
        channel=channels_pb2.Channel(name="channels/hook", etag=made.etag,
                                     webhook=channels_pb2.WebhookConfig(
                                         signing_secret=CLIENT_SECRET)),
        update_mask=field_mask_pb2.FieldMask(paths=["webhook.signing_secret"])))
    assert_no_secret(updated)
    assert updated.webhook.url == "http://127.0.0.1:8080/in"  # the rest of webhook is kept
    rec = stored(server, "hook")
    assert (rec.secret, rec.previous_secret) == (CLIENT_SECRET, old)
    assert rec.previous_secret_expire_ms is not None
    overlap = rec.previous_secret_expire_ms - rec.update_time_ms
    assert abs(overlap - OVERLAP_S * 1000) < 5000
    assert rec.signing_secrets(rec.update_time_ms) == (CLIENT_SECRET, old)
    assert rec.signing_secrets(rec.previous_secret_expire_ms) == (CLIENT_SECRET,)
    # an update that leaves the secret alone keeps both
    stub.UpdateChannel(service_pb2.UpdateChannelRequest(
        channel=channels_pb2.Channel(name="channels/hook", paused=True),
        update_mask=field_mask_pb2.FieldMask(paths=["paused"])))
    assert replace(stored(server, "hook"), paused=False, etag="", revision=0,
                   update_time_ms=0) == replace(rec, etag="", revision=0, update_time_ms=0)
    assert before.revision + 2 == stored(server, "hook").revision
    # a second rotation within the overlap: the secret it replaces is the one kept
    third = "whsec_" + base64.b64encode(b"3" * 32).decode()
    stub.UpdateChannel(service_pb2.UpdateChannelRequest(
        channel=channels_pb2.Channel(name="channels/hook", webhook=channels_pb2.WebhookConfig(
            signing_secret=third)),
        update_mask=field_mask_pb2.FieldMask(paths=["webhook.signing_secret"])))
    again = stored(server, "hook")
    assert (again.secret, again.previous_secret) == (third, CLIENT_SECRET)


BAD = [
    ("no kind", channels_pb2.Channel(display_name="x"), "channel", "INVALID_CHANNEL"),
    ("no url", channels_pb2.Channel(webhook=channels_pb2.WebhookConfig()),
     "channel.webhook.url", "INVALID_CHANNEL"),
    ("private", channels_pb2.Channel(webhook=channels_pb2.WebhookConfig(
        url="https://10.0.0.7/hook")), "channel.webhook.url", "URL_NOT_ALLOWED"),
    ("metadata", channels_pb2.Channel(webhook=channels_pb2.WebhookConfig(
        url="https://169.254.169.254/latest")), "channel.webhook.url", "URL_NOT_ALLOWED"),
    ("plain http", channels_pb2.Channel(webhook=channels_pb2.WebhookConfig(
        url="http://8.8.8.8/hook")), "channel.webhook.url", "URL_NOT_ALLOWED"),
    ("no dns", channels_pb2.Channel(webhook=channels_pb2.WebhookConfig(
        url="https://nowhere.invalid/hook")), "channel.webhook.url", "HOST_NOT_FOUND"),
    ("secret", channels_pb2.Channel(webhook=channels_pb2.WebhookConfig(
        url="http://127.0.0.1/x", signing_secret="whsec_short")),
     "channel.webhook.signing_secret", "INVALID_CHANNEL"),
    ("header", channels_pb2.Channel(webhook=channels_pb2.WebhookConfig(
        url="http://127.0.0.1/x", headers={"Webhook-Signature": "v1,forged"})),
     'channel.webhook.headers["Webhook-Signature"]', "INVALID_CHANNEL"),
    ("timeout", channels_pb2.Channel(webhook=channels_pb2.WebhookConfig(
        url="http://127.0.0.1/x", timeout=duration_pb2.Duration(seconds=120))),
     "channel.webhook.timeout", "INVALID_CHANNEL"),
    ("attempts", channels_pb2.Channel(webhook=channels_pb2.WebhookConfig(
        url="http://127.0.0.1/x", max_attempts=1000)),
     "channel.webhook.max_attempts", "INVALID_CHANNEL"),
    ("replay", channels_pb2.Channel(websocket=channels_pb2.WebSocketConfig(
        replay_limit=10**6)), "channel.websocket.replay_limit", "INVALID_CHANNEL"),
    ("no recipient", channels_pb2.Channel(email=channels_pb2.EmailConfig()),
     "channel.email.to_addresses", "INVALID_CHANNEL"),
    ("address", channels_pb2.Channel(email=channels_pb2.EmailConfig(
        to_addresses=["ok@example.com", "not-an-address"])),
     "channel.email.to_addresses[1]", "INVALID_CHANNEL"),
    ("subject", channels_pb2.Channel(email=channels_pb2.EmailConfig(
        to_addresses=["ok@example.com"], subject_template="{{nope}}")),
     "channel.email.subject_template", "INVALID_CHANNEL"),
    ("phone", channels_pb2.Channel(sms=channels_pb2.SmsConfig(
        phone_numbers=["+14155550100", "4155550100"])),
     "channel.sms.phone_numbers[1]", "INVALID_CHANNEL"),
    ("no phone", channels_pb2.Channel(sms=channels_pb2.SmsConfig()),
     "channel.sms.phone_numbers", "INVALID_CHANNEL"),
    ("discord", channels_pb2.Channel(discord=channels_pb2.DiscordConfig(
        webhook_url="https://discord.com/not/a/webhook")),
     "channel.discord.webhook_url", "INVALID_CHANNEL"),
    ("no discord", channels_pb2.Channel(discord=channels_pb2.DiscordConfig()),
     "channel.discord.webhook_url", "INVALID_CHANNEL"),
    ("discord host", channels_pb2.Channel(discord=channels_pb2.DiscordConfig(
        webhook_url="https://192.168.1.1/api/webhooks/1/tok")),
     "channel.discord.webhook_url", "INVALID_CHANNEL"),
    ("chat", channels_pb2.Channel(telegram=channels_pb2.TelegramConfig(
        bot_token=TELEGRAM_TOKEN, chat_id="my chat")),
     "channel.telegram.chat_id", "INVALID_CHANNEL"),
    ("token", channels_pb2.Channel(telegram=channels_pb2.TelegramConfig(
        bot_token="nope", chat_id="@alerts_channel")),
     "channel.telegram.bot_token", "INVALID_CHANNEL"),
    ("no token", channels_pb2.Channel(telegram=channels_pb2.TelegramConfig(chat_id="42")),
     "channel.telegram.bot_token", "INVALID_CHANNEL"),
    ("big template", channels_pb2.Channel(websocket=channels_pb2.WebSocketConfig(),
                                          message_template="é" * 1025),
     "channel.message_template", "INVALID_CHANNEL"),
    ("placeholder", channels_pb2.Channel(websocket=channels_pb2.WebSocketConfig(),
                                         message_template="{{message}} {{prise}}"),
     "channel.message_template", "INVALID_CHANNEL"),
]


@pytest.mark.parametrize("channel, path, why", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_channel_is_invalid_argument_on_its_field(served, channel: channels_pb2.Channel,
                                                        path: str, why: str) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    for validate_only in (True, False):
        err = rpc_error(stub.CreateChannel, service_pb2.CreateChannelRequest(
            channel=channel, validate_only=validate_only))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(err) == [path] and reason(err) == why
        given = [s for s in (channel.webhook.signing_secret, channel.discord.webhook_url,
                             channel.telegram.bot_token) if s]
        for secret in given:   # a refused secret is not echoed either
            assert secret not in err.details()
            assert secret.encode() not in details(err)["BadRequest"].SerializeToString()  # type: ignore[attr-defined]
    assert stub.ListChannels(service_pb2.ListChannelsRequest()).total_size == 0


def test_every_problem_is_reported_at_once_and_ids_and_names_are_checked(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    err = rpc_error(stub.CreateChannel, service_pb2.CreateChannelRequest(
        channel=channels_pb2.Channel(message_template="{{x}}", email=channels_pb2.EmailConfig(
            to_addresses=["a@", "b@example.com", "c"]))))
    assert violations(err) == ["channel.message_template", "channel.email.to_addresses[0]",
                               "channel.email.to_addresses[2]"]
    for bad_id in ("Hook", "1hook", "a" * 64, "hook_1"):
        err = rpc_error(stub.CreateChannel, service_pb2.CreateChannelRequest(
            channel=every_kind()["ws"], channel_id=bad_id))
        assert violations(err) == ["channel_id"]
    for call, request in (
        (stub.GetChannel, service_pb2.GetChannelRequest(name="rules/x")),
        (stub.DeleteChannel, service_pb2.DeleteChannelRequest(name="channels/")),
        (stub.UpdateChannel, service_pb2.UpdateChannelRequest(
            channel=channels_pb2.Channel(name="hook", display_name="x"))),
    ):
        err = rpc_error(call, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(err) in (["name"], ["channel.name"])


def test_create_is_idempotent_by_request_id_and_ids_are_unique(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    req = service_pb2.CreateChannelRequest(channel=every_kind()["hook"], request_id="req-7")
    first = stub.CreateChannel(req)
    again = stub.CreateChannel(req)
    assert again == first     # the same response, the generated secret included
    assert stub.ListChannels(service_pb2.ListChannelsRequest()).total_size == 1
    stub.CreateChannel(service_pb2.CreateChannelRequest(channel=every_kind()["ws"],
                                                        channel_id="ws"))
    err = rpc_error(stub.CreateChannel, service_pb2.CreateChannelRequest(
        channel=every_kind()["ws"], channel_id="ws"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS


def test_update_masks_etags_and_kind(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    made = stub.CreateChannel(service_pb2.CreateChannelRequest(
        channel=every_kind()["mail"], channel_id="mail"))
    mask = field_mask_pb2.FieldMask
    one = stub.UpdateChannel(service_pb2.UpdateChannelRequest(
        channel=channels_pb2.Channel(name="channels/mail", display_name="desk",
                                     email=channels_pb2.EmailConfig(to_addresses=["x@y.org"])),
        update_mask=mask(paths=["display_name"])))
    assert one.display_name == "desk" and one.etag != made.etag
    assert list(one.email.to_addresses) == list(made.email.to_addresses)  # not in the mask
    assert one.create_time == made.create_time
    # no mask: every field set in the request
    two = stub.UpdateChannel(service_pb2.UpdateChannelRequest(channel=channels_pb2.Channel(
        name="channels/mail", email=channels_pb2.EmailConfig(to_addresses=["x@y.org"]),
        labels={"k": "v"})))
    assert list(two.email.to_addresses) == ["x@y.org"] and two.email.subject_template == ""
    assert (two.display_name, dict(two.labels)) == ("desk", {"k": "v"})
    preview = stub.UpdateChannel(service_pb2.UpdateChannelRequest(
        channel=channels_pb2.Channel(name="channels/mail", paused=True),
        update_mask=mask(paths=["paused"]), validate_only=True))
    assert preview.state == channels_pb2.Channel.STATE_PAUSED
    now = stub.GetChannel(service_pb2.GetChannelRequest(name="channels/mail"))
    assert now == two and now.state == channels_pb2.Channel.STATE_ACTIVE
    stale = rpc_error(stub.UpdateChannel, service_pb2.UpdateChannelRequest(
        channel=channels_pb2.Channel(name="channels/mail", display_name="late", etag=one.etag),
        update_mask=mask(paths=["display_name"])))
    assert stale.code() == grpc.StatusCode.ABORTED and reason(stale) == "ETAG_MISMATCH"
    for path in ("state", "etag", "create_time", "colour", "email.bcc", "display_name.x"):
        err = rpc_error(stub.UpdateChannel, service_pb2.UpdateChannelRequest(
            channel=channels_pb2.Channel(name="channels/mail"), update_mask=mask(paths=[path])))
        assert violations(err) == ["update_mask"], path
    for request in (
        service_pb2.UpdateChannelRequest(channel=channels_pb2.Channel(
            name="channels/mail", sms=channels_pb2.SmsConfig(phone_numbers=["+14155550100"])),
            update_mask=mask(paths=["sms"])),
        service_pb2.UpdateChannelRequest(channel=channels_pb2.Channel(
            name="channels/mail", sms=channels_pb2.SmsConfig(phone_numbers=["+14155550100"]))),
        service_pb2.UpdateChannelRequest(channel=channels_pb2.Channel(name="channels/mail"),
                                         update_mask=mask(paths=["email"])),
    ):
        err = rpc_error(stub.UpdateChannel, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason(err) == "CHANNEL_KIND_CHANGED"
        assert violations(err)[0] in ("channel.sms", "channel.email")
    bad = rpc_error(stub.UpdateChannel, service_pb2.UpdateChannelRequest(
        channel=channels_pb2.Channel(name="channels/mail", email=channels_pb2.EmailConfig(
            to_addresses=["ok@example.com", "bad"])),
        update_mask=mask(paths=["email.to_addresses"])))
    assert violations(bad) == ["channel.email.to_addresses[1]"]
    assert stub.GetChannel(service_pb2.GetChannelRequest(name="channels/mail")) == two
    stale_delete = rpc_error(stub.DeleteChannel, service_pb2.DeleteChannelRequest(
        name="channels/mail", etag=one.etag))
    assert stale_delete.code() == grpc.StatusCode.ABORTED
    stub.DeleteChannel(service_pb2.DeleteChannelRequest(name="channels/mail", etag=two.etag))
    gone = rpc_error(stub.UpdateChannel, service_pb2.UpdateChannelRequest(
        channel=channels_pb2.Channel(name="channels/mail", display_name="x")))
    assert gone.code() == grpc.StatusCode.NOT_FOUND


def test_list_pages_filters_and_counts(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    for i in range(7):
        stub.CreateChannel(service_pb2.CreateChannelRequest(
            channel_id=f"c{i}", channel=channels_pb2.Channel(
                websocket=channels_pb2.WebSocketConfig(), paused=i % 3 == 0,
                display_name=f"n{i % 2}", labels={"bot": "grid" if i < 4 else "dca"})))

    def names(flt: str = "", size: int = 0) -> tuple[list[str], int]:
        out: list[str] = []
        token = ""
        while True:
            page = stub.ListChannels(service_pb2.ListChannelsRequest(
                filter=flt, page_size=size, page_token=token))
            assert len(page.channels) <= (size or 50)
            out += [c.name.removeprefix("channels/") for c in page.channels]
            token = page.next_page_token
            if not token:
                return out, page.total_size

    assert names(size=3) == ([f"c{i}" for i in range(7)], 7)
    assert names("paused = true", size=1) == (["c0", "c3", "c6"], 3)
    assert names("state = ACTIVE AND labels.bot = grid") == (["c1", "c2"], 2)
    assert names("state = PAUSED OR display_name = n1")[0] == ["c0", "c1", "c3", "c5", "c6"]
    assert names("NOT labels.bot = grid AND paused = false")[0] == ["c4", "c5"]
    page = stub.ListChannels(service_pb2.ListChannelsRequest(page_size=2))
    err = rpc_error(stub.ListChannels, service_pb2.ListChannelsRequest(
        page_size=2, page_token=page.next_page_token, filter="paused = true"))
    assert violations(err) == ["page_token"]
    for bad in ("symbol = X", "state = SLEEPY", "paused = maybe", "(state = ACTIVE"):
        err = rpc_error(stub.ListChannels, service_pb2.ListChannelsRequest(filter=bad))
        assert violations(err) == ["filter"], bad
    err = rpc_error(stub.ListChannels, service_pb2.ListChannelsRequest(page_size=-1))
    assert violations(err) == ["page_size"]


def test_rules_name_existing_channels_and_deleting_one_in_use(served_on_each_store) -> None:  # type: ignore[no-untyped-def]
    server, stub = served_on_each_store
    for cid in ("hook", "ws"):
        stub.CreateChannel(service_pb2.CreateChannelRequest(channel_id=cid,
                                                            channel=every_kind()[cid]))

    def rule(*channels: str) -> rules_pb2.Rule:
        return rules_pb2.Rule(symbol="X", condition_text="price > 1", channels=channels)

    made = stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="r1", rule=rule(
        "hook", "channels/ws")))
    assert list(made.channels) == ["channels/hook", "channels/ws"]
    for channels, path, why in ((("hook", "channels/nope"), "rule.channels[1]",
                                 "UNKNOWN_CHANNEL"),
                                (("Bad Id",), "rule.channels[0]", "INVALID_ARGUMENT"),
                                (("ws", "channels/ws"), "rule.channels[1]", "INVALID_ARGUMENT")):
        for call, request in (
            (stub.CreateRule, service_pb2.CreateRuleRequest(rule=rule(*channels))),
            (stub.ValidateRule, service_pb2.ValidateRuleRequest(rule=rule(*channels))),
            (stub.UpdateRule, service_pb2.UpdateRuleRequest(
                rule=rules_pb2.Rule(name="rules/r1", channels=channels),
                update_mask=field_mask_pb2.FieldMask(paths=["channels"]))),
        ):
            err = rpc_error(call, request)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (violations(err), reason(err)) == ([path], why)
    assert stub.GetRule(service_pb2.GetRuleRequest(name="rules/r1")) == made
    stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="r2", rule=rule("ws")))
    err = rpc_error(stub.DeleteChannel, service_pb2.DeleteChannelRequest(name="channels/ws"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(err) == "CHANNEL_IN_USE"
    assert details(err)["ErrorInfo"].metadata["rules"] == "r1,r2"  # type: ignore[attr-defined]
    stub.DeleteChannel(service_pb2.DeleteChannelRequest(name="channels/ws", force=True))
    after = stub.GetRule(service_pb2.GetRuleRequest(name="rules/r1"))
    assert list(after.channels) == ["channels/hook"] and after.etag != made.etag
    assert list(stub.GetRule(service_pb2.GetRuleRequest(name="rules/r2")).channels) == []
    # the engine's copy follows (it is what alerts are delivered from)
    assert server.app.processor._rules["r1"].channels == ("channels/hook",)
    err = rpc_error(stub.CreateRule, service_pb2.CreateRuleRequest(rule=rule("ws")))
    assert reason(err) == "UNKNOWN_CHANNEL"


class _Figures:
    """A delivery-figures provider as the outbox will be: answers per channel id."""

    def __init__(self, figures: Mapping[str, ChannelStats]) -> None:
        self.figures = figures
        self.asked: list[tuple[str, list[str]]] = []

    async def channel_stats(self, owner: str,
                            channel_ids: Sequence[str]) -> Mapping[str, ChannelStats]:
        self.asked.append((owner, list(channel_ids)))
        return {k: v for k, v in self.figures.items() if k in channel_ids}


def test_delivery_figures_come_from_the_stats_provider(served) -> None:  # type: ignore[no-untyped-def]
    server, stub = served
    for cid in ("hook", "ws"):
        stub.CreateChannel(service_pb2.CreateChannelRequest(channel_id=cid,
                                                            channel=every_kind()[cid]))
    fresh = stub.GetChannel(service_pb2.GetChannelRequest(name="channels/ws"))
    assert (fresh.last_delivered_alert_id, fresh.dead_letter_count) == (0, 0)
    assert not fresh.HasField("last_error") and not fresh.HasField("last_delivery_time")
    figures = _Figures({"hook": ChannelStats(failing=True, last_delivered_alert_id=41,
                                             last_delivery_time_ms=1_700_000_000_000,
                                             last_error="HTTP 503 from the endpoint",
                                             dead_letter_count=2)})
    server.app.service.channel_stats = figures
    hook = stub.GetChannel(service_pb2.GetChannelRequest(name="channels/hook"))
    assert hook.state == channels_pb2.Channel.STATE_FAILING
    assert (hook.last_delivered_alert_id, hook.dead_letter_count) == (41, 2)
    assert hook.last_delivery_time.ToMilliseconds() == 1_700_000_000_000
    assert hook.last_error.message == "HTTP 503 from the endpoint"
    listed = stub.ListChannels(service_pb2.ListChannelsRequest(filter="state = FAILING"))
    assert [c.name for c in listed.channels] == ["channels/hook"]
    assert ("local", ["hook", "ws"]) in figures.asked


def test_another_owners_channels_are_not_found(tmp_path: Path) -> None:
    base = server_config(tmp_path, webhook_allow="127.0.0.0/8")
    with running_server(replace(base, default_owner="alice")) as (_, alice), \
            running_server(replace(base, default_owner="bob")) as (_, bob):
        alice.CreateChannel(service_pb2.CreateChannelRequest(channel_id="hook",
                                                             channel=every_kind()["hook"]))
        missing = rpc_error(alice.GetChannel,
                            service_pb2.GetChannelRequest(name="channels/nope"))
        for call, request in (
            (bob.GetChannel, service_pb2.GetChannelRequest(name="channels/hook")),
            (bob.DeleteChannel, service_pb2.DeleteChannelRequest(name="channels/hook")),
            (bob.UpdateChannel, service_pb2.UpdateChannelRequest(channel=channels_pb2.Channel(
                name="channels/hook", display_name="mine"))),
        ):
            err = rpc_error(call, request)
            assert err.code() == grpc.StatusCode.NOT_FOUND
            assert err.details() == missing.details().replace("nope", "hook")
        assert bob.ListChannels(service_pb2.ListChannelsRequest()).total_size == 0
        err = rpc_error(bob.CreateRule, service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
            symbol="X", condition_text="price > 1", channels=["channels/hook"])))
        assert reason(err) == "UNKNOWN_CHANNEL"
        bob.CreateChannel(service_pb2.CreateChannelRequest(channel_id="hook",
                                                           channel=every_kind()["ws"]))
        assert alice.GetChannel(service_pb2.GetChannelRequest(
            name="channels/hook")).WhichOneof("config") == "webhook"


def test_test_channel_signs_with_both_secrets_during_rotation(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    with receiving() as endpoint:
        made = stub.CreateChannel(service_pb2.CreateChannelRequest(
            channel_id="hook", channel=channels_pb2.Channel(
                webhook=channels_pb2.WebhookConfig(url=endpoint.url + "/in",
                                                   headers={"X-Bot": "grid"}))))
        old = made.webhook.signing_secret
        reply = stub.TestChannel(service_pb2.TestChannelRequest(name="channels/hook",
                                                                message="ping"))
        assert reply.delivered and not reply.HasField("error")
        assert reply.latency.ToNanoseconds() > 0
        [first] = endpoint.wait_for(1)
        assert first.path == "/in" and first.headers["x-bot"] == "grid"
        payload = Webhook(old).verify(first.body, first.headers)
        assert payload["type"] == "alert.fired"
        assert payload["data"]["message"] == "ping" and payload["data"]["kind"] == "SYSTEM"
        assert payload["data"]["details"] == {"reason": "CHANNEL_TEST",
                                              "resource": "channels/hook"}
        stub.UpdateChannel(service_pb2.UpdateChannelRequest(
            channel=channels_pb2.Channel(name="channels/hook", webhook=channels_pb2.WebhookConfig(
                signing_secret=CLIENT_SECRET)),
            update_mask=field_mask_pb2.FieldMask(paths=["webhook.signing_secret"])))
        assert stub.TestChannel(service_pb2.TestChannelRequest(name="channels/hook")).delivered
        second = endpoint.wait_for(2)[1]
        assert len(second.headers["webhook-signature"].split()) == 2
        for secret in (old, CLIENT_SECRET):   # a receiver with either secret accepts it
            data = Webhook(secret).verify(second.body, second.headers)["data"]
            assert data["message"].startswith("Test message from the alerts service")
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(
                second.body, second.headers)


@pytest.mark.parametrize("status, code", [(503, 14), (404, 9)])
def test_test_channel_reports_a_failed_delivery(served, status: int, code: int) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    with receiving(lambda _: (status, {"content-type": "text/plain"}, b"nope")) as endpoint:
        stub.CreateChannel(service_pb2.CreateChannelRequest(
            channel_id="hook", channel=channels_pb2.Channel(
                webhook=channels_pb2.WebhookConfig(url=endpoint.url, max_attempts=1))))
        reply = stub.TestChannel(service_pb2.TestChannelRequest(name="channels/hook"))
        endpoint.wait_for(1)
    assert not reply.delivered
    assert reply.error.code == code and str(status) in reply.error.message


def test_test_channel_renders_the_channel_template_for_discord(served) -> None:  # type: ignore[no-untyped-def]
    server, stub = served
    with receiving(lambda _: (200, {"content-type": "application/json"},
                              json.dumps({"id": "1", "channel_id": "2",
                                          "content": "x"}).encode())) as discord:
        service = server.app.service
        service.delivery_settings = replace(service.delivery_settings,
                                            discord_api_base=discord.url + "/api")
        stub.CreateChannel(service_pb2.CreateChannelRequest(
            channel_id="disc", channel=channels_pb2.Channel(
                discord=channels_pb2.DiscordConfig(webhook_url=DISCORD_URL, username="bot"),
                message_template="[{{symbol}}] {{message}} (#{{id}})", paused=True)))
        reply = stub.TestChannel(service_pb2.TestChannelRequest(name="channels/disc",
                                                                message="hello"))
        [request] = discord.wait_for(1)
    assert reply.delivered
    assert request.path == "/api/v10/webhooks/123456/SeCrEtDiScOrDtOkEn_abc?wait=true"
    body = json.loads(request.body)
    assert body["content"].startswith("[test:TEST] hello (#0)")
    assert body["username"] == "bot"
    assert_no_secret(reply)
    # a failure's report does not leak the token that is part of the URL either
    with receiving(lambda _: (404, {"content-type": "application/json"},
                              b'{"message": "Unknown Webhook", "code": 10015}')) as gone:
        service.delivery_settings = replace(service.delivery_settings,
                                            discord_api_base=gone.url + "/api")
        failed = stub.TestChannel(service_pb2.TestChannelRequest(name="channels/disc"))
        gone.wait_for(1)
    assert not failed.delivered and "Unknown Webhook" in failed.error.message
    assert_no_secret(failed)


def test_test_channel_refusals(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    stub.CreateChannel(service_pb2.CreateChannelRequest(channel_id="ws",
                                                        channel=every_kind()["ws"]))
    err = rpc_error(stub.TestChannel, service_pb2.TestChannelRequest(name="channels/ws"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(err) == "CHANNEL_NOT_TESTABLE"
    err = rpc_error(stub.TestChannel, service_pb2.TestChannelRequest(name="channels/nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(stub.TestChannel, service_pb2.TestChannelRequest(name="channels/ws",
                                                                     message="x" * 2049))
    assert violations(err) == ["message"]


def test_test_channel_through_telegram_never_shows_the_token(served) -> None:  # type: ignore[no-untyped-def]
    server, stub = served
    answers = iter([
        (200, {"content-type": "application/json"}, json.dumps({"ok": True, "result": {
            "message_id": 156, "chat": {"id": -1001234567890, "type": "channel"},
            "date": 1700000000, "text": "x"}}).encode()),
        (401, {"content-type": "application/json"}, json.dumps({
            "ok": False, "error_code": 401, "description": "Unauthorized"}).encode()),
    ])
    with receiving(lambda _: next(answers)) as telegram:
        service = server.app.service
        service.delivery_settings = replace(service.delivery_settings,
                                            telegram_api_base=telegram.url)
        stub.CreateChannel(service_pb2.CreateChannelRequest(channel_id="tg",
                                                            channel=every_kind()["tg"]))
        ok = stub.TestChannel(service_pb2.TestChannelRequest(name="channels/tg", message="hi"))
        refused = stub.TestChannel(service_pb2.TestChannelRequest(name="channels/tg"))
        first, _ = telegram.wait_for(2)
    assert first.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    sent = json.loads(first.body)
    assert sent["chat_id"] == -1001234567890 and sent["text"].startswith("hi")
    assert ok.delivered and not refused.delivered
    assert refused.error.code == 9 and "Unauthorized" in refused.error.message
    assert_no_secret(ok, refused)
