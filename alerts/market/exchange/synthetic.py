"""A seeded random walk of trades for any number of symbols (the synthetic feed).

Deterministic for a seed and a start time: the same ``seed``, ``rate`` and
``start_ms`` give the same trades, chunk after chunk. Trades arrive as a
Poisson process of ``rate`` trades per second over all symbols, spread over
the symbols by a Zipf-like weight (the first symbols are the busiest). Each
symbol's log price walks with a per-trade sigma scaled so that one minute's
move has the standard deviation ``volatility_per_minute``; prices are rounded
to about five significant digits, quantities are log-normal around a notional
of ~200 quote units, and the aggressor side is a fair coin. Trade ids are
contiguous per symbol from 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from alerts.market.exchange.trades import TradeChunk

_KNOWN = (("BTCUSDT", 65000.0), ("ETHUSDT", 3200.0), ("BNBUSDT", 580.0), ("SOLUSDT", 150.0),
          ("XRPUSDT", 0.52), ("DOGEUSDT", 0.12), ("ADAUSDT", 0.45), ("AVAXUSDT", 28.0))


def synthetic_symbols(count: int) -> list[str]:
    """Names for ``count`` symbols: well-known pairs first, then ``SYM00009USDT``..."""
    names = [name for name, _ in _KNOWN[:count]]
    names += [f"SYM{i:05d}USDT" for i in range(len(names), count)]
    return names


class SyntheticFeed:
    """Endless random-walk trades (see the module docstring)."""

    def __init__(self, symbols: int | Sequence[str], *, seed: int = 0, rate: float = 10.0,
                 start_ms: int | None = None, volatility_per_minute: float = 0.002,
                 chunk_ms: int = 1000) -> None:
        names = synthetic_symbols(symbols) if isinstance(symbols, int) else list(symbols)
        if not names:
            raise ValueError("the synthetic feed needs at least one symbol")
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError("rate must be a positive number of trades per second")
        self._symbols = tuple(names)
        self._rng = np.random.default_rng(seed)
        self._rate = rate
        self._chunk_ms = chunk_ms
        self._start_ms = start_ms
        self._next_ms: int | None = None
        count = len(names)
        weights = 1.0 / np.arange(1, count + 1) ** 0.8
        self._weights = weights / weights.sum()
        known = dict(_KNOWN)
        random_prices = np.exp(self._rng.uniform(math.log(0.01), math.log(1000.0), count))
        start = np.array([known.get(n, p) for n, p in zip(names, random_prices)])
        self._tick = 10.0 ** (np.floor(np.log10(start)) - 4)
        self._log_price = np.log(start)
        per_minute = rate * 60.0 * self._weights
        self._sigma = volatility_per_minute / np.sqrt(np.maximum(per_minute, 1e-9))
        self._qty_step = np.minimum(1.0, 10.0 ** np.floor(np.log10(1.0 / start) + 2))
        self._next_id = np.ones(count, np.int64)

    @property
    def symbols(self) -> Sequence[str]:
        return self._symbols

    @property
    def total(self) -> int | None:
        return None

    def start_ms(self, wall_ms: int) -> int:
        if self._next_ms is None:
            self._next_ms = self._start_ms if self._start_ms is not None else wall_ms
        return self._next_ms

    def next_chunk(self) -> TradeChunk | None:
        begin = self.start_ms(0) if self._next_ms is None else self._next_ms
        rng = self._rng
        n = int(rng.poisson(self._rate * self._chunk_ms / 1000.0))
        self._next_ms = begin + self._chunk_ms
        times = np.sort(begin + rng.integers(0, self._chunk_ms, n)).astype(np.int64)
        sym = rng.choice(len(self._symbols), n, p=self._weights).astype(np.int32)
        steps = rng.normal(0.0, 1.0, n) * self._sigma[sym]
        # Each symbol's walk: cumulative sums of its own steps, in time order.
        by_symbol = np.lexsort((np.arange(n), sym))
        sorted_sym = sym[by_symbol]
        sums = np.cumsum(steps[by_symbol])
        group_start = np.flatnonzero(np.r_[True, sorted_sym[1:] != sorted_sym[:-1]])
        offsets = np.repeat(np.r_[0.0, sums][group_start], np.diff(np.r_[group_start, n]))
        walk = np.empty(n)
        walk[by_symbol] = sums - offsets + self._log_price[sorted_sym]
        rank = np.empty(n, np.int64)
        rank[by_symbol] = np.arange(n) - np.repeat(group_start, np.diff(np.r_[group_start, n]))
        ids = self._next_id[sym] + rank
        counts = np.bincount(sym, minlength=len(self._symbols))
        last = np.flatnonzero(np.r_[sorted_sym[1:] != sorted_sym[:-1], True]) if n else \
            np.empty(0, np.intp)
        self._log_price[sorted_sym[last]] = sums[last] - offsets[last] + \
            self._log_price[sorted_sym[last]]
        self._next_id += counts
        tick = self._tick[sym]
        price = np.maximum(np.round(np.exp(walk) / tick) * tick, tick)
        notional = np.exp(rng.normal(math.log(200.0), 1.0, n))
        step = self._qty_step[sym]
        qty = np.maximum(np.round(notional / price / step) * step, step)
        maker = rng.random(n) < 0.5
        chunk = TradeChunk(sym, ids, ids, ids, price, qty, times, maker)
        return chunk.take(np.lexsort((sym, ids, times)))
