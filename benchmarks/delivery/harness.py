"""Delivery benchmark: webhook deliveries per second, and alert-to-webhook latency under load.

Run from the repository root (venv active)::

    python -m benchmarks.delivery.harness [--burst 5000] [--rate 500] [--duration 20]
        [--channels 1] [--store sqlite:///PATH | postgresql://...] [--json out.json]

It stores ``--channels`` webhook channels and one rule that fires on every tick
and names them all, starts ``alerts serve`` as a subprocess (loopback, port 0,
a temporary SQLite store unless ``--store`` names an empty one; webhook pacing
raised so the endpoint, not the token bucket, is the limit) and a Standard
Webhooks receiver in a second process (aiohttp on 127.0.0.1; it verifies every
signature with the ``standardwebhooks`` package, as a real endpoint would).

1. **Throughput.** ``--burst`` ticks are published as fast as PublishTicks takes
   them (batches of 500, each one commit): every tick is an alert, every alert
   one delivery per channel. Deliveries per second = deliveries / (last receipt -
   first alert's commit).
2. **Latency under load.** Ticks at ``--rate`` alerts/s for ``--duration`` s, one
   batch every 10 ms. Latency of a delivery = the receiver's wall clock at
   receipt minus the alert's ``commit_time`` in the body (milliseconds; both
   processes read the same CLOCK_REALTIME).

At the end it checks that every stored alert arrived at every channel under
one ``webhook-id``, counts receipts of the same delivery more than once
(``repeated``, with the store's attempts of the first few) and failed attempts
by error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import timestamp_pb2

from alerts.storage import RuleRecord, open_store
from alerts.storage.records import ChannelRecord, WebhookSettings
from alerts.v1 import market_pb2, service_pb2, service_pb2_grpc

BATCH = 500


# -- the receiver (its own process) --------------------------------------------------------------

def _receive(port_out: Connection, results: Connection, count: Synchronized[int],
             stop: EventType, secrets: list[str]) -> None:
    from aiohttp import web
    from standardwebhooks.webhooks import Webhook

    hooks = [Webhook(s) for s in secrets]
    seen: list[tuple[int, int, str, int, float]] = []   # channel, alert id, msg id, commit, recv

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        received = time.time() * 1000
        channel = int(request.match_info["channel"])
        payload = hooks[channel].verify(body, dict(request.headers))
        data = payload["data"]
        commit = datetime.fromisoformat(data["commit_time"])
        seen.append((channel, int(data["alert_id"]), request.headers["webhook-id"],
                     round(commit.timestamp() * 1000), received))
        with count.get_lock():
            count.value += 1
        return web.Response(status=204)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook/{channel}", handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.send(runner.addresses[0][1])
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    asyncio.run(main())
    results.send(seen)


# -- the server and the publisher ----------------------------------------------------------------

def _ts(ms: int) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(ms)
    return out


class _Server:
    def __init__(self, store_url: str, in_flight: int, log_path: str | None) -> None:
        env = dict(os.environ, GRPC_VERBOSITY="NONE", ALERTS_WEBHOOK_ALLOW="127.0.0.1",
                   ALERTS_WEBHOOK_RATE_PER_S="1000000", ALERTS_WEBHOOK_MAX_CONCURRENCY="64",
                   ALERTS_DELIVERY_MAX_IN_FLIGHT=str(in_flight), ALERTS_LOG_LEVEL="warning")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alerts.cli", "serve", "--grpc-listen", "127.0.0.1:0",
             "--metrics-listen", "", "--ws-listen", "", "--store", store_url],
            stdout=subprocess.PIPE, text=True, env=env,
            stderr=open(log_path, "w") if log_path else subprocess.DEVNULL)  # noqa: SIM115
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("alerts: gRPC on 127.0.0.1:"):
            raise SystemExit(f"the server did not start: {line!r}")
        port = int(line.split("127.0.0.1:")[1].split(",")[0])
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = service_pb2_grpc.AlertServiceStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def _prepare(store_url: str, port: int, secrets: list[str]) -> None:
    async def go() -> None:
        store = await open_store(store_url)
        try:
            for i, secret in enumerate(secrets):
                await store.create_channel(ChannelRecord(
                    channel_id=f"bench-{i}", owner="local", secret=secret,
                    settings=WebhookSettings(url=f"http://127.0.0.1:{port}/hook/{i}")))
            await store.create_rule(RuleRecord(
                rule_id="bench", owner="local", symbol="binance:BTCUSDT",
                condition_text="price > 0", mode="EVERY_TIME", cooldown_ms=0,
                channels=tuple(f"channels/bench-{i}" for i in range(len(secrets)))))
        finally:
            await store.close()

    asyncio.run(go())


class _Ticks:
    """Increasing event times and trade ids for one source."""

    def __init__(self) -> None:
        self.trade_id = 0
        self.last_ms = 0

    def make(self, n: int, time_ms: int) -> list[market_pb2.Tick]:
        out = []
        for _ in range(n):
            self.trade_id += 1
            self.last_ms = max(time_ms, self.last_ms)
            out.append(market_pb2.Tick(symbol="BTCUSDT", price=100.0, quantity=1.0,
                                       event_time=_ts(self.last_ms), trade_id=self.trade_id))
        return out


def _publish(stub: service_pb2_grpc.AlertServiceStub, ticks: list[market_pb2.Tick]) -> None:
    stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="bench", ticks=ticks)]),
                      timeout=120)


def _wait_count(count: Synchronized[int], target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while count.value < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {count.value} of {target} deliveries within {timeout} s")
        time.sleep(0.01)


def _stored_ids(stub: service_pb2_grpc.AlertServiceStub) -> set[int]:
    ids: set[int] = set()
    token = ""
    while True:
        page = stub.ListAlerts(service_pb2.ListAlertsRequest(page_size=1000, page_token=token))
        ids |= {a.id for a in page.alerts}
        token = page.next_page_token
        if not token:
            return ids


def _failed_attempts(stub: service_pb2_grpc.AlertServiceStub, channels: int) -> dict[str, int]:
    """Failed attempts by error text over every channel (each was retried)."""
    errors: dict[str, int] = {}
    for i in range(channels):
        token = ""
        while True:
            page = stub.ListDeliveries(service_pb2.ListDeliveriesRequest(
                parent=f"channels/bench-{i}", page_size=1000, page_token=token))
            for d in page.deliveries:
                for a in d.attempts:
                    if not a.delivered:
                        errors[a.error] = errors.get(a.error, 0) + 1
            token = page.next_page_token
            if not token:
                break
    return errors


def _histories(stub: service_pb2_grpc.AlertServiceStub, channels: int
               ) -> dict[tuple[int, int], list[tuple[int, bool, int]]]:
    """Each delivery's attempts (number, delivered, start ms), to explain repeated receipts."""
    out: dict[tuple[int, int], list[tuple[int, bool, int]]] = {}
    for i in range(channels):
        token = ""
        while True:
            page = stub.ListDeliveries(service_pb2.ListDeliveriesRequest(
                parent=f"channels/bench-{i}", page_size=1000, page_token=token))
            for d in page.deliveries:
                out[(i, d.alert_id)] = [(a.number, a.delivered, a.attempt_time.ToMilliseconds())
                                        for a in d.attempts]
            token = page.next_page_token
            if not token:
                break
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    secrets = ["whsec_" + base64.b64encode(os.urandom(32)).decode()
               for _ in range(args.channels)]
    ctx = mp.get_context("spawn")
    port_in, port_out = ctx.Pipe(duplex=False)
    results_in, results_out = ctx.Pipe(duplex=False)
    count, stop = ctx.Value("i", 0), ctx.Event()
    receiver = ctx.Process(target=_receive, args=(port_out, results_out, count, stop, secrets),
                           daemon=True)
    receiver.start()
    port = port_in.recv()
    tmp = tempfile.TemporaryDirectory(prefix="alerts-delivery-bench-")
    store_url = args.store or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    _prepare(store_url, port, secrets)
    server = _Server(store_url, args.in_flight, args.server_log)
    ticks = _Ticks()
    try:
        # 1. throughput: a burst
        start_ms = time.time_ns() // 1_000_000 - 120_000
        for i in range(0, args.burst, BATCH):
            n = min(BATCH, args.burst - i)
            _publish(server.stub, ticks.make(n, start_ms + i))
        _wait_count(count, args.burst * args.channels, args.drain_timeout)
        burst_done = count.value
        # 2. latency under a steady load
        per_batch = args.rate * 0.01
        owed = 0.0
        t0 = time.monotonic()
        next_at = t0
        while time.monotonic() - t0 < args.duration:
            owed += per_batch
            n = int(owed)
            owed -= n
            if n:
                _publish(server.stub, ticks.make(n, time.time_ns() // 1_000_000))
            next_at += 0.01
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        steady_s = time.monotonic() - t0
        stored = _stored_ids(server.stub)
        _wait_count(count, len(stored) * args.channels, args.drain_timeout)
        failed_attempts = _failed_attempts(server.stub, args.channels)
        histories = _histories(server.stub, args.channels)
    finally:
        server.stop()
        stop.set()
    seen = results_in.recv()
    receiver.join(30)
    tmp.cleanup()

    per_alert: dict[tuple[int, int], set[str]] = {}
    copies: dict[tuple[int, int], int] = {}
    receipts: dict[tuple[int, int], list[float]] = {}
    for channel, alert_id, msg_id, _, received in seen:
        per_alert.setdefault((channel, alert_id), set()).add(msg_id)
        copies[(channel, alert_id)] = copies.get((channel, alert_id), 0) + 1
        receipts.setdefault((channel, alert_id), []).append(received)
    missing = {(c, a) for c in range(args.channels) for a in stored} - per_alert.keys()
    doubled = sum(1 for ids in per_alert.values() if len(ids) > 1)
    burst_ids = set(sorted(stored)[:args.burst])
    burst = [s for s in seen if s[1] in burst_ids]
    first_commit = min(s[3] for s in burst)
    last_receipt = max(s[4] for s in burst)
    steady = np.array([s[4] - s[3] for s in seen if s[1] not in burst_ids])
    return {
        "channels": args.channels, "in_flight_per_channel": args.in_flight,
        "store": "postgresql" if store_url.startswith("postgres") else "sqlite",
        "burst_deliveries": burst_done,
        "deliveries_per_s": round(len(burst) / ((last_receipt - first_commit) / 1000), 1),
        "steady_alerts_per_s_asked": args.rate,
        "steady_alerts_per_s_published": round(len(stored - burst_ids) / steady_s, 1),
        "steady_deliveries": int(steady.size),
        "latency_ms_p50": round(float(np.percentile(steady, 50)), 2),
        "latency_ms_p99": round(float(np.percentile(steady, 99)), 2),
        "latency_ms_max": round(float(steady.max()), 2),
        "missing": len(missing), "under_two_ids": doubled,
        "duplicates_received": len(seen) - len(per_alert),
        "failed_attempts": failed_attempts,
        "repeated": [{"channel": c, "alert_id": a, "received_ms": receipts[(c, a)],
                      "attempts": histories.get((c, a))}
                     for (c, a), n in sorted(copies.items()) if n > 1][:5],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.delivery.harness",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--burst", type=int, default=5000, help="alerts published at once")
    ap.add_argument("--rate", type=float, default=500.0, help="alerts/s of the steady phase")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of the steady phase")
    ap.add_argument("--channels", type=int, default=1, help="webhook channels per alert")
    ap.add_argument("--in-flight", type=int, default=8, help="attempts in flight per channel")
    ap.add_argument("--store", help="an empty store for the server (default: temporary SQLite)")
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    ap.add_argument("--json", dest="json_path", help="also write the report here")
    ap.add_argument("--server-log", help="write the server's log (stderr) here")
    args = ap.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    return 0 if report["missing"] == 0 and report["under_two_ids"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
