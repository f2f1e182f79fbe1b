"""Smoke run of the load harness: a real server, a short run, functional checks only.

1,000 symbols x 3 rules (price cross, vwap cross, rsi), 2,000 ticks/s for 5 s,
SQLite. Asserts that every tick was accepted, alerts arrived, every stored alert
of the run came once on the stream in id order, and the price rules fired
exactly on the ticks the harness predicted. Latency figures go to the summary
and ``extra_info``; they are never asserted.

Runs under ``--benchmark-only`` with the other benchmarks (one round), and
alone: ``python -m pytest benchmarks/load -q``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.conftest import report
from benchmarks.load.harness import Options, run

SYMBOLS = 1_000
RATE = 2_000
DURATION = 5


def test_load_smoke(benchmark: Any, tmp_path: Path) -> None:
    opts = Options(symbols=SYMBOLS, rules_per_symbol=3, rate=RATE, duration=DURATION,
                   store=f"sqlite:///{tmp_path / 'alerts.db'}", warmup=1.0,
                   json_path=str(tmp_path / "load.json"), quiet=True)
    out = benchmark.pedantic(run, args=(opts,), rounds=1, iterations=1, warmup_rounds=0)

    failed = {k: c["detail"] for k, c in out["checks"].items() if not c["ok"]}
    assert not failed, failed
    assert out["ok"]
    ticks, alerts = out["ticks"], out["alerts"]
    assert ticks["sent"] == ticks["accepted"] == RATE * DURATION
    assert ticks["late"] == ticks["duplicate"] == 0
    assert alerts["streamed"] == alerts["stored"] > 0
    assert alerts["price_rule_fires_predicted"] > 0
    assert alerts["foreign_alerts_on_stream"] == 0
    assert out["latency_ms"]["tick_to_alert"]["count"] == alerts["streamed"]
    assert json.loads((tmp_path / "load.json").read_text())["ok"] is True

    lat = out["latency_ms"]["tick_to_alert"]
    report(benchmark, "load_smoke",
           f"load smoke ({SYMBOLS} symbols, {RATE} ticks/s, {DURATION} s): "
           f"{alerts['streamed']} alerts, tick->alert p50 {lat['p50']:.2f} ms, "
           f"p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms",
           alerts=alerts["streamed"], accepted_per_s=ticks["accepted_per_s"],
           p50_ms=lat["p50"], p99_ms=lat["p99"], max_ms=lat["max"])
