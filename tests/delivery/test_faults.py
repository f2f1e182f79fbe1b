"""Delivery under faults, end to end: the real server, real webhook endpoints on real sockets.

Each test stores webhook channels and a rule that fires on every tick and names
them, starts the server (in a thread, or as a subprocess for SIGKILL), publishes
ticks over gRPC, and watches ``WebhookReceiver`` endpoints that verify every
signature with the official ``standardwebhooks`` package. Asserted each time:
every alert reaches every channel, no alert arrives under two message ids, and
every alert id that arrives is one the store issued. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from alerts.config import Config
from alerts.v1 import alerts_pb2, channels_pb2, deliveries_pb2, rules_pb2, service_pb2
from tests.support.delivery import (
    DELIVERED,
    check_delivered,
    deliveries,
    fire,
    prepare,
    stored_alerts,
    stored_ids,
    wait_until,
)
from tests.support.server import ServeProcess, running_server, server_config
from tests.support.webhook_receiver import ACCEPT, Behaviour, WebhookReceiver

DEAD = deliveries_pb2.Delivery.STATE_DEAD
FAST_RETRIES = {"delivery_first_retry_s": 0.05, "delivery_max_retry_s": 0.3,
                "webhook_allow": "127.0.0.1"}


def config(tmp_path: Path, store_url: str, **extra: object) -> Config:
    return server_config(tmp_path, store_url=store_url, **{**FAST_RETRIES, **extra})


def test_an_endpoint_down_for_a_while_gets_everything_once_up_and_the_other_never_waits(
        tmp_path: Path, store_url: str, receivers: list[WebhookReceiver]) -> None:
    healthy, broken = receivers
    broken.down()
    prepare(store_url, receivers)
    with running_server(config(tmp_path, store_url)) as (_, stub):
        fire(stub, 40)
        ids = stored_ids(stub)
        healthy.wait_accepted(ids)
        assert broken.started == 0                       # still down: nothing reached it
        failing = deliveries(stub, "hook-1")
        assert any(d.attempts and not d.attempts[0].delivered for d in failing)
        assert "connect" in failing[0].last_error.message.lower()
        broken.up()
        check_delivered(stub, receivers, 40)
        assert {d.state for d in deliveries(stub, "hook-1")} == {DELIVERED}


def test_a_slow_endpoint_times_out_and_is_retried_without_delaying_the_fast_one(
        tmp_path: Path, store_url: str, receivers: list[WebhookReceiver]) -> None:
    fast, slow = receivers
    slow.behaviour = Behaviour(status=204, delay_s=2.0)   # beyond the 300 ms timeout
    prepare(store_url, receivers, timeout_ms=300)
    with running_server(config(tmp_path, store_url)) as (_, stub):
        fire(stub, 30)
        ids = stored_ids(stub)
        fast.wait_accepted(ids, timeout=20)
        # the fast endpoint got all 30 before the slow one completed a single request
        assert slow.accepted_ids() == set()
        timed_out = [a for d in deliveries(stub, "hook-1") for a in d.attempts
                     if not a.delivered]
        assert timed_out and all(a.status_code == 0 for a in timed_out)
        slow.behaviour = ACCEPT
        check_delivered(stub, receivers, 30)


def test_500_and_429_with_retry_after_are_retried_until_delivered(
        tmp_path: Path, store_url: str, receivers: list[WebhookReceiver]) -> None:
    erroring, limiting = receivers
    erroring.behaviour = Behaviour(status=500, fail_first=2)
    limiting.behaviour = Behaviour(status=429, retry_after="1", fail_first=1)
    prepare(store_url, receivers)
    with running_server(config(tmp_path, store_url)) as (_, stub):
        fire(stub, 10)
        check_delivered(stub, receivers, 10)
        for d in deliveries(stub, "hook-0"):
            assert [(a.status_code, a.delivered) for a in d.attempts] == [
                (500, False), (500, False), (204, True)]
        for d in deliveries(stub, "hook-1"):
            assert [(a.status_code, a.delivered) for a in d.attempts] == [(429, False),
                                                                         (204, True)]
            gap = (d.attempts[1].attempt_time.ToMilliseconds()
                   - d.attempts[0].attempt_time.ToMilliseconds())
            assert gap >= 1000, "Retry-After: 1 was not honoured"


def test_dead_letters_appear_only_after_the_retry_period_and_are_redelivered(
        tmp_path: Path, store_url: str, receivers: list[WebhookReceiver]) -> None:
    good, failing = receivers
    failing.behaviour = Behaviour(status=503)
    prepare(store_url, receivers)
    with running_server(config(tmp_path, store_url, delivery_retry_period_s=1.5)) as (_, stub):
        fire(stub, 5)
        good.wait_accepted(stored_ids(stub))
        failing.wait_for(lambda r: len({a.alert_id for a in r.arrivals}) == 5)
        wait_until(lambda: len(deliveries(stub, "hook-1", DEAD)) == 5, what="5 dead letters")
        for d in deliveries(stub, "hook-1", DEAD):
            first = d.attempts[0].attempt_time.ToMilliseconds()
            assert d.done_time.ToMilliseconds() - first >= 1500
            assert len(d.attempts) >= 3 and d.last_error.message == "HTTP 503"
        assert deliveries(stub, "hook-0", DEAD) == []
        # the owner is told of each, with a SYSTEM alert that goes to no channel
        dead_ids = {d.alert_id for d in deliveries(stub, "hook-1", DEAD)}

        def notices() -> list[alerts_pb2.Alert]:
            return [a for a in stored_alerts(stub) if a.kind == alerts_pb2.ALERT_KIND_SYSTEM]
        wait_until(lambda: len(notices()) == 5, what="5 dead-letter notices")
        assert {(a.system.reason, a.system.resource, a.rule) for a in notices()} == {
            ("CHANNEL_DEAD_LETTER", "channels/hook-1", "")}
        assert {int(a.message.split("alert ")[1].split()[0]) for a in notices()} == dead_ids
        assert all("HTTP 503" in a.message for a in notices())
        failing.behaviour = ACCEPT
        reply = stub.RedeliverDeadLetters(service_pb2.RedeliverDeadLettersRequest(
            parent="channels/hook-1"))
        assert reply.redelivered_count == 5
        check_delivered(stub, receivers, 5)
        assert deliveries(stub, "hook-1", DEAD) == []


def server_process(store_url: str) -> ServeProcess:
    """A killable server delivering to loopback receivers with short retry delays."""
    return ServeProcess(store_url, ALERTS_WEBHOOK_ALLOW="127.0.0.1",
                        ALERTS_DELIVERY_FIRST_RETRY_S="0.05", ALERTS_DELIVERY_MAX_RETRY_S="0.3")


@pytest.mark.timeout(300)
def test_sigkill_mid_delivery_then_restart_delivers_everything(
        store_url: str, receivers: list[WebhookReceiver]) -> None:
    slow, other = receivers
    slow.behaviour = Behaviour(status=204, delay_s=0.5)  # requests in flight at the kill
    other.behaviour = Behaviour(status=500)              # deliveries pending at the kill
    prepare(store_url, receivers)
    server = server_process(store_url)
    try:
        fire(server.stub, 30)
        ids = stored_ids(server.stub)
        slow.wait_for(lambda r: r.started >= 6)
        other.wait_for(lambda r: len(r.arrivals) >= 3)
        server.kill()
    finally:
        if server.proc.poll() is None:
            server.kill()
    assert slow.accepted_ids() != ids                    # the kill came mid-delivery
    slow.behaviour = other.behaviour = ACCEPT
    server = server_process(store_url)
    try:
        assert stored_ids(server.stub) == ids
        check_delivered(server.stub, receivers, 30)
        for channel in ("hook-0", "hook-1"):
            assert {d.state for d in deliveries(server.stub, channel)} == {DELIVERED}
    finally:
        server.stop()


def test_list_deliveries_and_redeliver_refuse_bad_or_unknown_channels(
        tmp_path: Path, store_url: str, receivers: list[WebhookReceiver]) -> None:
    prepare(store_url, receivers[:1])
    with running_server(config(tmp_path, store_url)) as (_, stub):
        for parent, code in (("channels/nope", grpc.StatusCode.NOT_FOUND),
                             ("hooks/hook-0", grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(grpc.RpcError) as err:
                stub.ListDeliveries(service_pb2.ListDeliveriesRequest(parent=parent))
            assert err.value.code() == code
            with pytest.raises(grpc.RpcError) as err:
                stub.RedeliverDeadLetters(service_pb2.RedeliverDeadLettersRequest(parent=parent))
            assert err.value.code() == code
        with pytest.raises(grpc.RpcError) as err:
            stub.ListDeliveries(service_pb2.ListDeliveriesRequest(parent="channels/hook-0",
                                                                  page_token="garbage"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert stub.RedeliverDeadLetters(service_pb2.RedeliverDeadLettersRequest(
            parent="channels/hook-0")).redelivered_count == 0



def test_a_paused_channel_holds_its_alerts_until_resumed_and_channels_show_their_figures(
        tmp_path: Path, store_url: str, receivers: list[WebhookReceiver]) -> None:
    held, refusing = receivers
    refusing.behaviour = Behaviour(status=410)             # gone: dead letters at once
    prepare(store_url, receivers)
    with running_server(config(tmp_path, store_url)) as (_, stub):
        paused = channels_pb2.Channel(name="channels/hook-0", paused=True)
        stub.UpdateChannel(service_pb2.UpdateChannelRequest(
            channel=paused, update_mask=field_mask_pb2.FieldMask(paths=["paused"])))
        fire(stub, 5)
        ids = stored_ids(stub)
        wait_until(lambda: len(deliveries(stub, "hook-1", DEAD)) == 5, what="5 dead letters")
        gone = stub.GetChannel(service_pb2.GetChannelRequest(name="channels/hook-1"))
        assert gone.dead_letter_count == 5
        assert gone.last_error.message.startswith("HTTP 410")
        assert gone.last_delivered_alert_id == 0
        # nothing was sent to the paused channel; its deliveries wait, untried
        assert held.started == 0
        waiting = deliveries(stub, "hook-0")
        assert [(d.alert_id, d.state, len(d.attempts)) for d in waiting] == [
            (i, deliveries_pb2.Delivery.STATE_PENDING, 0) for i in sorted(ids)]
        assert stub.GetChannel(service_pb2.GetChannelRequest(
            name="channels/hook-0")).state == channels_pb2.Channel.STATE_PAUSED
        resumed = channels_pb2.Channel(name="channels/hook-0", paused=False)
        stub.UpdateChannel(service_pb2.UpdateChannelRequest(
            channel=resumed, update_mask=field_mask_pb2.FieldMask(paths=["paused"])))
        held.wait_accepted(ids, timeout=4.0)      # woken by the update, not a periodic look
        check_delivered(stub, [held], 5)
        hook = stub.GetChannel(service_pb2.GetChannelRequest(name="channels/hook-0"))
        assert (hook.state, hook.last_delivered_alert_id, hook.dead_letter_count) == (
            channels_pb2.Channel.STATE_ACTIVE, max(ids), 0)
        assert hook.HasField("last_delivery_time") and not hook.HasField("last_error")


def test_channels_and_rules_made_over_the_api_deliver_signed_alerts(
        tmp_path: Path, store_url: str, receivers: list[WebhookReceiver]) -> None:
    hook = receivers[0]
    with running_server(config(tmp_path, store_url)) as (_, stub):
        stub.CreateChannel(service_pb2.CreateChannelRequest(
            channel_id="api-hook", channel=channels_pb2.Channel(
                webhook=channels_pb2.WebhookConfig(url=hook.url, signing_secret=hook.secret),
                message_template="{{symbol}} #{{id}}")))
        stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="every", rule=rules_pb2.Rule(
            symbol="BTCUSDT", condition_text="price > 0",
            trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME,
            cooldown=duration_pb2.Duration(), channels=["channels/api-hook"])))
        fire(stub, 3)
        ids = stored_ids(stub)
        hook.wait_accepted(ids)                 # the receiver verified each signature
        hook.check_one_id_per_alert()
        wait_until(lambda: {d.alert_id: d.state for d in deliveries(stub, "api-hook")}
                   == dict.fromkeys(ids, DELIVERED), what="api-hook all DELIVERED")
        texts = {a.alert_id: a.text for a in hook.arrivals}
        assert texts == {i: f"binance:BTCUSDT #{i}" for i in ids}
