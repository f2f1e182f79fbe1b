"""The polled stock sources through a running ``alerts serve``: rule alerts, health, faults.

A real ``alerts serve`` subprocess with ``market_sources`` on polls a fake Yahoo
chart API or Alpha Vantage (``tests/market/fakes.py``: a real HTTP server on
loopback speaking ``protocols/stocks.md``) for scripted 1-minute bars of
``us:AAPL``; rules are created, alerts streamed and health read over real gRPC.

A minute bar is final only once its minute has ended, so the wall clock of the
server's polled sources is moved ahead to just before a whole minute
(``tests/support/shifted_clock.py``) and the fake reads the same clock: the
first bar, of the minute the server is ready in, closes within seconds. The
scripted bars start at that minute (the next one if it ends in less than
``MARGIN_S``), so their first is the first bar the server can deliver, whatever
the timing: a slow start only makes the test wait for the next whole minute.
``warmup_wait_ms = 0``: a new symbol's history is dated by the wall clock at
once instead of by its first tick (which a polled source delivers only with the
first closed bar); there is no history before the scripted bars, so the symbol
goes live before its first bar arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alerts.market.bar_ticks import bar_ticks
from alerts.market.base import Bar
from alerts.v1 import alerts_pb2, rules_pb2, service_pb2
from tests.market.fakes import FakeStockProvider, in_thread
from tests.support.server import ServeProcess
from tests.support.shifted_clock import ShiftedClock, shift_to_minute_end

TICKER, SYMBOL = "AAPL", "us:AAPL"
MINUTE_MS = 60_000
LEAD_S = 6.0            # the server starts this long before a whole minute of its clock
MARGIN_S = 1.5          # time a test has, once the server is up, before the first bar ends
DEADLINE_S = 150.0      # a slow start costs a minute: still well inside this
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
RULE = alerts_pb2.ALERT_KIND_RULE
DATA_QUALITY = alerts_pb2.ALERT_KIND_DATA_QUALITY
Row = tuple[float, float, float, float, int]     # open, high, low, close, volume
MINUTES: list[Row] = [(189.0, 191.2, 188.7, 190.6, 12_000),
                      (190.6, 190.9, 190.1, 190.2, 8_000),
                      (190.2, 190.4, 189.8, 190.0, 9_000)]
POLL_FAST = {"YAHOO_POLL_INTERVAL_S": "0.2", "YAHOO_SETTLE_S": "0",
             "YAHOO_REQUESTS_PER_MINUTE": "600",
             "ALPHAVANTAGE_POLL_INTERVAL_S": "0.2", "ALPHAVANTAGE_SETTLE_S": "0",
             "ALPHAVANTAGE_REQUESTS_PER_DAY": "0", "FEED_CHECK_INTERVAL_MS": "100",
             "WARMUP_WAIT_MS": "0"}


def scripted(first_ms: int, minutes: list[Row]) -> pd.DataFrame:
    """The fake's bars: ``minutes`` from ``first_ms`` on, one a minute."""
    return pd.DataFrame([(first_ms + i * MINUTE_MS, *row) for i, row in enumerate(minutes)],
                        columns=["open_time_ms", "open", "high", "low", "close", "volume"])


@contextmanager
def stock_service(tmp_path: Path, **settings: str
                  ) -> Iterator[tuple[ServeProcess, FakeStockProvider, int]]:
    """The fake provider and ``alerts serve`` polling it; yields them and the first bar's
    minute. ``settings`` are ``ALERTS_*`` without the prefix; the provider's URLs are set."""
    shift = shift_to_minute_end(LEAD_S)
    fake = FakeStockProvider({}, ShiftedClock(shift))
    with in_thread(fake) as url:
        env = {f"ALERTS_{k}": v for k, v in {
            **POLL_FAST, "MARKET_SOURCES": "true", "YAHOO_URL": url,
            "ALPHAVANTAGE_URL": url, **settings}.items()}
        server = ServeProcess(f"sqlite:///{tmp_path / 'alerts.db'}", clock_shift_s=shift, **env)
        try:
            now_ms = int(fake.clock.time() * 1000)
            first_ms = now_ms - now_ms % MINUTE_MS   # the server's sources started by then
            if first_ms + MINUTE_MS - now_ms < MARGIN_S * 1000:
                first_ms += MINUTE_MS
            fake.bars = {TICKER: scripted(first_ms, MINUTES)}
            yield server, fake, first_ms
            assert server.proc.poll() is None, "alerts serve ended by itself"
        except BaseException:
            server.kill()
            raise
        server.stop()           # SIGTERM: a clean exit, code 0


def create_rule(server: ServeProcess, rule_id: str, condition: str,
                mode: rules_pb2.TriggerMode = rules_pb2.TRIGGER_MODE_ON_TRUE) -> None:
    server.stub.CreateRule(service_pb2.CreateRuleRequest(rule_id=rule_id, rule=rules_pb2.Rule(
        symbol=SYMBOL, condition_text=condition, trigger_mode=mode)), timeout=10)


def alerts(server: ServeProcess, *kinds: alerts_pb2.AlertKind) -> Iterator[alerts_pb2.Alert]:
    """Live alerts of ``kinds`` from a StreamAlerts open from now on (until the deadline)."""
    stream = server.stub.StreamAlerts(service_pb2.StreamAlertsRequest(
        filter=service_pb2.AlertFilter(kinds=list(kinds))), timeout=DEADLINE_S)
    assert next(stream).HasField("ack")
    assert next(stream).HasField("caught_up")
    return (message.alert for message in stream if message.HasField("alert"))


def health(server: ServeProcess, source: str) -> int:
    return health_pb2_grpc.HealthStub(server.channel).Check(health_pb2.HealthCheckRequest(
        service=f"alerts.v1.source.{source}"), timeout=10).status


def wait_health(server: ServeProcess, source: str, status: int) -> None:
    """Until the health service says ``status`` for the source (Watch, with the deadline)."""
    watch = health_pb2_grpc.HealthStub(server.channel).Watch(health_pb2.HealthCheckRequest(
        service=f"alerts.v1.source.{source}"), timeout=DEADLINE_S)
    try:
        for reply in watch:
            if reply.status == status:
                return
    finally:
        watch.cancel()


def test_yahoo_bars_fire_a_bar_close_rule_through_a_running_server(tmp_path: Path) -> None:
    with stock_service(tmp_path, MARKET_ROUTES="us=yahoo") as (server, fake, first_ms):
        stream = alerts(server, RULE)
        create_rule(server, "aapl-close", "close(1m) > 190",
                    rules_pb2.TRIGGER_MODE_ONCE_PER_BAR_CLOSE)
        alert = next(stream)
        assert (alert.rule, alert.symbol) == ("rules/aapl-close", SYMBOL)
        assert alert.bar_open_time.ToMilliseconds() == first_ms
        assert alert.event_time.ToMilliseconds() == first_ms + MINUTE_MS
        assert [(v.label, v.value) for v in alert.operand_values] == [("close(1m)", 190.6)]
        # the bar closed on the source's watermark, not with the next bar a minute later
        assert fake.clock.time() * 1000 < first_ms + 2 * MINUTE_MS
        assert health(server, "yahoo") == SERVING
        charts = [r.params for r in fake.requests if r.path == f"/v8/finance/chart/{TICKER}"]
        assert charts and all(p["interval"] == "1m" for p in charts)
        # the warm-up asked for its 500 bars of history (there were none)
        assert any(int(p["period2"]) - int(p["period1"]) == 500 * 60 for p in charts)


def test_alphavantage_bars_fire_a_price_rule_through_a_running_server(tmp_path: Path) -> None:
    with stock_service(tmp_path, MARKET_ROUTES="us=alphavantage", ALPHAVANTAGE_KEY="test-key",
                       WARMUP_BARS="0") as (server, fake, first_ms):
        stream = alerts(server, RULE)
        create_rule(server, "aapl-price", "price > 191")
        alert = next(stream)
        o, h, low, c, v = MINUTES[0]
        ticks = bar_ticks(Bar(SYMBOL, "1m", first_ms, o, h, low, c, float(v)))
        high = next(t for t in ticks if t.price > 191)      # the source's tick of the high
        assert (alert.rule, alert.symbol, alert.price) == ("rules/aapl-price", SYMBOL, 191.2)
        assert alert.event_time.ToMilliseconds() == high.time_ms
        assert health(server, "alphavantage") == SERVING
        assert all(r.params["apikey"] == "test-key" for r in fake.requests)


def test_a_yahoo_rate_limit_and_outage_are_reported_and_recovered_from(tmp_path: Path) -> None:
    with stock_service(tmp_path, MARKET_ROUTES="us=yahoo",
                       WARMUP_BARS="0") as (server, fake, first_ms):   # no history request
        quality, rules = alerts(server, DATA_QUALITY), alerts(server, RULE)
        create_rule(server, "aapl-price", "price > 191")
        wait_health(server, "yahoo", SERVING)          # answered once

        fake.retry_after_s = 1
        fake.failing = "yahoo_429_edge"                 # plain-text 429, Retry-After: 1
        limited = next(quality)
        assert limited.symbol == "us:*"
        assert limited.message.startswith(
            "data quality: rate limited on yahoo: HTTP 429: Edge: Too Many Requests")
        # a rate limit is waited out, not a failure: the source stays SERVING (the venue
        # would fail over only once it is silent for feed_stale_after_ms)
        assert health(server, "yahoo") == SERVING

        fake.failing = "yahoo_422"                      # an error answer: the source is down
        wait_health(server, "yahoo", NOT_SERVING)

        fake.failing = None
        recovered = next(quality)
        assert recovered.message == ("data quality: feed recovered on yahoo: "
                                     "requests answered again")
        assert (recovered.data_quality.issue, recovered.data_quality.source) == (
            alerts_pb2.DATA_QUALITY_ISSUE_RECOVERED, "yahoo")
        assert recovered.data_quality.HasField("end_time")
        assert limited.data_quality.issue == alerts_pb2.DATA_QUALITY_ISSUE_RATE_LIMITED
        wait_health(server, "yahoo", SERVING)
        fired = next(rules)
        assert fired.id > recovered.id                  # nothing got through the fault
        assert (fired.rule, fired.symbol, fired.price) == ("rules/aapl-price", SYMBOL, 191.2)
        assert first_ms <= fired.event_time.ToMilliseconds() < first_ms + MINUTE_MS
