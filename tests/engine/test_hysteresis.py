"""``Rule.hysteresis`` end to end: CreateRule, PublishTicks, UpdateRule and a restart on
a real server over loopback (SQLite store); the core's cases are in
tests/core/test_hysteresis.py."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import field_mask_pb2

from alerts.v1 import rules_pb2, service_pb2, service_pb2_grpc
from tests.engine.test_hold_for import publish
from tests.support.server import running_server, server_config


def fire_times(stub: service_pb2_grpc.AlertServiceStub) -> list[int]:
    alerts = stub.ListAlerts(service_pb2.ListAlertsRequest()).alerts
    return sorted(a.event_time.ToMilliseconds() for a in alerts if a.rule == "rules/band")


def set_band(stub: service_pb2_grpc.AlertServiceStub, band: float) -> rules_pb2.Rule:
    return stub.UpdateRule(service_pb2.UpdateRuleRequest(
        rule=rules_pb2.Rule(name="rules/band", hysteresis=band),
        update_mask=field_mask_pb2.FieldMask(paths=["hysteresis"])))


def test_hysteresis_over_grpc_through_an_update_and_a_restart(tmp_path: Path) -> None:
    config = server_config(tmp_path)
    with running_server(config) as (_, stub):
        created = stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="band", rule=rules_pb2.Rule(
            symbol="test:A", condition_text="price crosses_above 100",
            trigger_mode=rules_pb2.TRIGGER_MODE_ON_TRUE, hysteresis=2.0)))
        assert created.hysteresis == 2.0 and created.armed

        def armed() -> bool:
            return stub.GetRule(service_pb2.GetRuleRequest(name="rules/band")).armed

        # fires at 1 s; dips to 99 (within the band) and back: no second alert
        publish(stub, (0, 99.0), (1_000, 101.0), (2_000, 99.0), (3_000, 101.0))
        assert fire_times(stub) == [1_000]
        assert not armed()
        # 97.5 is more than 2 below: re-armed, the next crossing fires
        publish(stub, (4_000, 97.5))
        assert armed()
        publish(stub, (5_000, 101.0))
        assert fire_times(stub) == [1_000, 5_000]

        # the band changes without a reset: the rule stays disarmed, and 99 is now
        # beyond a band of 0.5
        assert set_band(stub, 0.5).hysteresis == 0.5
        publish(stub, (6_000, 101.0))
        assert fire_times(stub) == [1_000, 5_000]
        publish(stub, (7_000, 99.0), (8_000, 101.0))
        assert fire_times(stub) == [1_000, 5_000, 8_000]

        # back to a band of 2, disarmed at shutdown
        set_band(stub, 2.0)

    with running_server(config) as (_, stub):       # the same store: the checkpoint
        assert stub.GetRule(service_pb2.GetRuleRequest(name="rules/band")).hysteresis == 2.0
        publish(stub, (9_000, 99.0), (10_000, 101.0))     # within the band: still disarmed
        assert fire_times(stub) == [1_000, 5_000, 8_000]
        publish(stub, (11_000, 97.0), (12_000, 101.0))
        assert fire_times(stub) == [1_000, 5_000, 8_000, 12_000]
