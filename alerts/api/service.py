"""The AlertService servicer: rule management, alert history and streams, tick publishing.

Every resource has an owner; another owner's resource answers exactly as a
missing one. Errors are raised as ``AlertsError`` and mapped by
``alerts.api.errors.ErrorInterceptor``. Channel RPCs live in
``alerts.api.channel_service``; RPCs of later issues (positions) answer
UNIMPLEMENTED from the generated base.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import empty_pb2

from alerts.api import convert, delivery_convert
from alerts.api.channel_convert import channel_id_of
from alerts.api.channel_service import ChannelMethods
from alerts.api.conditions import condition_to_proto, series_to_proto, timeframe_to_proto
from alerts.api.request_checks import MAX_PAGE_SIZE
from alerts.api.request_checks import check_deadline as _check_deadline
from alerts.api.request_checks import page_size as _page_size
from alerts.api.rule_filter import DEFAULT_ORDER, parse_rule_query
from alerts.delivery.channel_stats import ChannelStatsProvider, NoDeliveries
from alerts.delivery.channels.config import DeliverySettings
from alerts.delivery.channels.url_guard import AllowList
from alerts.delivery.hub import AlertHub, SlowConsumer, Subscriber
from alerts.delivery.outbox import Outbox
from alerts.engine.processor import AlertProcessor, DecodedTicks, now_ms
from alerts.errors import (
    AbortedError,
    NotFoundError,
    OutOfRangeError,
    ResourceExhaustedError,
    UnavailableError,
)
from alerts.rules.compiler import rule_timeframe
from alerts.rules.warnings import rule_warnings
from alerts.storage import decode_page_token, encode_page_token
from alerts.storage.base import Store
from alerts.storage.records import AlertRecord, RuleRecord, SubscriptionRecord
from alerts.v1 import alerts_pb2, channels_pb2, rules_pb2, service_pb2, service_pb2_grpc

SUBSCRIPTION_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
SOURCE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
DEFAULT_HEARTBEAT_S = 15.0
MIN_HEARTBEAT_S = 0.05
MAX_HEARTBEAT_S = 300.0
DEFAULT_CLOSED_BARS = 10        # GetSymbolSnapshot's closed bars per timeframe when unset
DEFAULT_ALERT_PAGE = 100        # ListAlerts' page size when unset


class AlertService(ChannelMethods, service_pb2_grpc.AlertServiceServicer):
    def __init__(self, store: Store, processor: AlertProcessor, hub: AlertHub, *,
                 owner: str = "local", webhook_allow: AllowList | None = None,
                 secret_overlap_ms: int = 86_400_000,
                 channel_stats: ChannelStatsProvider | None = None,
                 delivery_settings: DeliverySettings | None = None,
                 outbox: Outbox | None = None,
                 history_bars: Callable[[str], int] = lambda symbol: 0) -> None:
        self.store = store
        self.history_bars = history_bars
        self.outbox = outbox
        #: told (owner, channel id) when a channel is changed or deleted here; the
        #: outbox's worker looks again at once (a resumed channel sends what waits)
        self.channel_listeners: list[Callable[[str, str], None]] = (
            [outbox.wake] if outbox is not None else [])
        self.processor = processor
        self.hub = hub
        self.owner = owner
        self.webhook_allow = webhook_allow or AllowList()
        self.secret_overlap_ms = secret_overlap_ms
        self.channel_stats = channel_stats or NoDeliveries()
        self.delivery_settings = delivery_settings or DeliverySettings()
        self.stopping = asyncio.Event()
        self._open_subscriptions: dict[tuple[str, str], tuple[asyncio.Event, Subscriber]] = {}
        self._live = _LiveMessages()

    def _owner(self, context: grpc.aio.ServicerContext) -> str:
        return self.owner

    def _heartbeat(self, last_id: int | None = None) -> service_pb2.Heartbeat:
        """A heartbeat; during a replay ``last_id`` is how far it went, not the newest id."""
        return service_pb2.Heartbeat(
            last_committed_id=self.hub.last_id if last_id is None else last_id,
            server_time=convert.ts(now_ms()))

    @staticmethod
    def _ack(last_committed: int, heartbeat_s: float) -> service_pb2.StreamAck:
        out = service_pb2.StreamAck(last_committed_id=last_committed,
                                    server_time=convert.ts(now_ms()))
        out.heartbeat_interval.FromMilliseconds(round(heartbeat_s * 1000))
        return out

    # rules ------------------------------------------------------------------
    async def _fields(self, msg: rules_pb2.Rule, owner: str) -> convert.RuleFields:
        """The rule's fields, checked, with its channels as names of the owner's channels."""
        fields = convert.rule_fields_from_proto(msg)
        return replace(fields, channels=await self.rule_channels(owner, fields.channels))

    def _record(self, fields: convert.RuleFields, *, rule_id: str, owner: str, now: int,
                base: RuleRecord | None = None) -> RuleRecord:
        return RuleRecord(
            rule_id=rule_id, owner=owner, display_name=fields.display_name,
            symbol=self.processor.qualify(fields.symbol), condition_text=fields.condition_text,
            mode=fields.mode, timeframe=fields.timeframe, cooldown_ms=fields.cooldown_ms,
            expire_time_ms=fields.expire_time_ms, max_fires=fields.max_fires,
            hysteresis=fields.hysteresis, hold_for_ms=fields.hold_for_ms,
            message_template=fields.message_template, channels=fields.channels,
            labels=fields.labels, paused=fields.paused,
            create_time_ms=base.create_time_ms if base else now, update_time_ms=now,
            etag=base.etag if base else "", revision=base.revision if base else 0,
        )

    def _to_proto(self, rec: RuleRecord) -> rules_pb2.Rule:
        tree_tf = rule_timeframe(convert.parse_condition(rec.condition_text), rec.timeframe)
        return convert.rule_to_proto(rec, self.processor.rule_state(rec.rule_id), tree_tf)

    async def CreateRule(self, request: service_pb2.CreateRuleRequest,
                         context: grpc.aio.ServicerContext) -> object:
        rule_id = (convert.check_rule_id(request.rule_id) if request.rule_id
                   else "r" + secrets.token_hex(8))
        return await self._create(self._owner(context), rule_id, request.rule, context,
                                  request_id=request.request_id,
                                  validate_only=request.validate_only)

    async def _create(self, owner: str, rule_id: str, rule: rules_pb2.Rule,
                      context: grpc.aio.ServicerContext, *, request_id: str = "",
                      validate_only: bool = False) -> rules_pb2.Rule:
        fields = await self._fields(rule, owner)
        rec = self._record(fields, rule_id=rule_id, owner=owner, now=now_ms())
        self.processor.compile(rec)            # every check the engine makes, before storing
        if validate_only:
            return self._to_proto(rec)
        async def store_it() -> RuleRecord:
            _check_deadline(context)
            return await self.store.create_rule(rec, request_id or None)

        # a repeated request_id returns the original rule, which the engine already runs:
        # without reset its trigger state is left as it is
        stored = await self.processor.change_rule(store_it, reset=False)
        assert stored is not None
        return self._to_proto(stored)

    async def GetRule(self, request: service_pb2.GetRuleRequest,
                      context: grpc.aio.ServicerContext) -> object:
        rec = await self.store.get_rule(self._owner(context), convert.rule_id_of(request.name))
        return self._to_proto(rec)

    async def ListRules(self, request: service_pb2.ListRulesRequest,
                        context: grpc.aio.ServicerContext) -> service_pb2.ListRulesResponse:
        """Filter, order and page in memory over the owner's rules (the store narrows by
        symbol and paused where the filter allows), so ``total_size`` is exact and any
        order pages by key: rules created or deleted meanwhile never shift a page."""
        query = parse_rule_query(request.filter, request.order_by, self.processor.qualify)
        size = _page_size(request.page_size)
        owner = self._owner(context)
        if not request.filter.strip() and query.order == DEFAULT_ORDER:
            # every rule in the store's own order: its pages, and a count
            recs, store_token = await self.store.list_rules(
                owner, page_size=size, page_token=request.page_token or None)
            return service_pb2.ListRulesResponse(
                rules=[self._to_proto(r) for r in recs], next_page_token=store_token or "",
                total_size=await self.store.count_rules(owner))
        scope = [owner, request.filter, request.order_by]
        after = None if not request.page_token else decode_page_token(
            request.page_token, scope, query.valid_key)
        matching: list[rules_pb2.Rule] = []
        token: str | None = None
        while True:
            recs, token = await self.store.list_rules(
                owner, page_size=MAX_PAGE_SIZE, page_token=token, symbol=query.symbol,
                paused=query.paused)
            matching += [p for p in map(self._to_proto, recs) if query.accepts(p)]
            if token is None:
                break
        ordered = query.sort(matching)
        start = 0 if after is None else next(
            (i for i, r in enumerate(ordered) if query.compare(query.key(r), after) > 0),
            len(ordered))
        page = ordered[start:start + size]
        more = start + size < len(ordered)
        return service_pb2.ListRulesResponse(
            rules=page, total_size=len(ordered),
            next_page_token=encode_page_token(scope, *query.key(page[-1])) if more else "")

    async def UpdateRule(self, request: service_pb2.UpdateRuleRequest,
                         context: grpc.aio.ServicerContext) -> object:
        owner = self._owner(context)
        rule_id = convert.rule_id_of(request.rule.name, "rule.name")
        try:
            current = await self.store.get_rule(owner, rule_id)
        except NotFoundError:
            if not request.allow_missing:
                raise
            convert.check_rule_id(rule_id, "rule.name")
            return await self._create(owner, rule_id, request.rule, context,
                                      validate_only=request.validate_only)
        paths = list(request.update_mask.paths)
        if not paths:   # every field set in the request
            paths = [f.name for f, _ in request.rule.ListFields() if f.name in _UPDATABLE]
        merged = convert.rules_pb2.Rule()
        if paths == ["*"]:
            merged.CopyFrom(request.rule)
        else:
            for path in paths:
                if path not in _UPDATABLE:
                    raise convert.invalid("update_mask", f"{path!r} cannot be updated")
            merged.CopyFrom(self._to_proto(current))
            merged.ClearField("condition")            # the stored text is the source of truth
            if "condition" in paths:
                merged.ClearField("condition_text")
            mask = type(request.update_mask)(paths=paths)
            mask.MergeMessage(request.rule, merged, replace_message_field=True,
                              replace_repeated_field=True)
        fields = await self._fields(merged, owner)
        rec = self._record(fields, rule_id=rule_id, owner=owner, now=now_ms(), base=current)
        self.processor.compile(rec)
        if request.validate_only:
            return self._to_proto(rec)
        reset = (rec.condition_text, rec.symbol, rec.timeframe, rec.mode) != (
            current.condition_text, current.symbol, current.timeframe, current.mode)

        async def store_it() -> RuleRecord:
            _check_deadline(context)
            return await self.store.update_rule(rec, expected_etag=request.rule.etag or None)

        stored = await self.processor.change_rule(store_it, reset=reset)
        assert stored is not None
        return self._to_proto(stored)

    async def DeleteRule(self, request: service_pb2.DeleteRuleRequest,
                         context: grpc.aio.ServicerContext) -> empty_pb2.Empty:
        owner = self._owner(context)
        rule_id = convert.rule_id_of(request.name)
        try:
            current = await self.store.get_rule(owner, rule_id)
        except NotFoundError:
            if request.allow_missing:
                return empty_pb2.Empty()
            raise
        if request.etag and request.etag != current.etag:
            raise AbortedError("the rule changed since it was read (etag mismatch)",
                               reason="ETAG_MISMATCH")
        async def delete_it() -> None:
            _check_deadline(context)
            await self.store.delete_rule(owner, rule_id)

        await self.processor.delete_rule(rule_id, delete_it)
        return empty_pb2.Empty()

    async def ValidateRule(self, request: service_pb2.ValidateRuleRequest,
                           context: grpc.aio.ServicerContext) -> service_pb2.ValidateRuleResponse:
        owner = self._owner(context)
        fields = await self._fields(request.rule, owner)
        rec = self._record(fields, rule_id="validate", owner=owner, now=now_ms())
        compiled = self.processor.compile(rec)
        warnings = rule_warnings(
            fields.condition, trigger_mode=fields.mode, timeframe=fields.timeframe,
            cooldown_ms=fields.cooldown_ms, history_bars=self.history_bars(rec.symbol),
            condition_text=not request.rule.HasField("condition"))
        return service_pb2.ValidateRuleResponse(
            condition=condition_to_proto(fields.condition),
            timeframe=timeframe_to_proto(compiled.timeframe),
            canonical_text=fields.condition_text,
            warnings=[service_pb2.RuleWarning(reason=w.reason, message=w.message, field=w.field)
                      for w in warnings])

    # alerts -----------------------------------------------------------------
    def _alert_filter(self, flt: service_pb2.AlertFilter) -> object:
        rules = {convert.rule_id_of(n, "filter.rules") for n in flt.rules}
        symbols = {self.processor.qualify(s) for s in flt.symbols}
        kinds = {convert.KIND_NAMES[k] for k in flt.kinds if k in convert.KIND_NAMES}

        def accepts(rec: AlertRecord) -> bool:
            return ((not rules or (rec.kind == "RULE" and rec.rule_id in rules))
                    and (not symbols or rec.symbol in symbols)
                    and (not kinds or rec.kind in kinds))
        return accepts

    async def ListAlerts(self, request: service_pb2.ListAlertsRequest,
                         context: grpc.aio.ServicerContext) -> service_pb2.ListAlertsResponse:
        size = _page_size(request.page_size, DEFAULT_ALERT_PAGE)
        order = " ".join(request.order_by.split())
        if order not in ("", "id", "id asc", "id desc"):
            raise convert.invalid("order_by", "alerts are listed by \"id\" (oldest first) or "
                                              "\"id desc\" (newest first)")
        descending = order == "id desc"
        prefix = "before-" if descending else "after-"
        cursor: int | None = None
        if request.page_token:
            try:
                if not request.page_token.startswith(prefix):
                    raise ValueError(request.page_token)
                cursor = int(request.page_token.removeprefix(prefix))
            except ValueError:
                raise convert.invalid("page_token", "not a token this server issued for "
                                                    "this order") from None
        accepts = self._alert_filter(request.filter)
        since = convert.ms_of(request.start_time) if request.HasField("start_time") else None
        until = convert.ms_of(request.end_time) if request.HasField("end_time") else None
        owner = self._owner(context)

        async def read(limit: int) -> list[AlertRecord]:
            if descending:
                return await self.store.list_alerts(owner, before_id=cursor, descending=True,
                                                    limit=limit, since_ms=since, until_ms=until)
            return await self.store.list_alerts(owner, after_id=cursor or 0, limit=limit,
                                                since_ms=since, until_ms=until)
        out: list[AlertRecord] = []
        while len(out) < size:
            batch = await read(size)
            if not batch:
                break
            for rec in batch:
                cursor = rec.alert_id
                if accepts(rec):  # type: ignore[operator]
                    out.append(rec)
                    if len(out) == size:
                        break
        more = len(out) == size and bool(await read(1))
        return service_pb2.ListAlertsResponse(
            alerts=[convert.alert_to_proto(r) for r in out],
            next_page_token=f"{prefix}{cursor}" if more else "")

    async def StreamAlerts(self, request: service_pb2.StreamAlertsRequest,
                           context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[service_pb2.StreamAlertsResponse]:
        owner = self._owner(context)
        accepts = self._alert_filter(request.filter)
        heartbeat = DEFAULT_HEARTBEAT_S
        if request.HasField("heartbeat_interval"):
            heartbeat = request.heartbeat_interval.ToMilliseconds() / 1000
            if not MIN_HEARTBEAT_S <= heartbeat <= MAX_HEARTBEAT_S:
                raise convert.invalid("heartbeat_interval", "from 50 ms to 5 min")
        sub = self.hub.subscribe(owner, accepts)  # type: ignore[arg-type]
        try:
            last_committed = self.hub.last_id
            yield service_pb2.StreamAlertsResponse(ack=self._ack(last_committed, heartbeat))
            last = last_committed
            if request.HasField("resume_after"):
                last = await self._check_resume(request.resume_after, "resume_after")
                beat = _Beat(heartbeat)
                while True:
                    batch = await self.store.list_alerts(owner, after_id=last, limit=500)
                    if not batch:
                        break
                    for rec in batch:
                        last = rec.alert_id
                        if accepts(rec):  # type: ignore[operator]
                            beat.sent()
                            yield service_pb2.StreamAlertsResponse(
                                alert=convert.alert_to_proto(rec))
                    if beat.due():
                        yield service_pb2.StreamAlertsResponse(heartbeat=self._heartbeat(last))
            yield service_pb2.StreamAlertsResponse(caught_up=service_pb2.CaughtUp(last_id=last))
            while True:
                try:
                    live = await sub.next(heartbeat)
                except SlowConsumer:
                    if self.stopping.is_set():
                        raise UnavailableError("the server is shutting down") from None
                    raise ResourceExhaustedError(
                        f"this stream fell {self.hub.queue_size} alerts behind and was ended; "
                        f"resume after alert {last}", reason="SLOW_CONSUMER",
                        metadata={"resume_after": str(last)}) from None
                if live is None:
                    yield service_pb2.StreamAlertsResponse(heartbeat=self._heartbeat())
                elif live.alert_id > last:
                    last = live.alert_id
                    yield self._live.response(service_pb2.StreamAlertsResponse, live)
        finally:
            self.hub.unsubscribe(sub)

    async def Subscribe(self, request_iterator: AsyncIterator[service_pb2.SubscribeRequest],
                        context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[service_pb2.SubscribeResponse]:
        owner = self._owner(context)
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            raise convert.invalid("open", "the stream closed before opening") from None
        if first.WhichOneof("payload") != "open":
            raise convert.invalid("open", "the first message must open the subscription")
        op = first.open
        sid = op.subscription_id
        if not SUBSCRIPTION_ID.fullmatch(sid):
            raise convert.invalid("open.subscription_id", "[a-z][a-z0-9-]{0,62}")
        max_unacked = op.max_unacked or 1000
        if not 1 <= max_unacked <= 10_000:
            raise convert.invalid("open.max_unacked", "from 1 to 10000")
        heartbeat = DEFAULT_HEARTBEAT_S
        if op.HasField("heartbeat_interval"):
            heartbeat = op.heartbeat_interval.ToMilliseconds() / 1000
            if not 1.0 <= heartbeat <= 300.0:
                raise convert.invalid("open.heartbeat_interval", "from 1 s to 5 min")
        stored = await self.store.get_subscription(owner, sid)
        flt = op.filter
        if not op.HasField("filter") and stored is not None:
            flt = _filter_of(stored.filters)     # unset: the one stored with it
        accepts = self._alert_filter(flt)
        filters = _filter_record(flt)
        if op.HasField("resume_after"):
            start = await self._check_resume(op.resume_after, "open.resume_after")
        else:
            start = stored.acked_id if stored else self.hub.last_id
        state = SubscriptionRecord(subscription_id=sid, owner=owner, acked_id=start,
                                   filters=filters, max_unacked=max_unacked,
                                   update_time_ms=now_ms())
        await self.store.save_subscription(state)
        # one stream per subscription: a newer one ends the older
        key = (owner, sid)
        if key in self._open_subscriptions:
            older, older_sub = self._open_subscriptions[key]
            older.set()
            older_sub.queue.put_nowait(None)     # wakes it at once
        superseded = asyncio.Event()
        sub = self.hub.subscribe(owner, accepts)  # type: ignore[arg-type]
        self._open_subscriptions[key] = (superseded, sub)
        acked = start
        unacked: list[int] = []
        acks = asyncio.Event()

        async def read_acks() -> None:
            nonlocal acked
            async for msg in request_iterator:
                if msg.WhichOneof("payload") == "ack" and msg.ack.alert_id > acked:
                    acked = msg.ack.alert_id
                    await self.store.save_subscription(SubscriptionRecord(
                        subscription_id=sid, owner=owner, acked_id=acked, filters=filters,
                        max_unacked=max_unacked, update_time_ms=now_ms()))
                    acks.set()

        reader = asyncio.create_task(read_acks())

        def info(paused: bool) -> service_pb2.SubscribeResponse:
            return service_pb2.SubscribeResponse(subscription=service_pb2.SubscriptionInfo(
                subscription_id=sid, acked_id=acked, unacked_count=len(unacked),
                max_unacked=max_unacked, paused=paused))

        async def room(through: int) -> AsyncIterator[service_pb2.SubscribeResponse]:
            """Wait (with heartbeats) until fewer than max_unacked alerts are unacknowledged.

            ``through``: every alert up to this id was sent or did not match."""
            paused = False
            while True:
                acks.clear()        # then check: an ack arriving after this wakes the wait
                unacked[:] = [i for i in unacked if i > acked]
                if len(unacked) < max_unacked:
                    break
                if not paused:
                    paused = True
                    yield info(True)
                    continue
                try:
                    await asyncio.wait_for(acks.wait(), heartbeat)
                except TimeoutError:
                    yield service_pb2.SubscribeResponse(heartbeat=self._heartbeat(through))
                if superseded.is_set():
                    raise AbortedError("a newer stream opened this subscription",
                                       reason="SUBSCRIPTION_REOPENED")
            if paused:
                yield info(False)

        try:
            yield service_pb2.SubscribeResponse(ack=self._ack(self.hub.last_id, heartbeat))
            yield info(False)
            last = start
            beat = _Beat(heartbeat)
            while True:
                batch = await self.store.list_alerts(owner, after_id=last, limit=500)
                if not batch:
                    break
                for rec in batch:
                    last = rec.alert_id
                    if accepts(rec):  # type: ignore[operator]
                        async for msg in room(rec.alert_id - 1):
                            yield msg
                        unacked.append(rec.alert_id)
                        beat.sent()
                        yield service_pb2.SubscribeResponse(alert=convert.alert_to_proto(rec))
                if beat.due():
                    yield service_pb2.SubscribeResponse(heartbeat=self._heartbeat(last))
            yield service_pb2.SubscribeResponse(caught_up=service_pb2.CaughtUp(last_id=last))
            while True:
                if superseded.is_set():
                    raise AbortedError("a newer stream opened this subscription",
                                       reason="SUBSCRIPTION_REOPENED")
                async for msg in room(last):
                    yield msg
                try:
                    live = await sub.next(heartbeat)
                except SlowConsumer:
                    if self.stopping.is_set():
                        raise UnavailableError("the server is shutting down") from None
                    if superseded.is_set():
                        raise AbortedError("a newer stream opened this subscription",
                                           reason="SUBSCRIPTION_REOPENED") from None
                    raise ResourceExhaustedError(
                        f"this subscription fell {self.hub.queue_size} alerts behind; reopen it "
                        f"to resume after alert {acked}", reason="SLOW_CONSUMER",
                        metadata={"resume_after": str(acked)}) from None
                if live is None:
                    yield service_pb2.SubscribeResponse(heartbeat=self._heartbeat())
                elif live.alert_id > last:
                    last = live.alert_id
                    unacked.append(live.alert_id)
                    yield self._live.response(service_pb2.SubscribeResponse, live)
        finally:
            reader.cancel()
            self.hub.unsubscribe(sub)
            if self._open_subscriptions.get(key, (None,))[0] is superseded:
                del self._open_subscriptions[key]

    async def _check_resume(self, after: int, field: str) -> int:
        if after > self.hub.last_id:
            raise convert.invalid(field, f"alert id {after} was never issued")
        first = await self.store.first_alert_id()
        if first is not None and after < first - 1:
            raise OutOfRangeError(f"alerts after {after} were pruned; the oldest kept is {first}",
                                  reason="ALERTS_PRUNED")
        return after

    async def GetSymbolSnapshot(self, request: service_pb2.GetSymbolSnapshotRequest,
                                context: grpc.aio.ServicerContext
                                ) -> service_pb2.GetSymbolSnapshotResponse:
        if not request.symbol.strip():
            raise convert.invalid("symbol", "a symbol is required")
        symbol = self.processor.qualify(request.symbol.strip())
        limit = (request.closed_bar_limit if request.HasField("closed_bar_limit")
                 else DEFAULT_CLOSED_BARS)
        if limit > 1000:
            raise convert.invalid("closed_bar_limit", "at most 1000")
        snap = await self.processor.snapshot(symbol, limit)
        if snap is None:
            raise NotFoundError(f"no data or rules for {symbol}", reason="SYMBOL_NOT_FOUND")
        out = service_pb2.GetSymbolSnapshotResponse(symbol=symbol)
        if snap.last_time_ms is not None:
            out.price = snap.price
            out.last_tick_time.CopyFrom(convert.ts(snap.last_time_ms))
        for b in snap.bars:
            out.bars.add(symbol=symbol, timeframe=timeframe_to_proto(b.timeframe),
                         open_time=convert.ts(b.open_time_ms), open=b.open, high=b.high,
                         low=b.low, close=b.close, volume=b.volume,
                         quote_volume=b.quote_volume, trade_count=b.trades, closed=b.closed)
        for ind in snap.indicators:
            value_defined = ind.value == ind.value
            intrabar_defined = ind.intrabar == ind.intrabar
            out.indicators.add(
                label=ind.label, series=series_to_proto(ind.series),
                timeframe=timeframe_to_proto(ind.series.timeframe),
                value=ind.value if value_defined else 0.0, defined=value_defined,
                intrabar_value=ind.intrabar if intrabar_defined else 0.0,
                intrabar_defined=intrabar_defined)
        return out

    # channels: the outbox and paused WebSocket streams look again at once ------
    async def UpdateChannel(self, request: service_pb2.UpdateChannelRequest,
                            context: grpc.aio.ServicerContext) -> channels_pb2.Channel:
        out = await super().UpdateChannel(request, context)
        if not request.validate_only:   # resumed: send what waits
            self._channel_changed(self._owner(context), channel_id_of(request.channel.name))
        return out

    async def DeleteChannel(self, request: service_pb2.DeleteChannelRequest,
                            context: grpc.aio.ServicerContext) -> empty_pb2.Empty:
        out = await super().DeleteChannel(request, context)
        # its pending deliveries become dead letters; its WebSocket streams end
        self._channel_changed(self._owner(context), channel_id_of(request.name))
        return out

    def _channel_changed(self, owner: str, channel_id: str) -> None:
        for listener in self.channel_listeners:
            listener(owner, channel_id)

    # deliveries -------------------------------------------------------------
    async def _delivery_channel(self, parent: str, context: grpc.aio.ServicerContext
                                ) -> tuple[str, str]:
        """(owner, channel id) of an existing channel of the caller; else NOT_FOUND."""
        owner = self._owner(context)
        channel_id = channel_id_of(parent, "parent")
        await self.store.get_channel(owner, channel_id)
        return owner, channel_id

    async def ListDeliveries(self, request: service_pb2.ListDeliveriesRequest,
                             context: grpc.aio.ServicerContext
                             ) -> service_pb2.ListDeliveriesResponse:
        owner, channel_id = await self._delivery_channel(request.parent, context)
        page, token = await self.store.list_deliveries(
            owner, channel_id, state=delivery_convert.state_of(request.state),
            page_size=_page_size(request.page_size), page_token=request.page_token or None)
        return service_pb2.ListDeliveriesResponse(
            deliveries=[delivery_convert.delivery_to_proto(d) for d in page],
            next_page_token=token or "")

    async def RedeliverDeadLetters(self, request: service_pb2.RedeliverDeadLettersRequest,
                                   context: grpc.aio.ServicerContext
                                   ) -> service_pb2.RedeliverDeadLettersResponse:
        owner, channel_id = await self._delivery_channel(request.parent, context)
        if self.outbox is None:
            raise UnavailableError("delivery is not running in this server")
        moved = await self.outbox.redeliver(owner, channel_id,
                                            list(request.alert_ids) or None)
        return service_pb2.RedeliverDeadLettersResponse(redelivered_count=moved)

    # ticks ------------------------------------------------------------------
    async def PublishTicks(self, request_iterator: AsyncIterator[service_pb2.PublishTicksRequest],
                           context: grpc.aio.ServicerContext
                           ) -> service_pb2.PublishTicksResponse:
        accepted = late = duplicate = 0
        watermark: int | None = None
        source: str | None = None
        messages = aiter(request_iterator)

        async def read_ahead() -> tuple[service_pb2.PublishTicksRequest, DecodedTicks] | None:
            req = await anext(messages, None)
            # Re-serialized by the library (C, canonical) and read into columns in C: no
            # Python object per tick, as reading the parsed message field by field made.
            return None if req is None else (req, self.processor.decode(req.SerializeToString()))

        # The next message is received and decoded while this one runs; they still run
        # one after another, and a bad one is refused after those before it committed.
        ahead = asyncio.ensure_future(read_ahead())
        try:
            while (got := await ahead) is not None:
                req, ticks = got
                ahead = asyncio.ensure_future(read_ahead())
                source = _stream_source(req.source, source)
                result = await self.processor.publish(
                    source, ticks,
                    watermark_ms=convert.ms_of(req.watermark) if req.HasField("watermark") else None,
                    fill_gaps=req.fill_gaps if req.HasField("fill_gaps") else True)
                accepted += result.accepted
                late += result.late
                duplicate += result.duplicate
                watermark = result.watermark_ms
        finally:
            _discard(ahead)
        response = service_pb2.PublishTicksResponse(
            accepted_count=accepted, late_count=late, duplicate_count=duplicate)
        if watermark is not None:
            response.watermark.CopyFrom(convert.ts(watermark))
        return response


_UPDATABLE = frozenset({
    "display_name", "symbol", "condition_text", "condition", "trigger_mode", "timeframe",
    "cooldown", "expire_time", "max_fires", "hysteresis", "hold_for", "message_template",
    "channels", "labels", "paused",
})


def _filter_record(flt: service_pb2.AlertFilter) -> dict[str, str]:
    """An AlertFilter as stored with a subscription (each list as JSON, kinds by name)."""
    return {"rules": json.dumps(list(flt.rules)), "symbols": json.dumps(list(flt.symbols)),
            "kinds": json.dumps([alerts_pb2.AlertKind.Name(k) for k in flt.kinds])}


def _filter_of(stored: dict[str, str]) -> service_pb2.AlertFilter:
    """The AlertFilter stored with a subscription (none stored: every alert)."""
    def values(key: str) -> list[str]:
        return list(json.loads(stored.get(key, "[]")))
    return service_pb2.AlertFilter(rules=values("rules"), symbols=values("symbols"),
                                   kinds=values("kinds"))


def _stream_source(named: str, current: str | None) -> str:
    """The source a PublishTicks stream publishes for: its first message names it."""
    if current is None:
        if not SOURCE_NAME.fullmatch(named):
            raise convert.invalid("source", "required in a stream's first message, "
                                            "matching [a-z][a-z0-9_-]{0,62}")
        return named
    if named and named != current:
        raise convert.invalid("source", f"a stream publishes for one source: {current!r}, "
                                        "named in its first message")
    return current


_R = TypeVar("_R", service_pb2.StreamAlertsResponse, service_pb2.SubscribeResponse)


class _LiveMessages:
    """Each live alert's stream messages, built once for all the streams that send it.

    Streams only read them (gRPC serialises each send), so one message object
    serves every subscriber; the newest ``size`` alerts are kept.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._by_kind: dict[type, OrderedDict[int, Any]] = {}

    def response(self, kind: type[_R], rec: AlertRecord) -> _R:
        """The ``kind`` message (StreamAlertsResponse, SubscribeResponse) carrying ``rec``."""
        cache = self._by_kind.setdefault(kind, OrderedDict())
        msg = cache.get(rec.alert_id)
        if msg is None:
            msg = kind(alert=self._alert(rec))
            cache[rec.alert_id] = msg
            if len(cache) > self.size:
                cache.popitem(last=False)
        return cast(_R, msg)

    def _alert(self, rec: AlertRecord) -> alerts_pb2.Alert:
        for cache in self._by_kind.values():
            if (built := cache.get(rec.alert_id)) is not None:
                return cast(alerts_pb2.Alert, built.alert)
        return convert.alert_to_proto(rec)


class _Beat:
    """When a replay that sends little owes its client a heartbeat."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.last_s = clock()

    def sent(self) -> None:
        self.last_s = self.clock()

    def due(self) -> bool:
        if self.clock() - self.last_s < self.interval_s:
            return False
        self.sent()
        return True


def _discard(task: asyncio.Future[Any]) -> None:
    """Stop a read-ahead no longer wanted; its error, if it failed, is dropped with it."""
    if task.done():
        if not task.cancelled():
            task.exception()
    else:
        task.cancel()
