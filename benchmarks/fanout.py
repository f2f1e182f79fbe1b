"""Fan-out benchmark: N alerts to M clients over WebSocket or gRPC StreamAlerts.

Run from the repository root (venv active)::

    python -m benchmarks.fanout --via ws --alerts 5000 --clients 50 [--batch 500]
    python -m benchmarks.fanout --via grpc --alerts 2000 --clients 200

It starts ``alerts serve`` as a subprocess (loopback, port 0, a temporary
SQLite store, a random ``ws_jwt_secret``), creates one EVERY_TIME rule (one
alert per tick), connects M clients in this process (one event loop; live
subscriptions, each waits for ``caught_up``): ``websockets`` clients, or
StreamAlerts streams of one grpc.aio channel. Then it publishes N ticks over
PublishTicks in batches from a thread. Every client must receive alerts 1..N
in order (checked). Figures:

- ``publish``: until the last PublishTicks answered (engine + store commit);
- ``fan-out``: from the first tick sent until the last client had alert N;
- alerts/s = N / fan-out time; messages/s = N x M / fan-out time;
- ``server CPU``: the server process's CPU seconds over the fan-out, and per
  message sent (the figure that does not depend on the clients' speed).

The clients share one process and its GIL with each other (not with the
server): with many clients the fan-out time is bounded by the reading side too.
WebSocket clients read frames as text and take the id from the frame's fixed
prefix instead of parsing the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from websockets.asyncio.client import ClientConnection, connect

from alerts.auth.tokens import issue_token
from alerts.v1 import market_pb2, rules_pb2, service_pb2, service_pb2_grpc

ALERT_PREFIX = '{"type":"alert","alert":{"alert_id":'


def _start_server(store: Path, secret: str) -> tuple[subprocess.Popen[str], str, str]:
    env = dict(os.environ, ALERTS_WS_JWT_SECRET=secret, ALERTS_WS_QUEUE="1000000",
               ALERTS_WS_WRITE_LIMIT=str(64 << 20), ALERTS_LOG_LEVEL="warning")
    proc = subprocess.Popen(
        [sys.executable, "-m", "alerts.cli", "serve", "--grpc-listen", "127.0.0.1:0",
         "--metrics-listen", "", "--ws-listen", "127.0.0.1:0", "--store", f"sqlite:///{store}"],
        stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "WebSocket on ws://" not in line:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    grpc_port = line.split("gRPC on 127.0.0.1:")[1].split(",")[0]
    ws_address = line.split("WebSocket on ws://")[1].split(",")[0]
    return proc, f"127.0.0.1:{grpc_port}", ws_address


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _publish(target: str, n: int, batch: int) -> float:
    """Publish ticks 1..n; returns the seconds until the last batch was committed."""
    start = time.perf_counter()
    with grpc.insecure_channel(target) as channel:
        stub = service_pb2_grpc.AlertServiceStub(channel)
        for first in range(0, n, batch):
            ticks = []
            for i in range(first, min(first + batch, n)):
                when = timestamp_pb2.Timestamp()
                when.FromMilliseconds(1_000 + i)
                ticks.append(market_pb2.Tick(symbol="bench:A", event_time=when, price=1.0,
                                             quantity=1.0, trade_id=i + 1))
            stub.PublishTicks(iter([service_pb2.PublishTicksRequest(source="bench",
                                                                    ticks=ticks)]))
    return time.perf_counter() - start


async def _receive_stream(call: grpc.aio.UnaryStreamCall, n: int) -> float:
    """The same for a StreamAlerts stream (already past ``caught_up``)."""
    expected = 1
    while (msg := await call.read()) is not grpc.aio.EOF:
        if msg.WhichOneof("payload") != "alert":
            continue                                  # heartbeats
        if msg.alert.id != expected:
            raise AssertionError(f"a stream got alert {msg.alert.id}, expected {expected}")
        if expected == n:
            call.cancel()
            return time.perf_counter()
        expected += 1
    raise AssertionError(f"a stream ended after alert {expected - 1}")


async def _receive(ws: ClientConnection, n: int) -> float:
    """Read alerts until id n; checks they are 1..n in order; returns the wall time of n."""
    expected = 1
    async for message in ws:
        assert isinstance(message, str)
        if not message.startswith(ALERT_PREFIX):
            continue                                  # heartbeats
        rest = message[len(ALERT_PREFIX):]
        alert_id = int(rest[:rest.index(",")])
        if alert_id != expected:
            raise AssertionError(f"a client got alert {alert_id}, expected {expected}")
        if alert_id == n:
            return time.perf_counter()
        expected += 1
    raise AssertionError(f"a client was closed after alert {expected - 1}: {ws.close_reason}")


async def _fan_out(receivers: list[Any], grpc_target: str, server_pid: int, n: int,
                   batch: int) -> None:
    """Publish, wait for every receiver, print the figures."""
    published: list[float] = []
    cpu0 = _cpu_s(server_pid)
    start = time.perf_counter()
    publisher = threading.Thread(
        target=lambda: published.append(_publish(grpc_target, n, batch)))
    publisher.start()
    ends = await asyncio.gather(*receivers)
    await asyncio.to_thread(publisher.join)
    cpu = _cpu_s(server_pid) - cpu0
    fan_out = max(ends) - start
    m = len(receivers)
    print(f"alerts={n} clients={m} batch={batch}")
    print(f"publish     {published[0]:.3f} s  ({n / published[0]:,.0f} alerts/s committed)")
    print(f"fan-out     {fan_out:.3f} s  ({n / fan_out:,.0f} alerts/s to every client, "
          f"{n * m / fan_out:,.0f} messages/s)")
    print(f"server CPU  {cpu:.3f} s  ({1e6 * cpu / (n * m):.1f} us per message sent)")


async def _run_ws(ws_address: str, grpc_target: str, server_pid: int, secret: str, n: int,
                  m: int, batch: int) -> None:
    token = issue_token(secret, "local", 3600)
    clients = [await connect(f"ws://{ws_address}/?token={token}", max_queue=None)
               for _ in range(m)]
    try:
        for ws in clients:
            await ws.send('{"op":"subscribe","heartbeat_s":3600}')
            while '"caught_up"' not in str(await ws.recv()):
                pass
        await _fan_out([_receive(ws, n) for ws in clients], grpc_target, server_pid, n, batch)
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def _run_grpc(grpc_target: str, server_pid: int, n: int, m: int, batch: int) -> None:
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        stub = service_pb2_grpc.AlertServiceStub(channel)
        calls = [stub.StreamAlerts(service_pb2.StreamAlertsRequest(
            heartbeat_interval=duration_pb2.Duration(seconds=300))) for _ in range(m)]
        for call in calls:
            while (await call.read()).WhichOneof("payload") != "caught_up":
                pass
        await _fan_out([_receive_stream(c, n) for c in calls], grpc_target, server_pid, n,
                       batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--via", choices=("ws", "grpc"), default="ws")
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500, help="ticks per PublishTicks")
    args = parser.parse_args()
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as tmp:
        proc, grpc_target, ws_address = _start_server(Path(tmp) / "bench.db", secret)
        try:
            with grpc.insecure_channel(grpc_target) as channel:
                service_pb2_grpc.AlertServiceStub(channel).CreateRule(
                    service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
                        symbol="bench:A", condition_text="price > 0",
                        trigger_mode=rules_pb2.TRIGGER_MODE_EVERY_TIME,
                        cooldown=duration_pb2.Duration())))
            if args.via == "ws":
                asyncio.run(_run_ws(ws_address, grpc_target, proc.pid, secret, args.alerts,
                                    args.clients, args.batch))
            else:
                asyncio.run(_run_grpc(grpc_target, proc.pid, args.alerts, args.clients,
                                      args.batch))
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
