"""The core's indicators agree with TA-Lib on real market data (ARCHITECTURE.md, "Indicators").

Values are read through the real rule path: one ``ONCE_PER_BAR_CLOSE`` rule per
(symbol, timeframe, indicator) whose condition is true whenever every output is
defined (``x > -1e300``), so the rule fires at each bar close where the value is
defined and ``Fired.values`` holds the closed values; no fire means undefined.
Each group of feeds runs through one kernel once per process, and every test
compares one indicator over all the group's symbols and timeframes:

* ``klines``: Binance USD-M 1m klines (Feb 2026) of ALGOUSDT (1m..4h), LINKUSDT and
  LTCUSDT (5m..4h) fed with ``process_bars("1m")``; 5m..4h are rolled up by the
  core; reference: pandas roll-up of the same klines.
* ``daily``: US daily bars (AAPL, BAC, GOOG, IBM, SPY) and the S&P 500 index,
  ``process_bars("1d")`` on a ``fill_gaps=False`` source.
* ``trades``: US tick trades of 2013-10-08 (SPY, IBM; ``fill_gaps=False``, empty
  minutes dropped) and Binance XRPETH aggTrades (``fill_gaps=True``, empty
  minutes are flat bars) fed with ``process``; reference: pandas resample.

The comparison is :func:`tests.support.reference.assert_matches_talib`: same
first defined index, ``|ours - ref| <= 1e-9 * max(|ref|, mean |ref|)``, no
burn-in exemption, and bars where TA-Lib returns a number for 0/0 undefined.
A rule reading several outputs fires only where all are defined, so those are
compared jointly (:func:`tests.support.reference.joint_masks`); %K and %D are
also read alone, as their 0/0 masks differ.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from alerts.engine.kernel import Kernel
from alerts.rules.catalog import TIMEFRAME_MS
from tests.support import market_data as md
from tests.support.market_data import shared_data  # noqa: F401  (fixture)
from tests.support.reference import (
    IndicatorSpec,
    compare_with_talib,
    joint_masks,
    resample_bars,
    rollup_bars,
    talib_reference,
)

pytestmark = pytest.mark.data

GRACE_MS = 1_000

#: TA-Lib defaults first (sma/ema/wma 30, rsi 14, macd 12/26/9, bbands 5/2,
#: atr 14, stoch 5/3/3), then the usual trading parameter sets.
SPECS: tuple[IndicatorSpec, ...] = (
    IndicatorSpec("sma", (30,)),
    IndicatorSpec("sma", (20,)),
    IndicatorSpec("sma", (50,)),
    IndicatorSpec("ema", (30,)),
    IndicatorSpec("ema", (9,)),
    IndicatorSpec("ema", (50,)),
    IndicatorSpec("wma", (30,)),
    IndicatorSpec("wma", (20,)),
    IndicatorSpec("rsi", (14,)),
    IndicatorSpec("rsi", (7,)),
    IndicatorSpec("macd", (12, 26, 9)),
    IndicatorSpec("macd", (5, 35, 5)),
    IndicatorSpec("bb", (5, 2)),
    IndicatorSpec("bb", (20, 2)),
    IndicatorSpec("bb", (10, 1.5)),
    IndicatorSpec("atr", (14,)),
    IndicatorSpec("atr", (5,)),
    # %K and %D in separate rules too: %D's 0/0 mask is wider than %K's
    IndicatorSpec("stoch", (5, 3, 3)),
    IndicatorSpec("stoch", (5, 3, 3), select=("k",)),
    IndicatorSpec("stoch", (14, 3, 3)),
    IndicatorSpec("stoch", (14, 3, 3), select=("k",)),
    IndicatorSpec("stoch", (14, 3, 3), select=("d",)),
    IndicatorSpec("obv", ()),
)
SPEC_IDS = [s.key for s in SPECS]


@dataclass(frozen=True)
class Feed:
    """One symbol fed into the kernel on its own source."""

    symbol: str
    load: Callable[[], pd.DataFrame]
    kind: str  # "bars" (process_bars of input_tf) or "ticks" (process)
    fill_gaps: bool
    timeframes: tuple[str, ...]
    input_tf: str = "1m"


INTRADAY = ("1m", "5m", "15m", "1h", "4h")
TICK_TFS = ("1m", "5m", "15m", "1h")

GROUPS: dict[str, tuple[Feed, ...]] = {
    # 1m on one symbol only (a 1m rule fires 40,320 times): ALGO, price ~0.09 with
    # many flat minutes; LINK (~9) and LTC (~55) from 5m up.
    "klines": (
        Feed("binance-usdm:ALGOUSDT", functools.partial(md.binance_usdm_klines, "ALGOUSDT"),
             "bars", True, INTRADAY),
        Feed("binance-usdm:LINKUSDT", functools.partial(md.binance_usdm_klines, "LINKUSDT"),
             "bars", True, INTRADAY[1:]),
        Feed("binance-usdm:LTCUSDT", functools.partial(md.binance_usdm_klines, "LTCUSDT"),
             "bars", True, INTRADAY[1:]),
    ),
    "daily": tuple(
        Feed(f"us:{s}", functools.partial(md.us_stocks_daily, s), "bars", False, ("1d",), "1d")
        for s in ("AAPL", "BAC", "GOOG", "IBM", "SPY")
    ) + (Feed("index:GSPC", md.index_daily_sp500, "bars", False, ("1d",), "1d"),),
    "trades": (
        Feed("us:SPY", functools.partial(md.us_stock_trades, "SPY"), "ticks", False, TICK_TFS),
        Feed("us:IBM", functools.partial(md.us_stock_trades, "IBM"), "ticks", False, TICK_TFS),
        Feed("binance:XRPETH", md.xrpeth_aggtrades, "ticks", True, TICK_TFS),
    ),
}


@dataclass
class Run:
    """What one kernel run produced for a group of feeds."""

    #: (symbol, tf) -> the reference closed bars
    bars: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    #: (symbol, tf, spec key) -> (bar indices, values[fire, output]) of the fires
    values: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict)
    #: (symbol, tf, spec key) -> problems with the fires themselves
    problems: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    error: BaseException | None = None


def _rule_id(symbol: str, tf: str, spec: IndicatorSpec) -> str:
    return f"{symbol}|{tf}|{spec.key}"


def _ceil(t: int, step: int) -> int:
    return -(-t // step) * step


def _feed(kernel: Kernel, feed: Feed, run: Run) -> list:
    src = kernel.add_source(fill_gaps=feed.fill_gaps, grace_ms=GRACE_MS)
    for tf in feed.timeframes:
        for spec in SPECS:
            kernel.add_rule(_rule_id(feed.symbol, tf, spec), feed.symbol, spec.condition(tf),
                            mode="ONCE_PER_BAR_CLOSE", timeframe=tf)
    data = feed.load()
    sym_id = kernel.intern([feed.symbol])[0]
    ids = np.full(len(data), sym_id, dtype=np.int32)
    fired: list = []
    if feed.kind == "bars":
        in_ms = TIMEFRAME_MS[feed.input_tf]
        open_time = data["open_time_ms"].to_numpy(np.int64)
        cols = {c: np.ascontiguousarray(data[c].to_numpy(np.float64))
                for c in ("open", "high", "low", "close", "volume")}
        quote = (np.ascontiguousarray(data["quote_volume"].to_numpy(np.float64))
                 if "quote_volume" in data else None)
        trades = (np.ascontiguousarray(data["trades"].to_numpy(np.int64))
                  if "trades" in data else None)
        fired += kernel.process_bars(src, feed.input_tf, ids, np.ascontiguousarray(open_time),
                                     cols["open"], cols["high"], cols["low"], cols["close"],
                                     cols["volume"], quote_volume=quote, trades=trades)
        closed_by = int(open_time[-1]) + in_ms
        fired += kernel.advance_clock(src, closed_by + GRACE_MS)
        for tf in feed.timeframes:
            run.bars[(feed.symbol, tf)] = (
                data if tf == feed.input_tf
                else rollup_bars(data, TIMEFRAME_MS[tf], closed_by_ms=closed_by)
            )
    else:
        time_ms, price, qty, trade_id = md.trade_arrays(data)
        fired += kernel.process(src, ids, time_ms, price, qty, trade_id)
        closed_by = _ceil(int(time_ms[-1]) + 1, max(TIMEFRAME_MS[tf] for tf in feed.timeframes))
        fired += kernel.advance_clock(src, closed_by + GRACE_MS)
        for tf in feed.timeframes:
            run.bars[(feed.symbol, tf)] = resample_bars(
                data, TIMEFRAME_MS[tf], fill_flat=feed.fill_gaps, closed_by_ms=closed_by)
    return fired


def _collect(fired: list, run: Run, rules: dict[str, tuple[str, str, IndicatorSpec]]) -> None:
    by_rule: dict[str, list] = {}
    for f in fired:
        by_rule.setdefault(f.rule_id, []).append(f)
    for rule_id, fires in by_rule.items():
        if rule_id not in rules:
            raise AssertionError(f"fire of an unknown rule {rule_id!r}: {fires[0]}")
        symbol, tf, spec = rules[rule_id]
        key = (symbol, tf, spec.key)
        problems = run.problems.setdefault(key, [])
        tf_ms = TIMEFRAME_MS[tf]
        n_out = len(spec.outputs)
        ok = [f.kind == "bar_close" and f.timeframe == tf and f.symbol == symbol
              and f.bar_open_ms is not None and f.time_ms == f.bar_open_ms + tf_ms
              and len(f.values) == n_out for f in fires]
        good = [f for f, fine in zip(fires, ok) if fine]
        if len(good) != len(fires):
            bad = fires[ok.index(False)]
            problems.append(f"{len(fires) - len(good)} malformed bar-close fires "
                            f"(kind, timeframe, symbol, time = bar end, "
                            f"{len(spec.outputs)} values), first: {bad}")
        bar_opens = run.bars[(symbol, tf)]["open_time_ms"].to_numpy(np.int64)
        opens = np.fromiter((f.bar_open_ms for f in good), dtype=np.int64, count=len(good))
        vals = np.array([f.values for f in good], dtype=np.float64).reshape(
            len(good), len(spec.outputs))
        idx = np.searchsorted(bar_opens, opens)
        known = (idx < len(bar_opens)) & (bar_opens[np.minimum(idx, len(bar_opens) - 1)] == opens)
        if not known.all():
            f = good[int(np.argmin(known))]
            problems.append(f"{int((~known).sum())} fires for bars the reference does not "
                            f"have (a bar built or closed that should not be), first: {f}")
        idx, vals = idx[known], vals[known]
        uniq, first = np.unique(idx, return_index=True)
        if len(uniq) != len(idx):
            dup = np.setdiff1d(np.arange(len(idx)), first)[0]
            problems.append(f"{len(idx) - len(uniq)} repeated fires for one bar, first at "
                            f"bar index {int(idx[dup])} (open {int(bar_opens[idx[dup]])})")
        run.values[key] = (idx[first], vals[first])


@functools.cache
def _run(group: str) -> Run:
    run = Run()
    try:
        kernel = Kernel(enable_1s=False)
        rules = {
            _rule_id(feed.symbol, tf, spec): (feed.symbol, tf, spec)
            for feed in GROUPS[group] for tf in feed.timeframes for spec in SPECS
        }
        for feed in GROUPS[group]:
            _collect(_feed(kernel, feed, run), run, rules)
    except BaseException as exc:  # kept so every test of the group reports it
        if isinstance(exc, (KeyboardInterrupt, pytest.skip.Exception)):
            raise
        run.error = exc
    return run


def _check(group: str, spec: IndicatorSpec) -> None:
    run = _run(group)
    if run.error is not None:
        raise AssertionError(f"kernel run of group {group!r} failed: {run.error!r}") \
            from run.error
    failures: list[str] = []
    for feed in GROUPS[group]:
        for tf in feed.timeframes:
            key = (feed.symbol, tf, spec.key)
            bars = run.bars[(feed.symbol, tf)]
            label = f"{spec.series(tf)} on {feed.symbol} ({len(bars)} bars)"
            failures += [f"{label}: {p}" for p in run.problems.get(key, [])[:3]]
            idx, vals = run.values.get(
                key, (np.zeros(0, np.int64), np.zeros((0, len(spec.outputs)))))
            times = bars["open_time_ms"].to_numpy(np.int64)
            refs = joint_masks(talib_reference(spec, bars), spec.outputs)
            for k, (output, (ref, mask)) in enumerate(refs.items()):
                message = compare_with_talib(
                    (idx, vals[:, k]), ref, mask, times=times,
                    label=label + (f".{output}" if output else ""))
                if message:
                    failures.append(message)
    if failures:
        pytest.fail(f"{len(failures)} series disagree with TA-Lib:\n" + "\n".join(failures),
                    pytrace=False)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_talib_binance_klines(spec: IndicatorSpec, shared_data) -> None:  # noqa: F811
    """1m klines of three USD-M symbols; 1m..4h bars (coarser ones rolled up by the core)."""
    _check("klines", spec)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_talib_daily(spec: IndicatorSpec, shared_data) -> None:  # noqa: F811
    """US daily bars of all five stocks and the S&P 500 index, fed as closed 1d bars."""
    _check("daily", spec)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_talib_tick_built_bars(spec: IndicatorSpec, shared_data) -> None:  # noqa: F811
    """Bars the core builds from ticks: US trades (gaps dropped) and XRPETH (gaps flat)."""
    _check("trades", spec)
