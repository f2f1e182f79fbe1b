"""Bars built by the core equal pandas' resample of the same real trades, field by field.

Each closed bar is read through the rule path: a ``ONCE_PER_BAR_CLOSE`` rule per
timeframe whose condition names every field (``open(tf) > 0 and ... and
trades(tf) >= 0``) fires at each close, ``Fired.values`` holding
open, high, low, close, volume, quote_volume, trades. The reference is
:func:`tests.support.reference.resample_bars` (UTC buckets ``[t0, t0+tf)``;
with ``fill_gaps`` empty buckets are flat bars at the previous close, without it
they do not exist). Prices and trade counts must be equal exactly; volumes
within a relative 1e-12 (the summation order may differ).

After the last tick the source clock is advanced to the end of the last hour
plus grace, so every bar holding a trade closes (with ``fill_gaps``, flat bars
up to that hour end close too, and the reference has them as well).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from alerts.engine.kernel import Kernel
from alerts.rules.catalog import TIMEFRAME_MS
from tests.support import market_data as md
from tests.support.market_data import BAR_COLUMNS, shared_data  # noqa: F401  (fixture)
from tests.support.reference import resample_bars, rollup_bars

pytestmark = pytest.mark.data

GRACE_MS = 1_000
TIMEFRAMES = ("1m", "5m", "15m", "1h")
FIELDS = BAR_COLUMNS[1:]  # open high low close volume quote_volume trades
EXACT = ("open", "high", "low", "close", "trades")
VOLUME_RTOL = 1e-12


def bar_condition(tf: str, fields: tuple[str, ...] = FIELDS) -> str:
    return " and ".join(
        f"{f}({tf}) {'>' if f in ('open', 'high', 'low', 'close') else '>='} 0" for f in fields)


@dataclass(frozen=True)
class Case:
    symbol: str
    load: Callable[[], pd.DataFrame]
    fill_gaps: bool
    #: None: all ticks in one process() call; else the sizes of successive batches
    #: cycle through these (batch size must never change results)
    batches: tuple[int, ...] | None = None


CASES: dict[str, Case] = {
    "spot-BTCUSDT": Case("binance:BTCUSDT", functools.partial(md.binance_spot_trades, "BTCUSDT"),
                         True),
    "spot-ETHUSDT": Case("binance:ETHUSDT", functools.partial(md.binance_spot_trades, "ETHUSDT"),
                         True),
    "usdm-BTCUSDT": Case("binance-usdm:BTCUSDT",
                         functools.partial(md.binance_usdm_trades, "BTCUSDT"), True),
    "usdm-ETHUSDT": Case("binance-usdm:ETHUSDT",
                         functools.partial(md.binance_usdm_trades, "ETHUSDT"), True),
    "XRPETH-flat": Case("binance:XRPETH", md.xrpeth_aggtrades, True),
    "XRPETH-flat-batched": Case("binance:XRPETH", md.xrpeth_aggtrades, True, (1, 7, 250, 3, 1000)),
    "SPY-nofill": Case("us:SPY", functools.partial(md.us_stock_trades, "SPY"), False),
    "AIG-nofill": Case("us:AIG", functools.partial(md.us_stock_trades, "AIG"), False),
    "AIG-fill": Case("us:AIG", functools.partial(md.us_stock_trades, "AIG"), True),
    "IBM-nofill-batched": Case("us:IBM", functools.partial(md.us_stock_trades, "IBM"), False,
                               (1, 13, 4096, 2)),
    "IBM-fill": Case("us:IBM", functools.partial(md.us_stock_trades, "IBM"), True),
}


def _ceil(t: int, step: int) -> int:
    return -(-t // step) * step


def _bars_from_fires(fired: list, symbol: str, rules: dict[str, str],
                     fields: tuple[str, ...] = FIELDS) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Group bar-close fires into one frame of bars per timeframe; list malformed fires."""
    problems: list[str] = []
    rows: dict[str, list] = {tf: [] for tf in rules.values()}
    for f in fired:
        tf = rules.get(f.rule_id)
        if tf is None:
            problems.append(f"fire of an unknown rule: {f}")
            continue
        if (f.kind != "bar_close" or f.timeframe != tf or f.symbol != symbol
                or f.bar_open_ms is None or f.time_ms != f.bar_open_ms + TIMEFRAME_MS[tf]
                or len(f.values) != len(fields)):
            problems.append(f"malformed bar-close fire: {f}")
            continue
        rows[tf].append((f.bar_open_ms, *f.values))
    frames = {}
    for tf, r in rows.items():
        frame = pd.DataFrame(r, columns=["open_time_ms", *fields]).astype(
            {"open_time_ms": np.int64}).sort_values("open_time_ms", kind="stable")
        dups = frame["open_time_ms"].duplicated()
        if dups.any():
            problems.append(f"{tf}: {int(dups.sum())} bars fired twice, first open "
                            f"{int(frame['open_time_ms'][dups].iloc[0])}")
            frame = frame.loc[~dups]
        frames[tf] = frame.reset_index(drop=True)
    return frames, problems


def _fmt_time(t: int) -> str:
    return f"{t} ({pd.Timestamp(t, unit='ms', tz='UTC').strftime('%Y-%m-%d %H:%M:%S')})"


def compare_bars(ours: pd.DataFrame, ref: pd.DataFrame, label: str,
                 fields: tuple[str, ...] = FIELDS) -> list[str]:
    """Messages for every way ``ours`` differs from ``ref`` (first mismatch of each kind)."""
    out: list[str] = []
    o_t = ours["open_time_ms"].to_numpy(np.int64)
    r_t = ref["open_time_ms"].to_numpy(np.int64)
    missing = np.setdiff1d(r_t, o_t)
    extra = np.setdiff1d(o_t, r_t)
    if missing.size or extra.size:
        first_missing = _fmt_time(int(missing[0])) if missing.size else "-"
        first_extra = _fmt_time(int(extra[0])) if extra.size else "-"
        out.append(
            f"{label}: bar sets differ: ours {len(o_t)} bars, ref {len(r_t)}; "
            f"{missing.size} missing in ours (first open {first_missing}), "
            f"{extra.size} extra in ours (first open {first_extra})")
    common, oi, ri = np.intersect1d(o_t, r_t, return_indices=True)
    for f in fields:
        a = ours[f].to_numpy(np.float64)[oi]
        b = ref[f].to_numpy(np.float64)[ri]
        if f in EXACT:
            bad = ~(a == b)
        else:
            bad = ~(np.abs(a - b) <= VOLUME_RTOL * np.maximum(np.abs(a), np.abs(b)))
        if bad.any():
            j = int(np.argmax(bad))
            out.append(f"{label}: {f} differs in {int(bad.sum())} of {len(common)} bars; first at "
                       f"ref index {int(ri[j])}, bar {_fmt_time(int(common[j]))}: "
                       f"ours={float(a[j])!r} ref={float(b[j])!r}")
    return out


@functools.cache
def _run(case_id: str) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], list[str]]:
    case = CASES[case_id]
    trades = case.load()
    kernel = Kernel(enable_1s=False)
    src = kernel.add_source(fill_gaps=case.fill_gaps, grace_ms=GRACE_MS)
    rules = {f"bars-{tf}": tf for tf in TIMEFRAMES}
    for rule_id, tf in rules.items():
        kernel.add_rule(rule_id, case.symbol, bar_condition(tf), mode="ONCE_PER_BAR_CLOSE",
                        timeframe=tf)
    time_ms, price, qty, trade_id = md.trade_arrays(trades)
    ids = np.full(len(time_ms), kernel.intern([case.symbol])[0], dtype=np.int32)
    fired: list = []
    if case.batches is None:
        fired += kernel.process(src, ids, time_ms, price, qty, trade_id)
    else:
        start, k = 0, 0
        while start < len(time_ms):
            end = min(start + case.batches[k % len(case.batches)], len(time_ms))
            fired += kernel.process(src, ids[start:end], time_ms[start:end], price[start:end],
                                    qty[start:end], trade_id[start:end])
            start, k = end, k + 1
    closed_by = _ceil(int(time_ms[-1]) + 1, TIMEFRAME_MS["1h"])
    fired += kernel.advance_clock(src, closed_by + GRACE_MS)
    ours, problems = _bars_from_fires(fired, case.symbol, rules)
    ref = {tf: resample_bars(trades, TIMEFRAME_MS[tf], case.fill_gaps, closed_by_ms=closed_by)
           for tf in TIMEFRAMES}
    return ours, ref, problems


@pytest.mark.parametrize("tf", TIMEFRAMES)
@pytest.mark.parametrize("case_id", list(CASES))
def test_bars_from_trades(case_id: str, tf: str, shared_data) -> None:  # noqa: F811
    ours, ref, problems = _run(case_id)
    errors = problems[:5] + compare_bars(ours[tf], ref[tf], f"{case_id} {tf}")
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


# --------------------------------------------------------------------------- roll-ups

ROLLUP_TFS = ("1m", "5m", "15m", "1h", "4h", "1d")


@functools.cache
def _run_rollup(name: str) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], list[str],
                                    tuple[str, ...]]:
    if name == "klines-LINKUSDT":
        symbol, data, fill, fields = ("binance-usdm:LINKUSDT", md.binance_usdm_klines("LINKUSDT"),
                                      True, FIELDS)
    else:  # sparse US 1m bars of six sessions, no quote volume or trade count
        symbol, data, fill, fields = ("us:AIG", md.us_stocks_1m("AIG"), False, FIELDS[:5])
    kernel = Kernel(enable_1s=False)
    src = kernel.add_source(fill_gaps=fill, grace_ms=GRACE_MS)
    rules = {f"bars-{tf}": tf for tf in ROLLUP_TFS}
    for rule_id, tf in rules.items():
        kernel.add_rule(rule_id, symbol, bar_condition(tf, fields), mode="ONCE_PER_BAR_CLOSE",
                        timeframe=tf)
    ids = np.full(len(data), kernel.intern([symbol])[0], dtype=np.int32)
    col = {c: np.ascontiguousarray(data[c].to_numpy(np.int64 if c in ("open_time_ms", "trades")
                                                    else np.float64))
           for c in BAR_COLUMNS if c in data}
    fired = list(kernel.process_bars(
        src, "1m", ids, col["open_time_ms"], col["open"], col["high"], col["low"],
        col["close"], col["volume"], quote_volume=col.get("quote_volume"),
        trades=col.get("trades")))
    closed_by = _ceil(int(col["open_time_ms"][-1]) + 60_000, TIMEFRAME_MS["1d"])
    fired += kernel.advance_clock(src, closed_by + GRACE_MS)
    ours, problems = _bars_from_fires(fired, symbol, rules, fields)
    ref = {tf: rollup_bars(data, TIMEFRAME_MS[tf], closed_by_ms=closed_by) for tf in ROLLUP_TFS}
    return ours, ref, problems, fields


@pytest.mark.parametrize("tf", ROLLUP_TFS)
@pytest.mark.parametrize("name", ["klines-LINKUSDT", "us1m-AIG-nofill"])
def test_bars_rolled_up_from_1m_bars(name: str, tf: str, shared_data) -> None:  # noqa: F811
    """Closed 1m bars in (process_bars) -> the core's 5m..1d bars = pandas roll-up."""
    ours, ref, problems, fields = _run_rollup(name)
    errors = problems[:5] + compare_bars(ours[tf], ref[tf], f"{name} {tf}", fields)
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
