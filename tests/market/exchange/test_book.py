"""Kline queries on one symbol's trades against an independent pandas computation (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.market.exchange.book import Precision, SymbolBook
from alerts.market.exchange.intervals import parse_interval

_RULES = {"1m": "1min", "3m": "3min", "5m": "5min", "15m": "15min", "1h": "1h"}


@st.composite
def _case(draw: st.DrawFn) -> dict:
    count = draw(st.integers(1, 60))
    gaps = draw(st.lists(st.integers(0, 400_000), min_size=count, max_size=count))
    times = 1_700_000_000_000 + np.cumsum(gaps)
    prices = draw(st.lists(st.integers(1, 10_000), min_size=count, max_size=count))
    qtys = draw(st.lists(st.integers(0, 500), min_size=count, max_size=count))
    makers = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    end = int(times[-1])
    now = draw(st.integers(int(times[0]), end + 3_600_000))
    start = draw(st.none() | st.integers(int(times[0]) - 3_600_000, end + 600_000))
    stop = draw(st.none() | st.integers(int(times[0]) - 600_000, end + 3_600_000))
    return {"times": times.astype(np.int64), "prices": np.array(prices) / 100.0,
            "qtys": np.array(qtys) / 10.0, "makers": np.array(makers),
            "interval": draw(st.sampled_from(sorted(_RULES))), "now": now, "start": start,
            "end": stop, "limit": draw(st.integers(1, 40))}


def _reference(case: dict) -> pd.DataFrame:
    keep = case["times"] <= case["now"]
    frame = pd.DataFrame({"price": case["prices"][keep], "qty": case["qtys"][keep],
                          "taker": np.where(case["makers"][keep], 0.0, case["qtys"][keep])},
                         index=pd.to_datetime(case["times"][keep], unit="ms"))
    frame["quote"] = frame["price"] * frame["qty"]
    rule = _RULES[case["interval"]]
    now = pd.Timestamp(case["now"], unit="ms")
    bars = frame.resample(rule).agg({"price": ["first", "max", "min", "last", "count"],
                                     "qty": "sum", "quote": "sum", "taker": "sum"})
    bars.columns = ["open", "high", "low", "close", "trades", "volume", "quote", "taker"]
    full = pd.date_range(bars.index[0], now.floor(rule), freq=rule)
    bars = bars.reindex(full)
    bars["trades"] = bars["trades"].fillna(0).astype(int)
    bars[["volume", "quote", "taker"]] = bars[["volume", "quote", "taker"]].fillna(0.0)
    bars["close"] = bars["close"].ffill()
    for column in ("open", "high", "low"):
        bars[column] = bars[column].fillna(bars["close"])
    bars["open_ms"] = (bars.index - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
    if case["start"] is not None:
        bars = bars[bars["open_ms"] >= case["start"]]
    if case["end"] is not None:
        bars = bars[bars["open_ms"] <= case["end"]]
    return bars.head(case["limit"]) if case["start"] is not None else bars.tail(case["limit"])


@settings(max_examples=150, deadline=None)
@given(_case())
def test_klines_match_pandas(case: dict) -> None:
    book = SymbolBook("AAAUSDT", Precision())
    n = case["times"].size
    ids = np.arange(1, n + 1, dtype=np.int64)
    book.extend(case["times"], ids, ids, ids, case["prices"], case["qtys"], case["makers"])
    interval = parse_interval(case["interval"])
    assert interval is not None
    opens = book.bar_opens(interval, case["now"], start_ms=case["start"], end_ms=case["end"],
                           limit=case["limit"])
    got = book.bars(interval, opens, case["now"])
    ref = _reference(case)
    assert got.open_ms.tolist() == ref["open_ms"].tolist()
    assert got.trades.tolist() == ref["trades"].tolist()
    for column, ref_column in [("open", "open"), ("high", "high"), ("low", "low"),
                               ("close", "close")]:
        assert getattr(got, column).tolist() == ref[ref_column].tolist()
    for column, ref_column in [("volume", "volume"), ("quote_volume", "quote"),
                               ("taker_volume", "taker")]:
        np.testing.assert_allclose(getattr(got, column), ref[ref_column].to_numpy(),
                                   rtol=1e-12, atol=1e-9)
    empty = got.trades == 0
    assert np.all(got.first_id[empty] == -1) and np.all(got.last_id[empty] == -1)


def _ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


def test_week_and_month_alignment() -> None:
    week, month = parse_interval("1w"), parse_interval("1M")
    assert week is not None and month is not None and parse_interval("1W") is None
    assert week.floor(_ms("2024-08-08 23:54")) == _ms("2024-08-05")          # a Monday
    assert month.floor(_ms("2024-02-29 12:00")) == _ms("2024-02-01")
    assert month.next_open(_ms("2024-02-01")) == _ms("2024-03-01")
    assert month.opens(_ms("2023-11-01"), _ms("2024-02-01")).tolist() == [
        _ms("2023-11-01"), _ms("2023-12-01"), _ms("2024-01-01"), _ms("2024-02-01")]
    assert month.step_back(_ms("2024-02-01"), 3) == _ms("2023-11-01")
    assert month.ceil(_ms("2024-02-01 00:00:00.001")) == _ms("2024-03-01")
