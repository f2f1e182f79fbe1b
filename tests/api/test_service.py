"""AlertService end to end on a real server over loopback (SQLite store)."""

from __future__ import annotations

import asyncio
import math
import threading
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from alerts.v1 import alerts_pb2, market_pb2, rules_pb2, service_pb2
from tests.support.conformance import case_params
from tests.support.postgres import fresh_databases
from tests.support.server import running_server, server_config


def ts(ms: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(ms)
    return out


def details(err: grpc.RpcError) -> dict[str, object]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    out: dict[str, object] = {}
    for d in status.details:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest,
                    error_details_pb2.RetryInfo):
            if d.Is(cls.DESCRIPTOR):
                msg = cls()
                d.Unpack(msg)
                out[cls.__name__] = msg
    return out


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    with running_server(server_config(tmp_path)) as pair:
        yield pair


MODES = {"ON_TRUE": rules_pb2.TRIGGER_MODE_ON_TRUE, "ONCE": rules_pb2.TRIGGER_MODE_ONCE,
         "EVERY_TIME": rules_pb2.TRIGGER_MODE_EVERY_TIME,
         "ONCE_PER_BAR": rules_pb2.TRIGGER_MODE_ONCE_PER_BAR,
         "ONCE_PER_BAR_CLOSE": rules_pb2.TRIGGER_MODE_ONCE_PER_BAR_CLOSE}
TF = {"1m": market_pb2.TIMEFRAME_1M}


def rule_message(spec: dict) -> rules_pb2.Rule:
    rule = rules_pb2.Rule(symbol=spec["symbol"], condition_text=spec["condition"],
                          trigger_mode=MODES[spec["mode"]],
                          max_fires=spec.get("max_fires", 0))
    if "timeframe" in spec:
        rule.timeframe = TF[spec["timeframe"]]
    if "cooldown_ms" in spec:
        rule.cooldown.CopyFrom(duration_pb2.Duration(seconds=spec["cooldown_ms"] // 1000,
                                                     nanos=spec["cooldown_ms"] % 1000 * 10**6))
    if "expire_time_ms" in spec:
        rule.expire_time.CopyFrom(ts(spec["expire_time_ms"]))
    return rule


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
@pytest.mark.parametrize("case", case_params())
def test_conformance_case_over_grpc(case: dict, store: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        config = server_config(tmp_path)
        if store == "postgresql":
            [url] = stack.enter_context(fresh_databases(1, "alerts_conformance"))
            config = server_config(tmp_path, store_url=url)
        _, stub = stack.enter_context(running_server(config))
        ids = {}
        for spec in case["rules"]:
            rid = "c-" + spec["id"].lower()
            stub.CreateRule(service_pb2.CreateRuleRequest(rule=rule_message(spec), rule_id=rid))
            ids[f"rules/{rid}"] = spec["id"]
        stream = stub.StreamAlerts(service_pb2.StreamAlertsRequest(
            heartbeat_interval=duration_pb2.Duration(seconds=30)))
        first = next(stream)
        assert first.WhichOneof("payload") == "ack"
        assert next(stream).WhichOneof("payload") == "caught_up"
        ticks = [market_pb2.Tick(symbol=s, event_time=ts(t), price=p, quantity=q, trade_id=i)
                 for s, t, p, q, i in case["ticks"]]
        fill = case["source"]["fill_gaps"]
        reply = stub.PublishTicks(iter([service_pb2.PublishTicksRequest(
            source="conformance", ticks=ticks, fill_gaps=fill)]))
        assert reply.accepted_count + reply.late_count + reply.duplicate_count == len(ticks)
        listed = stub.ListAlerts(service_pb2.ListAlertsRequest(page_size=1000)).alerts
        fires = [a for a in listed if a.kind == alerts_pb2.ALERT_KIND_RULE]
        got = sorted([ids[a.rule], a.symbol, a.event_time.ToMilliseconds()] for a in fires)
        assert got == sorted(case["expected"]), case["why"]
        # the other alerts: each rule with an expire time its symbol's ticks reached, once
        def reached(rule: dict) -> bool:
            last = max(t for sym, t, *_ in case["ticks"] if sym == rule["symbol"])
            return "expire_time_ms" in rule and rule["expire_time_ms"] <= last
        expiring = sorted((f"rules/c-{r['id'].lower()}", r["expire_time_ms"])
                          for r in case["rules"] if reached(r))
        system = [a for a in listed if a.kind != alerts_pb2.ALERT_KIND_RULE]
        assert sorted((a.system.resource, a.event_time.ToMilliseconds()) for a in system) == \
            expiring
        assert {(a.kind, a.system.reason, a.rule, a.fire_rank) for a in system} <= {
            (alerts_pb2.ALERT_KIND_SYSTEM, "RULE_EXPIRED", "", 0)}
        streamed = []
        for _ in range(len(listed)):
            msg = next(stream)
            assert msg.WhichOneof("payload") == "alert"
            streamed.append(msg.alert)
        stream.cancel()
        assert [a.id for a in streamed] == [a.id for a in listed]
        assert [a.id for a in listed] == sorted(a.id for a in listed)


def test_rule_lifecycle(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    created = stub.CreateRule(service_pb2.CreateRuleRequest(
        rule_id="rsi-hot", rule=rules_pb2.Rule(symbol="BTCUSDT",
                                               condition_text="rsi(14,5m)>70",
                                               display_name="hot")))
    assert created.name == "rules/rsi-hot"
    assert created.symbol == "binance:BTCUSDT"
    assert created.condition_text == "rsi(14, 5m) > 70"
    assert created.condition.WhichOneof("kind") == "compare"
    assert created.effective_timeframe == market_pb2.TIMEFRAME_5M
    assert created.state == rules_pb2.Rule.STATE_WARMING_UP
    assert stub.GetRule(service_pb2.GetRuleRequest(name="rules/rsi-hot")) == created

    with pytest.raises(grpc.RpcError) as err:
        stub.CreateRule(service_pb2.CreateRuleRequest(
            rule_id="rsi-hot", rule=rules_pb2.Rule(symbol="X", condition_text="price > 1")))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS

    updated = stub.UpdateRule(service_pb2.UpdateRuleRequest(
        rule=rules_pb2.Rule(name="rules/rsi-hot", display_name="very hot", paused=True),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name", "paused"])))
    assert (updated.display_name, updated.paused) == ("very hot", True)
    assert updated.condition_text == "rsi(14, 5m) > 70"
    assert updated.state == rules_pb2.Rule.STATE_PAUSED
    assert updated.etag != created.etag

    for i in range(5):
        stub.CreateRule(service_pb2.CreateRuleRequest(
            rule=rules_pb2.Rule(symbol="ETHUSDT", condition_text=f"price > {i}")))
    seen, token = [], ""
    while True:
        page = stub.ListRules(service_pb2.ListRulesRequest(page_size=2, page_token=token))
        seen += [r.name for r in page.rules]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 6 and len(set(seen)) == 6
    eth = stub.ListRules(service_pb2.ListRulesRequest(filter='symbol = "ETHUSDT"'))
    assert len(eth.rules) == 5

    stub.DeleteRule(service_pb2.DeleteRuleRequest(name="rules/rsi-hot"))
    with pytest.raises(grpc.RpcError) as err:
        stub.GetRule(service_pb2.GetRuleRequest(name="rules/rsi-hot"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_request_id_makes_create_idempotent(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    req = service_pb2.CreateRuleRequest(
        request_id="7b1c", rule=rules_pb2.Rule(symbol="X", condition_text="price > 1"))
    a = stub.CreateRule(req)
    b = stub.CreateRule(req)
    assert a.name == b.name
    assert len(stub.ListRules(service_pb2.ListRulesRequest()).rules) == 1


def test_bad_rule_is_invalid_argument_with_position(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateRule(service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
            symbol="BTCUSDT", condition_text="rsi(14, 5m) > 70 and volme_z(20, 1m) > 3")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    d = details(err.value)
    assert d["ErrorInfo"].reason == "INVALID_RULE"  # type: ignore[attr-defined]
    assert d["ErrorInfo"].domain == "alerts.v1"  # type: ignore[attr-defined]
    violation = d["BadRequest"].field_violations[0]  # type: ignore[attr-defined]
    assert violation.field == "rule.condition_text"
    assert violation.description.startswith("1:22: unknown indicator 'volme_z'")
    assert stub.ListRules(service_pb2.ListRulesRequest()).rules == []


def test_validate_only_and_validate_rule_store_nothing(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    rule = rules_pb2.Rule(symbol="X", condition_text="close(1h) crosses_above sma(50, 1h)")
    preview = stub.CreateRule(service_pb2.CreateRuleRequest(rule=rule, validate_only=True))
    assert preview.condition_text == "close(1h) crosses_above sma(50, 1h)"
    checked = stub.ValidateRule(service_pb2.ValidateRuleRequest(rule=rule))
    assert checked.timeframe == market_pb2.TIMEFRAME_1H
    assert checked.canonical_text == "close(1h) crosses_above sma(50, 1h)"
    assert stub.ListRules(service_pb2.ListRulesRequest()).rules == []


def test_create_with_a_passed_deadline_stores_nothing(served) -> None:  # type: ignore[no-untyped-def]
    server, stub = served
    release = threading.Event()

    async def hold_engine() -> None:
        # tick batches and rule changes share one lock: hold it so the RPC's deadline
        # passes while it waits
        async with server.app.processor._lock:
            await asyncio.get_running_loop().run_in_executor(None, release.wait)

    held = asyncio.run_coroutine_threadsafe(hold_engine(), server.loop)
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateRule(service_pb2.CreateRuleRequest(
                rule=rules_pb2.Rule(symbol="X", condition_text="price > 1")), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        release.set()
        held.result(10)
    assert stub.ListRules(service_pb2.ListRulesRequest()).rules == []


def test_bad_tick_names_its_index(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    ticks = [market_pb2.Tick(symbol="X", event_time=ts(1000), price=1.0, quantity=1.0),
             market_pb2.Tick(symbol="X", event_time=ts(2000), price=math.nan, quantity=1.0)]
    with pytest.raises(grpc.RpcError) as err:
        stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="s", ticks=ticks)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violation = details(err.value)["BadRequest"].field_violations[0]  # type: ignore[attr-defined]
    assert violation.field == "ticks[1].price"


def test_messages_before_a_bad_one_commit_and_none_after(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    stub.CreateRule(service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
        symbol="test:A", condition_text="price > 1",
        trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME, cooldown=duration_pb2.Duration())))

    def message(second: int, price: float) -> service_pb2.PublishTicksRequest:
        return service_pb2.PublishTicksRequest(source="s", ticks=[market_pb2.Tick(
            symbol="test:A", event_time=ts(1000 * second), price=price, quantity=1.0,
            trade_id=second)])

    # Each message is received (and decoded) while the one before runs: the bad third
    # is refused only after the first two committed, and the fourth is never applied.
    with pytest.raises(grpc.RpcError) as err:
        stub.PublishTicks(iter([message(1, 2.0), message(2, 3.0), message(3, -1.0),
                                message(4, 5.0)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violation = details(err.value)["BadRequest"].field_violations[0]  # type: ignore[attr-defined]
    assert violation.field == "ticks[0].price"
    alerts = stub.ListAlerts(service_pb2.ListAlertsRequest()).alerts
    assert sorted(a.trade_id for a in alerts) == [1, 2]
    # The source goes on from where it was: the fourth message is accepted when resent.
    done = stub.PublishTicks(iter([message(4, 5.0)]))
    assert (done.accepted_count, done.late_count, done.duplicate_count) == (1, 0, 0)


def test_stream_resume_and_never_issued_id(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    stub.CreateRule(service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
        symbol="test:A", condition_text="price > 1",
        trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME,
        cooldown=duration_pb2.Duration())))
    ticks = [market_pb2.Tick(symbol="test:A", event_time=ts(1000 * i), price=2.0, quantity=1.0)
             for i in range(1, 6)]
    stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="s", ticks=ticks)]))
    ids = [a.id for a in stub.ListAlerts(service_pb2.ListAlertsRequest()).alerts]
    assert len(ids) == 5
    stream = stub.StreamAlerts(service_pb2.StreamAlertsRequest(resume_after=ids[1]))
    kinds = [next(stream) for _ in range(5)]
    assert [m.WhichOneof("payload") for m in kinds] == ["ack", "alert", "alert", "alert",
                                                         "caught_up"]
    assert [m.alert.id for m in kinds[1:4]] == ids[2:]
    stream.cancel()
    with pytest.raises(grpc.RpcError) as err:
        list(stub.StreamAlerts(service_pb2.StreamAlertsRequest(resume_after=ids[-1] + 10)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_heartbeats_carry_the_last_committed_id(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    stream = stub.StreamAlerts(service_pb2.StreamAlertsRequest(
        heartbeat_interval=duration_pb2.Duration(nanos=100_000_000)))
    ack = next(stream)
    assert ack.WhichOneof("payload") == "ack"
    assert ack.ack.heartbeat_interval.ToMilliseconds() == 100   # the interval in effect
    assert next(stream).WhichOneof("payload") == "caught_up"
    beat = next(stream)
    assert beat.WhichOneof("payload") == "heartbeat"
    assert beat.heartbeat.last_committed_id == 0
    stream.cancel()
    default = stub.StreamAlerts(service_pb2.StreamAlertsRequest())
    assert next(default).ack.heartbeat_interval.ToMilliseconds() == 15_000
    default.cancel()
    for interval in (duration_pb2.Duration(nanos=49_000_000), duration_pb2.Duration(seconds=301)):
        with pytest.raises(grpc.RpcError) as err:
            next(stub.StreamAlerts(service_pb2.StreamAlertsRequest(heartbeat_interval=interval)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        violation = details(err.value)["BadRequest"].field_violations[0]  # type: ignore[attr-defined]
        assert violation.field == "heartbeat_interval"


def test_a_replay_owes_heartbeats_only_when_it_sends_nothing_for_an_interval() -> None:
    from alerts.api.service import _Beat
    now = [100.0]
    beat = _Beat(2.0, clock=lambda: now[0])
    now[0] = 101.9
    assert not beat.due()
    beat.sent()                 # an alert went out at 101.9
    now[0] = 103.8
    assert not beat.due()
    now[0] = 103.9
    assert beat.due()           # 2 s of nothing sent: one heartbeat...
    assert not beat.due()       # ...which restarts the interval
    now[0] = 105.9
    assert beat.due()


def test_health_is_serving(served) -> None:  # type: ignore[no-untyped-def]
    server, _ = served
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="alerts.v1.AlertService"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_stale_etag_is_aborted(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    rule = stub.CreateRule(service_pb2.CreateRuleRequest(
        rule_id="e", rule=rules_pb2.Rule(symbol="X", condition_text="price > 1")))
    stub.UpdateRule(service_pb2.UpdateRuleRequest(
        rule=rules_pb2.Rule(name="rules/e", display_name="one", etag=rule.etag),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])))
    for call in (
        lambda: stub.UpdateRule(service_pb2.UpdateRuleRequest(
            rule=rules_pb2.Rule(name="rules/e", display_name="two", etag=rule.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]))),
        lambda: stub.DeleteRule(service_pb2.DeleteRuleRequest(name="rules/e", etag=rule.etag)),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.ABORTED
        assert details(err.value)["ErrorInfo"].reason == "ETAG_MISMATCH"  # type: ignore[attr-defined]
    assert stub.GetRule(service_pb2.GetRuleRequest(name="rules/e")).display_name == "one"


def test_symbol_snapshot_shows_bars_and_indicators_in_use(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    stub.CreateRule(service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
        symbol="test:S",
        condition_text="sma(2, 1m) > 0 and macd(2, 3, 2, 1m).hist > close(1m)[1]")))
    ticks = [market_pb2.Tick(symbol="test:S", event_time=ts(60_000 * i + 5), price=10.0 + i,
                             quantity=1.0, trade_id=i + 1) for i in range(5)]
    stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="s", ticks=ticks)]))
    snap = stub.GetSymbolSnapshot(service_pb2.GetSymbolSnapshotRequest(symbol="test:S",
                                                                       closed_bar_limit=2))
    assert snap.price == 14.0
    assert snap.last_tick_time.ToMilliseconds() == 240_005
    assert [(b.closed, b.open_time.ToMilliseconds(), b.close) for b in snap.bars] == [
        (False, 240_000, 14.0), (True, 180_000, 13.0), (True, 120_000, 12.0)]
    values = {i.label: i for i in snap.indicators}
    assert values["sma(2, 1m)"].defined and values["sma(2, 1m)"].value == 12.5
    assert values["sma(2, 1m)"].intrabar_value == 13.5
    assert set(values) >= {"macd(2, 3, 2, 1m).line", "macd(2, 3, 2, 1m).signal",
                           "macd(2, 3, 2, 1m).hist"}
    stub.CreateRule(service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
        symbol="test:D", condition_text="close(1m)[11] > 0")))
    stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="d", ticks=[
        market_pb2.Tick(symbol="test:D", event_time=ts(60_000 * i + 5), price=10.0 + i,
                        quantity=1.0, trade_id=i + 1) for i in range(14)])]))
    default = stub.GetSymbolSnapshot(service_pb2.GetSymbolSnapshotRequest(symbol="test:D"))
    assert [b.open_time.ToMilliseconds() // 60_000 for b in default.bars] == [  # unset: 10 closed
        13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3]
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSymbolSnapshot(service_pb2.GetSymbolSnapshotRequest(symbol="test:NOPE"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_rules_filters(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    specs = [("a", "BTCUSDT", "price > 1", rules_pb2.TRIGGER_MODE_ONCE, {"bot": "grid"}, False),
             ("b", "ETHUSDT", "close(1h) > 2", rules_pb2.TRIGGER_MODE_UNSPECIFIED, {}, True),
             ("c", "BTCUSDT", "rsi(14, 5m) > 70", rules_pb2.TRIGGER_MODE_EVERY_TIME,
              {"bot": "dca"}, False)]
    for rid, sym, cond, mode, labels, paused in specs:
        stub.CreateRule(service_pb2.CreateRuleRequest(rule_id=rid, rule=rules_pb2.Rule(
            symbol=sym, condition_text=cond, trigger_mode=mode, labels=labels, paused=paused,
            display_name=rid.upper())))

    def names(flt: str, page_size: int = 0) -> list[str]:
        out, token = [], ""
        while True:
            page = stub.ListRules(service_pb2.ListRulesRequest(filter=flt, page_size=page_size,
                                                               page_token=token))
            out += [r.name.removeprefix("rules/") for r in page.rules]
            token = page.next_page_token
            if not token:
                return out

    assert names('symbol = "BTCUSDT"') == ["a", "c"]
    assert names("symbol != BTCUSDT") == ["b"]
    assert names("paused = true") == ["b"]
    assert names("state = PAUSED") == ["b"]
    assert names("state = WARMING_UP AND trigger_mode = EVERY_TIME") == ["c"]
    assert names("trigger_mode = ON_TRUE") == ["b"]
    assert names("timeframe = 5m") == ["c"]
    assert names('labels.bot = "grid"') == ["a"]
    assert names("labels.bot != grid", page_size=1) == ["b", "c"]
    assert names("display_name = C") == ["c"]
    assert names("symbol = ETHUSDT OR labels.bot = dca") == ["b", "c"]
    assert names("NOT paused = true AND (labels.bot = grid OR timeframe = 5m)") == ["a", "c"]
    assert names("-symbol = BTCUSDT") == ["b"]
    assert names('symbol = BTCUSDT labels.bot = "dca"', page_size=1) == ["c"]   # implicit AND
    # AIP-160: OR binds tighter than AND
    assert names("paused = false AND symbol = ETHUSDT OR labels.bot = grid") == ["a"]
    for bad in ("colour = red", "state = SLEEPY", "symbol", "paused = maybe",
                "(symbol = BTCUSDT", "symbol = BTCUSDT OR", "AND paused = true"):
        with pytest.raises(grpc.RpcError) as err:
            stub.ListRules(service_pb2.ListRulesRequest(filter=bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        violation = details(err.value)["BadRequest"].field_violations[0]  # type: ignore[attr-defined]
        assert violation.field == "filter"


def test_list_rules_order_total_size_and_paging(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    specs = [("r1", "ETHUSDT", "beta"), ("r2", "BTCUSDT", "alpha"), ("r3", "BTCUSDT", "gamma"),
             ("r4", "XRPUSDT", "alpha"), ("r5", "ETHUSDT", "delta")]
    for rid, sym, name in specs:
        stub.CreateRule(service_pb2.CreateRuleRequest(rule_id=rid, rule=rules_pb2.Rule(
            symbol=sym, condition_text="price > 1", display_name=name)))
    stub.UpdateRule(service_pb2.UpdateRuleRequest(
        rule=rules_pb2.Rule(name="rules/r1", display_name="beta2"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"])))

    def pages(order_by: str, flt: str = "", size: int = 2) -> tuple[list[str], set[int]]:
        out, totals, token = [], set(), ""
        while True:
            page = stub.ListRules(service_pb2.ListRulesRequest(
                order_by=order_by, filter=flt, page_size=size, page_token=token))
            out += [r.name.removeprefix("rules/") for r in page.rules]
            totals.add(page.total_size)
            token = page.next_page_token
            if not token:
                return out, totals

    by = {rid: (sym, name) for rid, sym, name in specs}
    assert pages("") == (["r1", "r2", "r3", "r4", "r5"], {5})
    assert pages("create_time desc")[0] == ["r5", "r4", "r3", "r2", "r1"]
    assert pages("update_time desc")[0][0] == "r1"
    by["r1"] = ("ETHUSDT", "beta2")
    # display_name ties (alpha) are broken by name
    assert pages("display_name")[0] == sorted(by, key=lambda r: (by[r][1], r))
    assert pages("symbol desc, display_name")[0] == ["r4", "r1", "r5", "r2", "r3"]
    assert pages("name desc", size=1)[0] == ["r5", "r4", "r3", "r2", "r1"]
    assert pages("display_name", flt="symbol != ETHUSDT") == (["r2", "r4", "r3"], {3})
    assert stub.ListRules(service_pb2.ListRulesRequest(filter="symbol = NOPE")).total_size == 0
    # a rule created between pages lands in its place; no rule is shown twice
    first = stub.ListRules(service_pb2.ListRulesRequest(order_by="display_name", page_size=2))
    stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="r0", rule=rules_pb2.Rule(
        symbol="BTCUSDT", condition_text="price > 1", display_name="aaa")))
    rest = stub.ListRules(service_pb2.ListRulesRequest(
        order_by="display_name", page_size=10, page_token=first.next_page_token))
    assert [r.name for r in first.rules] == ["rules/r2", "rules/r4"]
    assert [r.name for r in rest.rules] == ["rules/r1", "rules/r5", "rules/r3"]
    assert rest.total_size == 6
    for field, request in (
            ("order_by", service_pb2.ListRulesRequest(order_by="colour")),
            ("order_by", service_pb2.ListRulesRequest(order_by="symbol sideways")),
            ("order_by", service_pb2.ListRulesRequest(order_by="symbol, symbol desc")),
            ("page_token", service_pb2.ListRulesRequest(
                order_by="symbol", page_token=first.next_page_token)),
            ("page_token", service_pb2.ListRulesRequest(page_token="garbage"))):
        with pytest.raises(grpc.RpcError) as err:
            stub.ListRules(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details(err.value)["BadRequest"].field_violations[0].field == field  # type: ignore[attr-defined]


def test_list_alerts_newest_first(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="every", rule=rules_pb2.Rule(
        symbol="test:N", condition_text="price > 0",
        trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME,
        cooldown=duration_pb2.Duration(seconds=0, nanos=1_000_000))))
    ticks = [market_pb2.Tick(symbol="test:N", event_time=ts(1000 * i), price=1.0 + i,
                             quantity=1.0, trade_id=i + 1) for i in range(7)]
    stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="s", ticks=ticks)]))

    def ids(order_by: str) -> list[int]:
        out, token = [], ""
        while True:
            page = stub.ListAlerts(service_pb2.ListAlertsRequest(
                order_by=order_by, page_size=3, page_token=token))
            out += [int(a.id) for a in page.alerts]
            token = page.next_page_token
            if not token:
                return out

    oldest_first = ids("id")
    assert len(oldest_first) == 7 and oldest_first == sorted(oldest_first)
    assert ids("id desc") == oldest_first[::-1]
    forward = stub.ListAlerts(service_pb2.ListAlertsRequest(page_size=3)).next_page_token
    for request in (service_pb2.ListAlertsRequest(order_by="time"),
                    service_pb2.ListAlertsRequest(order_by="id desc", page_token=forward)):
        with pytest.raises(grpc.RpcError) as err:
            stub.ListAlerts(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_rule_templates_are_checked_and_rendered(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    for template, why in (("{{symbl}} crossed", "unknown placeholder {{symbl}}"),
                          ("x" * 2049, "at most 2048 bytes")):
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateRule(service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
                symbol="test:T", condition_text="price > 1", message_template=template)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        violation = details(err.value)["BadRequest"].field_violations[0]  # type: ignore[attr-defined]
        assert violation.field == "rule.message_template" and why in violation.description
    stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="tpl", rule=rules_pb2.Rule(
        symbol="test:T", condition_text="price > 1", display_name="Breakout",
        message_template="{{rule}}: {{symbol}} at {{price}}, {{values}} ({{timeframe}})")))
    stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="s", ticks=[
        market_pb2.Tick(symbol="test:T", event_time=ts(1000), price=2.5, quantity=1.0,
                        trade_id=1)])]))
    [alert] = stub.ListAlerts(service_pb2.ListAlertsRequest()).alerts
    assert alert.message == "Breakout: test:T at 2.5, price=2.5 (tick)"


def test_alerts_carry_the_rules_name_and_labels_at_fire_time(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="named", rule=rules_pb2.Rule(
        symbol="test:L", condition_text="price > 1", display_name="Breakout",
        trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME, labels={"desk": "crypto", "bot": "b7"})))
    stream = stub.StreamAlerts(service_pb2.StreamAlertsRequest())
    assert next(stream).WhichOneof("payload") == "ack"  # subscribed: live alerts follow

    def publish(i: int) -> None:
        stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="s", ticks=[
            market_pb2.Tick(symbol="test:L", event_time=ts(1000 * i), price=2.0, quantity=1.0,
                            trade_id=i)])]))

    def next_alert():  # type: ignore[no-untyped-def]
        for msg in stream:
            if msg.WhichOneof("payload") == "alert":
                return msg.alert
        raise AssertionError("the stream ended")

    publish(1)
    first = next_alert()
    assert (first.rule_display_name, dict(first.rule_labels)) == (
        "Breakout", {"desk": "crypto", "bot": "b7"})
    changed = rules_pb2.Rule(name="rules/named", display_name="Breakout v2",
                             labels={"desk": "fx"})
    stub.UpdateRule(service_pb2.UpdateRuleRequest(
        rule=changed,
        update_mask=field_mask_pb2.FieldMask(paths=["display_name", "labels"])))
    publish(2)
    second = next_alert()
    assert (second.rule_display_name, dict(second.rule_labels)) == ("Breakout v2", {"desk": "fx"})
    stream.cancel()
    stored = {a.id: a for a in stub.ListAlerts(service_pb2.ListAlertsRequest()).alerts}
    assert stored[first.id].rule_display_name == "Breakout"  # as it was when it fired
    assert dict(stored[first.id].rule_labels) == {"desk": "crypto", "bot": "b7"}
    assert stored[second.id] == second


def test_update_without_a_mask_changes_only_the_fields_set(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    created = stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="m", rule=rules_pb2.Rule(
        symbol="ETHUSDT", condition_text="price > 1", display_name="eth", paused=True,
        labels={"desk": "crypto"}, max_fires=3)))
    updated = stub.UpdateRule(service_pb2.UpdateRuleRequest(
        rule=rules_pb2.Rule(name="rules/m", condition_text="price > 2")))
    assert updated.condition_text == "price > 2"
    assert (updated.symbol, updated.display_name, updated.paused, dict(updated.labels),
            updated.max_fires) == (created.symbol, "eth", True, {"desk": "crypto"}, 3)
    # "*" replaces every client-settable field: what the request leaves unset is cleared
    replaced = stub.UpdateRule(service_pb2.UpdateRuleRequest(
        rule=rules_pb2.Rule(name="rules/m", symbol="ETHUSDT", condition_text="price > 3"),
        update_mask=field_mask_pb2.FieldMask(paths=["*"])))
    assert (replaced.display_name, replaced.paused, dict(replaced.labels),
            replaced.max_fires) == ("", False, {}, 0)


def test_update_with_allow_missing_creates_the_rule(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    rule = rules_pb2.Rule(name="rules/upsert", symbol="ETHUSDT", condition_text="price > 1",
                          display_name="first")
    with pytest.raises(grpc.RpcError) as err:
        stub.UpdateRule(service_pb2.UpdateRuleRequest(rule=rule))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    checked = stub.UpdateRule(service_pb2.UpdateRuleRequest(rule=rule, allow_missing=True,
                                                            validate_only=True))
    assert checked.name == "rules/upsert"
    with pytest.raises(grpc.RpcError) as err:   # validate_only stored nothing
        stub.GetRule(service_pb2.GetRuleRequest(name="rules/upsert"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    created = stub.UpdateRule(service_pb2.UpdateRuleRequest(rule=rule, allow_missing=True))
    assert (created.name, created.display_name) == ("rules/upsert", "first")
    assert stub.GetRule(service_pb2.GetRuleRequest(name="rules/upsert")) == created
    for reserved in (service_pb2.CreateRuleRequest(rule_id="data-quality", rule=rule),
                     service_pb2.UpdateRuleRequest(rule=rules_pb2.Rule(
                         name="rules/data-quality", symbol="X", condition_text="price > 1"),
                         allow_missing=True)):
        call = stub.CreateRule if isinstance(reserved, service_pb2.CreateRuleRequest) else \
            stub.UpdateRule
        with pytest.raises(grpc.RpcError) as err:
            call(reserved)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "reserved" in details(err.value)["BadRequest"].field_violations[0].description  # type: ignore[attr-defined]
    rule.display_name = "second"                # exists now: an ordinary update
    again = stub.UpdateRule(service_pb2.UpdateRuleRequest(rule=rule, allow_missing=True))
    assert (again.display_name, again.create_time) == ("second", created.create_time)


def test_a_publish_stream_names_one_source_in_its_first_message(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="src", rule=rules_pb2.Rule(
        symbol="test:S", condition_text="price > 0",
        trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME)))

    def msg(source: str, i: int) -> service_pb2.PublishTicksRequest:
        return service_pb2.PublishTicksRequest(source=source, ticks=[market_pb2.Tick(
            symbol="test:S", event_time=ts(1000 * i), price=1.0, quantity=1.0, trade_id=i)])

    for first, why in (("", "required in a stream's first message"),
                       ("Feed", "[a-z][a-z0-9_-]{0,62}"), ("x" * 64, "[a-z][a-z0-9_-]{0,62}")):
        with pytest.raises(grpc.RpcError) as err:
            stub.PublishTicks(iter([msg(first, 1)]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        violation = details(err.value)["BadRequest"].field_violations[0]  # type: ignore[attr-defined]
        assert violation.field == "source" and why in violation.description
    # later messages leave it empty or repeat it; they share the first one's clock
    reply = stub.PublishTicks(iter([msg("feed-1", 1), msg("", 2), msg("feed-1", 3)]))
    assert (reply.accepted_count, reply.watermark.ToMilliseconds()) == (3, 3000)
    with pytest.raises(grpc.RpcError) as err:
        stub.PublishTicks(iter([msg("feed-2", 4), msg("feed-3", 5)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'feed-2'" in details(err.value)["BadRequest"].field_violations[0].description  # type: ignore[attr-defined]
    assert [a.trade_id for a in stub.ListAlerts(service_pb2.ListAlertsRequest()).alerts] == [
        1, 2, 3, 4]  # feed-2's first message committed, its second was refused


def test_alert_timeframe_and_bar_follow_the_trigger_mode(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    for rule_id, mode in (("tick", rules_pb2.TRIGGER_MODE_EVERY_TIME),
                          ("per-bar", rules_pb2.TRIGGER_MODE_ONCE_PER_BAR)):
        stub.CreateRule(service_pb2.CreateRuleRequest(rule_id=rule_id, rule=rules_pb2.Rule(
            symbol="test:B", condition_text="close(5m) > 1", trigger_mode=mode)))
    stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="s", ticks=[
        market_pb2.Tick(symbol="test:B", event_time=ts(700_123), price=2.0, quantity=1.0,
                        trade_id=1)])]))
    alerts = {a.rule: a for a in stub.ListAlerts(service_pb2.ListAlertsRequest()).alerts}
    tick, per_bar = alerts["rules/tick"], alerts["rules/per-bar"]
    assert tick.timeframe == market_pb2.TIMEFRAME_UNSPECIFIED
    assert not tick.HasField("bar_open_time")
    assert per_bar.timeframe == market_pb2.TIMEFRAME_5M
    assert per_bar.bar_open_time.ToMilliseconds() == 600_000   # the forming 5m bar's open


def test_list_alerts_pages_100_by_default(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="every", rule=rules_pb2.Rule(
        symbol="test:P", condition_text="price > 0",
        trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME,
        cooldown=duration_pb2.Duration(nanos=1_000_000))))
    stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="s", ticks=[
        market_pb2.Tick(symbol="test:P", event_time=ts(1000 + i), price=1.0, quantity=1.0,
                        trade_id=i + 1) for i in range(120)])]))
    page = stub.ListAlerts(service_pb2.ListAlertsRequest())
    assert len(page.alerts) == 100 and page.next_page_token
    rest = stub.ListAlerts(service_pb2.ListAlertsRequest(page_token=page.next_page_token))
    assert len(rest.alerts) == 20 and not rest.next_page_token


def test_a_hysteresis_band_is_checked(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served
    for band, mode, message in (
            (-1.0, rules_pb2.TRIGGER_MODE_ON_TRUE, "finite and >= 0"),
            (float("nan"), rules_pb2.TRIGGER_MODE_ON_TRUE, "finite and >= 0"),
            (0.5, rules_pb2.TRIGGER_MODE_EVERY_TIME, "never re-arms"),
            (0.5, rules_pb2.TRIGGER_MODE_ONCE_PER_BAR_CLOSE, "never re-arms")):
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="h", rule=rules_pb2.Rule(
                symbol="test:H", condition_text="close(1m) > 1", trigger_mode=mode,
                hysteresis=band)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in err.value.details()
        found = details(err.value)
        assert found["BadRequest"].field_violations[0].field == "rule.hysteresis"  # type: ignore[attr-defined]
    assert stub.ListRules(service_pb2.ListRulesRequest()).rules == []
    for mode in (rules_pb2.TRIGGER_MODE_ON_TRUE, rules_pb2.TRIGGER_MODE_ONCE,
                 rules_pb2.TRIGGER_MODE_ONCE_PER_BAR):
        rule = stub.CreateRule(service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
            symbol="test:H", condition_text="close(1m) > 1", trigger_mode=mode,
            hysteresis=0.5)))
        assert rule.hysteresis == 0.5


def test_validate_rule_warns_about_rules_that_may_mislead(served) -> None:  # type: ignore[no-untyped-def]
    _, stub = served

    def warnings(condition: str, **rule: object) -> list[tuple[str, str, str]]:
        reply = stub.ValidateRule(service_pb2.ValidateRuleRequest(rule=rules_pb2.Rule(
            symbol="test:W", condition_text=condition, **rule)))
        return [(w.reason, w.field, w.message) for w in reply.warnings]

    assert warnings("rsi(14, 1h) > 70") == []
    [(reason, field, message)] = warnings("rsi(14, 1h) > 100")
    assert (reason, field) == ("CONSTANT_CONDITION", "rule.condition_text")
    assert message.startswith("1:1: ") and "never" in message
    [(reason, field, message)] = warnings("sma(200, 1d) > 1")   # no history for test:W
    assert (reason, field) == ("LONG_WARM_UP", "rule.condition_text") and "200" in message
    assert [w[0] for w in warnings("price > 1", trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME)
            ] == ["REPEATED_FIRING"]
    assert stub.ListRules(service_pb2.ListRulesRequest()).rules == []   # nothing stored
