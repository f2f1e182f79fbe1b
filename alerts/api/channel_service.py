"""Channel RPCs of the AlertService (``ChannelMethods``, mixed into the servicer).

Channels follow the rules' patterns: AIP-style names ``channels/{channel}``, etags
(a stale one is ABORTED), ``update_mask``, ``request_id`` idempotency on create,
key-based page tokens, another owner's channel answering the same NOT_FOUND as a
missing one. Secrets are INPUT_ONLY: a webhook's signing secret (generated when
empty) appears once, in the CreateChannel response; an update that sets a new
one keeps the previous secret valid for ``secret_overlap_ms`` (both sign).
Delivery figures (state FAILING, last delivery, dead letters) come from the
``ChannelStatsProvider`` the servicer was given (zeros until the outbox is wired).
TestChannel sends one synthetic alert through the kind's sender (``build_sender``
with the servicer's ``DeliverySettings``) and reports the outcome.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import grpc
from google.protobuf import duration_pb2, empty_pb2
from google.rpc import code_pb2, status_pb2

from alerts.api import convert
from alerts.api.channel_convert import (
    CHANNEL_ID,
    KIND_FIELDS,
    ChannelInput,
    channel_id_of,
    channel_input,
    channel_name,
    channel_to_proto,
    check_channel_id,
)
from alerts.api.channel_filter import parse_channel_filter
from alerts.api.request_checks import MAX_PAGE_SIZE, check_deadline, page_size
from alerts.delivery.channel_stats import ChannelStats, ChannelStatsProvider
from alerts.delivery.channels.base import Delivery
from alerts.delivery.channels.config import DeliverySettings
from alerts.delivery.channels.factory import build_sender
from alerts.delivery.channels.record import sender_config
from alerts.delivery.channels.signing import generate_webhook_secret
from alerts.delivery.channels.url_guard import AllowList
from alerts.engine.messages import render_alert
from alerts.engine.processor import AlertProcessor, now_ms
from alerts.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from alerts.storage import decode_page_token, encode_page_token
from alerts.storage.base import Store
from alerts.storage.records import (
    AlertRecord,
    ChannelRecord,
    EmailSettings,
    RuleRecord,
    WebhookSettings,
)
from alerts.v1 import channels_pb2, service_pb2

_OUTPUT_ONLY = frozenset({
    "name", "owner", "state", "last_delivered_alert_id", "last_delivery_time", "last_error",
    "dead_letter_count", "create_time", "update_time", "etag",
})


MAX_TEST_MESSAGE_BYTES = 2048


def test_alert(rec: ChannelRecord, message: str, now: int) -> AlertRecord:
    """The synthetic alert TestChannel sends: kind SYSTEM, id 0 (no stored alert has it),
    symbol ``test:TEST``."""
    text = message or (f"Test message from the alerts service: channel "
                       f"{channel_name(rec.channel_id)} works.")
    return AlertRecord(alert_id=0, owner=rec.owner, rule_id="", symbol="test:TEST",
                       kind="SYSTEM", message=text, condition_text="", event_time_ms=now,
                       receive_time_ms=now, decide_time_ms=now, commit_time_ms=now,
                       details={"reason": "CHANNEL_TEST",
                                "resource": channel_name(rec.channel_id)})


def _valid_key(key: list[object]) -> bool:
    return len(key) == 2 and type(key[0]) is int and isinstance(key[1], str)


class ChannelMethods:
    """CreateChannel, GetChannel, ListChannels, UpdateChannel, DeleteChannel; and the
    check of the channels a rule names."""

    # set by the servicer's constructor
    store: Store
    processor: AlertProcessor
    webhook_allow: AllowList
    secret_overlap_ms: int
    channel_stats: ChannelStatsProvider
    delivery_settings: DeliverySettings

    def _owner(self, context: grpc.aio.ServicerContext) -> str:
        raise NotImplementedError

    async def _channel_protos(self, recs: Sequence[ChannelRecord]
                              ) -> list[channels_pb2.Channel]:
        if not recs:
            return []
        stats = await self.channel_stats.channel_stats(recs[0].owner,
                                                       [r.channel_id for r in recs])
        return [channel_to_proto(r, stats.get(r.channel_id, ChannelStats())) for r in recs]

    def _channel_record(self, inp: ChannelInput, *, channel_id: str, owner: str, secret: str,
                previous: tuple[str, int | None] = ("", None),
                base: ChannelRecord | None = None) -> ChannelRecord:
        now = now_ms()
        return ChannelRecord(
            channel_id=channel_id, owner=owner, display_name=inp.display_name,
            settings=inp.settings, secret=secret, previous_secret=previous[0],
            previous_secret_expire_ms=previous[1], message_template=inp.message_template,
            paused=inp.paused, labels=inp.labels,
            create_time_ms=base.create_time_ms if base else now, update_time_ms=now,
            etag=base.etag if base else "", revision=base.revision if base else 0)

    async def CreateChannel(self, request: service_pb2.CreateChannelRequest,
                            context: grpc.aio.ServicerContext) -> channels_pb2.Channel:
        owner = self._owner(context)
        channel_id = (check_channel_id(request.channel_id) if request.channel_id
                      else "c" + secrets.token_hex(8))
        inp = await channel_input(request.channel, allow=self.webhook_allow, creating=True)
        generate = isinstance(inp.settings, WebhookSettings) and not inp.secret
        if request.validate_only:
            rec = self._channel_record(inp, channel_id=channel_id, owner=owner, secret="")
            return channel_to_proto(rec, ChannelStats())
        rec = self._channel_record(inp, channel_id=channel_id, owner=owner,
                           secret=generate_webhook_secret() if generate else inp.secret)
        check_deadline(context)
        stored = await self.store.create_channel(rec, request.request_id or None)
        [out] = await self._channel_protos([stored])
        if generate:  # the one response that carries the secret the server made
            out.webhook.signing_secret = stored.secret
        return out

    async def GetChannel(self, request: service_pb2.GetChannelRequest,
                         context: grpc.aio.ServicerContext) -> channels_pb2.Channel:
        rec = await self.store.get_channel(self._owner(context), channel_id_of(request.name))
        [out] = await self._channel_protos([rec])
        return out

    async def ListChannels(self, request: service_pb2.ListChannelsRequest,
                           context: grpc.aio.ServicerContext
                           ) -> service_pb2.ListChannelsResponse:
        """Filtered and paged in memory over the owner's channels (the store narrows by
        ``paused``), so ``total_size`` is exact; pages are keyed by (create time, name)."""
        flt = parse_channel_filter(request.filter)
        size = page_size(request.page_size)
        owner = self._owner(context)
        scope = ["channels", owner, request.filter]
        after = None if not request.page_token else decode_page_token(
            request.page_token, scope, _valid_key)
        recs: list[ChannelRecord] = []
        token: str | None = None
        while True:
            page, token = await self.store.list_channels(
                owner, page_size=MAX_PAGE_SIZE, page_token=token, paused=flt.paused)
            recs += page
            if token is None:
                break
        matching = [c for c in await self._channel_protos(recs) if flt.accepts(c)]

        def key(c: channels_pb2.Channel) -> list[object]:
            return [c.create_time.ToMilliseconds(), c.name]
        start = 0 if after is None else next(
            (i for i, c in enumerate(matching) if key(c) > after), len(matching))
        out = matching[start:start + size]
        more = start + size < len(matching)
        return service_pb2.ListChannelsResponse(
            channels=out, total_size=len(matching),
            next_page_token=encode_page_token(scope, *key(out[-1])) if more else "")

    async def UpdateChannel(self, request: service_pb2.UpdateChannelRequest,
                            context: grpc.aio.ServicerContext) -> channels_pb2.Channel:
        owner = self._owner(context)
        channel_id = channel_id_of(request.channel.name, "channel.name")
        current = await self.store.get_channel(owner, channel_id)
        paths = list(request.update_mask.paths)
        if not paths:   # every field set in the request
            paths = [f.name for f, _ in request.channel.ListFields()
                     if f.name not in _OUTPUT_ONLY]
        merged = channels_pb2.Channel()
        if paths == ["*"]:
            merged.CopyFrom(request.channel)
        else:
            for path in paths:
                if path.split(".")[0] in _OUTPUT_ONLY or not _valid_path(path):
                    raise convert.invalid("update_mask", f"{path!r} cannot be updated")
            merged.CopyFrom(channel_to_proto(current, ChannelStats()))
            mask = type(request.update_mask)(paths=paths)
            mask.MergeMessage(request.channel, merged, replace_message_field=True,
                              replace_repeated_field=True)
        kind = merged.WhichOneof("config")
        if kind != current.kind:
            why = (f"the kind of a channel cannot change: this one is a {current.kind} "
                   f"channel" + (f", not {kind}" if kind else ""))
            raise InvalidArgumentError(
                f"channel: {why}", reason="CHANNEL_KIND_CHANGED",
                violations=(FieldViolation(f"channel.{kind or current.kind}", why),))
        inp = await channel_input(merged, allow=self.webhook_allow, creating=False)
        secret, previous = current.secret, (current.previous_secret,
                                            current.previous_secret_expire_ms)
        if inp.secret and inp.secret != current.secret:
            secret = inp.secret
            previous = ((current.secret, now_ms() + self.secret_overlap_ms)
                        if kind == "webhook" else ("", None))
        rec = self._channel_record(inp, channel_id=channel_id, owner=owner, secret=secret,
                           previous=previous, base=current)
        if request.validate_only:
            [out] = await self._channel_protos([rec])
            return out
        check_deadline(context)
        stored = await self.store.update_channel(
            rec, expected_etag=request.channel.etag or None)
        [out] = await self._channel_protos([stored])
        return out

    async def DeleteChannel(self, request: service_pb2.DeleteChannelRequest,
                            context: grpc.aio.ServicerContext) -> empty_pb2.Empty:
        owner = self._owner(context)
        channel_id = channel_id_of(request.name)

        async def delete_it() -> list[RuleRecord]:
            check_deadline(context)
            return await self.store.delete_channel(
                owner, channel_id, expected_etag=request.etag or None, force=request.force)

        await self.processor.amend_rules(delete_it)
        return empty_pb2.Empty()

    async def TestChannel(self, request: service_pb2.TestChannelRequest,
                          context: grpc.aio.ServicerContext) -> service_pb2.TestChannelResponse:
        """One attempt through the channel's sender with a synthetic alert (even when the
        channel is paused); the outcome is the answer, not an error of the call."""
        if len(request.message.encode()) > MAX_TEST_MESSAGE_BYTES:
            raise convert.invalid("message", f"at most {MAX_TEST_MESSAGE_BYTES} bytes (UTF-8)")
        rec = await self.store.get_channel(self._owner(context), channel_id_of(request.name))
        now = now_ms()
        config = sender_config(rec, now)
        if config is None:
            raise FailedPreconditionError(
                f"{channel_name(rec.channel_id)} delivers to connected WebSocket clients; "
                "there is no destination to test", reason="CHANNEL_NOT_TESTABLE")
        alert = test_alert(rec, request.message, now)
        subject = ""
        if isinstance(rec.settings, EmailSettings) and rec.settings.subject_template:
            subject = render_alert(rec.settings.subject_template, alert)
        sender = build_sender(rec.kind, config, self.delivery_settings)
        try:
            outcome = await sender.send(Delivery(
                alert=alert, channel_id=rec.channel_id,
                text=render_alert(rec.message_template, alert), subject=subject))
        finally:
            await sender.close()
        out = service_pb2.TestChannelResponse(delivered=outcome.ok)
        out.latency.CopyFrom(duration_pb2.Duration(
            seconds=int(outcome.latency_s), nanos=int(outcome.latency_s % 1 * 1e9)))
        if not outcome.ok:
            out.error.CopyFrom(status_pb2.Status(
                code=code_pb2.UNAVAILABLE if outcome.retryable else code_pb2.FAILED_PRECONDITION,
                message=outcome.error or f"the destination answered {outcome.status}"))
        return out

    async def rule_channels(self, owner: str, names: Sequence[str],
                            field: str = "rule.channels") -> tuple[str, ...]:
        """A rule's channels as ``channels/{id}`` names (a bare id is accepted), each an
        existing channel of the owner, none twice; else INVALID_ARGUMENT naming each bad
        entry (reason ``UNKNOWN_CHANNEL`` when one does not exist)."""
        out: list[str] = []
        violations: list[FieldViolation] = []
        reason = "INVALID_ARGUMENT"
        for i, name in enumerate(names):
            channel_id = name.removeprefix("channels/")
            path = f"{field}[{i}]"
            if not CHANNEL_ID.fullmatch(channel_id):
                violations.append(FieldViolation(
                    path, f"expected channels/{{channel}} or a channel id, got {name!r}"))
                continue
            if channel_name(channel_id) in out:
                violations.append(FieldViolation(path, f"{name!r} is named twice"))
                continue
            try:
                await self.store.get_channel(owner, channel_id)
            except NotFoundError:
                violations.append(FieldViolation(
                    path, f"no channel {channel_name(channel_id)!r}"))
                reason = "UNKNOWN_CHANNEL"
            out.append(channel_name(channel_id))
        if violations:
            first = violations[0]
            raise InvalidArgumentError(f"{first.field}: {first.description}", reason=reason,
                                       violations=tuple(violations))
        return tuple(out)


def _valid_path(path: str) -> bool:
    top, _, sub = path.partition(".")
    if top in ("display_name", "message_template", "paused", "labels"):
        return not sub
    if top not in KIND_FIELDS:
        return False
    descriptor = channels_pb2.Channel.DESCRIPTOR.fields_by_name[top].message_type
    return not sub or (descriptor is not None and sub in descriptor.fields_by_name)
