"""``Rule.hold_for`` end to end: CreateRule, PublishTicks, UpdateRule and a restart on a
real server over loopback (SQLite store); the core's cases are in tests/core/test_hold_for.py."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

from alerts.v1 import market_pb2, rules_pb2, service_pb2, service_pb2_grpc
from tests.support.server import running_server, server_config


def ts(ms: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(ms)
    return out


def publish(stub: service_pb2_grpc.AlertServiceStub, *ticks: tuple[int, float]) -> None:
    stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="s", ticks=[
        market_pb2.Tick(symbol="test:A", event_time=ts(t), price=p, quantity=1.0)
        for t, p in ticks])]))


def fire_times(stub: service_pb2_grpc.AlertServiceStub) -> list[int]:
    alerts = stub.ListAlerts(service_pb2.ListAlertsRequest()).alerts
    return sorted(a.event_time.ToMilliseconds() for a in alerts if a.rule == "rules/held")


T, F = 2.0, 0.5     # prices making ``price > 1`` true, false


def test_hold_for_over_grpc_through_an_update_and_a_restart(tmp_path: Path) -> None:
    config = server_config(tmp_path)
    with running_server(config) as (_, stub):
        created = stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="held", rule=rules_pb2.Rule(
            symbol="test:A", condition_text="price > 1",
            trigger_mode=rules_pb2.TRIGGER_MODE_ON_TRUE,
            hold_for=duration_pb2.Duration(seconds=3))))
        assert created.hold_for.ToMilliseconds() == 3_000
        # true from 1 s, false at 2.5 s: the hold restarts at 3 s and ends at 6 s
        publish(stub, (1_000, T), (2_000, T), (2_500, F), (3_000, T), (5_000, T))
        assert fire_times(stub) == []
        rule = stub.GetRule(service_pb2.GetRuleRequest(name="rules/held"))
        assert rule.hold_start_time.ToMilliseconds() == 3_000 and rule.armed
        publish(stub, (6_000, T), (6_500, T))
        assert fire_times(stub) == [6_000]
        rule = stub.GetRule(service_pb2.GetRuleRequest(name="rules/held"))
        assert rule.HasField("hold_start_time") and not rule.armed
        publish(stub, (6_800, F))
        rule = stub.GetRule(service_pb2.GetRuleRequest(name="rules/held"))
        assert not rule.HasField("hold_start_time") and rule.armed

        # re-armed at 7 s, a new hold from 8 s; shortened to 1.5 s while it runs, it keeps
        # its start (a limits change): held at 9.5 s, not 1.5 s after the update
        publish(stub, (7_000, F), (8_000, T))
        updated = stub.UpdateRule(service_pb2.UpdateRuleRequest(
            rule=rules_pb2.Rule(name="rules/held",
                                hold_for=duration_pb2.Duration(nanos=500_000_000, seconds=1)),
            update_mask=field_mask_pb2.FieldMask(paths=["hold_for"])))
        assert updated.hold_for.ToMilliseconds() == 1_500
        publish(stub, (9_000, T))
        assert fire_times(stub) == [6_000]
        publish(stub, (9_500, T))
        assert fire_times(stub) == [6_000, 9_500]

        # re-armed at 10 s, a hold from 11 s under way at shutdown
        publish(stub, (10_000, F), (11_000, T), (12_000, T))

    with running_server(config) as (_, stub):       # the same store: the checkpoint
        got = stub.GetRule(service_pb2.GetRuleRequest(name="rules/held"))
        assert got.hold_for.ToMilliseconds() == 1_500
        publish(stub, (12_400, T))
        assert fire_times(stub) == [6_000, 9_500]
        publish(stub, (12_500, T))                  # 1.5 s after 11 s, not after 12.4 s
        assert fire_times(stub) == [6_000, 9_500, 12_500]
