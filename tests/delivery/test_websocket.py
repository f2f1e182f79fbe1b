"""The WebSocket alert server against a real service on loopback and real ``websockets`` clients.

Alerts are produced the way bots produce them: CreateRule and PublishTicks over
gRPC (an EVERY_TIME rule fires once per tick, so N ticks are alerts 1..N).
Every wait is on a frame, a close or a server-side condition, with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from alerts.auth.tokens import issue_token
from alerts.delivery import websocket
from alerts.storage.records import ChannelRecord
from alerts.storage.records import WebSocketSettings as WebSocketChannelSettings
from alerts.v1 import channels_pb2, rules_pb2, service_pb2, service_pb2_grpc
from tests.api.test_streams import publish
from tests.support.postgres import fresh_databases
from tests.support.server import ServerThread, running_server, server_config

SECRET = "test-secret-of-at-least-32-bytes!!"
WAIT_S = 20.0
DAY = 86_400   # tokens made when the tests are collected stay valid however long the run

Stub = service_pb2_grpc.AlertServiceStub


@contextmanager
def ws_service(tmp_path: Path, **overrides: Any) -> Iterator[tuple[ServerThread, Stub]]:
    config = server_config(tmp_path, ws_listen="127.0.0.1:0", ws_jwt_secret=SECRET,
                           **overrides)
    with running_server(config) as (server, stub):
        yield server, stub


BULKY = "x" * 2048
"""A message template that (the longest allowed) makes every alert frame about 2.5 KB, so few fill a socket."""


def rule(stub: Stub, symbol: str, rule_id: str, template: str = "",
         channels: tuple[str, ...] = ()) -> None:
    stub.CreateRule(service_pb2.CreateRuleRequest(rule_id=rule_id, rule=rules_pb2.Rule(
        symbol=symbol, condition_text="price > 0", message_template=template,
        trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME, cooldown=duration_pb2.Duration(),
        channels=channels)))


def ws_channel(stub: Stub, channel_id: str, replay_limit: int = 0) -> None:
    stub.CreateChannel(service_pb2.CreateChannelRequest(channel_id=channel_id, channel=(
        channels_pb2.Channel(websocket=channels_pb2.WebSocketConfig(replay_limit=replay_limit)))))


def set_paused(stub: Stub, channel_id: str, paused: bool) -> None:
    stub.UpdateChannel(service_pb2.UpdateChannelRequest(
        channel=channels_pb2.Channel(name=f"channels/{channel_id}", paused=paused),
        update_mask=field_mask_pb2.FieldMask(paths=["paused"])))


def url(server: ServerThread, query: str = "") -> str:
    assert server.app is not None
    return f"ws://{server.app.websocket_address}/{query}"


def token(owner: str = "local", ttl_s: float = 600) -> str:
    return issue_token(SECRET, owner, ttl_s)


@asynccontextmanager
async def client(server: ServerThread, owner: str = "local",
                 **kwargs: Any) -> AsyncIterator[ClientConnection]:
    async with connect(url(server), additional_headers={"Authorization": f"Bearer {token(owner)}"},
                       open_timeout=WAIT_S, **kwargs) as ws:
        ready = await recv(ws)
        assert ready["type"] == "ready" and ready["owner"] == owner
        yield ws


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        message = await ws.recv()
    return json.loads(message)


async def subscribe(ws: ClientConnection, **op: Any) -> None:
    await ws.send(json.dumps({"op": "subscribe", **op}))


async def until_caught_up(ws: ClientConnection) -> tuple[list[int], int]:
    """Alert ids received before ``caught_up``, and its ``last_id``."""
    ids: list[int] = []
    while (frame := await recv(ws))["type"] != "caught_up":
        assert frame["type"] == "alert", frame
        ids.append(frame["alert"]["alert_id"])
    return ids, frame["last_id"]


async def alert_ids(ws: ClientConnection, until: int) -> list[int]:
    """Live alert ids up to and including ``until`` (heartbeats skipped)."""
    ids: list[int] = []
    while not ids or ids[-1] < until:
        frame = await recv(ws)
        if frame["type"] == "alert":
            ids.append(frame["alert"]["alert_id"])
        else:
            assert frame["type"] == "heartbeat", frame
    return ids


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


# authentication --------------------------------------------------------------------------

def _expired() -> str:
    return issue_token(SECRET, "local", 60, now=time.time() - 3600)


@pytest.mark.parametrize(("headers", "query", "reason"), [
    ({}, "", "a token is required"),
    ({"Authorization": "Bearer not.a.jwt"}, "", "the token is not valid"),
    ({"Authorization": "Basic bG9jYWw6eA=="}, "", "must be 'Bearer <token>'"),
    ({}, "?token=" + issue_token("another-secret-of-32-bytes-or-more", "local", DAY),
     "signature does not verify"),
    ({}, "?token=EXPIRED", "the token has expired"),
    ({}, "?token=" + jwt.encode({"sub": "local"}, SECRET, algorithm="HS256"),
     "no 'exp' claim"),
    ({}, "?token=" + jwt.encode({"sub": "local", "exp": int(time.time()) + DAY}, "",
                                algorithm="none"), "not signed with HS256"),
])
def test_a_bad_missing_or_expired_token_is_refused_with_401_and_a_reason(
        tmp_path: Path, headers: dict[str, str], query: str, reason: str) -> None:
    query = query.replace("EXPIRED", _expired())
    with ws_service(tmp_path) as (server, _stub):
        async def run() -> None:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url(server, query), additional_headers=headers):
                    pass
            response = refused.value.response
            assert response.status_code == 401
            assert reason in response.body.decode()
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert server.app is not None and server.app.websocket is not None
            assert server.app.websocket.connection_count == 0
        asyncio.run(run())


def test_a_token_in_the_query_or_the_header_names_the_owner(tmp_path: Path) -> None:
    with ws_service(tmp_path) as (server, _stub):
        async def run() -> None:
            async with connect(url(server, f"?token={token('alice')}")) as ws:
                assert await recv(ws) == {"type": "ready", "owner": "alice", "last_id": 0}
            async with client(server, "bob"):
                pass
        asyncio.run(run())


# subscriptions ---------------------------------------------------------------------------

def test_subscribe_by_symbol_by_rule_and_only_the_owners_alerts(tmp_path: Path) -> None:
    with ws_service(tmp_path) as (server, stub):
        rule(stub, "test:A", "on-a")
        rule(stub, "test:B", "on-b")

        async def run() -> None:
            async with client(server) as by_symbol, client(server) as by_rule, \
                    client(server) as everything, client(server, "bob") as bob:
                await subscribe(by_symbol, symbols=["test:A"])
                await subscribe(by_rule, rules=["rules/on-b"])
                await subscribe(everything)
                await subscribe(bob, rules=["on-a", "on-b"])
                for ws in (by_symbol, by_rule, everything, bob):
                    assert await until_caught_up(ws) == ([], 0)
                await in_thread(publish, stub, 3, 0, "test:A")     # alerts 1..3
                await in_thread(publish, stub, 2, 10, "test:B")    # alerts 4..5
                frames: list[dict[str, Any]] = []
                while len(frames) < 5:
                    frame = await recv(everything)
                    if frame["type"] == "alert":
                        frames.append(frame["alert"])
                assert [(a["alert_id"], a["rule_id"], a["symbol"]) for a in frames] == [
                    (1, "on-a", "test:A"), (2, "on-a", "test:A"), (3, "on-a", "test:A"),
                    (4, "on-b", "test:B"), (5, "on-b", "test:B")]
                assert await alert_ids(by_symbol, 3) == [1, 2, 3]
                assert await alert_ids(by_rule, 5) == [4, 5]
                # bob named local's rules: nothing came live, nothing of his is stored
                await subscribe(bob, resume_after=0)
                assert await until_caught_up(bob) == ([], 0)
                # local's history through a filter
                await subscribe(by_symbol, resume_after=0, symbols=["test:B"], kinds=["RULE"])
                assert await until_caught_up(by_symbol) == ([4, 5], 5)
        asyncio.run(run())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alerts.db'}"
    else:
        with fresh_databases(1) as (url,):
            yield url


@pytest.mark.parametrize("by_channel", [False, True], ids=["filters", "channel"])
def test_resume_after_an_id_while_alerts_are_committed_has_no_gap_or_duplicate(
        tmp_path: Path, store_url: str, by_channel: bool) -> None:
    """Alerts committed during the catch-up reach both the store pages and the live queue.

    The client stops reading, so the catch-up (7 MB, more than the small socket
    and the 16 KiB write limit hold) stalls in the middle; 500 alerts are
    committed meanwhile; then the client reads everything. By channel: every
    alert names it, and its replay limit is above the 2500 alerts in all.
    """
    with ws_service(tmp_path, ws_write_limit=16_384, store_url=store_url) as (server, stub):
        ws_channel(stub, "feed", replay_limit=2500)
        rule(stub, "test:A", "every", BULKY, channels=("channels/feed",))
        publish(stub, 2000)                           # alerts 1..2000 stored
        assert server.app is not None
        address = server.app.websocket_address
        op: dict[str, Any] = {"channel": "channels/feed"} if by_channel else {}

        async def run() -> None:
            sock = _small_window_socket(address)
            async with client(server, sock=sock) as ws:
                ws.transport.pause_reading()
                await subscribe(ws, resume_after=500, **op)
                await in_thread(publish, stub, 500, 2000)   # 2001..2500 mid catch-up
                ws.transport.resume_reading()
                stored, caught_up = await until_caught_up(ws)
                assert stored == list(range(501, caught_up + 1))
                assert caught_up > 2000       # the store pages included the newer alerts
                live = await alert_ids(ws, 2500) if caught_up < 2500 else []
                assert stored + live == list(range(501, 2501))
        asyncio.run(run())


# websocket channels ------------------------------------------------------------------------

def test_subscribe_by_channel_gets_the_alerts_of_rules_that_named_it_at_fire_time(
        tmp_path: Path) -> None:
    with ws_service(tmp_path) as (server, stub):
        ws_channel(stub, "ws-a")
        ws_channel(stub, "ws-b")
        rule(stub, "test:A", "on-a", channels=("channels/ws-a",))
        rule(stub, "test:B", "on-ab", channels=("ws-a", "ws-b"))
        rule(stub, "test:C", "on-none")

        async def run() -> None:
            async with client(server) as by_name, client(server) as by_id:
                await subscribe(by_name, channel="channels/ws-a")
                await subscribe(by_id, channel="ws-b")            # the bare id, as in rules
                assert await until_caught_up(by_name) == ([], 0)
                assert await until_caught_up(by_id) == ([], 0)
                await in_thread(publish, stub, 2, 0, "test:A")    # 1, 2: ws-a
                await in_thread(publish, stub, 2, 10, "test:B")   # 3, 4: ws-a and ws-b
                await in_thread(publish, stub, 2, 20, "test:C")   # 5, 6: no channel
                await in_thread(publish, stub, 1, 30, "test:B")   # 7: ws-a and ws-b
                assert await alert_ids(by_name, 7) == [1, 2, 3, 4, 7]
                assert await alert_ids(by_id, 7) == [3, 4, 7]
                # the rule no longer names ws-a: its stored alerts still do, new ones not
                stub.UpdateRule(service_pb2.UpdateRuleRequest(
                    rule=rules_pb2.Rule(name="rules/on-a", channels=[]),
                    update_mask=field_mask_pb2.FieldMask(paths=["channels"])))
                await in_thread(publish, stub, 1, 40, "test:A")   # 8: no channel now
                await in_thread(publish, stub, 1, 50, "test:B")   # 9
                assert await alert_ids(by_name, 9) == [9]
                assert await alert_ids(by_id, 9) == [9]
                await subscribe(by_name, channel="ws-a", resume_after=0)
                assert await until_caught_up(by_name) == ([1, 2, 3, 4, 7, 9], 9)
                await subscribe(by_id, channel="channels/ws-b", resume_after=3)
                assert await until_caught_up(by_id) == ([4, 7, 9], 9)
        asyncio.run(run())


def test_a_channel_that_is_not_the_clients_websocket_channel_is_refused(
        tmp_path: Path) -> None:
    with ws_service(tmp_path) as (server, stub):
        ws_channel(stub, "mine")
        stub.CreateChannel(service_pb2.CreateChannelRequest(channel_id="mail", channel=(
            channels_pb2.Channel(email=channels_pb2.EmailConfig(to_addresses=["a@b.example"])))))
        assert server.app is not None
        server.call(server.app.store.create_channel(ChannelRecord(
            channel_id="bobs", owner="bob", settings=WebSocketChannelSettings())))
        rule(stub, "test:A", "on-a", channels=("mine",))

        async def run() -> None:
            async with client(server) as ws, client(server, "bob") as bob:
                await subscribe(ws, channel="mine")
                assert await until_caught_up(ws) == ([], 0)
                cases: list[tuple[dict[str, Any], str, str]] = [
                    ({"channel": "nope"}, "CHANNEL_NOT_FOUND", "no channel channels/nope"),
                    ({"channel": "channels/bobs"}, "CHANNEL_NOT_FOUND",
                     "no channel channels/bobs"),
                    ({"channel": "mail"}, "CHANNEL_NOT_WEBSOCKET",
                     "channels/mail is of kind email"),
                    ({"channel": "rules/mine"}, "INVALID_ARGUMENT", "'rules/mine'"),
                    ({"channel": 7}, "INVALID_ARGUMENT", "channels/{channel}"),
                    ({"channel": "mine", "symbols": ["test:A"]}, "INVALID_ARGUMENT",
                     "not with symbols"),
                ]
                for op, code, text in cases:
                    await subscribe(ws, **op)
                    error = await recv(ws)
                    assert error["type"] == "error" and error["code"] == code, (op, error)
                    assert text in error["message"], (op, error)
                await in_thread(publish, stub, 1)        # the first subscription still runs
                assert await alert_ids(ws, 1) == [1]
                await subscribe(bob, channel="bobs")     # its owner may
                assert await until_caught_up(bob) == ([], 1)
                await subscribe(bob, channel="mine")
                assert (await recv(bob))["code"] == "CHANNEL_NOT_FOUND"
        asyncio.run(run())


def test_a_replay_past_the_channels_limit_says_what_it_skipped(tmp_path: Path) -> None:
    default = 700                            # ws_replay_limit: for channels whose limit is 0
    with ws_service(tmp_path, ws_replay_limit=default) as (server, stub):
        ws_channel(stub, "last3", replay_limit=3)
        ws_channel(stub, "default")
        rule(stub, "test:A", "on-a", channels=("last3",))
        rule(stub, "test:B", "on-b")
        publish(stub, 5, 0, "test:A")        # 1..5: last3
        publish(stub, 2, 10, "test:B")       # 6, 7: no channel
        publish(stub, 2, 20, "test:A")       # 8, 9: last3

        async def run() -> None:
            async with client(server) as ws:
                await subscribe(ws, channel="last3", resume_after=0)
                assert await recv(ws) == {"type": "replay_truncated", "skipped_through": 4,
                                          "replay_limit": 3}
                assert await until_caught_up(ws) == ([5, 8, 9], 9)
                await in_thread(publish, stub, 1, 30, "test:A")   # 10: live, after caught_up
                assert await alert_ids(ws, 10) == [10]
                for after, replayed in ((6, [8, 9, 10]), (5, [8, 9, 10]), (9, [10])):
                    await subscribe(ws, channel="last3", resume_after=after)
                    assert await until_caught_up(ws) == (replayed, 10)   # no notice first
                await subscribe(ws, channel="last3", resume_after=4)
                assert (await recv(ws))["skipped_through"] == 5
                assert await until_caught_up(ws) == ([8, 9, 10], 10)
        asyncio.run(run())

        # the server's default (replay_limit 0), more than one store page
        stub.UpdateRule(service_pb2.UpdateRuleRequest(
            rule=rules_pb2.Rule(name="rules/on-b", channels=["default"]),
            update_mask=field_mask_pb2.FieldMask(paths=["channels"])))
        publish(stub, default + 2, 100, "test:B")      # 11 .. default + 12

        async def run_default() -> None:
            async with client(server) as ws:
                await subscribe(ws, channel="default", resume_after=0)
                assert await recv(ws) == {"type": "replay_truncated", "skipped_through": 12,
                                          "replay_limit": default}
                assert await until_caught_up(ws) == (
                    list(range(13, default + 13)), default + 12)
        asyncio.run(run_default())


def test_a_paused_channel_sends_nothing_and_its_alerts_come_after_the_resume(
        tmp_path: Path) -> None:
    with ws_service(tmp_path) as (server, stub):
        ws_channel(stub, "desk")
        rule(stub, "test:A", "on-a", channels=("desk",))

        async def frames_until(ws: ClientConnection, kind: str) -> dict[str, Any]:
            """Skips heartbeats (only) up to a frame of ``kind``."""
            while (frame := await recv(ws))["type"] != kind:
                assert frame["type"] == "heartbeat", frame
            return frame

        async def run() -> None:
            async with client(server) as ws, client(server) as late:
                await subscribe(ws, channel="desk", heartbeat_s=0.05)
                assert await until_caught_up(ws) == ([], 0)
                await in_thread(publish, stub, 2)               # 1, 2
                assert await alert_ids(ws, 2) == [1, 2]
                set_paused(stub, "desk", True)
                await in_thread(publish, stub, 2, 2)            # 3, 4: not sent
                assert await frames_until(ws, "channel_paused") == {
                    "type": "channel_paused", "last_id": 2}
                await subscribe(late, channel="desk")           # live only, while paused
                assert await recv(late) == {"type": "channel_paused", "last_id": 4}
                await in_thread(publish, stub, 2, 4)            # 5, 6: not sent
                beat = await recv(ws)                           # heartbeats go on
                assert beat["type"] == "heartbeat" and beat["last_id"] == 6
                set_paused(stub, "desk", False)
                # nothing but heartbeats came during the pause; then the held alerts
                assert await frames_until(ws, "channel_resumed") == {"type": "channel_resumed"}
                assert await until_caught_up(ws) == ([3, 4, 5, 6], 6)
                assert await recv(late) == {"type": "channel_resumed"}
                assert await until_caught_up(late) == ([5, 6], 6)
                await in_thread(publish, stub, 1, 6)            # 7: live again
                assert await alert_ids(ws, 7) == [7]
                assert await alert_ids(late, 7) == [7]
                await ws.send(json.dumps({"op": "unsubscribe"}))   # no more heartbeats
                await frames_until(ws, "unsubscribed")
                # a deleted channel ends the subscription; the connection stays
                set_paused(stub, "desk", True)
                await subscribe(late, channel="desk", resume_after=7)
                assert await recv(late) == {"type": "channel_paused", "last_id": 7}
                stub.DeleteChannel(service_pb2.DeleteChannelRequest(name="channels/desk",
                                                                    force=True))
                gone = await frames_until(late, "unsubscribed")
                assert gone["code"] == "CHANNEL_NOT_FOUND", gone
                await late.send(json.dumps({"op": "ping"}))
                assert (await recv(late))["type"] == "pong"
        asyncio.run(run())


def test_unsubscribe_stops_alerts_and_the_connection_stays(tmp_path: Path) -> None:
    with ws_service(tmp_path) as (server, stub):
        rule(stub, "test:A", "every")

        async def run() -> None:
            async with client(server) as ws:
                await subscribe(ws)
                await until_caught_up(ws)
                await ws.send(json.dumps({"op": "unsubscribe"}))
                assert await recv(ws) == {"type": "unsubscribed"}
                await in_thread(publish, stub, 5)
                await ws.send(json.dumps({"op": "ping"}))
                pong = await recv(ws)                # no alert came before it
                assert pong["type"] == "pong" and pong["last_id"] == 5
        asyncio.run(run())


def test_heartbeats_carry_the_last_committed_id(tmp_path: Path) -> None:
    with ws_service(tmp_path) as (server, stub):
        rule(stub, "test:A", "every")
        publish(stub, 4)

        async def run() -> None:
            async with client(server) as ws:
                await subscribe(ws, heartbeat_s=0.05)
                assert await until_caught_up(ws) == ([], 4)
                beat = await recv(ws)
                assert beat["type"] == "heartbeat" and beat["last_id"] == 4
                assert beat["server_time"].endswith("Z")
        asyncio.run(run())


def test_bad_frames_are_answered_with_errors_and_the_connection_stays(tmp_path: Path) -> None:
    with ws_service(tmp_path) as (server, stub):
        rule(stub, "test:A", "every")
        publish(stub, 2)

        async def run() -> None:
            async with client(server) as ws:
                cases: list[tuple[str | bytes, str, str]] = [
                    ("{nope", "BAD_JSON", "not JSON"),
                    (b"\x00\x01", "BAD_JSON", "not binary"),
                    ('{"op": "dance"}', "UNKNOWN_OP", "'dance'"),
                    ("[1, 2]", "INVALID_ARGUMENT", '"op"'),
                    ('{"op": "subscribe", "kinds": ["NOPE"]}', "INVALID_ARGUMENT", "NOPE"),
                    ('{"op": "subscribe", "symbols": "test:A"}', "INVALID_ARGUMENT", "symbols"),
                    ('{"op": "subscribe", "rules": ""}', "INVALID_ARGUMENT", "rules"),
                    ('{"op": "subscribe", "symbols": [":"]}', "INVALID_ARGUMENT", "bad symbol"),
                    ('{"op": "subscribe", "resume_after": 99}', "INVALID_ARGUMENT",
                     "never issued"),
                    ('{"op": "subscribe", "resume_after": -1}', "INVALID_ARGUMENT",
                     "resume_after"),
                    ('{"op": "subscribe", "heartbeat_s": 0}', "INVALID_ARGUMENT", "heartbeat_s"),
                ]
                await subscribe(ws)
                assert await until_caught_up(ws) == ([], 2)
                for sent, code, text in cases:
                    await ws.send(sent)
                    error = await recv(ws)
                    assert error["type"] == "error" and error["code"] == code, (sent, error)
                    assert text in error["message"], (sent, error)
                await in_thread(publish, stub, 1, 2)     # the first subscription still runs
                assert await alert_ids(ws, 3) == [3]
                await subscribe(ws, resume_after=0)
                assert await until_caught_up(ws) == ([1, 2, 3], 3)
        asyncio.run(run())


# slow and silent clients -----------------------------------------------------------------

def _small_window_socket(address: str) -> socket.socket:
    """A connected socket with a tiny receive buffer, so an unread client backs up fast."""
    host, port = address.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


def test_a_slow_client_is_dropped_while_a_fast_one_gets_everything_in_order(
        tmp_path: Path) -> None:
    """One client stops reading; the other reads all along (heartbeats wake it when idle)."""
    with ws_service(tmp_path) as (server, stub):       # the default 1 MiB write limit
        rule(stub, "test:A", "every", BULKY)
        assert server.app is not None and server.app.websocket is not None
        wss = server.app.websocket
        metrics = server.app.processor.metrics

        async def follow(ws: ClientConnection, total: asyncio.Future[int]) -> list[int]:
            ids: list[int] = []
            while not (total.done() and ids and ids[-1] >= total.result()):
                frame = await recv(ws)
                if frame["type"] == "alert":
                    ids.append(frame["alert"]["alert_id"])
            return ids

        async def run() -> None:
            sock = _small_window_socket(wss.address)
            async with client(server) as fast, client(server, sock=sock) as slow:
                await subscribe(fast, heartbeat_s=0.05)
                await subscribe(slow)
                await until_caught_up(fast)
                await until_caught_up(slow)
                total: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                fast_ids = asyncio.create_task(follow(fast, total))
                slow.transport.pause_reading()       # the slow client stops reading
                sent = 0
                while wss.dropped_slow == 0:                # bursts of 450 KB
                    await in_thread(publish, stub, 100, sent)
                    sent += 100
                    assert sent <= 10_000, "the unread client was never dropped"
                await in_thread(publish, stub, 100, sent)   # the fast one goes on
                sent += 100
                total.set_result(sent)
                assert await fast_ids == list(range(1, sent + 1))
                assert wss.dropped_slow == 1
                registry = metrics.registry
                assert registry.get_sample_value("alerts_websocket_closed_total",
                                                 {"reason": "slow"}) == 1.0
                # open connections: the slow one is closing (its close frame is queued)
                assert registry.get_sample_value("alerts_websocket_clients") == 1.0

                slow.transport.resume_reading()
                got: list[int] = []
                with pytest.raises(ConnectionClosed):
                    while True:
                        got.append((await recv(slow))["alert"]["alert_id"])
                assert slow.close_code == 1013
                assert got == list(range(1, len(got) + 1)) and len(got) < sent
                assert (slow.close_reason or "").endswith(f"resume after {got[-1]}")
            async with client(server) as again:     # resuming loses nothing
                await subscribe(again, resume_after=got[-1])
                rest, _ = await until_caught_up(again)
                assert got + rest == list(range(1, sent + 1))
        asyncio.run(run())


def test_a_client_whose_queue_overflows_is_closed_with_1013(tmp_path: Path) -> None:
    with ws_service(tmp_path, ws_queue=50) as (server, stub):
        rule(stub, "test:A", "every")

        async def run() -> None:
            async with client(server) as ws:
                await subscribe(ws)
                await until_caught_up(ws)
                await in_thread(publish, stub, 120)   # commits of up to 120 alerts: 50 fit
                got: list[int] = []
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        got.append((await recv(ws))["alert"]["alert_id"])
                assert got == list(range(1, len(got) + 1)) and len(got) < 120
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
                assert closed.value.rcvd.reason == (
                    f"slow client: fell 50 alerts behind; resume after {len(got)}")
            async with client(server) as again:
                await subscribe(again, resume_after=len(got))
                rest, _ = await until_caught_up(again)
                assert got + rest == list(range(1, 121))
        asyncio.run(run())


def test_a_peer_that_never_answers_pings_is_closed(tmp_path: Path) -> None:
    """A raw client that completes the handshake, then reads but never writes (no pongs)."""
    with ws_service(tmp_path, ws_ping_interval_s=0.1, ws_ping_timeout_s=0.2,
                    ws_close_timeout_s=1.0) as (server, _stub):
        assert server.app is not None
        host, port = server.app.websocket_address.rsplit(":", 1)
        protocol = ClientProtocol(parse_uri(url(server, f"?token={token()}")))
        with socket.create_connection((host, int(port)), timeout=WAIT_S) as sock:
            protocol.send_request(protocol.connect())
            sock.sendall(b"".join(protocol.data_to_send()))
            pings = 0
            close: Close | None = None
            while data := sock.recv(65536):
                protocol.receive_data(data)
                for event in protocol.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.PING:
                        pings += 1
                    elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                        close = Close.parse(event.data)
            # never sent: protocol.data_to_send() holds the unanswered pongs
        assert pings >= 1
        assert close is not None and close.code == 1011
        assert close.reason == "keepalive ping timeout"


def test_shutdown_closes_clients_with_1001(tmp_path: Path) -> None:
    with ws_service(tmp_path) as (server, _stub):
        app = server.app
        assert app is not None

        async def run() -> None:
            async with client(server) as ws:
                await subscribe(ws)
                await until_caught_up(ws)
                stop = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                    app.stop(grace=1.0), server.loop))
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(ws)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
                await stop
        asyncio.run(run())
        server.app = None       # already stopped


def test_a_connection_is_closed_with_1008_when_its_token_expires(tmp_path: Path) -> None:
    with ws_service(tmp_path) as (server, _stub):
        assert server.app is not None
        metrics = server.app.processor.metrics

        async def run() -> None:
            expiring = issue_token(SECRET, "local", 1)        # exp: within the next second
            async with connect(url(server, f"?token={expiring}")) as ws:
                assert (await recv(ws))["type"] == "ready"
                await subscribe(ws)
                await until_caught_up(ws)
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(ws)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
                assert closed.value.rcvd.reason == "the token expired"
                claims = jwt.decode(expiring, SECRET, algorithms=["HS256"],
                                    options={"verify_exp": False})
                assert time.time() >= claims["exp"]
                assert metrics.registry.get_sample_value(
                    "alerts_websocket_closed_total", {"reason": "token_expired"}) == 1.0
        asyncio.run(run())


def test_a_resume_through_the_api_reaches_a_paused_stream_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # no poll and no heartbeat within the test's waits: only the API's own notice can
    # wake the paused stream before recv gives up
    monkeypatch.setattr(websocket, "_PAUSE_POLL_S", 3_600.0)
    with ws_service(tmp_path) as (server, stub):
        ws_channel(stub, "desk")
        rule(stub, "test:A", "on-a", channels=("desk",))
        set_paused(stub, "desk", True)

        async def run() -> None:
            async with client(server) as ws, client(server) as other:
                await subscribe(ws, channel="desk", heartbeat_s=3_600)
                await subscribe(other, channel="desk", heartbeat_s=3_600)
                assert await recv(ws) == {"type": "channel_paused", "last_id": 0}
                assert await recv(other) == {"type": "channel_paused", "last_id": 0}
                await in_thread(publish, stub, 1)               # 1: held
                await in_thread(set_paused, stub, "desk", False)
                for conn in (ws, other):                        # every watcher is woken
                    assert await recv(conn) == {"type": "channel_resumed"}
                    assert await until_caught_up(conn) == ([1], 1)
        asyncio.run(run())
