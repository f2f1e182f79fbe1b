"""Subscribe: durable cursor, cumulative acks, max_unacked pauses delivery without dropping."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from alerts.v1 import service_pb2, service_pb2_grpc
from tests.api.test_streams import every_tick_rule, publish
from tests.support.server import running_server, server_config


async def _open(channel: grpc.aio.Channel, sid: str, **kw: object):  # type: ignore[no-untyped-def]
    queue: asyncio.Queue[service_pb2.SubscribeRequest | None] = asyncio.Queue()
    await queue.put(service_pb2.SubscribeRequest(open=service_pb2.SubscribeOpen(
        subscription_id=sid, **kw)))

    async def requests():  # type: ignore[no-untyped-def]
        while (item := await queue.get()) is not None:
            yield item

    call = service_pb2_grpc.AlertServiceStub(channel).Subscribe(requests())
    return call, queue


async def _read_until(call, kind: str, collected: list[int]):  # type: ignore[no-untyped-def]
    while True:
        msg = await asyncio.wait_for(call.read(), 10)
        which = msg.WhichOneof("payload")
        if which == "alert":
            collected.append(msg.alert.id)
        if which == kind:
            return msg


def test_max_unacked_pauses_until_acked_and_nothing_is_dropped(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path)) as (server, stub):
        every_tick_rule(stub)
        publish(stub, 10)

        async def run() -> list[int]:
            async with grpc.aio.insecure_channel(server.target) as channel:
                call, acks = await _open(channel, "bot", max_unacked=3, resume_after=0)
                got: list[int] = []
                assert (await call.read()).WhichOneof("payload") == "ack"
                first = await call.read()
                assert first.subscription.paused is False
                while len(got) < 9:
                    paused = await _read_until(call, "subscription", got)
                    assert paused.subscription.paused is True
                    assert paused.subscription.unacked_count == 3
                    assert len(got) % 3 == 0          # exactly max_unacked were delivered
                    await acks.put(service_pb2.SubscribeRequest(
                        ack=service_pb2.SubscribeAck(alert_id=got[-1])))
                    resumed = await _read_until(call, "subscription", got)
                    assert resumed.subscription.paused is False
                await _read_until(call, "alert", got)      # the tenth: one unacked, no pause
                await acks.put(None)
                call.cancel()
                return got

        assert asyncio.run(run()) == list(range(1, 11))


def test_reopened_subscription_resumes_after_its_last_ack(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path)) as (server, stub):
        every_tick_rule(stub)

        async def run() -> list[int]:
            async with grpc.aio.insecure_channel(server.target) as channel:
                call, acks = await _open(channel, "durable")
                got: list[int] = []
                await _read_until(call, "caught_up", got)
                await asyncio.get_running_loop().run_in_executor(None, publish, stub, 5)
                while len(got) < 5:
                    await _read_until(call, "alert", got)
                await acks.put(service_pb2.SubscribeRequest(
                    ack=service_pb2.SubscribeAck(alert_id=3)))
                await acks.put(None)
                await _wait_acked(server, "durable", 3)
                call.cancel()
                again, acks2 = await _open(channel, "durable")
                later: list[int] = []
                await _read_until(again, "caught_up", later)
                await acks2.put(None)
                again.cancel()
                return later

        assert asyncio.run(run()) == [4, 5]


async def _wait_acked(server, sid: str, alert_id: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        rec = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
            server.app.store.get_subscription("local", sid), server.loop))
        if rec is not None and rec.acked_id >= alert_id:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"subscription {sid} never stored ack {alert_id}")


def test_opening_a_subscription_again_ends_the_older_stream(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path)) as (server, _):
        async def run() -> grpc.StatusCode:
            async with grpc.aio.insecure_channel(server.target) as channel:
                old, _ = await _open(channel, "one")
                await _read_until(old, "caught_up", [])
                new, q = await _open(channel, "one")
                await _read_until(new, "caught_up", [])
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    while True:
                        await asyncio.wait_for(old.read(), 30)
                await q.put(None)
                new.cancel()
                return err.value.code()

        assert asyncio.run(run()) == grpc.StatusCode.ABORTED


def test_a_subscription_keeps_its_filter_until_an_open_replaces_it(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path)) as (server, stub):
        every_tick_rule(stub, "test:A")
        every_tick_rule(stub, "test:B")
        publish(stub, 3, symbol="test:A")     # alerts 1-3
        publish(stub, 3, symbol="test:B")     # alerts 4-6

        async def replay(**open_fields: object) -> list[int]:
            async with grpc.aio.insecure_channel(server.target) as channel:
                call, acks = await _open(channel, "filtered", resume_after=0, **open_fields)
                got: list[int] = []
                await _read_until(call, "caught_up", got)
                await acks.put(None)
                call.cancel()
                return got

        only_b = service_pb2.AlertFilter(symbols=["test:B"])
        assert asyncio.run(replay(filter=only_b)) == [4, 5, 6]
        assert asyncio.run(replay()) == [4, 5, 6]           # unset: the stored filter
        assert asyncio.run(replay(filter=service_pb2.AlertFilter())) == [1, 2, 3, 4, 5, 6]
        assert asyncio.run(replay()) == [1, 2, 3, 4, 5, 6]  # the empty one was stored
