"""One Binance connection's ingest: frames parsed and normalised, then into the engine.

Frames are synthetic combined-stream ``aggTrade`` messages exactly as Binance
sends them (decimal strings, ``{"stream":..., "data":...}``), built from the
seeded ``TickStream`` of ``conftest.py`` (Poisson arrivals interleaved over
symbols, random-walk prices), 100 symbols on one connection.

``test_intake``: ``TradeIntake.on_frame`` over every frame (JSON parse,
checks, aggregate-id sequencing, ``Tick``) and ``take()`` (the deliverer's
sort) every 4,096 frames. ``test_intake_into_kernel``: the same, then per
batch the sink's work (ticks to numpy columns, ``Kernel.intern`` for ids) and
``Kernel.process`` with the five rules per symbol of ``test_bench_kernel.py``.
No socket is involved (the WebSocket decoding is websockets' cost, not ours).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from alerts.engine.kernel import Kernel
from alerts.market.base import Tick
from alerts.market.binance.connection import LinkState
from alerts.market.binance.intake import TradeIntake
from benchmarks.conftest import report, run_rounds
from benchmarks.test_bench_kernel import build

N_SYMBOLS = 100
WINDOW_MIN = 10.0          # ~180k frames at 3 ticks/s/symbol
BATCH = 4096


def frames_of(ticks: dict[str, np.ndarray], names: list[str]) -> list[bytes]:
    """Combined-stream aggTrade frames (one per tick), aggregate ids contiguous per symbol."""
    out = []
    dumps = orjson.dumps
    for sid, t, p, q, a in zip(ticks["symbol"].tolist(), ticks["time_ms"].tolist(),
                               ticks["price"].tolist(), ticks["qty"].tolist(),
                               ticks["trade_id"].tolist()):
        name = names[sid]
        out.append(dumps({"stream": f"{name.lower()}@aggTrade", "data": {
            "e": "aggTrade", "E": t + 3, "s": name, "a": a, "p": f"{p:.8f}", "q": f"{q:.5f}",
            "f": a * 3, "l": a * 3 + 2, "T": t, "m": bool(a & 1), "M": True}}))
    return out


def _intake(names: list[str]) -> TradeIntake:
    def refuse(*args: Any) -> None:
        raise AssertionError(f"unexpected {args!r}")

    intake = TradeIntake("bench", on_bad=refuse, on_gap=refuse)
    for name in names:
        intake.follow(name)
    return intake


def test_intake(benchmark: Any) -> None:
    env = build(N_SYMBOLS, warm=False)
    names = [f"S{i}" for i in range(N_SYMBOLS)]
    windows: list[list[bytes]] = []

    def setup() -> tuple[tuple, dict]:
        frames = frames_of(env.stream.window(WINDOW_MIN), names)
        windows.append(frames)
        return (frames, _intake(names), LinkState(1)), {}

    def target(frames: list[bytes], intake: TradeIntake, state: LinkState) -> list[int]:
        on_frame = intake.on_frame
        taken = []
        for s in range(0, len(frames), BATCH):
            for raw in frames[s:s + BATCH]:
                on_frame(state, raw)
            batch = intake.take()
            taken.append(len(batch))
            assert batch[0].time_ms <= batch[-1].time_ms
        return taken

    seconds, outs = run_rounds(benchmark, target, setup=setup, rounds=3, warmup_rounds=1)
    sizes = [len(w) for w in windows[-len(outs):]]
    for n, taken in zip(sizes, outs):
        assert sum(taken) == n                                   # every frame became a tick
    rates = [n / s for n, s in zip(sizes, seconds)]
    best = max(rates)
    report(benchmark, "binance_intake",
           f"binance intake: {best / 1e3:,.0f} k messages/s one connection "
           f"({1e9 / best:,.0f} ns/message; median {np.median(rates) / 1e3:,.0f} k/s; "
           f"{sizes[0]:,} frames, {N_SYMBOLS} symbols)",
           messages_per_s=best, ns_per_message=1e9 / best)


def _sink_process(kernel: Kernel, src: int, batch: list[Tick]) -> int:
    """What an engine-side sink does with one batch: columns, then the core."""
    n = len(batch)
    ids = kernel.intern([t.symbol for t in batch])
    time_ms = np.fromiter((t.time_ms for t in batch), np.int64, n)
    price = np.fromiter((t.price for t in batch), np.float64, n)
    qty = np.fromiter((t.qty for t in batch), np.float64, n)
    trade_id = np.fromiter((t.trade_id for t in batch), np.int64, n)
    kernel.process(src, ids, time_ms, price, qty, trade_id)
    return kernel.last_counts.accepted


def test_intake_into_kernel(benchmark: Any) -> None:
    env = build(N_SYMBOLS)
    kernel, src = env.kernel, env.src
    names = [kernel.symbol_name(int(i)).split(":", 1)[1] for i in env.ids]
    intake = _intake(names)
    state = LinkState(1)
    windows: list[list[bytes]] = []

    def setup() -> tuple[tuple, dict]:
        frames = frames_of(env.stream.window(WINDOW_MIN), names)
        windows.append(frames)
        return (frames,), {}

    def target(frames: list[bytes]) -> int:
        on_frame = intake.on_frame
        accepted = 0
        for s in range(0, len(frames), BATCH):
            for raw in frames[s:s + BATCH]:
                on_frame(state, raw)
            accepted += _sink_process(kernel, src, intake.take())
        return accepted

    seconds, outs = run_rounds(benchmark, target, setup=setup, rounds=3, warmup_rounds=1)
    sizes = [len(w) for w in windows[-len(outs):]]
    assert outs == sizes                                          # every tick accepted
    fired = sum(int(kernel.rule_state(r)["fires"]) for r in kernel.rules())
    assert fired > 0
    rates = [n / s for n, s in zip(sizes, seconds)]
    best = max(rates)
    report(benchmark, "binance_into_kernel",
           f"binance intake + engine: {best / 1e3:,.0f} k messages/s one connection into "
           f"Kernel.process ({1e9 / best:,.0f} ns/message; 5 rules x {N_SYMBOLS} symbols)",
           messages_per_s=best, ns_per_message=1e9 / best)
