"""Indicators TA-Lib lacks, against plain numpy over the same closed bars.

ARCHITECTURE.md defines them: ``volume_z(n)`` and ``highest/lowest(n)`` look at
the n closed bars before the current one; ``change_pct(n)`` compares with the
close n bars ago; ``donchian(n)`` is the [lowest, highest] channel; ``vwap()``
runs over the ticks since 00:00 UTC.
"""

from __future__ import annotations

import numpy as np
import pytest

from alerts.engine.kernel import Kernel

MIN = 60_000
DAY = 86_400_000


def random_bars(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 50 + np.cumsum(rng.normal(0, 0.5, n))
    close = np.maximum(close, 1.0)
    open_ = close + rng.normal(0, 0.2, n)
    high = np.maximum(open_, close) + np.abs(rng.normal(0, 0.3, n))
    low = np.maximum(np.minimum(open_, close) - np.abs(rng.normal(0, 0.3, n)), 0.5)
    volume = np.round(np.abs(rng.normal(100, 40, n)), 3)
    volume[rng.integers(0, n, n // 20)] = 0.0
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def closed_values(expr: str, bars: dict[str, np.ndarray]) -> np.ndarray:
    """The closed value of `expr` at each 1m bar (NaN where undefined)."""
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("x", "t:A", f"{expr} > -1e300", mode="ONCE_PER_BAR_CLOSE")
    n = len(bars["close"])
    fired = kernel.process_bars(src, "1m", kernel.intern(["t:A"] * n), np.arange(n) * MIN,
                                bars["open"], bars["high"], bars["low"], bars["close"],
                                bars["volume"])
    out = np.full(n, np.nan)
    for f in fired:
        out[f.bar_open_ms // MIN] = f.values[0]
    return out


def assert_same(ours: np.ndarray, ref: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), "defined at different bars")
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n", [1, 5, 20])
def test_volume_z_over_the_bars_before_the_current_one(n: int) -> None:
    bars = random_bars(600, seed=n)
    v = bars["volume"]
    ref = np.full(len(v), np.nan)
    for i in range(n, len(v)):
        window = v[i - n:i]
        sigma = window.std()
        if sigma > 0:
            ref[i] = (v[i] - window.mean()) / sigma
    assert_same(closed_values(f"volume_z({n}, 1m)", bars), ref)


def test_volume_z_is_undefined_when_sigma_is_zero() -> None:
    bars = random_bars(60, seed=1)
    bars["volume"][:] = 7.0
    assert np.isnan(closed_values("volume_z(5, 1m)", bars)).all()


@pytest.mark.parametrize("n", [1, 3, 30])
def test_change_pct_against_the_close_n_bars_ago(n: int) -> None:
    bars = random_bars(500, seed=10 + n)
    c = bars["close"]
    ref = np.full(len(c), np.nan)
    ref[n:] = 100.0 * (c[n:] - c[:-n]) / c[:-n]
    assert_same(closed_values(f"change_pct({n}, 1m)", bars), ref)


@pytest.mark.parametrize("n", [1, 4, 50])
def test_highest_lowest_donchian_exclude_the_current_bar(n: int) -> None:
    bars = random_bars(700, seed=20 + n)
    h, lo = bars["high"], bars["low"]
    hi_ref = np.full(len(h), np.nan)
    lo_ref = np.full(len(h), np.nan)
    for i in range(n, len(h)):
        hi_ref[i] = h[i - n:i].max()
        lo_ref[i] = lo[i - n:i].min()
    assert_same(closed_values(f"highest({n}, 1m)", bars), hi_ref)
    assert_same(closed_values(f"lowest({n}, 1m)", bars), lo_ref)
    assert_same(closed_values(f"donchian({n}, 1m).upper", bars), hi_ref)
    assert_same(closed_values(f"donchian({n}, 1m).lower", bars), lo_ref)
    assert_same(closed_values(f"donchian({n}, 1m).middle", bars), (hi_ref + lo_ref) / 2)


def test_offsets_read_past_closed_values() -> None:
    bars = random_bars(300, seed=3)
    sma = closed_values("sma(5, 1m)", bars)
    lagged = closed_values("sma(5, 1m)[3]", bars)
    ref = np.full_like(sma, np.nan)
    ref[3:] = sma[:-3]
    assert_same(lagged, ref)
    close_lag = closed_values("close(1m)[2]", bars)
    ref = np.full_like(sma, np.nan)
    ref[2:] = bars["close"][:-2]
    assert_same(close_lag, ref)


def test_vwap_runs_over_the_ticks_of_the_utc_day() -> None:
    rng = np.random.default_rng(4)
    n = 3_000
    times = np.sort(rng.integers(DAY - 3 * 3_600_000, DAY + 3 * 3_600_000, n)).astype(np.int64)
    price = 20 + rng.random(n)
    qty = rng.exponential(2.0, n)
    kernel = Kernel()
    src = kernel.add_source()
    kernel.add_rule("v", "t:A", "vwap() > 0", mode="EVERY_TIME", cooldown_ms=0)
    fired = kernel.process(src, kernel.intern(["t:A"] * n), times, price, qty, np.zeros(n))
    assert len(fired) == n
    ours = np.array([f.values[0] for f in fired])
    day = times // DAY
    ref = np.empty(n)
    for d in np.unique(day):
        m = day == d
        ref[m] = np.cumsum(price[m] * qty[m]) / np.cumsum(qty[m])
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_every_timeframe_is_utc_aligned() -> None:
    kernel = Kernel(enable_1s=True)
    src = kernel.add_source(fill_gaps=False)
    for tf in ("1s", "1m", "5m", "15m", "1h", "4h", "1d"):
        kernel.add_rule(tf, "t:A", f"close({tf}) > 0", mode="ONCE_PER_BAR_CLOSE")
    t0 = 1_700_000_000_000  # not aligned to anything coarser than a second... nor a day
    times = np.array([t0 + 123, t0 + 2 * DAY + 5], np.int64)
    fired = kernel.process(src, kernel.intern(["t:A"] * 2), times, [1.0, 2.0], [1.0, 1.0],
                           [0, 0])
    spans = {"1s": 1_000, "1m": MIN, "5m": 5 * MIN, "15m": 15 * MIN, "1h": 60 * MIN,
             "4h": 240 * MIN, "1d": DAY}
    assert sorted(f.rule_id for f in fired) == sorted(spans)
    for f in fired:
        span = spans[f.rule_id]
        assert f.bar_open_ms == (t0 + 123) // span * span
        assert f.time_ms == f.bar_open_ms + span
