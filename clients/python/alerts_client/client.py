"""``AlertsClient``: the alerts.v1 AlertService for Python bots, with retries and resumable streams.

One client owns one gRPC channel. Unary calls get a deadline of ``timeout``
seconds per attempt and are retried on UNAVAILABLE (and on RESOURCE_EXHAUSTED
that carries RetryInfo) up to ``max_attempts`` times with exponential backoff
and full jitter. Retrying is safe: CreateRule sends a ``request_id`` (a fresh
UUID unless given), so a repeat returns the rule created the first time; a
retried DeleteRule accepts a rule that is already gone. ``alerts()`` follows
StreamAlerts forever and resumes after the last alert it yielded.

Failures raise ``AlertsError`` (code, reason, field violations, retry delay).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from alerts.v1 import alerts_pb2, channels_pb2, rules_pb2, service_pb2, service_pb2_grpc
from alerts_client import convert
from alerts_client.backoff import Backoff
from alerts_client.errors import AlertsError
from alerts_client.stream import StreamOptions, follow_alerts

T = TypeVar("T")


class AlertsClient:
    """A connection to an alerts service at ``target`` (``host:port``)."""

    def __init__(self, target: str, *, timeout: float = 10, max_attempts: int = 5,
                 initial_backoff: float = 0.1, max_backoff: float = 5.0,
                 channel_options: Sequence[tuple[str, Any]] = ()) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.target = target
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = Backoff(initial_backoff, max_backoff)
        options = [
            # reconnect the channel about as eagerly as we retry (the defaults wait 1 s .. 120 s)
            ("grpc.initial_reconnect_backoff_ms", max(1, int(initial_backoff * 1000))),
            ("grpc.max_reconnect_backoff_ms", max(1, int(max_backoff * 1000))),
            *channel_options,
        ]
        self.channel = grpc.insecure_channel(target, options=options)
        self.stub = service_pb2_grpc.AlertServiceStub(self.channel)
        self._sleep: Callable[[float], object] = time.sleep

    # lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # retries -----------------------------------------------------------------
    def _retrying(self, call: Callable[[int], T]) -> T:
        """Run ``call(attempt)``; retry what may succeed later, raise the rest as AlertsError."""
        for attempt in range(self.max_attempts):
            try:
                return call(attempt)
            except grpc.RpcError as exc:
                err = AlertsError.from_rpc_error(exc)
                retryable = err.code == grpc.StatusCode.UNAVAILABLE or (
                    err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.retry_delay is not None)
                if not retryable or attempt + 1 >= self.max_attempts:
                    raise err from None
                self._sleep(self.backoff.delay(attempt, err.retry_delay))
        raise AssertionError("unreachable")

    def _unary(self, method: Any, request: Any) -> Any:
        return self._retrying(lambda _attempt: method(request, timeout=self.timeout))

    # rules -------------------------------------------------------------------
    def create_rule(self, symbol: str, condition: str, *, mode: str | int = "ON_TRUE",
                    timeframe: str | int | None = None, rule_id: str | None = None,
                    request_id: str | None = None, cooldown: float | None = None,
                    max_fires: int = 0, display_name: str = "",
                    labels: dict[str, str] | None = None, message_template: str = "",
                    expire_time: int | datetime | None = None,
                    channels: Sequence[str] = ()) -> rules_pb2.Rule:
        """Create a rule; ``cooldown`` in seconds (None: the server's default for the mode);
        ``channels`` by id or name (``hook``, ``channels/hook``)."""
        rule = rules_pb2.Rule()
        fields: dict[str, Any] = {"symbol": symbol, "condition": condition, "mode": mode,
                                  "max_fires": max_fires, "display_name": display_name,
                                  "message_template": message_template}
        for key, value in (("timeframe", timeframe), ("cooldown", cooldown),
                           ("labels", labels), ("expire_time", expire_time),
                           ("channels", list(channels) or None)):
            if value is not None:
                fields[key] = value
        convert.fill_rule(rule, fields)
        request = service_pb2.CreateRuleRequest(rule=rule, rule_id=rule_id or "",
                                                request_id=request_id or str(uuid.uuid4()))
        return self._unary(self.stub.CreateRule, request)

    def get_rule(self, rule_id: str) -> rules_pb2.Rule:
        """One rule, by id (``my-rule``) or name (``rules/my-rule``)."""
        request = service_pb2.GetRuleRequest(name=convert.rule_name(rule_id))
        return self._unary(self.stub.GetRule, request)

    def list_rules(self, *, filter: str = "", order_by: str = "",
                   page_size: int = 0) -> Iterator[rules_pb2.Rule]:
        """Every rule matching ``filter``, fetching page after page."""
        token = ""
        while True:
            page = self._unary(self.stub.ListRules, service_pb2.ListRulesRequest(
                page_size=page_size, page_token=token, filter=filter, order_by=order_by))
            yield from page.rules
            token = page.next_page_token
            if not token:
                return

    def update_rule(self, rule_id: str, *, etag: str = "", **fields: Any) -> rules_pb2.Rule:
        """Change the given fields only (``display_name="x", paused=True, condition=...``).

        Keyword names are those of ``create_rule`` plus ``symbol``, ``hold_for``,
        ``hysteresis`` and ``paused``; ``None`` resets a field to the server's default.
        """
        if not fields:
            raise TypeError("update_rule needs at least one field to change")
        rule = rules_pb2.Rule(name=convert.rule_name(rule_id), etag=etag)
        paths = convert.fill_rule(rule, fields)
        request = service_pb2.UpdateRuleRequest(
            rule=rule, update_mask=field_mask_pb2.FieldMask(paths=paths))
        return self._unary(self.stub.UpdateRule, request)

    def delete_rule(self, rule_id: str, *, etag: str = "", allow_missing: bool = False) -> None:
        """Delete a rule. A retry after UNAVAILABLE accepts that the first attempt deleted it."""
        name = convert.rule_name(rule_id)

        def attempt(n: int) -> None:
            self.stub.DeleteRule(service_pb2.DeleteRuleRequest(
                name=name, etag=etag, allow_missing=allow_missing or n > 0), timeout=self.timeout)
        self._retrying(attempt)

    def validate(self, symbol: str, condition: str, *, mode: str | int = "ON_TRUE",
                 timeframe: str | int | None = None) -> service_pb2.ValidateRuleResponse:
        """Parse and check a rule without storing it (INVALID_ARGUMENT says where it is wrong)."""
        rule = rules_pb2.Rule()
        fields: dict[str, Any] = {"symbol": symbol, "condition": condition, "mode": mode}
        if timeframe is not None:
            fields["timeframe"] = timeframe
        convert.fill_rule(rule, fields)
        request = service_pb2.ValidateRuleRequest(rule=rule)
        return self._unary(self.stub.ValidateRule, request)

    # channels ----------------------------------------------------------------
    def create_channel(self, channel: channels_pb2.Channel, *, channel_id: str | None = None,
                       request_id: str | None = None) -> channels_pb2.Channel:
        """Create a channel (build it with ``alerts.v1.channels_pb2``). A webhook created
        without a signing secret comes back with the generated one, the only time it is
        shown; a retry (same ``request_id``) returns the same response."""
        request = service_pb2.CreateChannelRequest(
            channel=channel, channel_id=channel_id or "",
            request_id=request_id or str(uuid.uuid4()))
        return self._unary(self.stub.CreateChannel, request)

    def get_channel(self, channel_id: str) -> channels_pb2.Channel:
        """One channel, by id (``hook``) or name (``channels/hook``); secrets are never sent."""
        request = service_pb2.GetChannelRequest(name=convert.channel_name(channel_id))
        return self._unary(self.stub.GetChannel, request)

    def list_channels(self, *, filter: str = "",
                      page_size: int = 0) -> Iterator[channels_pb2.Channel]:
        """Every channel matching ``filter`` (``state = FAILING`` ...), page after page."""
        token = ""
        while True:
            page = self._unary(self.stub.ListChannels, service_pb2.ListChannelsRequest(
                page_size=page_size, page_token=token, filter=filter))
            yield from page.channels
            token = page.next_page_token
            if not token:
                return

    def update_channel(self, channel: channels_pb2.Channel,
                       paths: Sequence[str]) -> channels_pb2.Channel:
        """Change the fields ``paths`` names (``["display_name", "webhook.signing_secret"]``)
        of the channel ``channel.name`` names to their values in ``channel``; set
        ``channel.etag`` to refuse the change if the channel changed meanwhile."""
        request = service_pb2.UpdateChannelRequest(
            channel=channel, update_mask=field_mask_pb2.FieldMask(paths=list(paths)))
        return self._unary(self.stub.UpdateChannel, request)

    def delete_channel(self, channel_id: str, *, etag: str = "", force: bool = False) -> None:
        """Delete a channel (``force``: also from the rules that name it). A retry after
        UNAVAILABLE that finds it gone accepts that the first attempt deleted it."""
        name = convert.channel_name(channel_id)

        def attempt(n: int) -> None:
            try:
                self.stub.DeleteChannel(service_pb2.DeleteChannelRequest(
                    name=name, etag=etag, force=force), timeout=self.timeout)
            except grpc.RpcError as exc:
                if n == 0 or exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
        self._retrying(attempt)

    # ticks -------------------------------------------------------------------
    def publish_ticks(self, source: str, ticks: Iterable[convert.TickTuple], batch: int = 1000,
                      *, fill_gaps: bool | None = None, watermark_ms: int | None = None,
                      timeout: float | None = None) -> service_pb2.PublishTicksResponse:
        """Send ticks ``(symbol, time_ms, price, qty, trade_id)`` as one PublishTicks stream.

        Answers after the ticks are committed. Not retried automatically: the
        ticks may be a one-shot iterator; after UNAVAILABLE, resend from the
        last watermark you were given (duplicates by trade id are dropped).
        ``timeout`` defaults to the client's; long replays need a larger one.
        """
        requests = convert.tick_requests(source, ticks, batch, fill_gaps=fill_gaps,
                                         watermark_ms=watermark_ms)
        try:
            return self.stub.PublishTicks(
                requests, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as exc:
            raise AlertsError.from_rpc_error(exc) from None

    # alerts ------------------------------------------------------------------
    def list_alerts(self, *, symbols: Iterable[str] = (), rules: Iterable[str] = (),
                    page_size: int = 0) -> Iterator[alerts_pb2.Alert]:
        """Stored alerts, oldest first, fetching page after page."""
        flt = service_pb2.AlertFilter(symbols=list(symbols),
                                      rules=[convert.rule_name(r) for r in rules])
        token = ""
        while True:
            page = self._unary(self.stub.ListAlerts, service_pb2.ListAlertsRequest(
                page_size=page_size, page_token=token, filter=flt))
            yield from page.alerts
            token = page.next_page_token
            if not token:
                return

    def alerts(self, *, resume_after: int | None = None, symbols: Iterable[str] = (),
               rules: Iterable[str] = (), heartbeat: float = 5.0,
               max_reconnects: int | None = None,
               on_caught_up: Callable[[int], object] | None = None,
               on_reconnect: Callable[[AlertsError | None, float], object] | None = None,
               ) -> Iterator[alerts_pb2.Alert]:
        """Alerts with ids above ``resume_after`` (None: those committed from now on), forever.

        Reconnects after UNAVAILABLE, RESOURCE_EXHAUSTED (after its RetryInfo
        delay), a dropped connection or a stream silent for longer than
        ``2 * heartbeat + timeout`` seconds, resuming after the last alert yielded:
        no alert is missed or repeated. ``on_caught_up(cursor)`` runs each time a
        (re)opened stream has replayed what it missed; ``on_reconnect(error,
        delay)`` before each reconnect. ``max_reconnects`` failed attempts in a
        row raise the last error (None: never give up). Close the generator (or
        break out of the loop) to end the stream.
        """
        options = StreamOptions(
            symbols=tuple(symbols), rules=tuple(convert.rule_name(r) for r in rules),
            heartbeat=heartbeat, grace=self.timeout, max_reconnects=max_reconnects,
            on_caught_up=on_caught_up, on_reconnect=on_reconnect, sleep=self._sleep)
        return follow_alerts(self.stub, options, self.backoff, resume_after)
