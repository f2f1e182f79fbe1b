"""Alert streams under pressure: slow consumers, many subscribers, shutdown; metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from alerts.v1 import market_pb2, rules_pb2, service_pb2, service_pb2_grpc
from tests.support.server import running_server, server_config


def ts(ms: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(ms)
    return out


def every_tick_rule(stub: service_pb2_grpc.AlertServiceStub, symbol: str = "test:A") -> None:
    stub.CreateRule(service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
        symbol=symbol, condition_text="price > 0",
        trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME, cooldown=duration_pb2.Duration())))


def publish(stub: service_pb2_grpc.AlertServiceStub, n: int, start: int = 0,
            symbol: str = "test:A") -> None:
    ticks = [market_pb2.Tick(symbol=symbol, event_time=ts(1000 + i), price=1.0, quantity=1.0,
                             trade_id=i + 1) for i in range(start, start + n)]
    for s in range(0, n, 1000):
        stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="load",
                                                                ticks=ticks[s:s + 1000])]))


def test_slow_consumer_is_ended_and_resumes_without_loss(tmp_path: Path) -> None:
    config = server_config(tmp_path, subscriber_queue=50)
    with running_server(config) as (server, stub):
        every_tick_rule(stub)
        # a small, fixed flow-control window so the unread stream backs up into the hub
        channel = grpc.insecure_channel(server.target, options=[("grpc.http2.bdp_probe", 0)])
        slow = service_pb2_grpc.AlertServiceStub(channel).StreamAlerts(
            service_pb2.StreamAlertsRequest(resume_after=0))
        assert next(slow).WhichOneof("payload") == "ack"
        assert next(slow).WhichOneof("payload") == "caught_up"
        publish(stub, 5000)
        got: list[int] = []
        with pytest.raises(grpc.RpcError) as err:
            for msg in slow:
                if msg.WhichOneof("payload") == "alert":
                    got.append(msg.alert.id)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(err.value)
        info = error_details_pb2.ErrorInfo()
        assert status is not None
        assert any(d.Unpack(info) for d in status.details if d.Is(info.DESCRIPTOR))
        assert info.reason == "SLOW_CONSUMER"
        assert len(got) < 5000
        resumed = stub.StreamAlerts(service_pb2.StreamAlertsRequest(resume_after=got[-1]))
        for msg in resumed:
            if msg.WhichOneof("payload") == "alert":
                got.append(msg.alert.id)
            elif msg.WhichOneof("payload") == "caught_up":
                break
        resumed.cancel()
        channel.close()
        assert got == list(range(1, 5001))


def test_a_thousand_subscribers_each_get_every_alert_in_order(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path)) as (server, stub):
        every_tick_rule(stub)

        async def run() -> list[list[int]]:
            async with grpc.aio.insecure_channel(server.target) as channel:
                astub = service_pb2_grpc.AlertServiceStub(channel)
                calls = [astub.StreamAlerts(service_pb2.StreamAlertsRequest())
                         for _ in range(1000)]
                for call in calls:   # every stream is registered once it has caught up
                    assert (await call.read()).WhichOneof("payload") == "ack"
                    assert (await call.read()).WhichOneof("payload") == "caught_up"
                await asyncio.get_running_loop().run_in_executor(None, publish, stub, 20)

                async def collect(call) -> list[int]:  # type: ignore[no-untyped-def]
                    ids = []
                    while len(ids) < 20:
                        msg = await call.read()
                        if msg.WhichOneof("payload") == "alert":
                            ids.append(msg.alert.id)
                    call.cancel()
                    return ids
                return await asyncio.gather(*(collect(c) for c in calls))

        results = asyncio.run(run())
        assert all(ids == list(range(1, 21)) for ids in results)


def test_shutdown_ends_streams_with_unavailable(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path)) as (server, stub):
        stream = stub.StreamAlerts(service_pb2.StreamAlertsRequest())
        assert next(stream).WhichOneof("payload") == "ack"
        assert next(stream).WhichOneof("payload") == "caught_up"
        server.call(server.app.stop(grace=1.0))
        with pytest.raises(grpc.RpcError) as err:
            for _ in stream:
                pass
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        server.app = None     # already stopped


def test_metrics_endpoint_counts_ticks_and_alerts(tmp_path: Path) -> None:
    config = server_config(tmp_path, metrics_listen="127.0.0.1:0")
    with running_server(config) as (server, stub):
        every_tick_rule(stub)
        publish(stub, 30)
        text = httpx.get(f"http://{server.app.metrics_address}/metrics").text
        assert 'alerts_ticks_total{outcome="accepted"} 30.0' in text
        assert "alerts_fired_total 30.0" in text
        assert "alerts_tick_to_alert_seconds_count 1.0" in text
        assert "alerts_store_write_seconds_bucket" in text


def test_live_alert_messages_are_built_once_for_every_stream(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from alerts.api import convert
    from alerts.api.service import _LiveMessages
    from tests.delivery.channels.conftest import make_alert
    built: list[int] = []
    real = convert.alert_to_proto
    monkeypatch.setattr(convert, "alert_to_proto",
                        lambda rec: built.append(rec.alert_id) or real(rec))
    live = _LiveMessages(size=2)
    first = live.response(service_pb2.StreamAlertsResponse, make_alert(1))
    assert live.response(service_pb2.StreamAlertsResponse, make_alert(1)) is first        # shared, not rebuilt
    assert live.response(service_pb2.SubscribeResponse, make_alert(1)).alert == first.alert
    assert first.alert.id == 1 and first.alert.rule_display_name == "BTC breakout"
    assert built == [1]
    for newer in (2, 3):                                       # 1 falls out of the window
        live.response(service_pb2.StreamAlertsResponse, make_alert(newer))
        live.response(service_pb2.SubscribeResponse, make_alert(newer))
    assert live.response(service_pb2.StreamAlertsResponse, make_alert(1)) is not first
    assert built == [1, 2, 3, 1]
