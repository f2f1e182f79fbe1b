"""Seeded synthetic market data and the reporting helpers of the benchmarks.

Everything here is synthetic (random walks, no network, no ``../shared``):

* :func:`random_walk_bars` -- OHLCV bars of many symbols, one row per bar time;
* :func:`bar_columns` -- those bars interleaved by time across symbols, as the
  contiguous columns ``Engine.process_bars`` takes;
* :class:`TickStream` -- consecutive windows of ticks (Poisson arrivals per
  symbol, interleaved in time, unique trade ids) continuing each symbol's walk;
* :func:`run_rounds` -- ``benchmark.pedantic`` with our own per-round clock, so
  per-item figures exist also under ``--benchmark-disable``;
* :func:`report` -- figures into ``benchmark.extra_info`` and into the summary
  printed at the end of the session (shown without ``-s``).

Timings are never asserted: benchmarks do not fail on speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from alerts.rules.catalog import TIMEFRAMES

MIN = 60_000
START_MS = 1_767_225_600_000          # 2026-01-01T00:00:00Z, a multiple of 1d
TF_MS = {"1m": MIN, "5m": 5 * MIN, "15m": 15 * MIN, "1h": 60 * MIN}


def tf_index(tf: str) -> int:
    return TIMEFRAMES.index(tf)


# ----------------------------------------------------------------- data --

@dataclass
class Bars:
    """Bars of ``n_symbols`` symbols at ``n_bars`` times: 2-D arrays [bar, symbol]."""

    open_time: np.ndarray       # (n_bars,) int64
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.close.shape


def random_walk_bars(n_symbols: int, n_bars: int, *, tf_ms: int = MIN, start_ms: int = START_MS,
                     seed: int = 1, sigma: float = 0.003, start_prices: np.ndarray | None = None,
                     mean_volume: float = 100.0, volume_shape: float = 2.0) -> Bars:
    """A seeded geometric random walk per symbol; open = previous close; gamma volumes."""
    rng = np.random.default_rng(seed)
    p0 = (100.0 * np.exp(rng.uniform(-2, 4, n_symbols)) if start_prices is None
          else np.asarray(start_prices, np.float64))
    steps = rng.normal(0.0, sigma, (n_bars, n_symbols))
    close = p0 * np.exp(np.cumsum(steps, axis=0))
    open_ = np.vstack([p0[None, :], close[:-1]])
    wick = np.abs(rng.normal(0.0, sigma / 2, (2, n_bars, n_symbols)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    volume = rng.gamma(volume_shape, mean_volume / volume_shape, (n_bars, n_symbols))
    open_time = (start_ms + np.arange(n_bars, dtype=np.int64) * tf_ms).astype(np.int64)
    return Bars(open_time, open_, high, low, close, volume)


def bar_columns(bars: Bars, ids: np.ndarray, rows: slice = slice(None)) -> dict[str, np.ndarray]:
    """Bars ``rows`` interleaved by time across symbols (all symbols of bar 0, then bar 1, ...)."""
    ot = bars.open_time[rows]
    n_b, n_s = len(ot), len(ids)

    def flat(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[rows].reshape(-1), np.float64)

    close, volume = flat(bars.close), flat(bars.volume)
    return {
        "symbol": np.ascontiguousarray(np.tile(np.asarray(ids, np.int32), n_b)),
        "open_time": np.ascontiguousarray(np.repeat(ot, n_s), np.int64),
        "open": flat(bars.open), "high": flat(bars.high), "low": flat(bars.low),
        "close": close, "volume": volume, "quote_volume": close * volume,
        "trades": np.zeros(n_b * n_s, np.int64),
    }


def feed_bar_columns(engine: Any, src: int, tf: str, cols: dict[str, np.ndarray]) -> tuple:
    """One raw ``Engine.process_bars`` call (no event conversion)."""
    return engine.process_bars(src, tf_index(tf), cols["symbol"], cols["open_time"], cols["open"],
                               cols["high"], cols["low"], cols["close"], cols["volume"],
                               cols["quote_volume"], cols["trades"])


def feed_bars(engine: Any, src: int, tf: str, bars: Bars, ids: np.ndarray,
              chunk_rows: int = 64) -> int:
    """All of ``bars`` through the raw engine in chunks; returns the accepted count."""
    accepted = 0
    for r0 in range(0, bars.shape[0], chunk_rows):
        cols = bar_columns(bars, ids, slice(r0, r0 + chunk_rows))
        counts = feed_bar_columns(engine, src, tf, cols)
        accepted += counts[0]
    return accepted


def feed_random_walk(engine: Any, src: int, ids: np.ndarray, n_bars: int, *, start_ms: int,
                     start_prices: np.ndarray | None = None, tf: str = "1m", seed: int = 1,
                     chunk_rows: int = 60, **walk: Any) -> tuple[int, np.ndarray]:
    """``n_bars`` random-walk bars per symbol generated and fed chunk by chunk (bounded memory).

    Returns (accepted count, each symbol's last close).
    """
    prices = start_prices
    accepted = 0
    for c, r0 in enumerate(range(0, n_bars, chunk_rows)):
        rows = min(chunk_rows, n_bars - r0)
        bars = random_walk_bars(len(ids), rows, tf_ms=TF_MS[tf], start_ms=start_ms + r0 * TF_MS[tf],
                                seed=seed * 100_003 + c, start_prices=prices, **walk)
        accepted += feed_bars(engine, src, tf, bars, ids, chunk_rows=rows)
        prices = bars.close[-1]
    assert prices is not None
    return accepted, prices


def reset_events(engine: Any, src: int) -> None:
    """An empty batch: gives back a grown event buffer (so memory deltas see state only)."""
    e64 = np.empty(0, np.int64)
    engine.process(src, np.empty(0, np.int32), e64, np.empty(0), np.empty(0), e64)


class TickStream:
    """Consecutive windows of ticks for ``ids``, each symbol's walk continuing.

    Arrivals are Poisson at ``rate`` ticks per second per symbol, interleaved in
    time across symbols; prices move by ``sigma_per_min`` per sqrt-minute;
    quantities are exponential; trade ids are consecutive per symbol, as an
    exchange's are.
    """

    def __init__(self, ids: np.ndarray, last_prices: np.ndarray, *, start_ms: int,
                 rate: float = 3.0, sigma_per_min: float = 0.003, seed: int = 11) -> None:
        self.ids = np.asarray(ids, np.int32)
        self.price = np.asarray(last_prices, np.float64).copy()
        self.t = int(start_ms)
        self.rate = rate
        self.sigma_tick = sigma_per_min / np.sqrt(60.0 * rate)
        self.rng = np.random.default_rng(seed)
        self.next_tid = np.ones(len(self.ids), np.int64)

    def window(self, minutes: float) -> dict[str, np.ndarray]:
        rng = self.rng
        n_s = len(self.ids)
        dur = int(minutes * MIN)
        n = int(rng.poisson(self.rate * n_s * dur / 1000.0))
        t = np.sort(rng.integers(self.t, self.t + dur, n, dtype=np.int64))
        sym = rng.integers(0, n_s, n).astype(np.int32)
        step = rng.normal(0.0, self.sigma_tick, n)
        # per-symbol cumulative walk: cumsum in (symbol, time) order, restart per symbol
        order = np.argsort(sym, kind="stable")
        cs = np.cumsum(step[order])
        s_sorted = sym[order]
        starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        base = np.zeros(n)
        if n:
            seg_len = np.diff(np.r_[starts, n])
            before = np.r_[0.0, cs][starts]          # cumsum just before each segment
            base = np.repeat(before, seg_len)
        walk = np.empty(n)
        walk[order] = cs - base
        price = self.price[sym] * np.exp(walk)
        # remember each symbol's last price
        if n:
            last_idx = order[np.r_[starts[1:] - 1, n - 1]]
            self.price[sym[last_idx]] = price[last_idx]
        tid = np.empty(n, np.int64)
        if n:
            occurrence = np.arange(n) - np.repeat(starts, seg_len)
            tid[order] = self.next_tid[s_sorted] + occurrence
            self.next_tid += np.bincount(sym, minlength=n_s)
        self.t += dur
        return {
            "symbol": np.ascontiguousarray(self.ids[sym]),
            "time_ms": np.ascontiguousarray(t),
            "price": np.ascontiguousarray(price),
            "qty": np.ascontiguousarray(rng.exponential(1.0, n)),
            "trade_id": tid,
        }


def process_ticks(engine: Any, src: int, ticks: dict[str, np.ndarray], batch: int = 4096
                  ) -> np.ndarray:
    """All ticks through the raw ``Engine.process`` in batches; summed counts."""
    n = len(ticks["symbol"])
    sym, t, p, q, tid = (ticks["symbol"], ticks["time_ms"], ticks["price"], ticks["qty"],
                         ticks["trade_id"])
    acc = lat = dup = inv = 0
    proc = engine.process
    for s in range(0, n, batch):
        e = s + batch
        a, b, c, d = proc(src, sym[s:e], t[s:e], p[s:e], q[s:e], tid[s:e])
        acc += a
        lat += b
        dup += c
        inv += d
    return np.array([acc, lat, dup, inv])


# ------------------------------------------------------------ reporting --

RESULTS: dict[str, dict[str, Any]] = {}
SUMMARY: list[str] = []


def run_rounds(benchmark: Any, target: Callable[..., Any], *,
               setup: Callable[[], tuple] | None = None, rounds: int = 3,
               warmup_rounds: int = 0) -> tuple[list[float], list[Any]]:
    """``benchmark.pedantic`` (one target call per round), also clocked here.

    Returns the per-round seconds and return values of the measured rounds (also
    when pytest-benchmark is disabled and runs the target once).
    """
    seconds: list[float] = []
    results: list[Any] = []

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = target(*args, **kwargs)
        seconds.append(time.perf_counter() - t0)
        results.append(out)
        return out

    kwargs: dict[str, Any] = {"rounds": rounds, "warmup_rounds": warmup_rounds, "iterations": 1}
    if setup is not None:
        kwargs["setup"] = setup
    benchmark.pedantic(timed, **kwargs)
    skip = len(seconds) - (min(rounds, len(seconds)))
    return seconds[skip:], results[skip:]


def report(benchmark: Any, key: str, line: str, **figures: Any) -> None:
    """Figures into ``extra_info`` and the session summary; also printed (see with ``-s``)."""
    clean = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items()}
    benchmark.extra_info.update(clean)
    RESULTS.setdefault(key, {}).update(clean)
    SUMMARY.append(line)
    print(line)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY:
        terminalreporter.section("alerts_core benchmark figures")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture
def results() -> dict[str, dict[str, Any]]:
    return RESULTS
