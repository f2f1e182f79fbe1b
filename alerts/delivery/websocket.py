"""Alerts over WebSocket: a token-authenticated JSON protocol on the ``websockets`` asyncio server.

**Connecting.** A client opens ``ws://HOST:PORT/`` (any path) with a JWT
(HS256, ``sub`` = the owner, ``exp`` required; see ``alerts.auth.tokens``) in
``Authorization: Bearer <token>`` or the query ``?token=<token>``. A missing,
malformed, badly signed or expired token is refused at the handshake with
HTTP 401, a ``WWW-Authenticate: Bearer`` header and a one-line reason as the
body. When the token's ``exp`` passes, the connection is closed with 1008
(policy violation) and the reason ``the token expired``: reconnect with a new
one (and ``resume_after``). On success the server sends
``{"type":"ready","owner":"...","last_id":N}`` (N: the last committed alert id).

**Client -> server** (JSON text frames, one object each):

- ``{"op":"subscribe","symbols":[...],"rules":[...],"kinds":[...],"resume_after":N,
  "heartbeat_s":15}`` - every key but ``op`` optional. Empty or absent lists
  match everything of the owner; a bare symbol takes the default venue; rules
  are ids or ``rules/{id}`` (another owner's rule ids simply match nothing);
  kinds are ``RULE``, ``DATA_QUALITY``, ``SYSTEM``. With ``resume_after`` the
  stored alerts after N that match come first; without it only new alerts.
  Then ``{"type":"caught_up","last_id":M}``, then live alerts. A new subscribe
  replaces the previous one.
- ``{"op":"subscribe","channel":"channels/{id}","resume_after":N,"heartbeat_s":15}``
  (or the bare id, as rules name channels; not with ``symbols``, ``rules`` or
  ``kinds``) - the alerts whose rule named that websocket channel when it fired
  (``AlertRecord.channels``). The channel must be the client's own
  (``CHANNEL_NOT_FOUND`` otherwise, as for a missing one) and of kind websocket
  (``CHANNEL_NOT_WEBSOCKET``). With ``resume_after`` at most the channel's
  ``replay_limit`` newest of its stored alerts after N are sent (0: the server's
  ``WebSocketSettings.replay_limit``, 1000); when older ones are left out,
  ``{"type":"replay_truncated","skipped_through":S,"replay_limit":L}`` comes
  first (the channel's alerts in N+1..S are skipped; the limit counts those
  committed before the catch-up began, later ones follow). ``caught_up``'s
  ``last_id`` is then at least the last id committed when the subscription began.
  **Paused channel** (as the outbox: nothing is sent, nothing is lost): each live
  alert first reads the channel (a primary-key read); one that finds it paused is
  not sent, and the server sends ``{"type":"channel_paused","last_id":M}`` (at
  once when subscribing to a paused channel), then only heartbeats. It looks
  again at once when this server's API changes the channel (``channel_changed``),
  else every second; once the channel is resumed it sends
  ``{"type":"channel_resumed"}`` and goes on as if resubscribed with
  ``resume_after`` M (the pause's alerts from the store, within the replay limit,
  ``caught_up``, live). A deleted channel ends the subscription with
  ``{"type":"unsubscribed","code":"CHANNEL_NOT_FOUND","message":"..."}``.
- ``{"op":"unsubscribe"}`` -> ``{"type":"unsubscribed"}``; no more alerts.
- ``{"op":"ping"}`` -> ``{"type":"pong","last_id":N,"server_time":"..."}``.

**Server -> client**: ``{"type":"alert","alert":{...}}`` (the form of
``alerts.delivery.alert_json``), in increasing id order with no gap and no
duplicate across catch-up and live; ``{"type":"heartbeat","last_id":N,
"server_time":"..."}`` after ``heartbeat_s`` seconds (0.05..3600) without an
alert; ``{"type":"error","code":"...","message":"..."}`` for a bad frame
(``BAD_JSON``, ``UNKNOWN_OP``, ``INVALID_ARGUMENT``, ``ALERTS_PRUNED``,
``CHANNEL_NOT_FOUND``, ``CHANNEL_NOT_WEBSOCKET``): the connection stays open and
the current subscription is unchanged; ``replay_truncated``, ``channel_paused``
and ``channel_resumed`` for channel subscriptions (above).

**Liveness and slow clients.** websockets sends a ping every
``ping_interval_s`` and closes a peer that does not answer within
``ping_timeout_s`` (code 1011). Alerts reach each subscription through its own
bounded hub queue; sending never waits on the client: when the queue
overflows, or an alert would take the connection's write buffer (the bytes
the OS socket buffers could not take yet) above ``write_limit``, the client is closed with code 1013 (try again later)
and a reason naming the id to resume after. Nothing is lost: every alert is
in the store before any client sees it. Only the catch-up from the store
waits for the client (its backlog is its own). At shutdown every client is
closed with code 1001 (going away).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from alerts.auth.tokens import Identity, check_secret, verify_token
from alerts.delivery.alert_json import alert_to_dict, dumps, rfc3339_ms
from alerts.delivery.hub import AlertHub, SlowConsumer
from alerts.errors import (
    AlertsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    UnavailableError,
)
from alerts.observability.metrics import Metrics
from alerts.rules.compiler import qualify
from alerts.storage.base import Store
from alerts.storage.records import ALERT_KINDS, AlertRecord
from alerts.storage.records import WebSocketSettings as WebSocketChannelSettings

log = structlog.get_logger("alerts.delivery.websocket")

DEFAULT_HEARTBEAT_S = 15.0
HEARTBEAT_RANGE_S = (0.05, 3600.0)
MAX_FILTER_ITEMS = 1000
CATCH_UP_PAGE = 500
_FRAME_OVERHEAD = 14          # the largest header of an unmasked server frame
_ENCODED_CACHE = 4096         # alerts whose frame is kept for the other clients
_FAIR_BURST = 64              # frames one client sends before letting the others run
_PAUSE_POLL_S = 1.0           # how often a paused channel's subscription looks for its resume
_CHANNEL_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")   # as the API's (channel_convert.CHANNEL_ID)


@dataclass(frozen=True)
class WebSocketSettings:
    """How the server listens, authenticates and treats slow or silent clients."""

    listen: str = "127.0.0.1:8765"      # host:port; port 0 picks a free one
    jwt_secret: str = ""                # empty: every token is refused
    queue_size: int = 10_000            # live alerts a client may fall behind
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    write_limit: int = 1 << 20          # bytes held for a client past the OS buffers: then dropped
    close_timeout_s: float = 5.0        # how long a closing handshake may take
    max_message: int = 1 << 16          # the largest frame a client may send
    default_venue: str = "binance"
    replay_limit: int = 1000            # a websocket channel's replay when its replay_limit is 0


@dataclass(frozen=True)
class _Channel:
    """The websocket channel a subscription follows, as last read from the store."""

    channel_id: str
    replay_limit: int                   # the channel's, or the server's default for 0
    paused: bool


@dataclass(frozen=True)
class _Subscription:
    """One validated ``subscribe`` op."""

    accepts: Callable[[AlertRecord], bool]
    resume_after: int | None
    heartbeat_s: float
    channel: _Channel | None = None


class _Connection(ServerConnection):
    """A server connection that remembers who its token named."""

    identity: Identity | None = None


def _error_frame(code: str, message: str) -> bytes:
    return dumps({"type": "error", "code": code, "message": message})


def _string_list(op: dict[str, Any], key: str) -> list[str]:
    value = op.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidArgumentError(f"{key}: expected a list of non-empty strings")
    if len(value) > MAX_FILTER_ITEMS:
        raise InvalidArgumentError(f"{key}: at most {MAX_FILTER_ITEMS} items")
    return value


class WebSocketServer:
    """Serves the owner's alerts from ``hub`` (live) and ``store`` (catch-up) over WebSocket."""

    def __init__(self, hub: AlertHub, store: Store, settings: WebSocketSettings,
                 metrics: Metrics | None = None) -> None:
        if settings.jwt_secret:
            check_secret(settings.jwt_secret)
        if settings.queue_size < 1:
            raise InvalidArgumentError(f"ws_queue: at least 1 (got {settings.queue_size})")
        if settings.write_limit < 1024:
            raise InvalidArgumentError(
                f"ws_write_limit: at least 1024 bytes (got {settings.write_limit})")
        if settings.replay_limit < 1:
            raise InvalidArgumentError(
                f"replay_limit: at least 1 (got {settings.replay_limit})")
        self.hub = hub
        self.store = store
        self.settings = settings
        self.stopping = False
        self.address = ""
        self.dropped_slow = 0             # clients closed with 1013 so far
        self.metrics = metrics
        if metrics is not None:
            metrics.websocket_clients.set_function(lambda: self.connection_count)
        self._server: Server | None = None
        self._encoded: OrderedDict[int, bytes] = OrderedDict()
        # the paused channels subscriptions wait on: one event per waiting subscription
        self._watchers: dict[tuple[str, str], set[asyncio.Event]] = {}

    @contextmanager
    def watch_channel(self, owner: str, channel_id: str) -> Iterator[asyncio.Event]:
        """An event that ``channel_changed`` sets for this channel, while in the block."""
        event = asyncio.Event()
        key = (owner, channel_id)
        self._watchers.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            self._watchers[key].discard(event)
            if not self._watchers[key]:
                del self._watchers[key]

    def channel_changed(self, owner: str, channel_id: str) -> None:
        """The API changed or deleted a channel: paused subscriptions to it look at once."""
        for event in self._watchers.get((owner, channel_id), ()):
            event.set()

    @property
    def connection_count(self) -> int:
        return len(self._server.connections) if self._server is not None else 0

    async def bind(self) -> str:
        """Take the listening address (not serving yet); returns it as ``host:port``."""
        s = self.settings
        host, _, port = s.listen.rpartition(":")
        try:
            self._server = await serve(
                self._handle, host.strip("[]") or "127.0.0.1", int(port),
                process_request=self._authenticate, create_connection=_Connection,
                compression=None, ping_interval=s.ping_interval_s,
                ping_timeout=s.ping_timeout_s, close_timeout=s.close_timeout_s,
                max_size=s.max_message, write_limit=(s.write_limit, s.write_limit),
                start_serving=False)
        except (OSError, ValueError) as exc:
            raise UnavailableError(f"cannot listen for WebSocket on {s.listen}: {exc}") from None
        bound = self._server.sockets[0].getsockname()
        self.address = f"{bound[0]}:{bound[1]}"
        return self.address

    async def start(self) -> None:
        """Accept clients on the bound address."""
        assert self._server is not None, "bind() first"
        if not self.settings.jwt_secret:
            log.warning("no ws_jwt_secret: every WebSocket client will be refused")
        await self._server.start_serving()

    async def stop(self) -> None:
        """Close every client with 1001 and wait for their handlers to end."""
        self.stopping = True
        if self._server is not None:
            self._server.close(code=CloseCode.GOING_AWAY, reason="the server is shutting down")
            await self._server.wait_closed()

    # handshake --------------------------------------------------------------
    def _authenticate(self, connection: ServerConnection, request: Request) -> Response | None:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                return self._refuse(connection, "the Authorization header must be "
                                                "'Bearer <token>'")
        else:
            token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        try:
            identity = verify_token(self.settings.jwt_secret, token.strip())
        except AlertsError as exc:
            return self._refuse(connection, exc.message)
        assert isinstance(connection, _Connection)
        connection.identity = identity
        return None

    @staticmethod
    def _refuse(connection: ServerConnection, reason: str) -> Response:
        response = connection.respond(HTTPStatus.UNAUTHORIZED, reason + "\n")
        response.headers["WWW-Authenticate"] = 'Bearer realm="alerts", error="invalid_token"'
        return response

    # one connection ---------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        assert isinstance(connection, _Connection)
        session = _Session(self, connection)
        try:
            await session.run()
        except ConnectionClosed:
            pass
        finally:
            await session.end_stream()

    def count_closed(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.websocket_closed.labels(reason).inc()

    def alert_frame(self, rec: AlertRecord) -> bytes:
        """The encoded ``alert`` frame, shared by every client the alert goes to."""
        frame = self._encoded.get(rec.alert_id)
        if frame is None:
            frame = dumps({"type": "alert", "alert": alert_to_dict(rec)})
            self._encoded[rec.alert_id] = frame
            if len(self._encoded) > _ENCODED_CACHE:
                self._encoded.popitem(last=False)
        return frame


class _Session:
    """The ops of one connection; at most one streaming task (the current subscription)."""

    def __init__(self, server: WebSocketServer, connection: _Connection) -> None:
        self.server = server
        self.hub = server.hub
        self.connection = connection
        assert connection.identity is not None, "authenticated at the handshake"
        self.owner = connection.identity.owner
        self.expires_s = connection.identity.expires_s
        self._stream: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Answer the client's ops until it leaves or its token expires (then 1008)."""
        loop = asyncio.get_running_loop()
        expiry = asyncio.timeout_at(loop.time() + self.expires_s - time.time())
        try:
            async with expiry:
                await self._serve_ops()
        except TimeoutError:
            if not expiry.expired():
                raise
            await self.end_stream()
            self.server.count_closed("token_expired")
            await self.connection.close(CloseCode.POLICY_VIOLATION, "the token expired")

    async def _serve_ops(self) -> None:
        await self._send({"type": "ready", "owner": self.owner, "last_id": self.hub.last_id})
        async for message in self.connection:
            if isinstance(message, bytes):
                await self._send_error("BAD_JSON", "frames must be JSON text, not binary")
                continue
            try:
                op = json.loads(message)
            except json.JSONDecodeError as exc:
                await self._send_error("BAD_JSON", f"not JSON: {exc}")
                continue
            try:
                await self._on_op(op)
            except AlertsError as exc:
                await self._send_error(exc.reason, exc.message)

    async def _on_op(self, op: object) -> None:
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise InvalidArgumentError('a message is a JSON object with a string "op"')
        name = op["op"]
        if name == "subscribe":
            sub = await self._parse_subscribe(op)
            await self.end_stream()
            self._stream = asyncio.create_task(self._stream_or_close(sub))
        elif name == "unsubscribe":
            await self.end_stream()
            await self._send({"type": "unsubscribed"})
        elif name == "ping":
            await self._send({"type": "pong", "last_id": self.hub.last_id,
                              "server_time": rfc3339_ms(int(time.time() * 1000))})
        else:
            await self._send_error("UNKNOWN_OP", f"unknown op {name!r}: expected subscribe, "
                                                 "unsubscribe or ping")

    async def end_stream(self) -> None:
        """Cancel the current subscription's task, if any, and wait for it."""
        task, self._stream = self._stream, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _parse_subscribe(self, op: dict[str, Any]) -> _Subscription:
        venue = self.server.settings.default_venue
        symbols = {qualify(s, venue) for s in _string_list(op, "symbols")}
        rules = {r.removeprefix("rules/") for r in _string_list(op, "rules")}
        kinds = set(_string_list(op, "kinds"))
        if kinds - set(ALERT_KINDS):
            raise InvalidArgumentError(f"kinds: unknown {sorted(kinds - set(ALERT_KINDS))}; "
                                       f"expected some of {list(ALERT_KINDS)}")
        heartbeat = op.get("heartbeat_s", DEFAULT_HEARTBEAT_S)
        low, high = HEARTBEAT_RANGE_S
        if (isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float))
                or not low <= heartbeat <= high):
            raise InvalidArgumentError(f"heartbeat_s: a number of seconds from {low} to {high}")
        name = op.get("channel")
        if name is not None and (symbols or rules or kinds):
            raise InvalidArgumentError("channel: not with symbols, rules or kinds (the rules "
                                       "that name the channel choose its alerts)")
        channel = None if name is None else await self._channel(name)
        resume = op.get("resume_after")
        if resume is not None:
            resume = await self._check_resume(resume)
        if channel is not None:
            channel_id = channel.channel_id
            return _Subscription(lambda rec: channel_id in rec.channels, resume,
                                 float(heartbeat), channel)

        def accepts(rec: AlertRecord) -> bool:
            return ((not rules or rec.rule_id in rules) and (not symbols or rec.symbol in symbols)
                    and (not kinds or rec.kind in kinds))
        return _Subscription(accepts, resume, float(heartbeat))

    async def _channel(self, name: object) -> _Channel:
        """The owner's websocket channel ``name`` (``channels/{id}`` or the bare id)."""
        channel_id = name.removeprefix("channels/") if isinstance(name, str) else ""
        if not _CHANNEL_ID.fullmatch(channel_id):
            raise InvalidArgumentError(
                f"channel: expected channels/{{channel}} or a channel id, got {name!r}")
        return await self._read_channel(channel_id)

    async def _read_channel(self, channel_id: str) -> _Channel:
        """The channel as stored now; another owner's is not found, like a missing one."""
        try:
            rec = await self.server.store.get_channel(self.owner, channel_id)
        except NotFoundError:
            raise NotFoundError(f"no channel channels/{channel_id}",
                                reason="CHANNEL_NOT_FOUND") from None
        if not isinstance(rec.settings, WebSocketChannelSettings):
            raise FailedPreconditionError(
                f"channels/{channel_id} is of kind {rec.kind}; only websocket channels can be "
                "subscribed to", reason="CHANNEL_NOT_WEBSOCKET")
        limit = rec.settings.replay_limit or self.server.settings.replay_limit
        return _Channel(channel_id, limit, rec.paused)

    async def _channel_now(self, channel: _Channel) -> _Channel | None:
        """The channel's current state; ``None`` (the client told) once it is gone."""
        try:
            return await self._read_channel(channel.channel_id)
        except (NotFoundError, FailedPreconditionError) as exc:
            await self._send({"type": "unsubscribed", "code": exc.reason,
                              "message": exc.message})
            return None

    async def _check_resume(self, after: object) -> int:
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidArgumentError("resume_after: an alert id (an integer >= 0)")
        if after > self.hub.last_id:
            raise InvalidArgumentError(f"resume_after: alert id {after} was never issued")
        first = await self.server.store.first_alert_id()
        if first is not None and after < first - 1:
            raise OutOfRangeError(f"alerts after {after} were pruned; the oldest kept is {first}",
                                  reason="ALERTS_PRUNED")
        return after

    async def _stream_or_close(self, sub: _Subscription) -> None:
        """Run one subscription; an unexpected failure closes the connection with 1011."""
        try:
            await self._run_stream(sub)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("WebSocket stream failed", owner=self.owner)
            await self.connection.close(CloseCode.INTERNAL_ERROR, "internal error")

    async def _run_stream(self, sub: _Subscription) -> None:
        """The subscription's catch-up and live phases; for a channel, also its pauses.

        While the channel is paused nothing is sent (but heartbeats); once it is
        resumed the stream goes on as if resubscribed with ``resume_after`` the last
        id it covered, so the alerts of the pause come from the store.
        """
        after = sub.resume_after
        while True:
            if sub.channel is not None and sub.channel.paused:
                after = self.hub.last_id if after is None else after
                channel = await self._hold(sub, after)
                if channel is None:
                    return
                sub = replace(sub, channel=channel)
            paused_at = await self._serve(sub, after)
            if paused_at is None or sub.channel is None:
                return
            after = paused_at
            sub = replace(sub, channel=replace(sub.channel, paused=True))

    async def _hold(self, sub: _Subscription, last: int) -> _Channel | None:
        """Waits while the subscription's channel is paused (heartbeats as usual); its state
        once resumed, ``None`` once it is gone. It looks again when this server's API
        changes the channel (``channel_changed``), else every ``_PAUSE_POLL_S``."""
        assert sub.channel is not None
        await self._send({"type": "channel_paused", "last_id": last})
        loop = asyncio.get_running_loop()
        beat = loop.time() + sub.heartbeat_s
        channel: _Channel | None
        with self.server.watch_channel(self.owner, sub.channel.channel_id) as changed:
            while True:
                changed.clear()     # before reading: a change after the read wakes the wait
                channel = await self._channel_now(sub.channel)
                if channel is None or not channel.paused:
                    break
                if loop.time() >= beat:
                    await self.connection.send(self._heartbeat_frame(), text=True)
                    beat = loop.time() + sub.heartbeat_s
                try:
                    await asyncio.wait_for(changed.wait(),
                                           max(0.0, min(_PAUSE_POLL_S, beat - loop.time())))
                except TimeoutError:
                    pass
        if channel is not None:
            await self._send({"type": "channel_resumed"})
        return channel

    async def _serve(self, sub: _Subscription, after: int | None) -> int | None:
        """Stored alerts after ``after``, ``caught_up``, then live: no gap, no duplicate.

        The hub registration comes first, so an alert committed while the store is
        read is queued; ids below what the store gave are skipped when live. Returns
        the last id covered when the channel turns out paused (before its next alert,
        not sent); ``None`` when the stream is over (a slow client closed, the channel
        deleted).
        """
        settings = self.server.settings
        live = self.hub.subscribe(self.owner, sub.accepts, settings.queue_size)
        try:
            last = self.hub.last_id
            if after is not None:
                last = await self._catch_up(sub, after, last)
            await self._send({"type": "caught_up", "last_id": last})
            sent = 0
            while True:
                sent += 1
                if sent % _FAIR_BURST == 0:
                    await asyncio.sleep(0)    # a long queue does not hold the loop
                try:
                    rec = await live.next(sub.heartbeat_s)
                except SlowConsumer:
                    self.hub.unsubscribe(live)
                    if not self.server.stopping:
                        await self._drop(f"fell {settings.queue_size} alerts behind", last)
                    return None
                if rec is None:
                    frame = self._heartbeat_frame()
                elif rec.alert_id <= last:
                    continue
                else:
                    if sub.channel is not None:   # a pause or delete since the last look
                        channel = await self._channel_now(sub.channel)
                        if channel is None:
                            return None
                        if channel.paused:
                            return last
                    frame = self.server.alert_frame(rec)
                if not self._fits(frame):
                    self.hub.unsubscribe(live)
                    await self._drop(f"more than {settings.write_limit} bytes waiting", last)
                    return None
                await self.connection.send(frame, text=True)  # never waits: it fits
                if rec is not None:
                    last = rec.alert_id
        finally:
            self.hub.unsubscribe(live)

    async def _catch_up(self, sub: _Subscription, after: int, top: int) -> int:
        """Sends the stored alerts after ``after`` that the subscription accepts; returns the
        id live alerts go on after. ``top``: the hub's last id once subscribed to it.

        For a channel, at most its replay limit of those up to ``top`` (the newest),
        after a ``replay_truncated`` notice when older ones are skipped; every alert of
        the channel up to ``top`` is then covered.
        """
        channel_id = None if sub.channel is None else sub.channel.channel_id
        last = after
        if sub.channel is not None:
            last = await self._replay_start(sub.channel, after, top)
            if last > after:
                await self._send({"type": "replay_truncated", "skipped_through": last,
                                  "replay_limit": sub.channel.replay_limit})
        while batch := await self.server.store.list_alerts(
                self.owner, after_id=last, limit=CATCH_UP_PAGE, channel_id=channel_id):
            for stored in batch:
                last = stored.alert_id
                if sub.accepts(stored):   # waits for the client: the backlog is its own
                    await self.connection.send(self.server.alert_frame(stored), text=True)
        return last if channel_id is None else max(last, top)

    async def _replay_start(self, channel: _Channel, after: int, top: int) -> int:
        """``after``, or, when the channel has more than its replay limit of stored alerts in
        (``after``, ``top``], the newest of those the limit leaves out."""
        want = channel.replay_limit + 1       # that many newest: the last one is left out
        before = top + 1
        while True:
            page = min(want, CATCH_UP_PAGE)
            batch = await self.server.store.list_alerts(
                self.owner, after_id=after, before_id=before, descending=True, limit=page,
                channel_id=channel.channel_id)
            if len(batch) < page:
                return after
            want -= page
            before = batch[-1].alert_id
            if want == 0:
                return before

    def _heartbeat_frame(self) -> bytes:
        return dumps({"type": "heartbeat", "last_id": self.hub.last_id,
                      "server_time": rfc3339_ms(int(time.time() * 1000))})

    def _fits(self, frame: bytes) -> bool:
        """Whether sending ``frame`` keeps the write buffer within the limit (so no waiting)."""
        buffered = self.connection.transport.get_write_buffer_size()
        return buffered == 0 or (
            buffered + len(frame) + _FRAME_OVERHEAD <= self.server.settings.write_limit)

    async def _drop(self, why: str, last: int) -> None:
        self.server.dropped_slow += 1
        self.server.count_closed("slow")
        log.warning("slow WebSocket client dropped", owner=self.owner, why=why, last_id=last)
        await self.connection.close(CloseCode.TRY_AGAIN_LATER,
                                    f"slow client: {why}; resume after {last}")

    async def _send(self, message: dict[str, Any]) -> None:
        await self.connection.send(dumps(message), text=True)

    async def _send_error(self, code: str, message: str) -> None:
        await self.connection.send(_error_frame(code, message), text=True)

