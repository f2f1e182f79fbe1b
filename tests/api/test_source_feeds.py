"""Market sources through a real server: DATA_QUALITY alerts on the streams, health per source.

The sources are scripted (``tests/support/sources.py``); everything else is the
real service on loopback: CreateRule subscribes the source, feed events come
back as DATA_QUALITY alerts on StreamAlerts and ListAlerts, and the gRPC health
service answers for ``alerts.v1.source.<name>``.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alerts.market.base import SourceHealth, Tick
from alerts.v1 import alerts_pb2, rules_pb2, service_pb2, service_pb2_grpc
from tests.support.server import ServerThread, server_config
from tests.support.sources import ScriptedSource

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
T0 = 1_723_161_600_000


def test_data_quality_alerts_and_source_health_over_grpc(tmp_path: Path) -> None:
    ws, rest = ScriptedSource("ws"), ScriptedSource("rest")
    rest.health_now = SourceHealth(up=False, detail="HTTP 503")
    config = server_config(tmp_path, market_routes="binance=ws,rest",
                           feed_check_interval_ms=3_600_000, feed_stale_after_ms=0,
                           feed_recover_after_ms=3_600_000, warmup_wait_ms=0)
    server = ServerThread(config, {"ws": ws, "rest": rest}).start()
    channel = grpc.insecure_channel(server.target)
    try:
        stub = service_pb2_grpc.AlertServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        def status(name: str) -> int:
            return health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10).status

        assert status("alerts.v1.source.ws") == SERVING
        assert status("alerts.v1.source.rest") == NOT_SERVING
        assert status("alerts.v1.AlertService") == SERVING

        stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="btc", rule=rules_pb2.Rule(
            symbol="BTCUSDT", condition_text="price > 60000")), timeout=10)
        app = server.app
        assert app is not None and app.feeds is not None
        server.call(app.feeds.idle())
        assert ws.symbols == {"binance:BTCUSDT"}

        stream = stub.StreamAlerts(service_pb2.StreamAlertsRequest(
            filter=service_pb2.AlertFilter(kinds=[alerts_pb2.ALERT_KIND_DATA_QUALITY])),
            timeout=30)
        assert next(stream).HasField("ack")
        assert next(stream).HasField("caught_up")
        server.call(ws.push([Tick("binance:BTCUSDT", 60_100.0, 1.0, T0, 1)]))     # a RULE alert
        server.call(ws.emit("RECONNECT", T0 + 1, "connection 1 reopened after 2.1 s"))
        server.call(ws.emit("GAP", T0 + 2, "trades 7..9 missing", "binance:BTCUSDT"))
        first, second = next(stream).alert, next(stream).alert
        assert (first.kind, first.rule, first.symbol) == (
            alerts_pb2.ALERT_KIND_DATA_QUALITY, "", "binance:*")  # no rule fired it
        assert first.message == ("data quality: reconnected on ws: "
                                 "connection 1 reopened after 2.1 s")
        assert first.event_time.ToMilliseconds() == T0 + 1
        assert (second.symbol, second.event_time.ToMilliseconds()) == ("binance:BTCUSDT", T0 + 2)
        # the same as structured details: what, which source, since when
        assert (first.data_quality.issue, first.data_quality.source,
                first.data_quality.detail) == (alerts_pb2.DATA_QUALITY_ISSUE_RECONNECT, "ws",
                                               "connection 1 reopened after 2.1 s")
        assert first.data_quality.start_time.ToMilliseconds() == T0 + 1
        assert not first.data_quality.HasField("end_time")
        assert (second.data_quality.issue, second.data_quality.detail) == (
            alerts_pb2.DATA_QUALITY_ISSUE_GAP, "trades 7..9 missing")

        # the primary fails: health flips, the venue goes to the fallback, bots are told
        ws.health_now = SourceHealth(up=False, detail="connection refused")
        rest.health_now = SourceHealth(up=True)
        server.call(app.feeds.check())
        assert status("alerts.v1.source.ws") == NOT_SERVING
        assert status("alerts.v1.source.rest") == SERVING
        assert app.feeds.active_source("binance") == "rest"
        stale = next(stream).alert
        assert "ws is down or silent: binance switched to rest" in stale.message
        assert stale.data_quality.issue == alerts_pb2.DATA_QUALITY_ISSUE_STALE_FEED
        stream.cancel()

        listed = stub.ListAlerts(service_pb2.ListAlertsRequest(filter=service_pb2.AlertFilter(
            kinds=[alerts_pb2.ALERT_KIND_DATA_QUALITY])), timeout=10).alerts
        assert [a.id for a in listed] == [first.id, second.id, stale.id]
        rules = stub.ListAlerts(service_pb2.ListAlertsRequest(filter=service_pb2.AlertFilter(
            kinds=[alerts_pb2.ALERT_KIND_RULE])), timeout=10).alerts
        assert [a.rule for a in rules] == ["rules/btc"]
    finally:
        channel.close()
        server.stop()
    assert ws.stopped and rest.stopped
