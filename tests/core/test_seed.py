"""Seeding states added to a symbol that is already trading (``Kernel.seed``).

The reference is a run where the rule existed from the start and saw the same
history: after the seed, the late rule must fire exactly as that rule does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from alerts.engine.kernel import BarColumns, Fired, Kernel

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_700_006_400_000 - 40 * HOUR      # a whole hour
SYM = "t:A"


def walk(start_ms: int, end_ms: int, seed: int = 11) -> dict[str, np.ndarray]:
    """Ticks about every 2 s of a random walk over [start, end), with trade ids."""
    rng = np.random.default_rng(seed)
    n = (end_ms - start_ms) // 2000
    times = start_ms + np.sort(rng.integers(0, end_ms - start_ms, n))
    price = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.0015, n)))
    return {"time_ms": times.astype(np.int64), "price": price, "qty": rng.exponential(1.0, n),
            "trade_id": np.arange(1, n + 1, dtype=np.int64)}


def minute_bars(ticks: dict[str, np.ndarray], start_ms: int, end_ms: int) -> BarColumns:
    """1-minute bars of the ticks in [start, end), summed in tick order as the core does."""
    bars: dict[int, list[float]] = {}
    for t, p, q in zip(ticks["time_ms"], ticks["price"], ticks["qty"], strict=True):
        if not start_ms <= t < end_ms:
            continue
        m = int(t) - int(t) % MIN
        b = bars.get(m)
        if b is None:
            bars[m] = [p, p, p, p, q, p * q, 1]
        else:
            b[1] = max(b[1], p)
            b[2] = min(b[2], p)
            b[3] = p
            b[4] += q
            b[5] += p * q
            b[6] += 1
    keys = sorted(bars)
    col = [np.array([bars[k][i] for k in keys]) for i in range(7)]
    return BarColumns(np.array(keys, np.int64), col[0], col[1], col[2], col[3], col[4], col[5],
                      col[6].astype(np.int64))


def run_ticks(kernel: Kernel, src: int, ticks: dict[str, np.ndarray], start_ms: int,
              end_ms: int) -> list[Fired]:
    sel = (ticks["time_ms"] >= start_ms) & (ticks["time_ms"] < end_ms)
    n = int(sel.sum())
    return kernel.process(src, kernel.intern([SYM] * n), ticks["time_ms"][sel],
                          ticks["price"][sel], ticks["qty"][sel], ticks["trade_id"][sel])


def run_bars(kernel: Kernel, src: int, bars: BarColumns) -> list[Fired]:
    n = len(bars.open_ms)
    return kernel.process_bars(src, "1m", kernel.intern([SYM] * n), *bars)


def key(f: Fired) -> tuple:
    return (f.rule_id, f.time_ms, f.kind, f.bar_open_ms, f.price,
            tuple(None if math.isnan(v) else round(v, 9) for v in f.values))


BASE_RULE = ("base", "sma(5, 1m) > 0", "EVERY_TIME")
LATE_RULES = [
    # a new timeframe on the symbol, with crossing memory at bar close
    ("rsi_1h", "rsi(14, 1h) > 0 and ema(3, 1h) crosses sma(8, 1h)", "ONCE_PER_BAR_CLOSE"),
    # a new series on a group the symbol already has, crossing intrabar
    ("ema_1m", "price crosses ema(20, 1m)", "EVERY_TIME"),
    # bars of a new group read back by offset
    ("close_15m", "close(15m)[2] < close(15m) and macd(3, 6, 2, 15m).hist > 0",
     "ONCE_PER_BAR_CLOSE"),
    # the session VWAP: the day so far, not from the rule's creation on
    ("vwap", "price crosses vwap()", "EVERY_TIME"),
]
LIVE_FROM = T0 + 36 * HOUR      # history bars before, ticks after
END = LIVE_FROM + 8 * HOUR


def trading(ticks: dict[str, np.ndarray], until_ms: int) -> tuple[Kernel, int]:
    """A kernel whose symbol trades: the base rule, history bars, then ticks up to a time."""
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule(BASE_RULE[0], SYM, BASE_RULE[1], mode=BASE_RULE[2])
    run_bars(kernel, src, minute_bars(ticks, T0, LIVE_FROM))
    run_ticks(kernel, src, ticks, LIVE_FROM, until_ms)
    return kernel, src


def reference(ticks: dict[str, np.ndarray]) -> list[Fired]:
    """The late rules loaded from the start: history bars, then the ticks."""
    kernel = Kernel()
    src = kernel.add_source()
    for rid, cond, mode in [BASE_RULE, *LATE_RULES]:
        kernel.add_rule(rid, SYM, cond, mode=mode)
    run_bars(kernel, src, minute_bars(ticks, T0, LIVE_FROM))
    return run_ticks(kernel, src, ticks, LIVE_FROM, END)


@pytest.mark.parametrize("added_at,seeded_at", [
    (LIVE_FROM + 90 * MIN + 17_000, LIVE_FROM + 90 * MIN + 17_000),      # at once
    (LIVE_FROM + 115 * MIN + 3_000, LIVE_FROM + 122 * MIN + 41_000),     # across closes
])
def test_a_late_rule_fires_as_if_it_had_been_there(added_at: int, seeded_at: int) -> None:
    ticks = walk(T0, END)
    expected = [key(f) for f in reference(ticks) if f.rule_id != "base" and f.time_ms > seeded_at]

    kernel, src = trading(ticks, added_at)
    for rid, cond, mode in LATE_RULES:
        kernel.add_rule(rid, SYM, cond, mode=mode)
    assert set(kernel.pending_timeframes(SYM)) == {"1m", "15m", "1h"}
    fired = run_ticks(kernel, src, ticks, added_at, seeded_at)
    # history from the exchange ends a few minutes back; the tape has the rest
    cut = seeded_at - seeded_at % MIN - 3 * MIN
    tape = kernel.tape_from(SYM)
    assert tape is not None and tape <= cut
    seeded = kernel.seed(SYM, [("1m", T0, cut, minute_bars(ticks, T0, cut))])
    assert seeded == 8      # the 15m and 1h groups; ema(20, 1m), rsi, ema, sma, macd; vwap
    assert kernel.pending_timeframes(SYM) == []
    for rid, _, _ in LATE_RULES:
        state = kernel.rule_state(rid)
        assert state["evaluated"] and not any(math.isnan(v) for v in state["values"]), rid
    fired += run_ticks(kernel, src, ticks, seeded_at, END)
    got = [key(f) for f in fired if f.rule_id != "base" and f.time_ms > seeded_at]
    assert {k[0] for k in expected} == {r[0] for r in LATE_RULES}
    assert got == expected


def test_unseeded_rule_starts_at_the_next_whole_bar() -> None:
    """Without a seed, the late 1h rule has nothing until a whole hour has closed twice."""
    ticks = walk(T0, END)
    kernel, src = trading(ticks, LIVE_FROM + 30 * MIN)
    kernel.add_rule("rsi_1h", SYM, "rsi(2, 1h) > 0", mode="ONCE_PER_BAR_CLOSE")
    fired = run_ticks(kernel, src, ticks, LIVE_FROM + 30 * MIN, END)
    first = min(f.time_ms for f in fired if f.rule_id == "rsi_1h")
    assert first == LIVE_FROM + 4 * HOUR    # whole bars from 1:00; rsi(2) needs three


def test_history_that_ends_before_the_tape_is_refused_and_changes_nothing() -> None:
    ticks = walk(T0, END)
    kernel, _ = trading(ticks, LIVE_FROM + 60 * MIN)
    kernel.add_rule("rsi_1h", SYM, "rsi(14, 1h) > 0", mode="ONCE_PER_BAR_CLOSE")
    tape = kernel.tape_from(SYM)
    assert tape is not None and tape > LIVE_FROM + 40 * MIN     # the tape keeps minutes only
    old = tape - 2 * MIN
    assert kernel.seed(SYM, [("1m", T0, old, minute_bars(ticks, T0, old))]) == -1
    assert kernel.pending_timeframes(SYM) == ["1h"]
    with pytest.raises(ValueError, match="1-minute"):
        kernel.seed(SYM, [("1h", T0, tape, minute_bars(ticks, T0, tape))])


def test_nothing_pending_means_nothing_to_seed() -> None:
    ticks = walk(T0, T0 + HOUR)
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("a", SYM, "rsi(14, 1h) > 50", mode="ONCE_PER_BAR_CLOSE")
    run_ticks(kernel, src, ticks, T0, T0 + HOUR)
    assert kernel.pending_timeframes(SYM) == []     # loaded before the symbol traded
    cut = T0 + 50 * MIN
    assert kernel.seed(SYM, [("1m", T0, cut, minute_bars(ticks, T0, cut))]) == 0
    assert kernel.seed("t:unknown", [("1m", T0, cut, minute_bars(ticks, T0, cut))]) == 0


def test_history_starting_mid_bar_does_not_make_a_partial_bar() -> None:
    """History from 10:30 gives the 1h state the same bars as history from 11:00."""
    ticks = walk(T0, END)
    runs = []
    for start in (T0 + 30 * MIN, T0 + HOUR):
        kernel, _ = trading(ticks, LIVE_FROM + 20 * MIN)
        kernel.add_rule("ema", SYM, "ema(10, 1h) > 0", mode="ONCE_PER_BAR_CLOSE")
        cut = LIVE_FROM + 17 * MIN
        assert kernel.seed(SYM, [("1m", start, cut, minute_bars(ticks, start, cut))]) == 2
        runs.append(kernel.snapshot(SYM, 3))
    assert runs[0] is not None and runs[0] == runs[1]
