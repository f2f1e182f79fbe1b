"""Loaders for the real market data in ``../shared/data`` (gzip CSV, read in place).

The folder is the sibling ``shared/data`` of the repository root (override with
the environment variable ``ALERTS_SHARED_DATA``). It is never copied into the
repository. Each loader returns a pandas ``DataFrame`` with a fresh
``RangeIndex`` and numeric columns as ``int64`` (times, ids, counts) or
``float64`` (prices, quantities, volumes); every ``*_ms`` column is Unix epoch
milliseconds, UTC. Files are parsed once per process (``functools.cache``); the
frames handed out are copy-on-write shallow copies, so a caller changing one
does not change what the next caller gets.

Tests that read the data call :func:`require_shared_data` (or use the
:func:`shared_data` fixture, imported into the test module): when the folder is
missing the test is skipped with the reason, except under ``CI=true``, where
it fails, because CI always has the data.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA_ENV = "ALERTS_SHARED_DATA"

KLINES_FILE = "binance_usdm_klines_1m_2026-02.csv.gz"
US_DAILY_FILE = "us_stocks_daily.csv.gz"
SP500_FILE = "index_daily_sp500.csv.gz"
US_TRADES_FILE = "us_stock_trades_20131008.csv.gz"
US_1M_FILE = "us_stocks_1m_2013-10.csv.gz"
XRPETH_FILE = "binance_spot_aggtrades_xrpeth_20191011.csv.gz"
SPOT_TRADES_FILE = "binance_spot_trades_20240808.csv.gz"
USDM_TRADES_FILE = "binance_usdm_trades_20240808.csv.gz"

#: Columns of every trades frame, in this order (extra columns may follow).
TRADE_COLUMNS: tuple[str, ...] = ("symbol", "trade_id", "price", "qty", "time_ms")
#: Columns of every bars frame, in this order (extra columns may follow).
BAR_COLUMNS: tuple[str, ...] = (
    "open_time_ms", "open", "high", "low", "close", "volume", "quote_volume", "trades",
)


def shared_data_dir() -> Path:
    """Where the shared data is expected (it may not exist)."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def shared_data_available() -> bool:
    """True when the data folder exists and holds the files the tests read."""
    root = shared_data_dir()
    return root.is_dir() and (root / KLINES_FILE).is_file()


def require_shared_data() -> Path:
    """Return the data folder, or skip the calling test (fail it when ``CI=true``)."""
    root = shared_data_dir()
    if shared_data_available():
        return root
    reason = (
        f"shared market data not found at {root} "
        f"(expected the repository's sibling shared/data, or set {DATA_ENV})"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + "; CI must have it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder; skips (or fails under CI=true) when it is absent."""
    return require_shared_data()


# --------------------------------------------------------------------------- reading


@functools.cache
def _read(name: str) -> pd.DataFrame:
    path = require_shared_data() / name
    frame = pd.read_csv(path, compression="gzip")
    frame.attrs["source_file"] = name
    return frame


def _copy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.copy(deep=False)


@functools.cache
def _split(name: str) -> dict[str, pd.DataFrame]:
    frame = _read(name)
    return {
        str(symbol): group.reset_index(drop=True)
        for symbol, group in frame.groupby("symbol", sort=True)
    }


def _symbol_frame(name: str, symbol: str) -> pd.DataFrame:
    parts = _split(name)
    if symbol not in parts:
        raise KeyError(f"{symbol!r} is not in {name}; it has {sorted(parts)}")
    return parts[symbol]


def _date_to_ms(dates: pd.Series) -> np.ndarray:
    """``YYYY-MM-DD`` strings -> epoch ms of that date 00:00 UTC."""
    days = pd.to_datetime(dates, format="%Y-%m-%d").to_numpy(dtype="datetime64[D]")
    return days.astype("datetime64[ms]").astype(np.int64)


# --------------------------------------------------------------------------- klines


@functools.cache
def _klines(symbol: str) -> pd.DataFrame:
    raw = _symbol_frame(KLINES_FILE, symbol)
    out = pd.DataFrame({
        "symbol": raw["symbol"].astype(str),
        "open_time_ms": raw["open_time_ms"].astype(np.int64),
        "open": raw["open"].astype(np.float64),
        "high": raw["high"].astype(np.float64),
        "low": raw["low"].astype(np.float64),
        "close": raw["close"].astype(np.float64),
        "volume": raw["volume"].astype(np.float64),
        "quote_volume": raw["quote_volume"].astype(np.float64),
        "trades": raw["trades"].astype(np.int64),
        "close_time_ms": raw["close_time_ms"].astype(np.int64),
        "taker_buy_volume": raw["taker_buy_volume"].astype(np.float64),
        "taker_buy_quote_volume": raw["taker_buy_quote_volume"].astype(np.float64),
    })
    _check_sorted(out["open_time_ms"], f"{KLINES_FILE}:{symbol}")
    return out


def binance_usdm_kline_symbols() -> list[str]:
    """Symbols of the Binance USD-M 1m klines (February 2026)."""
    return sorted(_split(KLINES_FILE))


def binance_usdm_klines(symbol: str) -> pd.DataFrame:
    """Binance USD-M 1m klines of one symbol (``BAR_COLUMNS`` + close time, taker volumes)."""
    return _copy(_klines(symbol))


# --------------------------------------------------------------------------- daily bars


def _daily(raw: pd.DataFrame, name: str) -> pd.DataFrame:
    out = pd.DataFrame({
        "symbol": raw["symbol"].astype(str),
        "open_time_ms": _date_to_ms(raw["date"]),
        "open": raw["open"].astype(np.float64),
        "high": raw["high"].astype(np.float64),
        "low": raw["low"].astype(np.float64),
        "close": raw["close"].astype(np.float64),
        "volume": raw["volume"].astype(np.float64),
        "date": raw["date"].astype(str),
    })
    if "adj_close" in raw:
        out["adj_close"] = raw["adj_close"].astype(np.float64)
    _check_sorted(out["open_time_ms"], name, strict=True)
    return out


@functools.cache
def _us_daily(symbol: str) -> pd.DataFrame:
    return _daily(_symbol_frame(US_DAILY_FILE, symbol), f"{US_DAILY_FILE}:{symbol}")


def us_stocks_daily_symbols() -> list[str]:
    """Symbols of the US daily bars (AAPL, BAC, GOOG, IBM, SPY)."""
    return sorted(_split(US_DAILY_FILE))


def us_stocks_daily(symbol: str) -> pd.DataFrame:
    """US equity daily bars; ``open_time_ms`` = the trading date at 00:00 UTC. Raw prices."""
    return _copy(_us_daily(symbol))


@functools.cache
def _sp500() -> pd.DataFrame:
    return _daily(_read(SP500_FILE), SP500_FILE)


def index_daily_sp500() -> pd.DataFrame:
    """S&P 500 (^GSPC) daily bars 1999-2018; ``open_time_ms`` = the date 00:00 UTC."""
    return _copy(_sp500())


# --------------------------------------------------------------------------- US 1m bars


@functools.cache
def _us_1m(symbol: str) -> pd.DataFrame:
    raw = _symbol_frame(US_1M_FILE, symbol)
    out = pd.DataFrame({
        "symbol": raw["symbol"].astype(str),
        "open_time_ms": raw["open_time_ms"].astype(np.int64),
        "open": raw["open"].astype(np.float64),
        "high": raw["high"].astype(np.float64),
        "low": raw["low"].astype(np.float64),
        "close": raw["close"].astype(np.float64),
        "volume": raw["volume"].astype(np.float64),
    })
    _check_sorted(out["open_time_ms"], f"{US_1M_FILE}:{symbol}", strict=True)
    return out


def us_stocks_1m_symbols() -> list[str]:
    return sorted(_split(US_1M_FILE))


def us_stocks_1m(symbol: str) -> pd.DataFrame:
    """Sparse US equity 1m bars (only minutes with trades), October 2013. No quote volume."""
    return _copy(_us_1m(symbol))


# --------------------------------------------------------------------------- trades


def _trades(raw: pd.DataFrame, name: str, id_column: str = "trade_id") -> pd.DataFrame:
    out = pd.DataFrame({
        "symbol": raw["symbol"].astype(str),
        "trade_id": raw[id_column].astype(np.int64),
        "price": raw["price"].astype(np.float64),
        "qty": raw["qty"].astype(np.float64),
        "time_ms": raw["time_ms"].astype(np.int64),
    })
    for extra in raw.columns:
        if extra not in out.columns and extra != id_column:
            out[extra] = raw[extra]
    _check_sorted(out["time_ms"], name)
    return out


@functools.cache
def _us_trades(symbol: str) -> pd.DataFrame:
    return _trades(_symbol_frame(US_TRADES_FILE, symbol), f"{US_TRADES_FILE}:{symbol}", "seq")


def us_stock_trade_symbols() -> list[str]:
    """Symbols of the US tick trades of 2013-10-08 (AIG, BAC, IBM, SPY)."""
    return sorted(_split(US_TRADES_FILE))


def us_stock_trades(symbol: str) -> pd.DataFrame:
    """US equity tick trades of 2013-10-08; ``trade_id`` is the file's 1-based ``seq``."""
    return _copy(_us_trades(symbol))


@functools.cache
def _xrpeth() -> pd.DataFrame:
    return _trades(_read(XRPETH_FILE), XRPETH_FILE)


def xrpeth_aggtrades() -> pd.DataFrame:
    """Binance spot XRPETH aggTrades, 2019-10-11..13; ``trade_id`` is the aggregate id."""
    return _copy(_xrpeth())


@functools.cache
def _binance_trades(name: str, symbol: str) -> pd.DataFrame:
    return _trades(_symbol_frame(name, symbol), f"{name}:{symbol}")


def binance_spot_trade_symbols() -> list[str]:
    return sorted(_split(SPOT_TRADES_FILE))


def binance_spot_trades(symbol: str) -> pd.DataFrame:
    """Binance spot raw trades (BTCUSDT or ETHUSDT), 2024-08-08 23:54 .. 00:05 UTC."""
    return _copy(_binance_trades(SPOT_TRADES_FILE, symbol))


def binance_usdm_trade_symbols() -> list[str]:
    return sorted(_split(USDM_TRADES_FILE))


def binance_usdm_trades(symbol: str) -> pd.DataFrame:
    """Binance USD-M perpetual raw trades (BTCUSDT or ETHUSDT), 2024-08-08 23:54 .. 00:00 UTC."""
    return _copy(_binance_trades(USDM_TRADES_FILE, symbol))


def trade_arrays(trades: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(time_ms int64, price float64, qty float64, trade_id int64)``, contiguous."""
    return (
        np.ascontiguousarray(trades["time_ms"].to_numpy(np.int64)),
        np.ascontiguousarray(trades["price"].to_numpy(np.float64)),
        np.ascontiguousarray(trades["qty"].to_numpy(np.float64)),
        np.ascontiguousarray(trades["trade_id"].to_numpy(np.int64)),
    )


def _check_sorted(times: pd.Series, name: str, *, strict: bool = False) -> None:
    diffs = np.diff(times.to_numpy(np.int64))
    bad = np.flatnonzero(diffs <= 0 if strict else diffs < 0)
    if bad.size:
        raise ValueError(f"{name}: times not increasing at row {int(bad[0]) + 1}")
