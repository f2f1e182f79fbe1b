"""Reference computations the engine is checked against: pandas bars and TA-Lib.

* :func:`resample_bars` builds bars from trades with pandas
  ``resample(origin="epoch", closed="left", label="left")``: UTC-aligned
  buckets ``[t0, t0 + tf)``; open/high/low/close = first/max/min/last price,
  volume = sum of qty, quote volume = sum of price * qty, trades = count.
  Empty buckets between the first trade and the end are flat bars
  (open = high = low = close = previous close, volumes 0, trades 0) with
  ``fill_flat``, and are dropped without it.
* :func:`rollup_bars` does the same from finer bars (1m -> 5m, 1h, 1d, ...).
* :func:`talib_reference` runs TA-Lib's function API (unstable period 0) on
  closed bars and returns each output with the mask of bars where TA-Lib
  returns a number for 0/0, which the engine must leave undefined.
* :func:`compare_with_talib` / :func:`assert_matches_talib` implement the
  agreement rule of ARCHITECTURE.md "Indicators" exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import talib

from tests.support.market_data import BAR_COLUMNS

#: Relative tolerance of the TA-Lib agreement rule (ARCHITECTURE.md, "Indicators").
TALIB_RTOL = 1e-9


# --------------------------------------------------------------------------- bars


def _bucket_frame(
    index_ms: np.ndarray,
    columns: dict[str, np.ndarray],
    agg: dict[str, str],
    tf_ms: int,
    fill_flat: bool,
    closed_by_ms: int | None,
) -> pd.DataFrame:
    """Aggregate rows into UTC-aligned [t0, t0+tf) buckets with pandas resample."""
    if tf_ms <= 0:
        raise ValueError("tf_ms must be positive")
    frame = pd.DataFrame(columns, index=pd.to_datetime(np.asarray(index_ms, np.int64), unit="ms"))
    if frame.empty:
        return pd.DataFrame({c: np.array([], dtype=np.int64 if c in ("open_time_ms", "trades")
                                          else np.float64) for c in BAR_COLUMNS})
    resampler = frame.resample(f"{int(tf_ms)}ms", origin="epoch", closed="left", label="left")
    bars = resampler.agg(agg)
    open_time = bars.index.as_unit("ms").asi8.astype(np.int64)
    bars = bars.reset_index(drop=True)
    bars.insert(0, "open_time_ms", open_time)
    if closed_by_ms is not None and fill_flat:
        last = int(closed_by_ms) - int(tf_ms)  # last bucket that is closed by then
        last -= last % int(tf_ms)
        if last > int(bars["open_time_ms"].iloc[-1]):
            extra = np.arange(int(bars["open_time_ms"].iloc[-1]) + tf_ms, last + 1, tf_ms,
                              dtype=np.int64)
            pad = pd.DataFrame({"open_time_ms": extra})
            for c in bars.columns:
                if c != "open_time_ms":
                    pad[c] = 0 if c in ("volume", "quote_volume", "trades") else np.nan
            bars = pd.concat([bars, pad], ignore_index=True)
    empty = bars["open"].isna().to_numpy()  # buckets with no row at all
    if fill_flat:
        close = bars["close"].ffill()
        for c in ("open", "high", "low", "close"):
            bars[c] = bars[c].where(~empty, close)
        for c in ("volume", "quote_volume"):
            if c in bars:
                bars[c] = bars[c].where(~empty, 0.0)
    else:
        bars = bars.loc[~empty].reset_index(drop=True)
    if closed_by_ms is not None:
        keep = bars["open_time_ms"].to_numpy() + tf_ms <= int(closed_by_ms)
        bars = bars.loc[keep].reset_index(drop=True)
    out = pd.DataFrame({"open_time_ms": bars["open_time_ms"].to_numpy(np.int64)})
    for c in BAR_COLUMNS[1:]:
        if c in bars:
            dtype = np.int64 if c == "trades" else np.float64
            out[c] = bars[c].to_numpy(dtype)
    return out


def resample_bars(
    trades: pd.DataFrame,
    tf_ms: int,
    fill_flat: bool,
    *,
    closed_by_ms: int | None = None,
) -> pd.DataFrame:
    """Bars of one symbol's trades (columns ``time_ms, price, qty``), in ``BAR_COLUMNS``.

    ``closed_by_ms``: keep only bars ending at or before it (what a clock at
    ``closed_by_ms + grace`` has closed); with ``fill_flat``, flat bars are added
    after the last trade up to it, as a gap-filling source makes them.
    """
    price = trades["price"].to_numpy(np.float64)
    qty = trades["qty"].to_numpy(np.float64)
    return _bucket_frame(
        trades["time_ms"].to_numpy(np.int64),
        {"open": price, "high": price, "low": price, "close": price,
         "volume": qty, "quote_volume": price * qty, "trades": np.ones(len(price), np.int64)},
        {"open": "first", "high": "max", "low": "min", "close": "last",
         "volume": "sum", "quote_volume": "sum", "trades": "sum"},
        tf_ms, fill_flat, closed_by_ms,
    )


def rollup_bars(
    bars: pd.DataFrame,
    tf_ms: int,
    fill_flat: bool = False,
    *,
    closed_by_ms: int | None = None,
) -> pd.DataFrame:
    """Coarser bars from finer ones (``open_time_ms, open, high, low, close, volume``
    and, when present, ``quote_volume, trades``)."""
    cols: dict[str, np.ndarray] = {}
    agg: dict[str, str] = {}
    for c, how in (("open", "first"), ("high", "max"), ("low", "min"), ("close", "last"),
                   ("volume", "sum"), ("quote_volume", "sum"), ("trades", "sum")):
        if c in bars:
            cols[c] = bars[c].to_numpy(np.int64 if c == "trades" else np.float64)
            agg[c] = how
    out = _bucket_frame(bars["open_time_ms"].to_numpy(np.int64), cols, agg, tf_ms,
                        fill_flat, closed_by_ms)
    return out


# --------------------------------------------------------------------------- TA-Lib


@dataclass(frozen=True)
class IndicatorSpec:
    """One indicator of the rule language with its parameters, e.g. ``bb(20, 2, tf)``."""

    name: str
    params: tuple[float, ...] = ()
    #: read only these outputs (default: all of them)
    select: tuple[str, ...] | None = None

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.select if self.select is not None else _OUTPUTS.get(self.name, ("",))

    @property
    def key(self) -> str:
        key = self.name + "_".join([""] + [_fmt(p) for p in self.params])
        return key + ("." + "_".join(self.select) if self.select is not None else "")

    def series(self, tf: str, output: str = "") -> str:
        args = ", ".join([_fmt(p) for p in self.params] + [tf])
        return f"{self.name}({args})" + (f".{output}" if output else "")

    def condition(self, tf: str) -> str:
        """A condition true whenever every output is defined; its ``values`` are the
        outputs in ``self.outputs`` order."""
        return " and ".join(f"{self.series(tf, o)} > -1e300" for o in self.outputs)


_OUTPUTS: dict[str, tuple[str, ...]] = {
    "macd": ("line", "signal", "hist"),
    "bb": ("upper", "middle", "lower"),
    "stoch": ("k", "d"),
}


def _fmt(p: float) -> str:
    return str(int(p)) if float(p).is_integer() else repr(float(p))


def _col(bars: pd.DataFrame, name: str) -> np.ndarray:
    return np.ascontiguousarray(bars[name].to_numpy(np.float64))


def _window_any(flags: np.ndarray, n: int) -> np.ndarray:
    """out[i] = any(flags[i-n+1 .. i]) (windows cut at 0)."""
    c = np.concatenate([[0], np.cumsum(flags.astype(np.int64))])
    lo = np.maximum(np.arange(len(flags)) + 1 - n, 0)
    return (c[1:] - c[lo]) > 0


def talib_reference(
    spec: IndicatorSpec, bars: pd.DataFrame
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """TA-Lib's values for ``spec`` over ``bars`` (one symbol's closed bars from its
    first bar): ``{output: (ref, mask)}``; ``ref`` is NaN inside TA-Lib's look-back,
    ``mask`` marks bars where TA-Lib returns a number for 0/0 (ours: undefined).
    All outputs are returned, whatever ``spec.select`` says.

    Masks: RSI while no close has moved yet (average gain + loss = 0);
    STOCH raw %K where the k-bar high == low, carried through the SMA windows
    (slow %K over ``smooth`` raw values, %D over ``d`` slow values)."""
    close = _col(bars, "close")
    n = len(close)
    none = np.zeros(n, dtype=bool)
    p = [int(x) if float(x).is_integer() else float(x) for x in spec.params]
    name = spec.name
    for fn in ("sma", "ema", "wma"):
        if name == fn:
            return {"": (getattr(talib, fn.upper())(close, timeperiod=p[0]), none)}
    if name == "rsi":
        ref = talib.RSI(close, timeperiod=p[0])
        moved = np.cumsum(np.r_[False, np.diff(close) != 0]) > 0
        return {"": (ref, ~moved & ~np.isnan(ref))}
    if name == "macd":
        line, signal, hist = talib.MACD(close, fastperiod=p[0], slowperiod=p[1], signalperiod=p[2])
        return {"line": (line, none), "signal": (signal, none), "hist": (hist, none)}
    if name == "bb":
        upper, middle, lower = talib.BBANDS(close, timeperiod=p[0], nbdevup=p[1], nbdevdn=p[1],
                                            matype=0)
        return {"upper": (upper, none), "middle": (middle, none), "lower": (lower, none)}
    if name == "atr":
        return {"": (talib.ATR(_col(bars, "high"), _col(bars, "low"), close, timeperiod=p[0]),
                     none)}
    if name == "stoch":
        high, low = _col(bars, "high"), _col(bars, "low")
        slowk, slowd = talib.STOCH(high, low, close, fastk_period=p[0], slowk_period=p[1],
                                   slowk_matype=0, slowd_period=p[2], slowd_matype=0)
        hh = pd.Series(high).rolling(p[0], min_periods=1).max().to_numpy()
        ll = pd.Series(low).rolling(p[0], min_periods=1).min().to_numpy()
        raw_zero = hh == ll
        k_mask = _window_any(raw_zero, p[1])
        d_mask = _window_any(k_mask, p[2])
        return {"k": (slowk, k_mask & ~np.isnan(slowk)), "d": (slowd, d_mask & ~np.isnan(slowd))}
    if name == "obv":
        return {"": (talib.OBV(close, _col(bars, "volume")), none)}
    raise ValueError(f"no TA-Lib reference for {spec.name}")


def joint_masks(
    refs: Mapping[str, tuple[np.ndarray, np.ndarray]], outputs: tuple[str, ...]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Masks for reading ``outputs`` through ONE rule ``a > x and b > x and ...``:
    it fires only where every output is defined, so each output is expected
    undefined wherever any of them is (NaN or masked)."""
    undefined = np.zeros(len(next(iter(refs.values()))[0]), dtype=bool)
    for o in outputs:
        ref, mask = refs[o]
        undefined |= np.isnan(ref) | mask
    return {o: (refs[o][0], undefined & ~np.isnan(refs[o][0])) for o in outputs}


def _fmt_time(t: int | None) -> str:
    if t is None:
        return "?"
    return f"{int(t)} ({pd.Timestamp(int(t), unit='ms', tz='UTC').strftime('%Y-%m-%d %H:%M:%S')})"


def compare_with_talib(
    ours_by_bar: Mapping[int, float] | tuple[np.ndarray, np.ndarray],
    ref: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    times: np.ndarray | None = None,
    label: str = "",
) -> str | None:
    """None when ``ours_by_bar`` agrees with ``ref``, else a message naming the first
    mismatch (index, bar time, ours, ref) and how many bars mismatch.

    ``ours_by_bar`` maps a bar index (into the same closed bars ``ref`` was
    computed on) to our value; a missing index means ours is undefined there.
    It may also be a pair of arrays ``(indices, values)`` (indices unique).
    The rule: our value is defined exactly where ``ref`` is a number and the bar
    is not masked (so the first defined index is TA-Lib's look-back), and there
    ``|ours - ref| <= 1e-9 * max(|ref|, m)``, m = mean |ref| over the series
    (unmasked numbers); no burn-in exemption.
    """
    ref = np.asarray(ref, dtype=np.float64)
    n = len(ref)
    mask = np.zeros(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != ref.shape:
        raise ValueError("mask and ref differ in shape")
    expected = ~np.isnan(ref) & ~mask

    if isinstance(ours_by_bar, tuple):
        idx = np.asarray(ours_by_bar[0], dtype=np.int64)
        val = np.asarray(ours_by_bar[1], dtype=np.float64)
    else:
        idx = np.fromiter(ours_by_bar.keys(), dtype=np.int64, count=len(ours_by_bar))
        val = np.fromiter(ours_by_bar.values(), dtype=np.float64, count=len(ours_by_bar))
    if len(np.unique(idx)) != len(idx):
        raise ValueError("duplicate bar indices")
    inside = (idx >= 0) & (idx < n)
    problems = [f"ours has a value at bar index {int(i)} outside 0..{n - 1}"
                for i in idx[~inside][:3]]
    ours = np.full(n, np.nan)
    have = np.zeros(n, dtype=bool)
    ours[idx[inside]] = val[inside]
    have[idx[inside]] = True

    m = float(np.mean(np.abs(ref[expected]))) if expected.any() else 0.0
    tol = TALIB_RTOL * np.maximum(np.abs(np.where(expected, ref, 0.0)), m)
    with np.errstate(invalid="ignore"):
        bad_value = expected & have & ~(np.abs(ours - ref) <= tol)  # NaN ours counts as bad
    missing = expected & ~have
    extra = have & ~expected
    bad = bad_value | missing | extra
    if not bad.any() and not problems:
        return None

    def time_of(i: int) -> str:
        return _fmt_time(int(times[i])) if times is not None and 0 <= i < len(times) else "?"

    first_ours = int(np.argmax(have)) if have.any() else None
    first_ref = int(np.argmax(expected)) if expected.any() else None
    lines = [(f"{label}: {int(bad.sum()) + int((~inside).sum())} of {n} bars disagree with "
              f"TA-Lib (value {int(bad_value.sum())}, ours undefined {int(missing.sum())}, "
              f"ours defined where ref is not {int(extra.sum())}); "
              f"first defined index ours={first_ours} ref={first_ref}; m={m:.17g}")]
    if bad.any():
        i = int(np.argmax(bad))
        why = ("value outside tolerance" if bad_value[i] else
               "ours undefined, ref defined" if missing[i] else
               "ours defined, ref undefined" + (" (masked: 0/0 in TA-Lib)" if mask[i] else
                                                " (inside TA-Lib look-back)"))
        diff = abs(ours[i] - ref[i]) if have[i] and not np.isnan(ref[i]) else float("nan")
        lines.append(
            f"  first mismatch at index {i}, bar {time_of(i)}: {why}; "
            f"ours={repr(float(ours[i])) if have[i] else 'undefined'} ref={float(ref[i])!r} "
            f"|diff|={diff:.3g} tol={tol[i]:.3g}"
        )
        if bad_value.any():
            j = int(np.argmax(np.where(bad_value, np.abs(ours - ref) / tol, -1.0)))
            lines.append(f"  worst value at index {j}, bar {time_of(j)}: ours={float(ours[j])!r} "
                         f"ref={float(ref[j])!r} |diff|/tol={abs(ours[j] - ref[j]) / tol[j]:.3g}")
    lines += ["  " + text for text in problems]
    return "\n".join(lines)


def assert_matches_talib(
    ours_by_bar: Mapping[int, float] | tuple[np.ndarray, np.ndarray],
    ref: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    times: np.ndarray | None = None,
    label: str = "indicator",
) -> None:
    """Raise AssertionError unless ``ours_by_bar`` agrees with TA-Lib's ``ref``
    (see :func:`compare_with_talib`)."""
    message = compare_with_talib(ours_by_bar, ref, mask, times=times, label=label)
    if message is not None:
        raise AssertionError(message)
