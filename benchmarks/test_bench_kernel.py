"""The full kernel: ticks through ``Engine.process``, rule add/remove, memory.

Five rules per symbol, mixed indicators, timeframes (1m, 5m, 15m) and modes:

    p  price crosses_above <level>               ON_TRUE             tick level
    r  rsi(14, 5m) > 70                          ON_TRUE             intrabar
    c  close(1m) crosses_above sma(50, 1m)       ONCE_PER_BAR_CLOSE  at 1m closes
    v  volume_z(20, 1m) > 3                      ONCE_PER_BAR        intrabar
    m  macd(12, 26, 9, 15m).hist crosses_below 0 ON_TRUE             intrabar

so each tick evaluates four intrabar programs (peeking RSI 5m, volume z 1m and
MACD 15m with the forming bar) and every 1m/5m/15m boundary closes bars, steps
the shared states and runs the bar-close rule. The indicators are warmed first
(555 bars of 1m through ``process_bars``, not timed: 37 closes of 15m), so
the measured part is steady state. Ticks: Poisson, 3 per second per symbol,
interleaved in time, unique trade ids, batches of 4,096 through the raw
engine (no event conversion in the timed loop); one unmeasured round first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from alerts.engine.kernel import Kernel
from benchmarks.conftest import (
    MIN,
    START_MS,
    TickStream,
    feed_bars,
    feed_random_walk,
    process_ticks,
    random_walk_bars,
    report,
    reset_events,
    run_rounds,
)

RATE = 3.0                     # ticks per second per symbol
BATCH = 4096
WARM_1M = 37 * 15               # 1m bars of warm-up: 37 bars of 15m for MACD(12, 26, 9)
KINDS = ("p", "r", "c", "v", "m")


def rules_for(level: float) -> list[tuple[str, str, str]]:
    return [
        ("p", f"price crosses_above {level:.6f}", "ON_TRUE"),
        ("r", "rsi(14, 5m) > 70", "ON_TRUE"),
        ("c", "close(1m) crosses_above sma(50, 1m)", "ONCE_PER_BAR_CLOSE"),
        ("v", "volume_z(20, 1m) > 3", "ONCE_PER_BAR"),
        ("m", "macd(12, 26, 9, 15m).hist crosses_below 0", "ON_TRUE"),
    ]


@dataclass
class Env:
    kernel: Kernel
    src: int
    ids: np.ndarray
    stream: TickStream
    bytes_before: int         # the empty engine (with its source and event buffer)
    bytes_rules: int          # after loading the rules, before any data
    bytes_warm: int           # after the warm-up bars (before any tick)


def build(n_symbols: int, *, seed: int = 5, warm: bool = True) -> Env:
    # core_bytes is process-wide: deltas from the empty engine, nothing else changing meanwhile
    k = Kernel()
    src = k.add_source(fill_gaps=True, grace_ms=1000)
    b0 = k.stats()["core_bytes"]
    names = [f"bench:S{i}" for i in range(n_symbols)]
    ids = np.array([k.symbol_id(n) for n in names], np.int32)
    # the first bar of each symbol sets the price levels of the p rules
    first = random_walk_bars(n_symbols, 1, seed=seed)
    for i, name in enumerate(names):
        for kind, cond, mode in rules_for(float(first.close[0, i]) * 1.002):
            k.add_rule(f"{kind}{i}", name, cond, mode=mode)
    b_rules = k.stats()["core_bytes"]
    last = first.close[0]
    if warm:
        # 1m bars only: process_bars of a coarser timeframe finds the other symbols' bars late
        accepted, last = feed_random_walk(k.engine, src, ids, WARM_1M, start_ms=START_MS,
                                          start_prices=first.close[0], seed=seed, sigma=0.003,
                                          mean_volume=RATE * 60, volume_shape=100)
        assert accepted == n_symbols * WARM_1M
        reset_events(k.engine, src)
    b_warm = k.stats()["core_bytes"]
    stream = TickStream(ids, last, start_ms=START_MS + WARM_1M * MIN, rate=RATE, seed=seed + 2)
    return Env(k, src, ids, stream, b0, b_rules, b_warm)


def fires_by_kind(k: Kernel) -> dict[str, int]:
    out = dict.fromkeys(KINDS, 0)
    for rid in k.rules():
        out[rid[0]] += int(k.rule_state(rid)["fires"])
    return out


# ---------------------------------------------------------- ticks --

@pytest.mark.parametrize(
    ("n_symbols", "window_min", "rounds"),
    [(1, 60, 5), (1_000, 3, 3), (10_000, 1, 3)],
    ids=["1sym", "1k", "10k"],
)
def test_ticks(benchmark: Any, n_symbols: int, window_min: float, rounds: int,
               results: dict) -> None:
    env = build(n_symbols)
    k, eng, src = env.kernel, env.kernel.engine, env.src
    # every warmed state is defined: each rule has evaluated on defined values
    for kind in ("r", "c", "v", "m"):
        vals = k.rule_state(f"{kind}0")["values"]
        assert not np.isnan(vals).any(), (kind, vals)
    fires0 = fires_by_kind(k)

    sizes: list[int] = []

    stream, engine_ = env.stream, eng

    def setup() -> tuple[tuple, dict]:
        ticks = stream.window(window_min)
        sizes.append(len(ticks["symbol"]))
        return (engine_, src, ticks), {}

    def target(engine: Any, source: int, ticks: dict) -> tuple[int, np.ndarray]:
        return len(ticks["symbol"]), process_ticks(engine, source, ticks, BATCH)

    seconds, outs = run_rounds(benchmark, target, setup=setup, rounds=rounds, warmup_rounds=1)
    for n, counts in outs:
        assert counts.tolist() == [n, 0, 0, 0], (n, counts)      # every tick accepted
    per_tick = [s / n * 1e9 for s, (n, _) in zip(seconds, outs)]
    ns, ns_med = min(per_tick), float(np.median(per_tick))
    fires1 = fires_by_kind(k)
    fired = {kk: fires1[kk] - fires0[kk] for kk in KINDS}
    total = sum(fired.values())
    assert total > 0, fired
    if n_symbols >= 1000:
        assert sum(1 for v in fired.values() if v > 0) >= 3, fired
    n_ticks = sum(sizes)
    st = k.stats()
    assert st["rules"] == 5 * n_symbols
    figures: dict[str, Any] = dict(  # noqa: C408 - keyword names read as the report's
        ns_per_tick=ns, ns_per_tick_median=ns_med, mticks_per_s=1e3 / ns, symbols=n_symbols,
        rules=st["rules"], series=st["series"], groups=st["groups"],
        ticks_per_round=int(np.mean(sizes[-rounds:])), ticks_total=n_ticks, batch=BATCH,
        rate_per_symbol_s=RATE, fires=fired, target_ns_per_tick=200)
    line = (f"kernel {n_symbols:>6} symbols x 5 rules: {ns:.1f} ns/tick (median {ns_med:.1f}; "
            f"{1e3 / ns:.2f} M ticks/s; target < 200 at 10k), "
            f"{int(np.mean(sizes[-rounds:]))} ticks/round, fires {fired}")
    if n_symbols >= 1000:
        reset_events(eng, src)
        held = k.stats()["core_bytes"] - env.bytes_before
        per_k = held * 1000 / n_symbols
        rules_only = (env.bytes_rules - env.bytes_before) * 1000 / n_symbols
        warmed = (env.bytes_warm - env.bytes_before) * 1000 / n_symbols
        figures.update(bytes_per_1000_symbols=int(per_k),
                       bytes_per_1000_symbols_rules_loaded=int(rules_only),
                       bytes_per_1000_symbols_after_bars=int(warmed),
                       target_bytes_per_1000_symbols=20 * 10**6)
        line += (f"; memory per 1,000 symbols {per_k / 1e6:.2f} MB (target < 20 MB; "
                 f"{rules_only / 1e6:.2f} MB with the rules loaded, {warmed / 1e6:.2f} MB after "
                 f"the warm-up bars)")
    results.setdefault("kernel", {})[f"{n_symbols}"] = figures
    report(benchmark, f"kernel.ticks.{n_symbols}", line, **figures)
    del env, k, eng


# --------------------------------------------------- add / remove --

N_LOADED_SYMBOLS = 2_000        # x 5 rules = 10,000 rules loaded
ADD_ROUNDS = 300


@pytest.fixture(scope="module")
def loaded() -> Env:
    env = build(N_LOADED_SYMBOLS, warm=False)     # add/remove cost does not depend on data
    assert env.kernel.stats()["rules"] == 10_000
    return env


def _sym(i: int) -> str:
    return f"bench:S{i % N_LOADED_SYMBOLS}"


@pytest.mark.parametrize(
    ("variant", "condition"),
    [("shared states", "rsi(14, 5m) > 75"),
     ("new states", "ema(33, 1m) > sma(77, 1m)")],
)
def test_add_rule(benchmark: Any, loaded: Env, variant: str, condition: str) -> None:
    """``Kernel.add_rule`` (parse, compile, load) with 10,000 rules loaded.

    Each round's rule is removed again in the next round's setup (not timed), so
    its core slot comes from the free list; ``new states`` reads indicator
    states nobody else reads, so they are allocated at the add (and freed at the
    remove).
    """
    k = loaded.kernel
    added: list[str] = []
    counter = iter(range(10**9))

    def setup() -> tuple[tuple, dict]:
        while added:
            k.remove_rule(added.pop())
        i = next(counter)
        return (f"add-{variant}-{i}", _sym(i * 7)), {}

    def target(rid: str, sym: str) -> None:
        k.add_rule(rid, sym, condition, mode="ON_TRUE")
        added.append(rid)

    seconds, _ = run_rounds(benchmark, target, setup=setup, rounds=ADD_ROUNDS, warmup_rounds=5)
    while added:
        k.remove_rule(added.pop())
    assert k.stats()["rules"] == 10_000
    us, us_med = min(seconds) * 1e6, float(np.median(seconds)) * 1e6
    report(benchmark, f"kernel.add.{variant}",
           f"rules  add one rule, text, {variant} (10,000 loaded): median {us_med:.1f} us "
           f"(min {us:.1f})", add_us_median=us_med, add_us_min=us, rules_loaded=10_000)


def test_add_rule_compiled(benchmark: Any, loaded: Env) -> None:
    """``Kernel.load`` of an already compiled rule: the core's add plus the facade's glue."""
    k = loaded.kernel
    compiled = [k.compile(_sym(i * 7), "rsi(14, 5m) > 75") for i in range(ADD_ROUNDS + 5)]
    added: list[str] = []
    counter = iter(range(10**9))

    def setup() -> tuple[tuple, dict]:
        while added:
            k.remove_rule(added.pop())
        i = next(counter)
        return (f"load-{i}", compiled[i]), {}

    def target(rid: str, c: Any) -> None:
        k.load(rid, c)
        added.append(rid)

    seconds, _ = run_rounds(benchmark, target, setup=setup, rounds=ADD_ROUNDS, warmup_rounds=5)
    while added:
        k.remove_rule(added.pop())
    us_med = float(np.median(seconds)) * 1e6
    report(benchmark, "kernel.add.compiled",
           f"rules  add one precompiled rule (Kernel.load, 10,000 loaded): median {us_med:.1f} us "
           f"(min {min(seconds) * 1e6:.1f})", add_us_median=us_med, add_us_min=min(seconds) * 1e6)


def test_remove_rule(benchmark: Any, loaded: Env) -> None:
    """``Kernel.remove_rule`` with 10,000 (+1) rules loaded; the rule is added in setup."""
    k = loaded.kernel
    counter = iter(range(10**9))

    def setup() -> tuple[tuple, dict]:
        i = next(counter)
        rid = f"rm-{i}"
        k.add_rule(rid, _sym(i * 7), "rsi(14, 5m) > 75", mode="ON_TRUE")
        return (rid,), {}

    seconds, _ = run_rounds(benchmark, k.remove_rule, setup=setup, rounds=ADD_ROUNDS,
                            warmup_rounds=5)
    assert k.stats()["rules"] == 10_000
    us_med = float(np.median(seconds)) * 1e6
    report(benchmark, "kernel.remove",
           f"rules  remove one rule (10,000 loaded): median {us_med:.1f} us "
           f"(min {min(seconds) * 1e6:.1f})", remove_us_median=us_med,
           remove_us_min=min(seconds) * 1e6)


def test_add_rule_fresh_slots(benchmark: Any) -> None:
    """``Kernel.load`` (precompiled) into a rule table without holes, 10,000 loaded and growing.

    Compare with ``test_add_rule_compiled``, where the slot comes from the free
    list: here the core looks for a free slot itself.
    """
    env = build(N_LOADED_SYMBOLS, warm=False)
    k = env.kernel
    compiled = [k.compile(_sym(i * 7), "rsi(14, 5m) > 75") for i in range(ADD_ROUNDS + 5)]
    counter = iter(range(10**9))

    def setup() -> tuple[tuple, dict]:
        i = next(counter)
        return (f"fresh-{i}", compiled[i]), {}

    seconds, _ = run_rounds(benchmark, k.load, setup=setup, rounds=ADD_ROUNDS, warmup_rounds=5)
    assert k.stats()["rules"] == 10_000 + ADD_ROUNDS + 5
    us_med = float(np.median(seconds)) * 1e6
    report(benchmark, "kernel.add.fresh",
           f"rules  add one precompiled rule, no free slot (Kernel.load, 10,000+ loaded): median "
           f"{us_med:.1f} us (min {min(seconds) * 1e6:.1f})", add_us_median=us_med,
           add_us_min=min(seconds) * 1e6)


# ---------------------------------------------------------- memory --

FIVE = ("rsi(14, 1m) > 70 and close(1m) > bb(20, 2, 1m).upper and "
        "macd(12, 26, 9, 1m).hist > 0 and ema(20, 1m) > sma(20, 1m)")
MEM_SYMBOLS = 1_000


def test_memory_five_indicators(benchmark: Any, results: dict) -> None:
    """Bytes per symbol holding just the five peer indicators (1m), from ``core_bytes`` deltas.

    A rule reading all five creates the states; a second identical rule per
    symbol shares them, so its delta is the cost of a rule alone, which is taken
    off. Measured after 100 bars of data (windows and rings are full). The
    benchmark part times building the 1,000 symbols' rules (``Kernel.add_rule``).
    """
    bars = random_walk_bars(MEM_SYMBOLS, 100, seed=3)
    ids = np.arange(MEM_SYMBOLS, dtype=np.int32)
    names = [f"bench:S{i}" for i in range(MEM_SYMBOLS)]
    holder: dict[str, Any] = {}

    def setup() -> tuple[tuple, dict]:
        holder.clear()
        k = Kernel()
        src = k.add_source()
        for i, n in enumerate(names):
            assert k.symbol_id(n) == i
        holder.update(k=k, src=src, b0=k.stats()["core_bytes"])
        return (k,), {}

    def target(k: Kernel) -> None:
        for i, n in enumerate(names):
            k.add_rule(f"a{i}", n, FIVE, mode="ONCE_PER_BAR_CLOSE")

    seconds, _ = run_rounds(benchmark, target, setup=setup, rounds=1)   # one kernel alive
    k, src, b0 = holder["k"], holder["src"], holder["b0"]
    b1 = k.stats()["core_bytes"]
    for i, n in enumerate(names):
        k.add_rule(f"b{i}", n, FIVE, mode="ONCE_PER_BAR_CLOSE")
    b2 = k.stats()["core_bytes"]
    assert k.stats()["series"] == 5 * MEM_SYMBOLS
    assert feed_bars(k.engine, src, "1m", bars, ids) == MEM_SYMBOLS * 100
    reset_events(k.engine, src)
    b3 = k.stats()["core_bytes"]
    rule_bytes = (b2 - b1) / MEM_SYMBOLS
    per_symbol = ((b3 - b0) - 2 * (b2 - b1)) / MEM_SYMBOLS
    per_symbol_before_data = ((b1 - b0) - (b2 - b1)) / MEM_SYMBOLS
    us_rule = min(seconds) / MEM_SYMBOLS * 1e6
    report(benchmark, "memory.five",
           f"memory five indicators (sma20 ema20 rsi14 macd bb, 1m): {per_symbol:.0f} B/symbol "
           f"(target < 1 KB; before data {per_symbol_before_data:.0f}), "
           f"one rule {rule_bytes:.0f} B; "
           f"add_rule while building: {us_rule:.1f} us/rule",
           bytes_per_symbol=int(per_symbol),
           bytes_per_symbol_before_data=int(per_symbol_before_data),
           bytes_per_rule=int(rule_bytes), add_rule_us_building=us_rule,
           target_bytes_per_symbol=1024)
