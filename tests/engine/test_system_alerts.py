"""SYSTEM alerts about rules: RULE_EXPIRED, from the core to the owner's streams and the
rule's channels, once per expiry (CHANNEL_DEAD_LETTER is tested with the delivery
faults, tests/delivery/test_faults.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from google.protobuf import field_mask_pb2

from alerts.engine.kernel import Expiry, Kernel
from alerts.storage import open_store
from alerts.storage.records import ChannelRecord, WebhookSettings
from alerts.v1 import alerts_pb2, rules_pb2, service_pb2, service_pb2_grpc
from tests.core.test_hold_for import run, times
from tests.engine.test_hold_for import publish, ts
from tests.support.delivery import stored_alerts
from tests.support.server import running_server, server_config
from tests.support.webhook_receiver import WebhookReceiver

SYSTEM = alerts_pb2.ALERT_KIND_SYSTEM


def test_the_core_reports_an_expiry_once_and_not_as_a_fire() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", "price > 1", expire_time_ms=2_500)
    fired = run(kernel, src, [(1_000, 2.0), (2_000, 0.5), (3_000, 2.0), (4_000, 2.0)])
    assert times(fired) == [1_000]
    assert kernel.take_expired() == [Expiry("r", "t:A", 2_500, 0)]
    assert kernel.take_expired() == []
    assert kernel.rule_state("r")["expired"] is True
    # a later expire time revives it; it expires again, at the new time
    kernel.set_limits("r", cooldown_ms=0, expire_time_ms=6_000, max_fires=0)
    assert times(run(kernel, src, [(5_000, 0.5), (5_500, 2.0), (7_000, 2.0)])) == [5_500]
    assert kernel.take_expired() == [Expiry("r", "t:A", 6_000, 0)]


def _hook_channel(db: Path, receiver: WebhookReceiver) -> None:
    async def go() -> None:
        store = await open_store(f"sqlite:///{db}")
        try:
            await store.create_channel(ChannelRecord(
                channel_id="hook", owner="local", settings=WebhookSettings(url=receiver.url),
                secret=receiver.secret))
        finally:
            await store.close()
    asyncio.run(go())


def _system(stub: service_pb2_grpc.AlertServiceStub) -> list[alerts_pb2.Alert]:
    return [a for a in stored_alerts(stub) if a.kind == SYSTEM]


def test_an_expired_rule_tells_its_owner_once_on_streams_and_its_channels(
        tmp_path: Path) -> None:
    receiver = WebhookReceiver().start()
    try:
        _hook_channel(tmp_path / "alerts.db", receiver)
        config = server_config(tmp_path, webhook_allow="127.0.0.1")
        with running_server(config) as (_, stub):
            stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="lapse", rule=rules_pb2.Rule(
                symbol="test:A", condition_text="price > 1", expire_time=ts(2_500),
                display_name="Lapsing", channels=["channels/hook"])))
            stream = stub.StreamAlerts(service_pb2.StreamAlertsRequest(
                filter=service_pb2.AlertFilter(kinds=[SYSTEM])))
            assert next(stream).WhichOneof("payload") == "ack"
            assert next(stream).WhichOneof("payload") == "caught_up"
            publish(stub, (1_000, 2.0), (2_000, 0.5), (3_000, 2.0), (4_000, 2.0))
            streamed = next(stream)
            stream.cancel()
            [notice] = _system(stub)
            assert streamed.alert == notice
            assert (notice.system.reason, notice.system.resource) == ("RULE_EXPIRED",
                                                                      "rules/lapse")
            assert (notice.rule, notice.fire_rank, notice.symbol) == ("", 0, "test:A")
            assert notice.event_time.ToMilliseconds() == 2_500
            assert notice.message.startswith("Lapsing: rule expired at 1970-01-01T00:00:02.500")
            assert notice.rule_display_name == "Lapsing"
            rule = stub.GetRule(service_pb2.GetRuleRequest(name="rules/lapse"))
            assert rule.state == rules_pb2.Rule.STATE_EXPIRED
            fires = [a for a in stored_alerts(stub) if a.kind == alerts_pb2.ALERT_KIND_RULE]
            assert [a.event_time.ToMilliseconds() for a in fires] == [1_000]
            # the rule's channel gets both: the fire, then the notice
            receiver.wait_accepted({fires[0].id, notice.id})
            assert [a.text for a in receiver.arrivals if a.alert_id == notice.id] == [
                notice.message]

        with running_server(config) as (_, stub):       # restarted: told once only
            publish(stub, (5_000, 2.0))
            assert [a.id for a in _system(stub)] == [notice.id]
            # moved past: the rule fires again, and expires again at the new time
            stub.UpdateRule(service_pb2.UpdateRuleRequest(
                rule=rules_pb2.Rule(name="rules/lapse", expire_time=ts(10_000)),
                update_mask=field_mask_pb2.FieldMask(paths=["expire_time"])))
            publish(stub, (6_000, 0.5), (7_000, 2.0), (11_000, 2.0))
            assert [a.event_time.ToMilliseconds() for a in _system(stub)] == [2_500, 10_000]
    finally:
        receiver.close()
