"""One symbol's trade history on the exchange, and the queries REST and the streams ask of it.

``SymbolBook`` keeps every trade the feed produced for a symbol in growable
numpy columns (time order). Every query takes the exchange's ``now``: trades
after it do not exist yet. Klines are built from the trades exactly as
Binance builds them: UTC-aligned buckets, a flat bar (open = high = low =
close = previous close, volume 0, no trades, first/last trade id -1) for every
interval without trades after the symbol's first trade, the forming bar last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.market.exchange.intervals import Interval

_INITIAL_CAPACITY = 1024


@dataclass(frozen=True)
class Precision:
    """Decimal places of the strings the exchange writes for one symbol."""

    price: int = 8
    qty: int = 8
    quote: int = 8

    def price_text(self, value: float) -> str:
        return f"{value:.{self.price}f}"

    def qty_text(self, value: float) -> str:
        return f"{value:.{self.qty}f}"

    def quote_text(self, value: float) -> str:
        return f"{value:.{self.quote}f}"


def decimals_of(values: npt.NDArray[np.float64], most: int = 8) -> int:
    """The fewest decimal places (<= ``most``) that write every value exactly."""
    for places in range(most + 1):
        scaled = values * 10.0 ** places
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return places
    return most


@dataclass(frozen=True)
class Bars:
    """Klines as columns (one row per bar, oldest first)."""

    open_ms: npt.NDArray[np.int64]
    close_ms: npt.NDArray[np.int64]
    open: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]
    quote_volume: npt.NDArray[np.float64]
    trades: npt.NDArray[np.int64]
    taker_volume: npt.NDArray[np.float64]
    taker_quote_volume: npt.NDArray[np.float64]
    first_id: npt.NDArray[np.int64]
    last_id: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.open_ms.size)


class SymbolBook:
    """The trades of one symbol (upper-case ``name``), growing as the feed produces them."""

    def __init__(self, name: str, precision: Precision) -> None:
        self.name = name
        self.precision = precision
        self._n = 0
        self._time = np.empty(_INITIAL_CAPACITY, np.int64)
        self._agg_id = np.empty(_INITIAL_CAPACITY, np.int64)
        self._first = np.empty(_INITIAL_CAPACITY, np.int64)
        self._last = np.empty(_INITIAL_CAPACITY, np.int64)
        self._price = np.empty(_INITIAL_CAPACITY, np.float64)
        self._qty = np.empty(_INITIAL_CAPACITY, np.float64)
        self._maker = np.empty(_INITIAL_CAPACITY, np.bool_)

    # ------------------------------------------------------------------ growth

    @property
    def size(self) -> int:
        """Trades held, including those after the exchange's ``now``."""
        return self._n

    def extend(self, time_ms: np.ndarray, agg_id: np.ndarray, first_id: np.ndarray,
               last_id: np.ndarray, price: np.ndarray, qty: np.ndarray,
               buyer_maker: np.ndarray) -> None:
        """Append trades (already in time order, after every trade held)."""
        extra = int(time_ms.size)
        if self._n + extra > self._time.size:
            capacity = max(self._time.size * 2, self._n + extra)
            for attr in ("_time", "_agg_id", "_first", "_last", "_price", "_qty", "_maker"):
                old = getattr(self, attr)
                grown = np.empty(capacity, old.dtype)
                grown[:self._n] = old[:self._n]
                setattr(self, attr, grown)
        end = self._n + extra
        self._time[self._n:end] = time_ms
        self._agg_id[self._n:end] = agg_id
        self._first[self._n:end] = first_id
        self._last[self._n:end] = last_id
        self._price[self._n:end] = price
        self._qty[self._n:end] = qty
        self._maker[self._n:end] = buyer_maker
        self._n = end

    # ------------------------------------------------------------------ queries

    def count(self, now_ms: int) -> int:
        """How many trades happened at or before ``now_ms``."""
        return int(np.searchsorted(self._time[:self._n], now_ms, side="right"))

    def first_time(self, now_ms: int) -> int | None:
        """Time of the symbol's first trade, if it has happened by ``now_ms``."""
        if self._n == 0 or self._time[0] > now_ms:
            return None
        return int(self._time[0])

    def last_price(self, now_ms: int) -> float | None:
        """The last trade price at ``now_ms`` (None before the first trade)."""
        n = self.count(now_ms)
        return float(self._price[n - 1]) if n else None

    def agg_trades(self, now_ms: int, *, from_id: int | None, start_ms: int | None,
                   end_ms: int | None, limit: int) -> list[dict[str, Any]]:
        """Aggregate trades as ``/api/v3/aggTrades`` rows (``a``, ``p``, ``q``, ``f``, ``l``, ``T``, ``m``, ``M``)."""
        hi = self.count(now_ms if end_ms is None else min(now_ms, end_ms))
        lo = 0
        if from_id is not None:
            lo = int(np.searchsorted(self._agg_id[:hi], from_id, side="left"))
        if start_ms is not None:
            lo = max(lo, int(np.searchsorted(self._time[:hi], start_ms, side="left")))
        if from_id is None and start_ms is None:
            lo = max(lo, hi - limit)
        hi = min(hi, lo + limit)
        fmt = self.precision
        return [
            {"a": int(self._agg_id[i]), "p": fmt.price_text(float(self._price[i])),
             "q": fmt.qty_text(float(self._qty[i])), "f": int(self._first[i]),
             "l": int(self._last[i]), "T": int(self._time[i]), "m": bool(self._maker[i]),
             "M": True}
            for i in range(lo, hi)
        ]

    def bar_opens(self, interval: Interval, now_ms: int, *, start_ms: int | None,
                  end_ms: int | None, limit: int) -> npt.NDArray[np.int64]:
        """Open times of the klines ``/klines`` returns for these parameters."""
        first = self.first_time(now_ms)
        if first is None:
            return np.empty(0, np.int64)
        first_open = interval.floor(first)
        last_open = interval.floor(now_ms)
        if end_ms is not None:
            last_open = min(last_open, interval.floor(end_ms))
        if start_ms is not None:
            lo = max(first_open, interval.ceil(start_ms))
            opens = interval.opens(lo, last_open)
            return opens[:limit]
        lo = max(first_open, interval.step_back(last_open, limit - 1))
        return interval.opens(lo, last_open)

    def bars(self, interval: Interval, opens: npt.NDArray[np.int64], now_ms: int) -> Bars:
        """The klines opening at ``opens`` (consecutive, at or after the first trade's bar)."""
        if opens.size == 0:
            i, f = np.empty(0, np.int64), np.empty(0, np.float64)
            return Bars(i, i, f, f, f, f, f, f, i, f, f, i, i)
        next_opens = np.append(opens[1:], interval.next_open(int(opens[-1])))
        n = self.count(now_ms)
        times = self._time[:n]
        starts = np.searchsorted(times, opens, side="left")
        ends = np.searchsorted(times, next_opens, side="left")
        lo, hi = int(starts[0]), int(ends[-1])
        price = self._price[lo:hi]
        qty = self._qty[lo:hi]
        taker = ~self._maker[lo:hi]
        counts = (ends - starts).astype(np.int64)
        full = counts > 0
        bucket = np.repeat(np.arange(opens.size), counts)
        size = opens.size
        volume = _sums(bucket, qty, size)
        quote = _sums(bucket, price * qty, size)
        taker_volume = _sums(bucket, np.where(taker, qty, 0.0), size)
        taker_quote = _sums(bucket, np.where(taker, price * qty, 0.0), size)
        high = np.full(size, np.nan)
        low = np.full(size, np.nan)
        open_ = np.full(size, np.nan)
        close = np.full(size, np.nan)
        first_id = np.full(size, -1, np.int64)
        last_id = np.full(size, -1, np.int64)
        if full.any():
            idx_start = (starts[full] - lo).astype(np.intp)
            idx_end = (ends[full] - lo - 1).astype(np.intp)
            high[full] = np.maximum.reduceat(price, idx_start)
            low[full] = np.minimum.reduceat(price, idx_start)
            open_[full] = price[idx_start]
            close[full] = price[idx_end]
            first_id[full] = self._first[lo:hi][idx_start]
            last_id[full] = self._last[lo:hi][idx_end]
        # Flat bars: the previous close carried forward (the symbol traded before them).
        previous = float(self._price[lo - 1]) if lo > 0 else np.nan
        carried = _forward_fill(close, previous)
        flat = ~full
        open_[flat] = high[flat] = low[flat] = close[flat] = carried[flat]
        return Bars(opens, next_opens - 1, open_, high, low, close, volume, quote, counts,
                    taker_volume, taker_quote, first_id, last_id)

    def kline_rows(self, bars: Bars) -> list[list[Any]]:
        """``/klines`` rows: the 12-element arrays of Binance."""
        f = self.precision
        return [
            [int(bars.open_ms[i]), f.price_text(bars.open[i]), f.price_text(bars.high[i]),
             f.price_text(bars.low[i]), f.price_text(bars.close[i]), f.qty_text(bars.volume[i]),
             int(bars.close_ms[i]), f.quote_text(bars.quote_volume[i]), int(bars.trades[i]),
             f.qty_text(bars.taker_volume[i]), f.quote_text(bars.taker_quote_volume[i]), "0"]
            for i in range(len(bars))
        ]

    def kline_payload(self, bars: Bars, index: int, interval: Interval, closed: bool,
                      event_ms: int) -> dict[str, Any]:
        """A ``<symbol>@kline_<interval>`` payload for one bar."""
        f = self.precision
        i = index
        return {
            "e": "kline", "E": event_ms, "s": self.name,
            "k": {"t": int(bars.open_ms[i]), "T": int(bars.close_ms[i]), "s": self.name,
                  "i": interval.name, "f": int(bars.first_id[i]), "L": int(bars.last_id[i]),
                  "o": f.price_text(bars.open[i]), "c": f.price_text(bars.close[i]),
                  "h": f.price_text(bars.high[i]), "l": f.price_text(bars.low[i]),
                  "v": f.qty_text(bars.volume[i]), "n": int(bars.trades[i]), "x": closed,
                  "q": f.quote_text(bars.quote_volume[i]), "V": f.qty_text(bars.taker_volume[i]),
                  "Q": f.quote_text(bars.taker_quote_volume[i]), "B": "0"},
        }


def _sums(bucket: npt.NDArray[np.intp], weights: npt.NDArray[np.float64],
          size: int) -> npt.NDArray[np.float64]:
    """Per-bucket sums of ``weights`` (``bucket`` non-decreasing), ``size`` buckets."""
    return np.bincount(bucket, weights, size).astype(np.float64, copy=False)


def _forward_fill(values: npt.NDArray[np.float64], before: float) -> npt.NDArray[np.float64]:
    """Each NaN replaced by the last non-NaN value before it (``before`` at the start)."""
    filled = np.concatenate(([before], values))
    index = np.where(np.isnan(filled), 0, np.arange(filled.size))
    np.maximum.accumulate(index, out=index)
    return filled[index][1:]
