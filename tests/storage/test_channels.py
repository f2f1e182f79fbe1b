"""The ``Store``'s channels, and rules that name them, on SQLite and the real PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from alerts.errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from alerts.storage import (
    ChannelRecord,
    ChannelSettings,
    DiscordSettings,
    EmailSettings,
    SmsSettings,
    Store,
    TelegramSettings,
    WebhookSettings,
    WebSocketSettings,
    open_store,
)
from alerts.storage.base import REQUEST_ID_RETENTION_MS
from tests.storage.conftest import START_MS, FakeClock
from tests.storage.test_store import rule

pytestmark = pytest.mark.asyncio

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def channel(channel_id: str = "hook", owner: str = "alice", **fields: object) -> ChannelRecord:
    base = ChannelRecord(
        channel_id=channel_id,
        owner=owner,
        display_name=f"channel {channel_id}",
        settings=WebhookSettings(url="https://hooks.example.com/in", headers=(("x-a", "1"),),
                                 timeout_ms=2500, max_attempts=7),
        secret=SECRET,
        message_template="{{symbol}}: {{message}}",
        labels=(("team", "grid"), ("bot", "b1")),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


EVERY_KIND: list[ChannelSettings] = [
    WebhookSettings(url="https://h.example.com/"),
    WebSocketSettings(replay_limit=100),
    EmailSettings(to_addresses=("a@example.com", "b@example.com"), subject_template="{{rule}}"),
    SmsSettings(phone_numbers=("+14155550100",)),
    DiscordSettings(username="bot"),
    TelegramSettings(chat_id="-1001234567890"),
]


async def test_create_then_get_round_trips_every_kind(store: Store) -> None:
    created = await store.create_channel(channel())
    assert created.create_time_ms == created.update_time_ms == START_MS
    assert (created.revision, created.kind) == (1, "webhook")
    assert created.etag and created.labels == (("bot", "b1"), ("team", "grid"))
    assert await store.get_channel("alice", "hook") == created
    assert created.secret == SECRET and created.previous_secret == ""
    for i, settings in enumerate(EVERY_KIND):
        rec = await store.create_channel(ChannelRecord(
            channel_id=f"k{i}", owner="alice", settings=settings, secret="s" if i else ""))
        got = await store.get_channel("alice", f"k{i}")
        assert got == rec and got.settings == settings and type(got.settings) is type(settings)


async def test_channel_ids_are_per_owner_and_another_owners_is_not_found(store: Store) -> None:
    await store.create_channel(channel())
    with pytest.raises(AlreadyExistsError):
        await store.create_channel(channel(display_name="again"))
    await store.create_channel(channel(owner="bob"))
    with pytest.raises(NotFoundError) as theirs:
        await store.get_channel("carol", "hook")
    await store.delete_channel("bob", "hook")
    with pytest.raises(NotFoundError) as missing:
        await store.get_channel("bob", "hook")
    assert str(theirs.value) == str(missing.value)
    assert theirs.value.metadata == missing.value.metadata
    assert (await store.get_channel("alice", "hook")).owner == "alice"


async def test_a_repeated_request_id_returns_the_original_channel(
    store: Store, clock: FakeClock
) -> None:
    first = await store.create_channel(channel(), request_id="req-1")
    clock.advance(1000)
    assert await store.create_channel(channel("other"), request_id="req-1") == first
    with pytest.raises(NotFoundError):
        await store.get_channel("alice", "other")
    # per owner
    assert (await store.create_channel(channel(owner="bob"), request_id="req-1")).owner == "bob"
    # the same request id for a rule is another namespace
    assert (await store.create_rule(rule(), request_id="req-1")).rule_id == "r1"
    await store.delete_channel("alice", "hook")
    with pytest.raises(NotFoundError, match="since been deleted"):
        await store.create_channel(channel(), request_id="req-1")
    clock.advance(REQUEST_ID_RETENTION_MS)
    assert (await store.create_channel(channel(), request_id="req-1")).revision == 1


async def test_list_channels_pages_by_create_time_then_id(
    store: Store, clock: FakeClock
) -> None:
    for i, channel_id in enumerate(["e", "b", "d", "a", "c"]):
        clock.now_ms = START_MS + (i // 2) * 10
        await store.create_channel(channel(channel_id, paused=i == 2))
    await store.create_channel(channel("z", owner="bob"))
    seen: list[str] = []
    token: str | None = None
    while True:
        page, token = await store.list_channels("alice", page_size=2, page_token=token)
        seen += [c.channel_id for c in page]
        if token is None:
            break
    assert seen == ["b", "e", "a", "d", "c"]
    paused, _ = await store.list_channels("alice", page_size=0, page_token=None, paused=True)
    assert [c.channel_id for c in paused] == ["d"]
    _, token = await store.list_channels("alice", page_size=1, page_token=None)
    assert token is not None
    for owner, flag in (("bob", None), ("alice", True)):
        with pytest.raises(InvalidArgumentError) as err:
            await store.list_channels(owner, page_size=1, page_token=token, paused=flag)
        assert err.value.violations[0].field == "page_token"
    # a rule listing's token is not a channel listing's
    for rule_id in "xy":
        await store.create_rule(rule(rule_id))
    _, rule_token = await store.list_rules("alice", page_size=1, page_token=None)
    with pytest.raises(InvalidArgumentError):
        await store.list_channels("alice", page_size=1, page_token=rule_token)
    with pytest.raises(InvalidArgumentError) as size:
        await store.list_channels("alice", page_size=-1, page_token=None)
    assert size.value.violations[0].field == "page_size"


async def test_update_renews_revision_and_etag_checks_etag_and_keeps_the_kind(
    store: Store, clock: FakeClock
) -> None:
    created = await store.create_channel(channel())
    clock.advance(5000)
    rotated = await store.update_channel(
        channel(secret="whsec_new", previous_secret=SECRET,
                previous_secret_expire_ms=START_MS + 65_000, paused=True),
        expected_etag=created.etag)
    assert (rotated.revision, rotated.update_time_ms) == (2, START_MS + 5000)
    assert rotated.create_time_ms == START_MS and rotated.etag != created.etag
    assert await store.get_channel("alice", "hook") == rotated
    assert rotated.signing_secrets(START_MS + 64_999) == ("whsec_new", SECRET)
    assert rotated.signing_secrets(START_MS + 65_000) == ("whsec_new",)
    with pytest.raises(AbortedError) as stale:
        await store.update_channel(channel(display_name="late"), expected_etag=created.etag)
    assert stale.value.reason == "ETAG_MISMATCH"
    with pytest.raises(InvalidArgumentError) as kind:
        await store.update_channel(channel(settings=SmsSettings(phone_numbers=("+1555",))),
                                   expected_etag=None)
    assert kind.value.reason == "CHANNEL_KIND_CHANGED"
    assert await store.get_channel("alice", "hook") == rotated
    for missing in (channel("nope"), channel(owner="bob")):
        with pytest.raises(NotFoundError):
            await store.update_channel(missing, expected_etag=None)


async def test_concurrent_channel_updates_each_bump_the_revision_once(store: Store) -> None:
    await store.create_channel(channel())
    done = await asyncio.gather(*(store.update_channel(channel(display_name=f"n{i}"),
                                                       expected_etag=None) for i in range(6)))
    assert sorted(c.revision for c in done) == list(range(2, 8))


async def test_rules_may_name_only_existing_channels_of_their_owner(store: Store) -> None:
    await store.create_channel(channel())
    await store.create_channel(channel("other", owner="bob"))
    stored = await store.create_rule(rule(channels=("channels/hook",)))
    assert (await store.get_rule("alice", "r1")).channels == stored.channels == ("channels/hook",)
    for bad, index in ((("channels/hook", "channels/other"), 1), (("hook",), 0),
                       (("channels/hook", "channels/hook", "channels/nope"), 2)):
        with pytest.raises(InvalidArgumentError) as err:
            await store.create_rule(rule("r2", channels=bad))
        assert err.value.reason == "UNKNOWN_CHANNEL"
        assert [v.field for v in err.value.violations] == [f"rule.channels[{index}]"]
        with pytest.raises(InvalidArgumentError):
            await store.update_rule(rule(channels=bad), expected_etag=None)
    with pytest.raises(NotFoundError):
        await store.get_rule("alice", "r2")
    assert (await store.get_rule("alice", "r1")) == stored


async def test_deleting_a_channel_in_use_is_refused_unless_forced(
    store: Store, clock: FakeClock
) -> None:
    created = await store.create_channel(channel())
    await store.create_channel(channel("keep"))
    r1 = await store.create_rule(rule("r1", channels=("channels/keep", "channels/hook")))
    await store.create_rule(rule("r2", channels=("channels/keep",)))
    r3 = await store.create_rule(rule("r3", channels=("channels/hook",)))
    with pytest.raises(FailedPreconditionError) as err:
        await store.delete_channel("alice", "hook")
    assert err.value.reason == "CHANNEL_IN_USE" and err.value.metadata["rules"] == "r1,r3"
    with pytest.raises(AbortedError):
        await store.delete_channel("alice", "hook", expected_etag="stale", force=True)
    with pytest.raises(NotFoundError):
        await store.delete_channel("bob", "hook", force=True)
    clock.advance(10)
    changed = await store.delete_channel("alice", "hook", expected_etag=created.etag,
                                         force=True)
    assert [(r.rule_id, r.channels, r.revision) for r in changed] == [
        ("r1", ("channels/keep",), 2), ("r3", (), 2)]
    assert changed[0].etag != r1.etag and changed[1].update_time_ms == r3.update_time_ms + 10
    for r in changed:
        assert await store.get_rule("alice", r.rule_id) == r
    with pytest.raises(NotFoundError):
        await store.get_channel("alice", "hook")
    with pytest.raises(NotFoundError):
        await store.delete_channel("alice", "hook")
    # a channel named by no rule goes at once; a prefix of another id is not a match
    await store.create_channel(channel("kee"))
    assert await store.delete_channel("alice", "kee") == []


async def test_a_rule_naming_a_channel_races_its_deletion_safely(store: Store) -> None:
    """Whichever commits first wins: never a stored rule naming a deleted channel."""
    for round_ in range(10):
        cid = f"c{round_}"
        await store.create_channel(channel(cid))
        results = await asyncio.gather(
            store.create_rule(rule(f"r{round_}", channels=(f"channels/{cid}",))),
            store.delete_channel("alice", cid), return_exceptions=True)
        created, deleted = results
        if isinstance(created, BaseException):
            assert isinstance(created, InvalidArgumentError) and deleted == []
        else:
            assert isinstance(deleted, FailedPreconditionError)
            await store.get_channel("alice", cid)
    for r in await store.all_rules():
        for name in r.channels:
            await store.get_channel("alice", name.removeprefix("channels/"))


async def test_channels_survive_reopening(store: Store, store_url: str, clock: FakeClock) -> None:
    created = await store.create_channel(channel())
    async with await open_store(store_url, clock=clock) as second:
        assert await second.get_channel("alice", "hook") == created
