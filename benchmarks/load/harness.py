"""Load harness: ticks in over PublishTicks, alerts out over StreamAlerts, latency between.

Run from the repository root (venv active)::

    python -m benchmarks.load.harness --symbols 10000 --rules-per-symbol 1 \
        --rate 20000 --duration 30 [--store sqlite:///PATH | postgresql://...] \
        [--server HOST:PORT] [--json out.json]

Without ``--server`` it starts ``alerts serve`` as a subprocess (loopback, port 0,
no metrics endpoint, a temporary SQLite store unless ``--store`` names one) and
stops it with SIGTERM at the end.

What it does, in order:

1. creates ``symbols x rules-per-symbol`` rules over gRPC (CreateRule, in
   parallel from a thread pool); rule ids and symbols carry a per-run tag so a
   shared server's older rules and alerts do not mix in;
2. opens one StreamAlerts stream (live only) in a *separate process*, so the
   consumer's receive stamps never wait on the publisher's GIL;
3. publishes ticks at ``--rate`` ticks/s in total for ``--duration`` seconds from
   ``--publishers`` PublishTicks streams (each its own source owning a share of
   the symbols), one message every ``--batch-ms`` with ``rate * dt`` ticks whose
   event time is the wall clock at send time (so every alert is live);
4. after the last PublishTicks response (the server answers after committing),
   waits until the stream has delivered the newest committed alert, lists the
   stored alerts of the run, and checks that nothing is missing or doubled.

Prices follow a per-symbol sawtooth of period P ticks with a random phase, and
each ``price crosses_above LEVEL`` rule has its level inside one step of the
saw, so it fires exactly once per P ticks of its symbol (ON_TRUE re-arms on the
next, false, tick). P is chosen so that ``--fire-pct`` percent of the ticks fire
an alert; the harness knows in advance which ticks must fire.

Latency of an alert = wall time the consumer process received it minus the
wall time its tick was handed to gRPC (looked up from the tick's symbol and
trade id; both processes read the same CLOCK_REALTIME). The server's own
stamps (receive, decide, commit; milliseconds) split it into stages.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import multiprocessing as mp
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import duration_pb2, timestamp_pb2

from alerts.v1 import rules_pb2, service_pb2, service_pb2_grpc

#: Relative price step of the sawtooth (0.1 %).
STEP = 0.001
#: PublishTicks accepts at most this many ticks per message.
MAX_TICKS_PER_MESSAGE = 10_000
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]

MODE_ON_TRUE = rules_pb2.TRIGGER_MODE_ON_TRUE
MODE_BAR_CLOSE = rules_pb2.TRIGGER_MODE_ONCE_PER_BAR_CLOSE

#: Rule kinds, cycled per symbol: rule j of a symbol is KINDS[j] (j >= len: "price"
#: again at another level). ``fires``: "exact" = the harness predicts every fire;
#: "period" = once per sawtooth period, at the drop from the top of the saw to its
#: bottom (a tick-level indicator; float rounding of vwap could in theory move one,
#: so these are not predicted); "none" = its
#: indicator is still warming up in any run shorter than ~15 minutes (pure load:
#: 1m bars, intrabar indicator updates, evaluations on every tick).
KINDS: tuple[tuple[str, str, int, str], ...] = (
    ("price", "price crosses_above {level}", MODE_ON_TRUE, "exact"),
    ("vwap", "price crosses_below vwap()", MODE_ON_TRUE, "period"),
    ("rsi", "rsi(14, 1m) > 70", MODE_ON_TRUE, "none"),
    ("sma", "close(1m) crosses_above sma(50, 1m)", MODE_BAR_CLOSE, "none"),
    ("macd", "macd(12, 26, 9, 1m).hist crosses_above 0", MODE_ON_TRUE, "none"),
)


@dataclass
class Options:
    symbols: int = 10_000
    rules_per_symbol: int = 1
    rate: float = 20_000.0          # ticks/s, all publishers together
    duration: float = 30.0          # seconds of publishing
    store: str | None = None        # store URL for the server it starts
    server: str | None = None       # host:port of a running server (none is started)
    server_pid: int | None = None   # with --server: sample that process's CPU
    publishers: int = 1
    batch_ms: float = 5.0
    fire_pct: float = 1.5           # percent of ticks that fire an alert (approx.)
    warmup: float = 2.0             # seconds excluded from the "steady" figures
    setup_workers: int = 16
    drain_timeout: float = 30.0     # seconds to wait for the stream after the last commit
    seed: int = 1
    json_path: str | None = None
    raw_path: str | None = None     # per-alert arrays (.npz) for further analysis
    keep: bool = False              # keep the temporary directory (store, server log)
    quiet: bool = False


# --------------------------------------------------------------- workload --

@dataclass
class RuleSpec:
    rule_id: str
    symbol_index: int
    kind: str
    text: str
    mode: Any                       # rules_pb2.TriggerMode value
    step: int                       # "price": the saw step at which it fires; else -1


class Workload:
    """Symbols, their sawtooth prices, the rules and which ticks must fire."""

    def __init__(self, opts: Options, tag: str) -> None:
        rng = np.random.default_rng(opts.seed)
        n = opts.symbols
        self.tag = tag
        self.names = [f"load:T{tag.upper()}S{i:06d}" for i in range(n)]
        self.base = np.round(10.0 + rng.uniform(0.0, 990.0, n), 2)
        kinds = [self.kind_of(j) for j in range(opts.rules_per_symbol)]
        firing = sum(1 for k in kinds if k[3] != "none")
        self.period = max(4, round(firing / (opts.fire_pct / 100.0))) if firing else 1_000_000
        self.phase = rng.integers(0, self.period, n)
        self.rules: list[RuleSpec] = []
        p = self.period
        for i in range(n):
            for j, (kind, text, mode, _) in enumerate(kinds):
                step = -1
                if kind == "price":
                    step = p // 2 if j == 0 else 1 + (p // 2 - 1 + 7 * j) % (p - 1)
                    level = self.base[i] * (1.0 + STEP * (step - 0.5))
                    text = text.format(level=f"{level:.10g}")
                self.rules.append(RuleSpec(f"ld{tag}-{i}-{j}", i, kind, text, mode, step))
        self.price_steps = sorted({r.step for r in self.rules if r.kind == "price"})

    @staticmethod
    def kind_of(j: int) -> tuple[str, str, int, str]:
        return KINDS[j] if j < len(KINDS) else KINDS[0]

    def prices(self, sym: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Price of the k-th tick (0-based) of symbols ``sym``."""
        return self.base[sym] * (1.0 + STEP * ((k + self.phase[sym]) % self.period))

    def expected_price_fires(self, ticks_per_symbol: np.ndarray) -> set[tuple[str, int]]:
        """(rule id, trade id) of every fire the "price" rules must make."""
        out: set[tuple[str, int]] = set()
        p = self.period
        for r in self.rules:
            if r.kind != "price":
                continue
            i = r.symbol_index
            # ticks k >= 1 with (k + phase) % p == step; trade id = k + 1
            k0 = (r.step - int(self.phase[i])) % p
            if k0 == 0:
                k0 = p
            for k in range(k0, int(ticks_per_symbol[i]), p):
                out.add((r.rule_id, k + 1))
        return out

    def rule_message(self, spec: RuleSpec) -> service_pb2.CreateRuleRequest:
        rule = rules_pb2.Rule(symbol=self.names[spec.symbol_index], condition_text=spec.text,
                              trigger_mode=spec.mode, display_name=f"load {spec.kind}")
        rule.cooldown.CopyFrom(duration_pb2.Duration())       # 0: no cooldown
        return service_pb2.CreateRuleRequest(rule=rule, rule_id=spec.rule_id)


# ----------------------------------------------------------------- server --

class ServerProcess:
    """``alerts serve`` on 127.0.0.1:0 as a subprocess; SIGTERM on close."""

    def __init__(self, store_url: str, log_path: Path) -> None:
        self.store_url = store_url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.target = ""
        self.exit_code: int | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "alerts.cli", "serve", "--grpc-listen", "127.0.0.1:0",
               "--metrics-listen", "", "--ws-listen", "", "--store", self.store_url]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log,
                                     stdin=subprocess.DEVNULL)
        first: list[bytes] = []
        stdout = self.proc.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: first.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        line = first[0].decode(errors="replace") if first else ""
        m = re.search(r"gRPC on (\S+?:\d+)", line)
        if not m:
            self.close()
            raise RuntimeError(f"the server did not start: {line.strip()!r}; "
                               f"log: {self.log_tail()}")
        self.target = m.group(1)
        # keep draining stdout so the server never blocks on a full pipe
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, n: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc is None or self.exit_code is not None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.exit_code = self.proc.returncode
        self._log.close()


# -------------------------------------------------------------- CPU usage --

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_ticks(path: str) -> int:
    """utime + stime of a /proc/.../stat file (clock ticks)."""
    with open(path, "rb") as fh:
        data = fh.read().decode()
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def _threads(pid: int) -> dict[int, tuple[str, int]]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as fh:
                comm = fh.read().strip()
            out[int(tid)] = (comm, _proc_ticks(f"/proc/{pid}/task/{tid}/stat"))
        except (OSError, ValueError):
            pass
    return out


def _machine() -> tuple[int, int]:
    """(busy, total) jiffies of all cores."""
    with open("/proc/stat") as fh:
        vals = [int(v) for v in fh.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


def machine_busy_pct(seconds: float) -> float:
    """Busy percent of all cores together (100 per core) over ``seconds``."""
    a = _machine()
    time.sleep(seconds)
    b = _machine()
    return round(100 * (b[0] - a[0]) / max(b[1] - a[1], 1) * (os.cpu_count() or 1), 1)


class CpuSampler:
    """Samples the server's CPU (per thread) and the machine's once per second."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int, dict[int, tuple[str, int]], tuple[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        try:
            threads = _threads(self.pid) if self.pid else {}
            total = _proc_ticks(f"/proc/{self.pid}/stat") if self.pid else 0
        except OSError:
            threads, total = {}, 0
        self.samples.append((time.monotonic(), total, threads, _machine()))

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def start(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        """Server and machine CPU between the samples nearest t0 and t1 (monotonic)."""
        if len(self.samples) < 2:
            return {}
        a = min(self.samples, key=lambda s: abs(s[0] - t0))
        b = min(self.samples, key=lambda s: abs(s[0] - t1))
        wall = b[0] - a[0]
        if wall <= 0:
            return {}
        busy = (b[3][0] - a[3][0]) / max(b[3][1] - a[3][1], 1)
        out: dict[str, Any] = {"seconds": round(wall, 1),
                               "machine_busy_pct": round(100 * busy * (os.cpu_count() or 1), 1),
                               "machine_cores": os.cpu_count()}
        if self.pid:
            out["server_pct"] = round(100 * (b[1] - a[1]) / CLK_TCK / wall, 1)
            threads = []
            for tid, (comm, ticks) in b[2].items():
                before = a[2].get(tid, (comm, 0))[1]
                pct = 100 * (ticks - before) / CLK_TCK / wall
                if pct >= 1.0:
                    name = "main/event-loop" if tid == self.pid else comm
                    threads.append({"tid": tid, "name": name, "pct": round(pct, 1)})
            out["server_threads"] = sorted(threads, key=lambda t: -t["pct"])
        return out

    def per_second(self) -> list[dict[str, float]]:
        out = []
        for a, b in itertools.pairwise(self.samples):
            wall = b[0] - a[0]
            if wall <= 0:
                continue
            busy = (b[3][0] - a[3][0]) / max(b[3][1] - a[3][1], 1)
            loop = 0.0
            if self.pid in a[2] and self.pid in b[2]:
                loop = 100 * (b[2][self.pid][1] - a[2][self.pid][1]) / CLK_TCK / wall
            out.append({"t": b[0], "server_pct": 100 * (b[1] - a[1]) / CLK_TCK / wall,
                        "loop_pct": loop, "machine_pct": 100 * busy * (os.cpu_count() or 1)})
        return out


# --------------------------------------------------------------- consumer --

def _consumer_main(target: str, prefix: str, ready: Any, stop: Any, last_target: Any,
                   result: Any, drain_timeout: float) -> None:
    """StreamAlerts in its own process: record each alert's receive wall time."""
    gc.disable()
    t_cpu0 = time.process_time()
    channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    stub = service_pb2_grpc.AlertServiceStub(channel)
    call = stub.StreamAlerts(service_pb2.StreamAlertsRequest(
        heartbeat_interval=duration_pb2.Duration(seconds=1)))
    recv: list[int] = []
    ids: list[int] = []
    rules: list[str] = []
    trade: list[int] = []
    event_ms: list[int] = []
    receive_ms: list[int] = []
    decide_ms: list[int] = []
    commit_ms: list[int] = []
    foreign = 0
    last_id = 0
    start_id = 0
    error = ""
    stop_seen: float | None = None
    announced = False
    try:
        first = next(call)
        assert first.WhichOneof("payload") == "ack", first
        start_id = last_id = first.ack.last_committed_id
        second = next(call)
        assert second.WhichOneof("payload") == "caught_up", second
        ready.send(start_id)
        announced = True
        for msg in call:
            now = time.time_ns()
            if msg.WhichOneof("payload") == "alert":
                a = msg.alert
                last_id = a.id
                if a.rule.startswith(prefix):
                    recv.append(now)
                    ids.append(a.id)
                    rules.append(a.rule)
                    trade.append(a.trade_id)
                    event_ms.append(a.event_time.seconds * 1000 + a.event_time.nanos // 1_000_000)
                    receive_ms.append(a.receive_time.seconds * 1000
                                      + a.receive_time.nanos // 1_000_000)
                    decide_ms.append(a.decide_time.seconds * 1000
                                     + a.decide_time.nanos // 1_000_000)
                    commit_ms.append(a.commit_time.seconds * 1000
                                     + a.commit_time.nanos // 1_000_000)
                else:
                    foreign += 1
            if stop.is_set():
                if stop_seen is None:
                    stop_seen = time.monotonic()
                if last_id >= last_target.value:
                    break
                if time.monotonic() - stop_seen > drain_timeout:
                    error = (f"timeout: stream at alert {last_id}, newest committed "
                             f"{last_target.value}")
                    break
        else:
            error = f"the server ended the stream (OK) after alert {last_id}"
    except grpc.RpcError as exc:
        error = f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        error = repr(exc)
    finally:
        call.cancel()
        channel.close()
    if not announced:
        ready.send(-1)
    result.send({
        "recv_ns": np.asarray(recv, np.int64), "id": np.asarray(ids, np.int64),
        "rule": rules, "trade_id": np.asarray(trade, np.int64),
        "event_ms": np.asarray(event_ms, np.int64), "receive_ms": np.asarray(receive_ms, np.int64),
        "decide_ms": np.asarray(decide_ms, np.int64), "commit_ms": np.asarray(commit_ms, np.int64),
        "foreign": foreign, "start_id": start_id, "last_id": last_id, "error": error,
        "cpu_s": time.process_time() - t_cpu0,
    })


# -------------------------------------------------------------- publisher --

class Publisher:
    """One PublishTicks stream (its own source) over a share of the symbols."""

    def __init__(self, index: int, stub: service_pb2_grpc.AlertServiceStub, work: Workload,
                 symbols: np.ndarray, rate: float, duration: float, batch_ms: float,
                 tag: str) -> None:
        self.index = index
        self.stub = stub
        self.work = work
        self.symbols = symbols                      # global symbol indices, round-robin order
        self.rate = rate
        self.duration = duration
        self.dt = batch_ms / 1000.0
        self.source = f"load-{tag}-{index}"
        self.sent = 0
        self.msg_start: list[int] = []              # first local sequence number of a message
        self.msg_send_ns: list[int] = []            # wall time it was handed to gRPC
        self.max_lag_s = 0.0                        # worst lateness of a message vs schedule
        self.late_messages = 0                      # messages more than 2 intervals late
        self.response: service_pb2.PublishTicksResponse | None = None
        self.error = ""
        self.t_start = 0.0
        self.t_last_send = 0.0
        self.t_response = 0.0

    def requests(self, t0: float) -> Iterator[service_pb2.PublishTicksRequest]:
        n_sym = len(self.symbols)
        total = int(self.rate * self.duration)
        names = self.work.names
        i = 0
        while self.sent < total:
            i += 1
            slot = t0 + i * self.dt
            now = time.perf_counter()
            if slot > now:
                time.sleep(slot - now)
                now = time.perf_counter()
            lag = now - slot
            self.max_lag_s = max(self.max_lag_s, lag)
            if lag > 2 * self.dt:
                self.late_messages += 1
            due = min(int(self.rate * (now - t0)), total) - self.sent
            if due <= 0:
                continue
            n = min(due, MAX_TICKS_PER_MESSAGE)
            seq = np.arange(self.sent, self.sent + n)
            sym = self.symbols[seq % n_sym]
            k = seq // n_sym
            price = self.work.prices(sym, k).tolist()
            wall = time.time_ns()
            ts = timestamp_pb2.Timestamp(seconds=wall // 1_000_000_000,
                                         nanos=wall % 1_000_000_000)
            req = service_pb2.PublishTicksRequest(source=self.source)
            add = req.ticks.add
            for s, p, tid in zip(sym.tolist(), price, (k + 1).tolist(), strict=True):
                add(symbol=names[s], price=p, quantity=1.0, trade_id=tid, event_time=ts)
            self.msg_start.append(self.sent)
            self.sent += n
            self.msg_send_ns.append(time.time_ns())
            self.t_last_send = time.perf_counter()
            yield req

    def run(self, t0: float, timeout: float) -> None:
        self.t_start = t0
        try:
            self.response = self.stub.PublishTicks(self.requests(t0), timeout=timeout)
        except grpc.RpcError as exc:
            self.error = f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
        self.t_response = time.perf_counter()

    def ticks_per_symbol(self, n_total_symbols: int) -> np.ndarray:
        """Ticks sent per global symbol index by this publisher."""
        n_sym = len(self.symbols)
        out = np.zeros(n_total_symbols, np.int64)
        full, rest = divmod(self.sent, n_sym)
        out[self.symbols] = full
        out[self.symbols[:rest]] += 1
        return out

    def send_ns_of(self, pos: np.ndarray, trade_id: np.ndarray) -> np.ndarray:
        """Send wall time of the ticks at round-robin positions ``pos`` with ``trade_id``."""
        seq = (trade_id - 1) * len(self.symbols) + pos
        starts = np.asarray(self.msg_start, np.int64)
        idx = np.searchsorted(starts, seq, side="right") - 1
        return np.asarray(self.msg_send_ns, np.int64)[idx]


# ------------------------------------------------------------------- stats --

PCTS = (50.0, 90.0, 99.0, 99.9)


def percentiles(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"count": 0}
    out: dict[str, float] = {"count": len(values)}
    for p in PCTS:
        out[f"p{p:g}"] = round(float(np.percentile(values, p, method="higher")), 3)
    out["max"] = round(float(values.max()), 3)
    out["mean"] = round(float(values.mean()), 3)
    return out


def list_run_alerts(stub: service_pb2_grpc.AlertServiceStub, prefix: str,
                    start_ms: int) -> list[Any]:
    """Every stored alert of this run's rules (event time at or after ``start_ms``)."""
    out: list[Any] = []
    token = ""
    start = timestamp_pb2.Timestamp()
    start.FromMilliseconds(start_ms)
    while True:
        page = stub.ListAlerts(service_pb2.ListAlertsRequest(
            page_size=1000, page_token=token, start_time=start), timeout=60)
        out.extend(a for a in page.alerts if a.rule.startswith(prefix))
        token = page.next_page_token
        if not token:
            return out


# -------------------------------------------------------------------- run --

def log(opts: Options, msg: str) -> None:
    if not opts.quiet:
        print(f"[load {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def create_rules(opts: Options, stub: service_pb2_grpc.AlertServiceStub,
                 work: Workload) -> float:
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=opts.setup_workers) as pool:
        for _ in pool.map(lambda r: stub.CreateRule(work.rule_message(r), timeout=120),
                          work.rules):
            pass
    return time.perf_counter() - t


def run(opts: Options) -> dict[str, Any]:
    """One load run; returns the report (also printed and written as JSON if asked)."""
    tag = secrets.token_hex(2)
    prefix = f"rules/ld{tag}-"
    work = Workload(opts, tag)
    report: dict[str, Any] = {"options": asdict(opts), "tag": tag}
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="alerts-load-"))
        if not opts.keep:
            stack.callback(shutil.rmtree, tmp, True)
        server_pid = opts.server_pid
        if opts.server:
            target = opts.server
        else:
            store = opts.store or f"sqlite:///{tmp / 'alerts.db'}"
            server = ServerProcess(store, tmp / "server.log").start()
            stack.callback(server.close)
            target, server_pid = server.target, server.pid
            report["server_log"] = str(tmp / "server.log")
            log(opts, f"server pid {server_pid} on {target}, store {store}")
        report["target"] = target

        # the consumer process first (spawned: no gRPC state is shared with it)
        ctx = mp.get_context("spawn")
        ready_r, ready_w = ctx.Pipe(duplex=False)
        result_r, result_w = ctx.Pipe(duplex=False)
        stop = ctx.Event()
        last_target = ctx.Value("q", 1 << 62)
        consumer = ctx.Process(target=_consumer_main, daemon=True, args=(
            target, prefix, ready_w, stop, last_target, result_w, opts.drain_timeout))
        consumer.start()

        def end_consumer() -> None:
            stop.set()
            consumer.join(5)
            if consumer.is_alive():
                consumer.terminate()
                consumer.join(5)
        stack.callback(end_consumer)

        channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        stack.callback(channel.close)
        stub = service_pb2_grpc.AlertServiceStub(channel)
        grpc.channel_ready_future(channel).result(timeout=30)

        log(opts, f"creating {len(work.rules)} rules on {opts.symbols} symbols "
                  f"(saw period {work.period} ticks)")
        setup_s = create_rules(opts, stub, work)
        report["setup"] = {"rules": len(work.rules), "seconds": round(setup_s, 2),
                           "rules_per_s": round(len(work.rules) / setup_s, 1),
                           "saw_period_ticks": work.period}
        log(opts, f"rules created in {setup_s:.1f} s ({len(work.rules) / setup_s:.0f}/s)")

        if not ready_r.poll(60):
            raise RuntimeError("the StreamAlerts consumer did not start")
        start_id = ready_r.recv()
        if start_id < 0:
            raise RuntimeError(f"the StreamAlerts consumer failed: {result_r.recv()['error']}")

        # publishers: symbols shuffled, dealt out round-robin
        order = np.random.default_rng(opts.seed + 1).permutation(opts.symbols)
        pubs = [Publisher(p, stub, work, order[p::opts.publishers], opts.rate / opts.publishers,
                          opts.duration, opts.batch_ms, tag) for p in range(opts.publishers)]
        busy_before = machine_busy_pct(1.0)
        if busy_before > 25:
            log(opts, f"warning: the machine was {busy_before:.0f} % busy (of "
                      f"{100 * (os.cpu_count() or 1)} %) before the run; figures will suffer")
        sampler = CpuSampler(server_pid).start()
        self_cpu0 = time.process_time()
        gc.collect()
        gc.freeze()
        gc.disable()
        wall0_ns = time.time_ns() + 50_000_000
        t0 = time.perf_counter() + 0.05
        mono0 = time.monotonic() + 0.05
        log(opts, f"publishing {opts.rate:.0f} ticks/s for {opts.duration:g} s "
                  f"({opts.publishers} stream(s), a message every {opts.batch_ms:g} ms)")
        threads = [threading.Thread(target=p.run, args=(t0, opts.duration + 300), daemon=True)
                   for p in pubs]
        for th in threads:
            th.start()
        for th in threads:
            th.join(opts.duration + 330)
        t_end = max(p.t_response for p in pubs)
        gc.enable()
        self_cpu = time.process_time() - self_cpu0
        mono_end = mono0 + (t_end - t0)
        errors = [f"publisher {p.index}: {p.error}" for p in pubs if p.error]
        sent = sum(p.sent for p in pubs)
        accepted = sum(p.response.accepted_count for p in pubs if p.response)
        late = sum(p.response.late_count for p in pubs if p.response)
        dup = sum(p.response.duplicate_count for p in pubs if p.response)
        log(opts, f"published: {sent} sent, {accepted} accepted, {late} late, {dup} duplicate")

        # every tick is committed now: drain the stream up to the run's newest stored alert
        # (ListAlerts is listed oldest first; the server ignores order_by "id desc")
        stored = list_run_alerts(stub, prefix, wall0_ns // 1_000_000 - 1000)
        last_target.value = max((a.id for a in stored), default=0)
        stop.set()
        if not result_r.poll(opts.drain_timeout + 30):
            raise RuntimeError("the StreamAlerts consumer did not report")
        got = result_r.recv()
        sampler.stop()

        report.update(analyse(opts, work, pubs, got, stored, t0=t0, wall0_ns=wall0_ns,
                              sent=sent, accepted=accepted, late=late, dup=dup, errors=errors))
        report["cpu"] = sampler.window(mono0, mono_end)
        cpu = report["cpu"]
        cpu["harness_publisher_s"] = round(self_cpu, 2)
        cpu["harness_consumer_s"] = round(got["cpu_s"], 2)
        cpu["machine_busy_before_pct"] = busy_before
        if cpu.get("seconds") and "server_pct" in cpu:
            cpu["others_pct"] = round(cpu["machine_busy_pct"] - cpu["server_pct"] - 100 * (
                self_cpu + got["cpu_s"]) / cpu["seconds"], 1)
        cpu_ts = sampler.per_second()
        for row in report["timeline"]:
            near = [c for c in cpu_ts if 0 <= c["t"] - (mono0 + row["second"]) <= 1.0]
            if near:
                row["server_cpu_pct"] = round(near[0]["server_pct"], 0)
                row["server_loop_cpu_pct"] = round(near[0]["loop_pct"], 0)
                row["machine_cpu_pct"] = round(near[0]["machine_pct"], 0)
    if not opts.server and "server_log" in report and opts.keep:
        report["kept"] = str(tmp)
    if opts.json_path:
        Path(opts.json_path).write_text(json.dumps(report, indent=2) + "\n")
    if not opts.quiet:
        print(summary(report))
    return report


def analyse(opts: Options, work: Workload, pubs: list[Publisher], got: dict[str, Any],
            stored: list[Any], *, t0: float, wall0_ns: int, sent: int, accepted: int,
            late: int, dup: int, errors: list[str]) -> dict[str, Any]:
    n = opts.symbols
    # which publisher owns a symbol, and its round-robin position there
    owner = np.zeros(n, np.int64)
    pos = np.zeros(n, np.int64)
    for p in pubs:
        owner[p.symbols] = p.index
        pos[p.symbols] = np.arange(len(p.symbols))
    rule_sym = np.asarray([int(r.split("-")[1]) for r in got["rule"]], np.int64)
    trade = got["trade_id"]
    send_ns = np.zeros(len(trade), np.int64)
    for p in pubs:
        sel = owner[rule_sym] == p.index
        if sel.any() and p.msg_start:
            send_ns[sel] = p.send_ns_of(pos[rule_sym[sel]], trade[sel])
    recv_ns = got["recv_ns"]
    latency = (recv_ns - send_ns) / 1e6
    by_event = recv_ns / 1e6 - got["event_ms"]
    recv_ms = recv_ns / 1e6
    stages = {
        "send_to_server_receive": got["receive_ms"] - send_ns / 1e6,
        "receive_to_decide": (got["decide_ms"] - got["receive_ms"]).astype(np.float64),
        "decide_to_commit": (got["commit_ms"] - got["decide_ms"]).astype(np.float64),
        "commit_to_consumer": recv_ms - got["commit_ms"],
    }
    steady = send_ns >= wall0_ns + int(opts.warmup * 1e9)
    if opts.raw_path:
        np.savez_compressed(opts.raw_path, send_ns=send_ns, recv_ns=recv_ns, id=got["id"],
                            symbol_index=rule_sym, trade_id=trade, event_ms=got["event_ms"],
                            receive_ms=got["receive_ms"], decide_ms=got["decide_ms"],
                            commit_ms=got["commit_ms"], run_start_ns=np.int64(wall0_ns))
    publish_s = max(p.t_last_send for p in pubs) - t0
    total_s = max(p.t_response for p in pubs) - t0

    # timeline by the second the tick was sent
    sec = ((send_ns - wall0_ns) // 1_000_000_000).astype(np.int64)
    timeline = []
    sends = np.concatenate([np.asarray(p.msg_send_ns, np.int64) for p in pubs])
    counts = np.concatenate([np.diff(np.r_[p.msg_start, p.sent]) for p in pubs])
    send_sec = (sends - wall0_ns) // 1_000_000_000
    for s in range(math.ceil(publish_s)):
        sel = sec == s
        row: dict[str, Any] = {"second": s, "ticks": int(counts[send_sec == s].sum()),
                               "alerts": int(sel.sum())}
        if sel.any():
            row.update({"p50_ms": round(float(np.percentile(latency[sel], 50)), 2),
                        "p99_ms": round(float(np.percentile(latency[sel], 99)), 2),
                        "max_ms": round(float(latency[sel].max()), 2),
                        "to_server_p99_ms": round(float(np.percentile(
                            stages["send_to_server_receive"][sel], 99)), 2)})
        timeline.append(row)

    # correctness
    ids = got["id"]
    stream_ids = ids.tolist()
    stored_ids = [a.id for a in stored]
    ticks_per_symbol = np.sum([p.ticks_per_symbol(n) for p in pubs], axis=0)
    expected = work.expected_price_fires(ticks_per_symbol)
    price_rules = {f"rules/{r.rule_id}" for r in work.rules if r.kind == "price"}
    stored_price = {(a.rule.removeprefix("rules/"), a.trade_id) for a in stored
                    if a.rule in price_rules}
    checks = {
        "no_errors": (not errors and not got["error"],
                      "; ".join(e for e in [*errors, got["error"]] if e)),
        "accepted_equals_sent": (accepted == sent and late == 0 and dup == 0,
                                 f"sent {sent}, accepted {accepted}, late {late}, duplicate {dup}"),
        "alerts_arrived": (len(stream_ids) > 0, f"{len(stream_ids)} alerts streamed"),
        "stream_ids_increasing_once": (
            all(a < b for a, b in itertools.pairwise(stream_ids)),
            f"{len(stream_ids) - len(set(stream_ids))} duplicates"),
        "stream_equals_store": (
            set(stream_ids) == set(stored_ids) and len(stored_ids) == len(set(stored_ids)),
            (f"stored {len(stored_ids)}, streamed {len(stream_ids)}, missing on stream "
             f"{len(set(stored_ids) - set(stream_ids))}, not stored "
             f"{len(set(stream_ids) - set(stored_ids))}")),
        "price_fires_as_predicted": (
            stored_price == expected,
            (f"predicted {len(expected)}, stored {len(stored_price)}, missing "
             f"{len(expected - stored_price)}, unexpected {len(stored_price - expected)}")),
    }
    lat_all = percentiles(latency)
    return {
        "ticks": {"sent": sent, "accepted": accepted, "late": late, "duplicate": dup,
                  "offered_per_s": round(sent / publish_s, 1) if publish_s > 0 else 0.0,
                  "accepted_per_s": round(accepted / total_s, 1) if total_s > 0 else 0.0,
                  "publish_seconds": round(publish_s, 3),
                  "drain_after_last_send_ms": round(
                      1000 * (max(p.t_response for p in pubs) - max(p.t_last_send for p in pubs)),
                      1),
                  "messages": sum(len(p.msg_start) for p in pubs),
                  "publisher_max_lag_ms": round(1000 * max(p.max_lag_s for p in pubs), 2),
                  "publisher_late_messages": sum(p.late_messages for p in pubs)},
        "alerts": {"streamed": len(stream_ids), "stored": len(stored_ids),
                   "per_s": round(len(stream_ids) / publish_s, 1) if publish_s > 0 else 0.0,
                   "fire_pct_of_ticks": round(100 * len(stream_ids) / max(sent, 1), 3),
                   "price_rule_fires_predicted": len(expected),
                   "foreign_alerts_on_stream": got["foreign"]},
        "latency_ms": {"tick_to_alert": lat_all,
                       "tick_to_alert_steady": percentiles(latency[steady]),
                       "by_event_time": percentiles(by_event),
                       "stages_steady": {k: percentiles(v[steady]) for k, v in stages.items()},
                       "stages": {k: percentiles(v) for k, v in stages.items()},
                       "server_commit_minus_receive": percentiles(
                           (got["commit_ms"] - got["receive_ms"]).astype(np.float64)),
                       "server_decide_minus_receive": percentiles(
                           (got["decide_ms"] - got["receive_ms"]).astype(np.float64))},
        "timeline": timeline,
        "checks": {k: {"ok": bool(ok), "detail": d} for k, (ok, d) in checks.items()},
        "ok": all(ok for ok, _ in checks.values()),
    }


# ---------------------------------------------------------------- summary --

def _pct_line(label: str, st: dict[str, float]) -> str:
    if not st.get("count"):
        return f"  {label:<34} (none)"
    return (f"  {label:<34} p50 {st['p50']:7.2f}  p90 {st['p90']:7.2f}  p99 {st['p99']:7.2f}  "
            f"p99.9 {st['p99.9']:7.2f}  max {st['max']:7.2f}  (n={st['count']})")


def summary(r: dict[str, Any]) -> str:
    o, t, a, lat, setup = r["options"], r["ticks"], r["alerts"], r["latency_ms"], r["setup"]
    store = o["store"] or ("(external server)" if o["server"] else "sqlite (temporary file)")
    per_msg = o["rate"] * o["batch_ms"] / 1000 / o["publishers"]
    out = [
        "",
        "=== alerts load run ===",
        f"target {r['target']}  store {store}  run tag {r['tag']}",
        (f"workload: {o['symbols']} symbols x {o['rules_per_symbol']} rules = "
         f"{setup['rules']} rules; {o['rate']:.0f} ticks/s for {o['duration']:g} s; "
         f"{o['publishers']} PublishTicks stream(s), a message every {o['batch_ms']:g} ms "
         f"(~{per_msg:.0f} ticks); saw period {setup['saw_period_ticks']} ticks"),
        (f"setup: {setup['rules']} CreateRule in {setup['seconds']} s "
         f"({setup['rules_per_s']}/s)"),
        "",
        (f"ticks:   sent {t['sent']}  accepted {t['accepted']}  late {t['late']}  "
         f"duplicate {t['duplicate']}"),
        (f"         offered {t['offered_per_s']:.0f}/s over {t['publish_seconds']} s; "
         f"accepted {t['accepted_per_s']:.0f}/s (until the PublishTicks response; the "
         f"server answered {t['drain_after_last_send_ms']} ms after the last send)"),
        (f"         publisher: worst lateness vs schedule {t['publisher_max_lag_ms']} ms, "
         f"{t['publisher_late_messages']} messages > 2 intervals late"),
        (f"alerts:  {a['streamed']} streamed ({a['per_s']:.0f}/s, {a['fire_pct_of_ticks']} % "
         f"of ticks), {a['stored']} stored"),
        "",
        "latency (ms):",
        _pct_line("tick -> alert on stream", lat["tick_to_alert"]),
        _pct_line(f"  same, after {o['warmup']:g} s warm-up", lat["tick_to_alert_steady"]),
        _pct_line("  same, from alert event_time (ms)", lat["by_event_time"]),
        _pct_line("server commit - receive", lat["server_commit_minus_receive"]),
        _pct_line("server decide - receive", lat["server_decide_minus_receive"]),
        "  stages after the warm-up (server stamps are whole ms):",
    ]
    for k, st in lat["stages_steady"].items():
        out.append(_pct_line("  " + k.replace("_", " "), st))
    cpu = r.get("cpu", {})
    if cpu:
        line = (f"cpu over the publish window ({cpu.get('seconds')} s): machine "
                f"{cpu.get('machine_busy_pct')} % of {cpu.get('machine_cores')} cores")
        if "server_pct" in cpu:
            line += f"; server process {cpu['server_pct']} %"
        out += ["", line]
        if cpu.get("server_threads"):
            out.append("  server threads: " + ", ".join(
                f"{th['name']}[{th['tid']}] {th['pct']} %" for th in cpu["server_threads"][:6]))
        out.append(f"  harness: publisher process {cpu['harness_publisher_s']} s CPU, consumer "
                   f"process {cpu['harness_consumer_s']} s CPU; other processes ~"
                   f"{cpu.get('others_pct', '?')} %; machine {cpu['machine_busy_before_pct']} % "
                   "busy in the second before the run")
    out += ["", "per second, by tick send time:",
            ("  second  ticks alerts | tick->alert ms:  p50     p99     max | "
             "send->server-receive p99 ms | CPU %: server (its event loop) machine")]
    nan = float("nan")
    for row in r["timeline"]:
        out.append(f"  {row['second']:5d}s {row['ticks']:6d} {row['alerts']:6d} | "
                   f"{' ' * 14}{row.get('p50_ms', nan):7.2f} {row.get('p99_ms', nan):7.2f} "
                   f"{row.get('max_ms', nan):7.2f} | {row.get('to_server_p99_ms', nan):27.2f} | "
                   f"{' ' * 6}{row.get('server_cpu_pct', nan):6.0f} "
                   f"({row.get('server_loop_cpu_pct', nan):3.0f})"
                   f"{row.get('machine_cpu_pct', nan):13.0f}")
    out += ["", "checks:"]
    for k, c in r["checks"].items():
        out.append(f"  [{'ok' if c['ok'] else 'FAIL'}] {k}: {c['detail']}")
    out.append("RESULT: " + ("ok" if r["ok"] else "FAILED"))
    return "\n".join(out)


# -------------------------------------------------------------------- CLI --

def parse_args(argv: list[str] | None = None) -> Options:
    d = Options()
    ap = argparse.ArgumentParser(prog="python -m benchmarks.load.harness",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=d.symbols)
    ap.add_argument("--rules-per-symbol", type=int, default=d.rules_per_symbol,
                    help="rule j of a symbol: price cross, vwap cross, rsi, sma close cross, "
                         "macd, then price crosses at other levels (see KINDS)")
    ap.add_argument("--rate", type=float, default=d.rate, help="ticks/s in total")
    ap.add_argument("--duration", type=float, default=d.duration, help="seconds of publishing")
    ap.add_argument("--store", help="store URL for the server started here "
                                    "(default: a temporary SQLite file)")
    ap.add_argument("--server", help="host:port of a running server (none is started)")
    ap.add_argument("--server-pid", type=int, help="with --server: its pid, for CPU figures")
    ap.add_argument("--publishers", type=int, default=d.publishers)
    ap.add_argument("--batch-ms", type=float, default=d.batch_ms)
    ap.add_argument("--fire-pct", type=float, default=d.fire_pct,
                    help="percent of ticks that fire an alert")
    ap.add_argument("--warmup", type=float, default=d.warmup,
                    help="seconds left out of the 'steady' latency figures")
    ap.add_argument("--setup-workers", type=int, default=d.setup_workers)
    ap.add_argument("--drain-timeout", type=float, default=d.drain_timeout)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--json", dest="json_path", help="write the report as JSON here")
    ap.add_argument("--raw", dest="raw_path",
                    help="write per-alert times (numpy .npz, ns / ms since the epoch) here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.store and a.server:
        ap.error("--store applies to the server started here; not with --server")
    if a.symbols < 1 or a.rules_per_symbol < 1 or a.rate <= 0 or a.duration <= 0 \
            or a.publishers < 1 or a.publishers > a.symbols:
        ap.error("symbols, rules per symbol, rate, duration and publishers must be positive "
                 "(publishers <= symbols)")
    return Options(**{k: v for k, v in vars(a).items()})


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    report = run(opts)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
