"""Trades the exchange replays: the columnar chunk, the feed protocol, and recorded files.

A feed hands the exchange ``TradeChunk``s in non-decreasing (time, trade id)
order. ``RecordedFeed`` reads trade files in the CSV layouts of
``../shared/data`` (``symbol,trade_id,price,qty,time_ms[,is_buyer_maker]``
for raw trades, plus ``first_trade_id,last_trade_id`` for aggTrades exports;
gzip or plain, detected by magic bytes) and merges them over symbols by
(time, trade id, symbol). Bad input raises ``TradeFileError`` naming the file.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

import numpy as np
import numpy.typing as npt

from alerts.errors import InvalidArgumentError

REQUIRED_COLUMNS: tuple[str, ...] = ("symbol", "trade_id", "price", "qty", "time_ms")
"""Columns every trade file must have (more may follow)."""


class TradeFileError(InvalidArgumentError):
    """A trade file that is missing, unreadable or not in a known layout."""

    reason = "BAD_TRADE_FILE"


@dataclass(frozen=True)
class TradeChunk:
    """Trades in (time, trade id, symbol) order; ``symbol`` indexes the feed's ``symbols``.

    ``first_id``/``last_id`` are the ids of the raw trades an aggregate covers
    (both equal ``trade_id`` for raw trades, so aggregate ids are the trade ids).
    """

    symbol: npt.NDArray[np.int32]
    trade_id: npt.NDArray[np.int64]
    first_id: npt.NDArray[np.int64]
    last_id: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    qty: npt.NDArray[np.float64]
    time_ms: npt.NDArray[np.int64]
    buyer_maker: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.time_ms.size)

    def take(self, index: npt.NDArray[np.intp]) -> TradeChunk:
        """The rows at ``index``, in that order."""
        return TradeChunk(*(column[index] for column in self._columns()))

    def _columns(self) -> tuple[np.ndarray, ...]:
        return (self.symbol, self.trade_id, self.first_id, self.last_id, self.price,
                self.qty, self.time_ms, self.buyer_maker)


class TradeFeed(Protocol):
    """Where an exchange's trades come from."""

    @property
    def symbols(self) -> Sequence[str]:
        """Every symbol the feed can produce (upper case, e.g. ``BTCUSDT``)."""

    @property
    def total(self) -> int | None:
        """How many trades the feed holds (None: unbounded)."""

    def start_ms(self, wall_ms: int) -> int:
        """Event time of the first trade (a generator starts at ``wall_ms``)."""

    def next_chunk(self) -> TradeChunk | None:
        """The next trades in order, or None when the feed is exhausted."""


def _open_text(path: Path) -> TextIO:
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise TradeFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise TradeFileError(f"{path}: cannot read ({exc.strerror})") from None
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8")
    raw.seek(0)
    return io.TextIOWrapper(raw, encoding="utf-8")


def _read_columns(path: Path) -> dict[str, list[str]]:
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise TradeFileError(f"{path}: empty file")
            columns: dict[str, list[str]] = {name.strip(): [] for name in header}
            names = list(columns)
            for row in reader:
                if len(row) != len(names):
                    raise TradeFileError(f"{path}:{reader.line_num}: expected {len(names)} "
                                         f"fields, found {len(row)}")
                for name, value in zip(names, row):
                    columns[name].append(value)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as exc:
        raise TradeFileError(f"{path}: not a readable CSV file ({exc})") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise TradeFileError(f"{path}: unknown columns {', '.join(names)}; expected trades "
                             f"({','.join(REQUIRED_COLUMNS)}[,is_buyer_maker]), missing "
                             f"{', '.join(missing)}")
    return columns


def _parse_file(path: Path, symbols: dict[str, int]) -> TradeChunk:
    cols = _read_columns(path)
    count = len(cols["time_ms"])
    try:
        sym = np.fromiter((symbols.setdefault(s.strip().upper(), len(symbols))
                           for s in cols["symbol"]), np.int32, count)
        trade_id = np.asarray(cols["trade_id"], np.int64)
        first_id = np.asarray(cols["first_trade_id"], np.int64) if "first_trade_id" in cols \
            else trade_id
        last_id = np.asarray(cols["last_trade_id"], np.int64) if "last_trade_id" in cols \
            else trade_id
        price = np.asarray(cols["price"], np.float64)
        qty = np.asarray(cols["qty"], np.float64)
        time_ms = np.asarray(cols["time_ms"], np.int64)
    except ValueError as exc:
        raise TradeFileError(f"{path}: bad number ({exc})") from None
    maker = cols.get("is_buyer_maker")
    buyer_maker = (np.fromiter((v.strip().lower() == "true" for v in maker), np.bool_, count)
                   if maker is not None else np.zeros(count, np.bool_))
    bad = np.flatnonzero(~(np.isfinite(price) & (price > 0) & np.isfinite(qty) & (qty >= 0)))
    if bad.size:
        raise TradeFileError(f"{path}: row {int(bad[0]) + 2}: price must be > 0 and qty >= 0")
    return TradeChunk(sym, trade_id, first_id, last_id, price, qty, time_ms, buyer_maker)


def merge_chunks(chunks: Iterable[TradeChunk]) -> TradeChunk:
    """One chunk in (time, trade id, symbol) order."""
    parts = list(chunks)
    merged = TradeChunk(*(np.concatenate(cols) for cols in zip(*(c._columns() for c in parts))))
    order = np.lexsort((merged.symbol, merged.trade_id, merged.time_ms))
    return merged.take(order)


class RecordedFeed:
    """Recorded trade files, merged; one chunk holds them all."""

    def __init__(self, chunk: TradeChunk, symbols: Sequence[str]) -> None:
        self._chunk: TradeChunk | None = chunk
        self._symbols = tuple(symbols)
        self._total = len(chunk)
        self._first_ms = int(chunk.time_ms[0]) if len(chunk) else 0

    @classmethod
    def from_files(cls, paths: Sequence[str | Path]) -> RecordedFeed:
        """Load and merge ``paths``; raises ``TradeFileError`` on any bad file."""
        if not paths:
            raise TradeFileError("no trade files given")
        symbols: dict[str, int] = {}
        chunks = [_parse_file(Path(p), symbols) for p in paths]
        merged = merge_chunks(chunks)
        if not len(merged):
            raise TradeFileError(f"{', '.join(map(str, paths))}: no trades")
        _check_ids(merged, list(symbols))
        return cls(merged, list(symbols))

    @property
    def symbols(self) -> Sequence[str]:
        return self._symbols

    @property
    def total(self) -> int | None:
        return self._total

    def start_ms(self, wall_ms: int) -> int:
        return self._first_ms

    def next_chunk(self) -> TradeChunk | None:
        chunk, self._chunk = self._chunk, None
        return chunk


def _check_ids(chunk: TradeChunk, symbols: list[str]) -> None:
    """Per symbol, trade ids must increase with time (ids are the paging keys of aggTrades)."""
    for index, name in enumerate(symbols):
        ids = chunk.trade_id[chunk.symbol == index]
        steps = np.diff(ids)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            at = int(ids[bad[0] + 1])
            problem = "appears twice" if steps[bad[0]] == 0 else "goes backwards in time"
            raise TradeFileError(f"{name}: trade id {at} {problem} (overlapping files, or "
                                 "files of different venues?)")
