"""The peer comparison of ARCHITECTURE.md "Performance budget".

Same work for each, per bar of each symbol: one close into SMA(20), EMA(20),
RSI(14), MACD(12,26,9), BB(20,2), then the same two conditions

    A: rsi(14) > 70 and close > bb(20, 2).upper
    B: macd(12, 26, 9).hist crosses_above 0 and ema(20) > sma(20)

(crosses_above: previous bar's hist <= 0 and this bar's hist > 0).

* ours: 1,000 symbols x 1,000 bars of 1m, interleaved by time, through the raw
  ``Engine.process_bars`` of a kernel holding rules A and B (ONCE_PER_BAR_CLOSE)
  per symbol: the five indicator states are shared, so each is stepped once per
  bar, and two rule programs run per bar. A fresh kernel per round, warmed with
  100 bars of history (not timed).
* TA-Lib 0.8 ``talib.stream`` handles opened on the same 100-bar history, then
  ``update(close)`` per bar in a Python loop (how a Python user would use them);
* talipp incremental indicators built on the same history, ``add(close)`` per bar.

The peers are slow, so they run fewer symbols/bars; every figure is per bar
(total time / (symbols x bars)). Each peer's fire count must equal ours on the
same symbols and bars (talipp within a small tolerance: its seeding differs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from alerts.engine.kernel import Kernel
from benchmarks.conftest import (
    MIN,
    START_MS,
    Bars,
    bar_columns,
    feed_bar_columns,
    feed_bars,
    random_walk_bars,
    report,
    run_rounds,
)

N_SYMBOLS = 1_000
N_BARS = 1_000
HISTORY = 100
TALIB_SYMBOLS, TALIB_BARS = 200, 500
TALIPP_SYMBOLS, TALIPP_BARS = 40, 250

RULE_A = "rsi(14, 1m) > 70 and close(1m) > bb(20, 2, 1m).upper"
RULE_B = "macd(12, 26, 9, 1m).hist crosses_above 0 and ema(20, 1m) > sma(20, 1m)"


@pytest.fixture(scope="module")
def bars() -> Bars:
    # a noisy walk so that rsi > 70 and hist crossings happen now and then
    return random_walk_bars(N_SYMBOLS, HISTORY + N_BARS, tf_ms=MIN, start_ms=START_MS,
                            seed=20260101, sigma=0.004)


@pytest.fixture(scope="module")
def measured_cols(bars: Bars) -> dict[str, np.ndarray]:
    ids = np.arange(N_SYMBOLS, dtype=np.int32)
    return bar_columns(bars, ids, slice(HISTORY, None))


@pytest.fixture(scope="module")
def fires_ours(bars: Bars) -> dict[str, Any]:
    """Filled by test_ours: ours' fires on the peers' symbol x bar subsets."""
    return {}


def count_subset(ev: dict[str, np.ndarray], n_symbols: int, n_bars: int) -> int:
    """Fires on symbols [0, n_symbols) at measured bars [0, n_bars)."""
    first_end = START_MS + (HISTORY + 1) * MIN       # event time = the bar's end
    bar = (ev["time_ms"] - first_end) // MIN
    return int(np.count_nonzero((ev["symbol"] < n_symbols) & (bar >= 0) & (bar < n_bars)))


def new_kernel(bars: Bars) -> tuple[Kernel, int]:
    """1,000 symbols with rules A and B each, warmed with the history bars."""
    k = Kernel()
    src = k.add_source(fill_gaps=True, grace_ms=1000)
    for i in range(N_SYMBOLS):
        name = f"bench:S{i}"
        assert k.symbol_id(name) == i
        k.add_rule(f"a{i}", name, RULE_A, mode="ONCE_PER_BAR_CLOSE")
        k.add_rule(f"b{i}", name, RULE_B, mode="ONCE_PER_BAR_CLOSE")
    ids = np.arange(N_SYMBOLS, dtype=np.int32)
    hist = Bars(bars.open_time[:HISTORY], bars.open[:HISTORY], bars.high[:HISTORY],
                bars.low[:HISTORY], bars.close[:HISTORY], bars.volume[:HISTORY])
    assert feed_bars(k.engine, src, "1m", hist, ids) == N_SYMBOLS * HISTORY
    return k, src


def test_ours_process_bars(benchmark: Any, bars: Bars, measured_cols: dict[str, np.ndarray],
                           fires_ours: dict[str, Any], results: dict) -> None:
    kernels: list[Kernel] = []

    def setup() -> tuple[tuple, dict]:
        kernels.clear()                       # drop the previous round's kernel first
        k, src = new_kernel(bars)
        kernels.append(k)
        st = k.stats()
        assert st["series"] == 5 * N_SYMBOLS, st   # one shared state per indicator and symbol
        return (k.engine, src), {}

    def target(engine: Any, src: int) -> tuple:
        return feed_bar_columns(engine, src, "1m", measured_cols)

    seconds, counts = run_rounds(benchmark, target, setup=setup, rounds=5)
    n = N_SYMBOLS * N_BARS
    for c in counts:
        assert tuple(c) == (n, 0, 0), c
    ev = kernels[-1].engine.events()
    fired = len(ev["rule"])
    # random walk: a few percent of the 2 x 1M evaluations are true
    assert 0.001 * n < fired < 0.5 * n, fired
    fires_ours["total"] = fired
    fires_ours["talib"] = count_subset(ev, TALIB_SYMBOLS, TALIB_BARS)
    fires_ours["talipp"] = count_subset(ev, TALIPP_SYMBOLS, TALIPP_BARS)
    ns = min(seconds) / n * 1e9
    ns_median = float(np.median(seconds)) / n * 1e9
    results["peers"] = {"ours_ns_per_bar": ns}
    report(benchmark, "peers.ours",
           f"peers  ours (Engine.process_bars, {N_SYMBOLS} symbols x {N_BARS} bars, 2 rules, "
           f"5 shared indicators): {ns:.1f} ns/bar (median {ns_median:.1f}; target < 40), "
           f"{fired} fires",
           ns_per_bar=ns, ns_per_bar_median=ns_median, symbols=N_SYMBOLS, bars=N_BARS,
           fires=fired, target_ns_per_bar=40)


def test_ours_kernel_facade(benchmark: Any, bars: Bars, measured_cols: dict[str, np.ndarray],
                            results: dict) -> None:
    """The same through ``Kernel.process_bars`` (fires turned into ``Fired`` records)."""
    c = measured_cols

    def setup() -> tuple[tuple, dict]:
        return new_kernel(bars), {}

    def target(k: Kernel, src: int) -> int:
        fired = k.process_bars(src, "1m", c["symbol"], c["open_time"], c["open"], c["high"],
                               c["low"], c["close"], c["volume"])
        return len(fired)

    seconds, counts = run_rounds(benchmark, target, setup=setup, rounds=2)
    n = N_SYMBOLS * N_BARS
    assert counts[-1] > 0.001 * n
    ns = min(seconds) / n * 1e9
    results.setdefault("peers", {})["ours_facade_ns_per_bar"] = ns
    report(benchmark, "peers.ours_facade",
           f"peers  ours via Kernel.process_bars (Fired objects for {counts[-1]} fires): "
           f"{ns:.1f} ns/bar", ns_per_bar=ns, fires=counts[-1])


# ------------------------------------------------------------- TA-Lib --

def talib_open(history: np.ndarray) -> list[list[Any]]:
    from talib import stream
    states = []
    for s in range(history.shape[1]):
        h = np.ascontiguousarray(history[:, s])
        macd = stream.MACD(h, fastperiod=12, slowperiod=26, signalperiod=9)
        states.append([
            stream.SMA(h, timeperiod=20),
            stream.EMA(h, timeperiod=20),
            stream.RSI(h, timeperiod=14),
            macd,
            stream.BBANDS(h, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0),
            macd.value[2],                       # previous hist, for crosses_above
        ])
    return states


def talib_run(states: list[list[Any]], rows: list[list[float]]) -> int:
    fires = 0
    for row in rows:                              # bars interleaved by time across symbols
        for st, x in zip(states, row):
            sma = st[0].update(x)
            ema = st[1].update(x)
            rsi = st[2].update(x)
            hist = st[3].update(x)[2]
            upper = st[4].update(x)[0]
            if rsi > 70.0 and x > upper:
                fires += 1
            if st[5] <= 0.0 < hist and ema > sma:
                fires += 1
            st[5] = hist
    return fires


def _peer_ratio(results: dict, ns: float) -> float | None:
    ours = results.get("peers", {}).get("ours_ns_per_bar")
    return None if ours is None else ns / ours


def test_talib_stream(benchmark: Any, bars: Bars, fires_ours: dict[str, Any],
                      results: dict) -> None:
    pytest.importorskip("talib.stream")
    history = bars.close[:HISTORY, :TALIB_SYMBOLS]
    rows = bars.close[HISTORY:HISTORY + TALIB_BARS, :TALIB_SYMBOLS].tolist()

    def setup() -> tuple[tuple, dict]:
        return (talib_open(history), rows), {}

    seconds, fires = run_rounds(benchmark, talib_run, setup=setup, rounds=3)
    n = TALIB_SYMBOLS * TALIB_BARS
    assert fires[-1] > 0
    if "talib" in fires_ours:                     # TA-Lib is our reference: same fires
        assert abs(fires[-1] - fires_ours["talib"]) <= 2, (fires[-1], fires_ours["talib"])
    ns = min(seconds) / n * 1e9
    ratio = _peer_ratio(results, ns)
    results.setdefault("peers", {})["talib_ns_per_bar"] = ns
    report(benchmark, "peers.talib",
           f"peers  TA-Lib 0.8 stream handles ({TALIB_SYMBOLS} symbols x {TALIB_BARS} bars): "
           f"{ns:.1f} ns/bar" + ("" if ratio is None else f" = {ratio:.1f}x ours")
           + f", {fires[-1]} fires (ours on the same bars: {fires_ours.get('talib')})",
           ns_per_bar=ns, ratio_vs_ours=ratio, symbols=TALIB_SYMBOLS, bars=TALIB_BARS,
           fires=fires[-1], fires_ours=fires_ours.get("talib"))


# ------------------------------------------------------------- talipp --

def talipp_open(history: np.ndarray) -> list[list[Any]]:
    from talipp.indicators import BB, EMA, MACD, RSI, SMA
    states = []
    for s in range(history.shape[1]):
        h = history[:, s].tolist()
        macd = MACD(12, 26, 9, input_values=h)
        states.append([SMA(20, input_values=h), EMA(20, input_values=h), RSI(14, input_values=h),
                       macd, BB(20, 2.0, input_values=h), macd[-1].histogram])
    return states


def talipp_run(states: list[list[Any]], rows: list[list[float]]) -> int:
    fires = 0
    for row in rows:
        for st, x in zip(states, row):
            sma_i, ema_i, rsi_i, macd_i, bb_i = st[0], st[1], st[2], st[3], st[4]
            sma_i.add(x)
            ema_i.add(x)
            rsi_i.add(x)
            macd_i.add(x)
            bb_i.add(x)
            sma, ema, rsi = sma_i[-1], ema_i[-1], rsi_i[-1]
            hist, upper = macd_i[-1].histogram, bb_i[-1].ub
            if rsi > 70.0 and x > upper:
                fires += 1
            if st[5] <= 0.0 < hist and ema > sma:
                fires += 1
            st[5] = hist
    return fires


def test_talipp(benchmark: Any, bars: Bars, fires_ours: dict[str, Any], results: dict) -> None:
    pytest.importorskip("talipp")
    history = bars.close[:HISTORY, :TALIPP_SYMBOLS]
    rows = bars.close[HISTORY:HISTORY + TALIPP_BARS, :TALIPP_SYMBOLS].tolist()

    def setup() -> tuple[tuple, dict]:
        return (talipp_open(history), rows), {}

    seconds, fires = run_rounds(benchmark, talipp_run, setup=setup, rounds=3)
    n = TALIPP_SYMBOLS * TALIPP_BARS
    assert fires[-1] > 0
    if "talipp" in fires_ours:                    # other seeding: allow a few differences
        assert abs(fires[-1] - fires_ours["talipp"]) <= max(3, 0.05 * fires_ours["talipp"]), (
            fires[-1], fires_ours["talipp"])
    ns = min(seconds) / n * 1e9
    ratio = _peer_ratio(results, ns)
    results.setdefault("peers", {})["talipp_ns_per_bar"] = ns
    report(benchmark, "peers.talipp",
           f"peers  talipp {_talipp_version()} ({TALIPP_SYMBOLS} symbols x {TALIPP_BARS} bars): "
           f"{ns:.1f} ns/bar" + ("" if ratio is None else f" = {ratio:.1f}x ours")
           + f", {fires[-1]} fires (ours on the same bars: {fires_ours.get('talipp')})",
           ns_per_bar=ns, ratio_vs_ours=ratio, symbols=TALIPP_SYMBOLS, bars=TALIPP_BARS,
           fires=fires[-1], fires_ours=fires_ours.get("talipp"))


def _talipp_version() -> str:
    from importlib.metadata import version
    try:
        return version("talipp")
    except ImportError:  # pragma: no cover - PackageNotFoundError is an ImportError
        return "?"


def test_ours_process_bars_by_symbol(benchmark: Any, bars: Bars,
                                     measured_cols: dict[str, np.ndarray]) -> None:
    """The same bars fed one symbol's history at a time (how warm-up and backtests feed)."""
    order = np.lexsort((measured_cols["open_time"], measured_cols["symbol"]))
    by_symbol = {name: np.ascontiguousarray(col[order]) for name, col in measured_cols.items()}
    kernels: list[Kernel] = []

    def setup() -> tuple[tuple, dict]:
        kernels.clear()
        k, src = new_kernel(bars)
        kernels.append(k)
        return (k.engine, src), {}

    def target(engine: Any, src: int) -> tuple:
        return feed_bar_columns(engine, src, "1m", by_symbol)

    seconds, counts = run_rounds(benchmark, target, setup=setup, rounds=5)
    n = N_SYMBOLS * N_BARS
    for c in counts:
        assert tuple(c) == (n, 0, 0), c
    fired = len(kernels[-1].engine.events()["rule"])
    assert 0.001 * n < fired < 0.5 * n, fired
    ns = min(seconds) / n * 1e9
    report(benchmark, "peers.ours_by_symbol",
           f"peers  ours by symbol (Engine.process_bars, each symbol's {N_BARS} bars in a row): "
           f"{ns:.1f} ns/bar (target < 40), {fired} fires",
           ns_per_bar=ns, fires=fired, target_ns_per_bar=40)
