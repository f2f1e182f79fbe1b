"""Properties of the kernel that no single worked case pins down.

Batch size never changes results; rules do not disturb each other; intrabar
values equal the closed values a closed copy computes; states are shared and
reclaimed; the GIL is released; bad input is counted or refused, never a crash.
"""

from __future__ import annotations

import math
import re
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine.kernel import Fired, Kernel
from alerts_core import OPS, Engine

MIN = 60_000


def random_ticks(n: int, symbols: list[str], seed: int = 7, step_ms: int = 700,
                 start_ms: int = 1_700_000_000_000) -> dict[str, np.ndarray]:
    """A seeded random walk per symbol, interleaved in time order with trade ids."""
    rng = np.random.default_rng(seed)
    sym_idx = rng.integers(0, len(symbols), n)
    times = start_ms + np.cumsum(rng.integers(0, step_ms, n))
    price = np.empty(n)
    level = {i: 100.0 + 10 * i for i in range(len(symbols))}
    for i in range(n):
        s = int(sym_idx[i])
        level[s] *= float(np.exp(rng.normal(0, 0.002)))
        price[i] = level[s]
    qty = rng.exponential(1.0, n)
    return {
        "symbols": np.array(symbols)[sym_idx],
        "time_ms": times.astype(np.int64),
        "price": price,
        "qty": qty,
        "trade_id": np.arange(1, n + 1, dtype=np.int64),
    }


def comparable(fired: list[Fired]) -> list[tuple]:
    """Fires as tuples with undefined values as None (NaN never equals itself)."""
    return [
        (f.rule_id, f.symbol, f.time_ms, f.kind, f.bar_open_ms, f.trade_id, f.rank, f.price,
         tuple(None if math.isnan(v) else v for v in f.values))
        for f in fired
    ]


def feed(kernel: Kernel, src: int, ticks: dict[str, np.ndarray], batch: int) -> list[Fired]:
    ids = kernel.intern(ticks["symbols"])
    out: list[Fired] = []
    n = len(ids)
    for s in range(0, n, batch):
        sl = slice(s, s + batch)
        out += kernel.process(src, ids[sl], ticks["time_ms"][sl], ticks["price"][sl],
                              ticks["qty"][sl], ticks["trade_id"][sl])
    return out


MIXED_RULES = [
    ("a", "t:A", "rsi(14, 1m) > 55", "ON_TRUE"),
    ("b", "t:A", "close(1m) crosses_above sma(5, 1m)", "ONCE_PER_BAR_CLOSE"),
    ("c", "t:B", "price crosses_below ema(10, 1m)", "ON_TRUE"),
    ("d", "t:B", "macd(3, 6, 2, 5m).hist > 0 and volume_z(5, 1m) > 0.5", "EVERY_TIME"),
    ("e", "t:C", "close(1m) exits bb(10, 1.5, 1m)", "ONCE_PER_BAR_CLOSE"),
    ("f", "t:C", "price moves_up 0.3% within 5 bars", "ONCE_PER_BAR"),
    ("g", "t:A", "close(1m, t:B) / close(1m) > 1.1", "ONCE_PER_BAR_CLOSE"),
    ("h", "t:B", "stoch(5, 3, 3, 1m).k crosses stoch(5, 3, 3, 1m).d", "ON_TRUE"),
    ("i", "t:C", "change_pct(3, 1m) >= 0.2 or price > highest(10, 1m)", "ON_TRUE"),
    ("j", "t:A", "price enters donchian(5, 1m) and atr(5, 1m) > 0", "ON_TRUE"),
    ("k", "t:B", "vwap() < price and obv(1m) > obv(1m)[2]", "ON_TRUE"),
    ("l", "t:C", "wma(4, 1m) > wma(4, 1m)[1]", "ONCE_PER_BAR_CLOSE"),
]


def mixed_kernel(timeframe: str | None = None) -> tuple[Kernel, int]:
    kernel = Kernel()
    src = kernel.add_source()
    for rid, sym, cond, mode in MIXED_RULES:
        tf = "1m" if mode == "ONCE_PER_BAR" else None
        kernel.add_rule(rid, sym, cond, mode=mode, timeframe=tf, cooldown_ms=0)
    return kernel, src


def test_batch_size_never_changes_results() -> None:
    ticks = random_ticks(20_000, ["t:A", "t:B", "t:C"])
    runs = []
    for batch in (1, 7, 4096):
        kernel, src = mixed_kernel()
        runs.append(feed(kernel, src, ticks, batch))
    assert len(runs[0]) > 200, "the rules should fire often on this data"
    assert {f.rule_id for f in runs[0]} == {r[0] for r in MIXED_RULES}
    assert comparable(runs[0]) == comparable(runs[1]) == comparable(runs[2])


def test_rule_events_unchanged_when_others_come_and_go() -> None:
    ticks = random_ticks(12_000, ["t:A", "t:B", "t:C"], seed=11)
    alone = Kernel()
    src = alone.add_source()
    alone.add_rule("a", "t:A", "rsi(14, 1m) > 55 and price > sma(5, 1m)", mode="ON_TRUE")
    expected = [f for f in feed(alone, src, ticks, 1000) if f.rule_id == "a"]
    assert len(expected) > 10

    busy = Kernel()
    src = busy.add_source()
    busy.add_rule("a", "t:A", "rsi(14, 1m) > 55 and price > sma(5, 1m)", mode="ON_TRUE")
    ids = busy.intern(ticks["symbols"])
    got: list[Fired] = []
    for n, s in enumerate(range(0, len(ids), 1000)):
        sl = slice(s, s + 1000)
        # other rules, some sharing a's states, arrive and leave between batches
        if n % 3 == 0:
            busy.add_rule(f"x{n}", "t:A", "rsi(14, 1m) < 30", mode="EVERY_TIME")
            busy.add_rule(f"y{n}", "t:A", "sma(5, 1m)[3] > price", mode="ONCE_PER_BAR",
                          timeframe="5m")
            busy.add_rule(f"z{n}", "t:B", "close(1m, t:A) > sma(5, 1m, t:A)",
                          mode="ONCE_PER_BAR_CLOSE")
        elif n % 3 == 2:
            for rid in [r for r in busy.rules() if r != "a"]:
                busy.remove_rule(rid)
        got += busy.process(src, ids[sl], ticks["time_ms"][sl], ticks["price"][sl],
                            ticks["qty"][sl], ticks["trade_id"][sl])
    assert comparable([f for f in got if f.rule_id == "a"]) == comparable(expected)


INTRABAR_SERIES = [
    "sma(4, 1m)", "ema(4, 1m)", "wma(4, 1m)", "rsi(3, 1m)", "macd(2, 4, 2, 1m).line",
    "macd(2, 4, 2, 1m).signal", "bb(4, 2, 1m).upper", "bb(4, 2, 1m).pct_b", "atr(3, 1m)",
    "stoch(3, 2, 2, 1m).k", "stoch(3, 2, 2, 1m).d", "obv(1m)", "volume_z(4, 1m)",
    "change_pct(3, 1m)", "highest(3, 1m)", "lowest(3, 1m)", "donchian(3, 1m).middle",
    "close(1m)", "high(1m)", "volume(1m)", "trades(1m)", "sma(3, 5m)", "rsi(2, 5m)",
]


@pytest.mark.parametrize("cut", [137, 402, 733])
def test_intrabar_value_equals_closed_value_of_a_closed_copy(cut: int) -> None:
    ticks = random_ticks(1_000, ["t:A"], seed=3, step_ms=3_000)
    head = {k: v[:cut] for k, v in ticks.items()}
    live = Kernel()
    src = live.add_source()
    for i, expr in enumerate(INTRABAR_SERIES):
        live.add_rule(f"s{i}", "t:A", f"{expr} > -1e300", mode="EVERY_TIME", cooldown_ms=0)
    intrabar = {f.rule_id: f.values[0] for f in feed(live, src, head, 4096)
                if f.time_ms == int(head["time_ms"][-1])}

    copy = Kernel()
    src = copy.add_source()
    for i, expr in enumerate(INTRABAR_SERIES):
        tf = re.findall(r"\b(1m|5m)\b", expr)[0]
        copy.add_rule(f"s{i}", "t:A", f"{expr} > -1e300", mode="ONCE_PER_BAR_CLOSE",
                      timeframe=tf)
    feed(copy, src, head, 4096)
    last = int(head["time_ms"][-1])
    closed: dict[str, float] = {}
    for f in copy.advance_clock(src, last + 10 * MIN):
        if f.bar_open_ms is not None and f.bar_open_ms <= last < f.time_ms:
            closed[f.rule_id] = f.values[0]
    assert len(intrabar) >= 15, "most series should be defined at the cut"
    assert set(intrabar) == set(closed), "defined intrabar exactly where defined once closed"
    for rid, value in intrabar.items():
        assert closed[rid] == pytest.approx(value, rel=1e-12, abs=1e-12), (
            INTRABAR_SERIES[int(rid[1:])])


def test_one_state_per_indicator_and_memory_returns_to_baseline() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    ticks = random_ticks(2_000, ["t:A"], seed=5, step_ms=3_000)
    feed(kernel, src, ticks, 4096)
    base = kernel.stats()
    for i in range(1000):
        kernel.add_rule(f"r{i}", "t:A", f"rsi(14, 1m) > {50 + i / 100}", mode="ON_TRUE")
    loaded = kernel.stats()
    assert loaded["series"] == base["series"] + 1
    assert loaded["groups"] == base["groups"] + 1
    assert loaded["rules"] == 1000
    assert loaded["core_bytes"] > base["core_bytes"]
    more = random_ticks(2_000, ["t:A"], seed=6, step_ms=3_000,
                        start_ms=int(ticks["time_ms"][-1]) + 1)
    fired = feed(kernel, src, more, 4096)
    # the rules differ only by threshold: one shared value, identical in every fire
    by_time: dict[int, set[float]] = {}
    for f in fired:
        by_time.setdefault(f.time_ms, set()).add(f.values[0])
    assert fired and all(len(v) == 1 for v in by_time.values())
    for i in range(1000):
        kernel.remove_rule(f"r{i}")
    kernel.engine.clear_events(release=True)  # the burst of fires grew the event buffer
    after = kernel.stats()
    assert after["series"] == base["series"]
    assert after["groups"] == base["groups"]
    assert after["rules"] == 0
    assert after["core_bytes"] == base["core_bytes"]


def test_process_releases_the_gil() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    for i in range(5):
        kernel.add_rule(f"r{i}", "t:A", f"sma({5 + i}, 1m) > ema(9, 1m) and rsi(14, 1m) > 99",
                        mode="ON_TRUE")
    n = 3_000_000
    ids = np.zeros(n, np.int32)
    kernel.intern(["t:A"])
    times = np.arange(n, dtype=np.int64) * 10
    price = 100 + np.sin(np.arange(n) / 1000.0)
    qty = np.ones(n)
    tids = np.zeros(n, np.int64)
    started = threading.Event()
    stop = threading.Event()
    counter = [0]

    def spin() -> None:
        started.set()
        while not stop.is_set():
            counter[0] += 1

    worker = threading.Thread(target=spin)
    worker.start()
    started.wait()
    before = counter[0]
    counts = kernel.engine.process(src, ids, times, price, qty, tids)
    during = counter[0] - before
    stop.set()
    worker.join()
    assert counts[0] == n
    assert during > 1000, f"the other thread made only {during} steps during process()"


def test_late_duplicate_and_invalid_ticks_are_counted_not_applied() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", "price < 100", mode="EVERY_TIME", cooldown_ms=0)
    ids = kernel.intern(["t:A"] * 7)
    times = [70_000, 50_000, 71_000, 72_000, 73_000, 74_000, 75_000]
    prices = [101, 50, 101, 99, float("nan"), 98, 97]
    qty = [1, 1, 1, 1, 1, -1, 1]
    tids = [1, 2, 3, 3, 5, 6, 7]
    fired = kernel.process(src, ids, times, prices, qty, tids)
    assert kernel.last_counts == (3, 1, 1, 2)
    assert [f.time_ms for f in fired] == [75_000]


@pytest.mark.parametrize("ids", [[-1], [0, 3, -2], [5, -1, 2]])
def test_a_negative_symbol_id_is_refused_before_any_tick_is_applied(ids: list[int]) -> None:
    engine = Engine()
    src = engine.add_source()
    n = len(ids)
    with pytest.raises(ValueError, match="symbol ids must be >= 0"):
        engine.process(src, np.array(ids, np.int32), np.full(n, 60_000, np.int64),
                       np.ones(n), np.ones(n), np.arange(1, n + 1, dtype=np.int64))
    assert engine.source_clock(src) is None       # nothing was applied
    assert engine.process(src, np.array([0, 4], np.int32), np.full(2, 60_000, np.int64),
                          np.ones(2), np.ones(2), np.arange(1, 3, dtype=np.int64)) == (2, 0, 0, 0)
    assert engine.n_events == 0


@pytest.mark.parametrize(
    "ops",
    [
        [("load", 3, 0, 0, 0.0)],
        [("const", 0, 0, 0, 1.0), (">", 0, 0, 0, 0.0)],
        [("const", 0, 0, 0, 1.0), ("const", 0, 0, 0, 1.0)],
        [("const", 0, 0, 0, 1.0), ("const", 0, 0, 0, 1.0), ("crosses", 5, 0, 0, 0.0)],
        [(999, 0, 0, 0, 0.0)],
    ],
)
def test_a_bad_program_is_refused_not_run(ops: list[tuple]) -> None:
    engine = Engine()
    coded = [(OPS.get(op, op) if isinstance(op, str) else op, a, b, d, c)
             for op, a, b, d, c in ops]
    with pytest.raises(ValueError):
        engine.add_rule(0, 0, -1, 0, None, 0, coded, [], 0, [])
    assert engine.stats()["rules"] == 0


def test_flat_bars_then_restart_after_a_week_gap() -> None:
    kernel = Kernel()
    src = kernel.add_source(fill_gaps=True)
    kernel.add_rule("n", "t:A", "sma(3, 1m) > 0", mode="ONCE_PER_BAR_CLOSE")
    ids = kernel.intern(["t:A"] * 3)
    day = 86_400_000
    fired = kernel.process(src, ids, [0, 5 * MIN + 1, 9 * day], [10.0, 11.0, 12.0],
                           [1.0, 1.0, 1.0], [0, 0, 0])
    closes = [f for f in fired if f.rule_id == "n"]
    # flat bars fill minutes 1..4 and sma(3) is defined from the third bar; the
    # 9-day gap is not filled bar by bar: only the bar of the tick at 5m closes
    assert [f.time_ms for f in closes] == [3 * MIN, 4 * MIN, 5 * MIN, 6 * MIN]
    assert closes[0].values == (10.0,)
    assert closes[-1].values == pytest.approx(((10.0 + 10.0 + 11.0) / 3,))
    more = kernel.process(src, kernel.intern(["t:A"] * 3),
                          [9 * day + MIN, 9 * day + 2 * MIN, 9 * day + 3 * MIN],
                          [13.0, 14.0, 15.0], [1.0, 1.0, 1.0], [0, 0, 0])
    # series restarted: three new bars are needed again before sma(3) is defined
    assert [f.time_ms for f in more] == [9 * day + 3 * MIN]
    assert more[0].values == pytest.approx(((12.0 + 13.0 + 14.0) / 3,))


def test_cross_symbol_bar_close_waits_for_every_symbol() -> None:
    kernel = Kernel()
    src = kernel.add_source(grace_ms=1000)
    kernel.add_rule("ratio", "t:A", "close(1m, t:B) / close(1m) > 2", mode="ONCE_PER_BAR_CLOSE")
    ids = kernel.intern(["t:A", "t:B", "t:A", "t:B"])
    fired = kernel.process(src, ids, [1_000, 2_000, 60_500, 60_700], [10.0, 25.0, 10.0, 25.0],
                           [1.0] * 4, [0] * 4)
    # A's bar closes at 60.5 s, B's at 60.7 s: one evaluation, when both are closed
    assert [(f.time_ms, f.values) for f in fired] == [(60_000, (25.0, 10.0))]


def test_process_bars_rolls_up_and_sees_complete_bars() -> None:
    kernel = Kernel()
    src = kernel.add_source(fill_gaps=False)
    kernel.add_rule("c5", "t:A", "close(5m) > 0 and high(5m) > 0 and volume(5m) > 0",
                    mode="ONCE_PER_BAR_CLOSE")
    kernel.add_rule("tick", "t:A", "close(1m) > 104", mode="ON_TRUE")
    n = 10
    o = 100.0 + np.arange(n)
    fired = kernel.process_bars(src, "1m", kernel.intern(["t:A"] * n), np.arange(n) * MIN,
                                o, o + 2, o - 1, o + 1, np.ones(n))
    five = [f for f in fired if f.rule_id == "c5"]
    assert [(f.bar_open_ms, f.time_ms, f.values) for f in five] == [
        (0, 5 * MIN, (105.0, 106.0, 5.0)), (5 * MIN, 10 * MIN, (110.0, 111.0, 5.0))]
    tick = [f for f in fired if f.rule_id == "tick"]
    assert [(f.time_ms, f.kind) for f in tick] == [(5 * MIN, "tick")]


def test_rule_state_tracks_fires_completion_and_expiry() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("once", "t:A", "price > 1", mode="ONCE")
    kernel.add_rule("exp", "t:A", "price > 1", mode="EVERY_TIME", cooldown_ms=0,
                    expire_time_ms=2_000)
    ids = kernel.intern(["t:A"] * 3)
    kernel.process(src, ids, [0, 1_000, 2_000], [2.0, 2.0, 2.0], [1.0] * 3, [0] * 3)
    once = kernel.rule_state("once")
    assert once["fires"] == 1 and once["completed"] is True
    exp = kernel.rule_state("exp")
    assert exp["fires"] == 2 and exp["expired"] is True and exp["last_fire_ms"] == 1_000


def test_paused_rule_does_not_fire_and_limits_keep_state() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", "price > 1", mode="EVERY_TIME", cooldown_ms=0, max_fires=2)
    kernel.set_paused("r", True)
    ids = kernel.intern(["t:A"])
    assert kernel.process(src, ids, [0], [2.0], [1.0], [0]) == []
    kernel.set_paused("r", False)
    assert len(kernel.process(src, ids, [1_000], [2.0], [1.0], [0])) == 1
    kernel.set_limits("r", cooldown_ms=0, expire_time_ms=None, max_fires=1)
    assert kernel.rule_state("r")["completed"] is True
    assert kernel.process(src, ids, [2_000], [2.0], [1.0], [0]) == []


def test_same_event_time_fires_get_increasing_ranks() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", "price > 1", mode="EVERY_TIME", cooldown_ms=0)
    ids = kernel.intern(["t:A"] * 3)
    fired = kernel.process(src, ids, [5, 5, 6], [2.0, 3.0, 4.0], [1.0] * 3, [0] * 3)
    assert [(f.time_ms, f.rank, f.values, f.price) for f in fired] == [
        (5, 0, (2.0,), 2.0), (5, 1, (3.0,), 3.0), (6, 0, (4.0,), 4.0)]


def test_a_timeframe_added_mid_bar_starts_with_the_next_whole_bar() -> None:
    kernel = Kernel()
    src = kernel.add_source(fill_gaps=False)
    ids = kernel.intern(["t:A"] * 2)
    kernel.process(src, ids, [10_000, 20_000], [5.0, 6.0], [1.0, 1.0], [0, 0])
    kernel.add_rule("o", "t:A", "open(1m) > 0 and trades(1m) > 0", mode="ONCE_PER_BAR_CLOSE")
    fired = kernel.process(src, kernel.intern(["t:A"] * 3), [30_000, 70_000, 130_000],
                           [7.0, 8.0, 9.0], [1.0] * 3, [0] * 3)
    # the partial first minute (only the tick at 30 s would be in it) is not a bar
    assert [(f.bar_open_ms, f.values) for f in fired] == [(60_000, (8.0, 1.0))]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 40)), min_size=1, max_size=300))
def test_duplicates_are_exactly_the_repeated_source_and_trade_id(pairs: list) -> None:
    kernel = Kernel()
    sources = [kernel.add_source(), kernel.add_source()]
    sid = kernel.intern(["t:A"])
    seen: set[tuple[int, int]] = set()
    for n, (src, tid) in enumerate(pairs):
        kernel.process(sources[src], sid, [1_000 + n], [1.0], [1.0], [tid])
        duplicate = tid != 0 and (src, tid) in seen
        assert kernel.last_counts == ((0, 0, 1, 0) if duplicate else (1, 0, 0, 0)), (src, tid)
        if tid:
            seen.add((src, tid))


def test_increasing_trade_ids_keep_one_run_of_memory() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    n = 50_000
    ids = np.zeros(n, np.int32)
    kernel.intern(["t:A"])
    kernel.process(src, ids[:1], np.zeros(1, np.int64), np.ones(1), np.ones(1),
                   np.ones(1, np.int64))       # the symbol's own state exists from here
    before = kernel.stats()["core_bytes"]
    kernel.process(src, ids[1:], np.arange(1, n, dtype=np.int64), np.ones(n - 1),
                   np.ones(n - 1), np.arange(2, n + 1, dtype=np.int64))
    assert kernel.last_counts.accepted == n - 1
    # 50,000 trades in one minute, ids increasing: a few bytes, not a table per trade
    assert kernel.stats()["core_bytes"] - before < 1_000


def test_bars_of_many_symbols_on_one_source_in_any_order() -> None:
    names = [f"t:S{i}" for i in range(3)]
    results = []
    for order in ("by_time", "by_symbol"):
        kernel = Kernel()
        src = kernel.add_source(fill_gaps=False)
        for name in names:
            kernel.add_rule(name, name, "sma(2, 1h) > 0", mode="ONCE_PER_BAR_CLOSE")
        rows = [(s, t) for t in range(8) for s in range(3)]
        if order == "by_symbol":
            rows.sort()
        sym = kernel.intern([names[s] for s, _ in rows])
        t0 = np.array([t * 900_000 for _, t in rows], np.int64)
        close = np.array([10.0 * (s + 1) + t for s, t in rows])
        fired = kernel.process_bars(src, "15m", sym, t0, close, close, close, close,
                                    np.ones(len(rows)))
        assert kernel.last_counts.accepted == 24, order
        results.append(sorted((f.rule_id, f.time_ms, f.values) for f in fired))
    assert results[0] == results[1]
    assert [r[1] for r in results[0] if r[0] == "t:S0"] == [7_200_000]


def test_restored_trigger_state_continues_where_it_was() -> None:
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("r", "t:A", "price > 1", mode="ON_TRUE", max_fires=2)
    kernel.restore_state("r", fires=1, last_fire_ms=500, armed=False, completed=False,
                         expired=False)
    ids = kernel.intern(["t:A"] * 3)
    fired = kernel.process(src, ids, [1_000, 2_000, 3_000], [2.0, 0.5, 2.0], [1.0] * 3,
                           [0] * 3)
    # disarmed: the first true evaluation does not fire; re-armed by the false one;
    # the second fire completes the rule
    assert [f.time_ms for f in fired] == [3_000]
    assert kernel.rule_state("r")["completed"] is True


@pytest.mark.parametrize("cut", [3_000, 11_111])
def test_a_restored_checkpoint_continues_exactly_like_the_original(cut: int) -> None:
    ticks = random_ticks(20_000, ["t:A", "t:B", "t:C"], seed=21)
    head = {k: v[:cut] for k, v in ticks.items()}
    tail = {k: v[cut:] for k, v in ticks.items()}
    original, src = mixed_kernel()
    feed(original, src, head, 4096)
    blob = original.checkpoint()

    restored = Kernel()
    restored.prepare_restore(blob)
    for rid, sym, cond, mode in MIXED_RULES:
        tf = "1m" if mode == "ONCE_PER_BAR" else None
        restored.add_rule(rid, sym, cond, mode=mode, timeframe=tf, cooldown_ms=0)
    applied = restored.restore(blob)
    assert applied > 20
    assert restored.stats()["series"] == original.stats()["series"]

    expected = feed(original, src, tail, 4096)
    got = feed(restored, src, tail, 4096)
    assert len(expected) > 100
    assert comparable(got) == comparable(expected)


def test_a_corrupt_checkpoint_is_refused() -> None:
    kernel, _ = mixed_kernel()
    with pytest.raises(ValueError):
        fresh = Kernel()
        fresh.prepare_restore(b"nope")
    blob = kernel.checkpoint()
    fresh = Kernel()
    fresh.prepare_restore(blob)
    with pytest.raises(ValueError, match="truncated"):
        fresh.restore(blob[:-7])
