"""Trade files: layouts of ../shared/data, gzip or plain, merged over symbols by (time, trade id)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from alerts.market.exchange import RecordedFeed, TradeFileError
from tests.support.market_data import XRPETH_FILE, shared_data, xrpeth_aggtrades  # noqa: F401

HEADER = "symbol,trade_id,price,qty,time_ms,is_buyer_maker"


def _write(path: Path, rows: list[str], *, gz: bool) -> Path:
    text = "\n".join([HEADER, *rows]) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def test_files_merge_by_time_then_trade_id(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv.gz", ["BBB,5,2,1,1000,true", "BBB,6,2,1,3000,false"], gz=True)
    b = _write(tmp_path / "b.csv", ["AAA,9,1,1,1000,false", "AAA,10,1.5,2,2000,true",
                                    "CCC,1,7,1,1000,true"], gz=False)
    feed = RecordedFeed.from_files([a, b])
    assert list(feed.symbols) == ["BBB", "AAA", "CCC"] and feed.total == 5
    chunk = feed.next_chunk()
    assert chunk is not None and feed.next_chunk() is None
    names = [feed.symbols[i] for i in chunk.symbol]
    assert list(zip(chunk.time_ms.tolist(), chunk.trade_id.tolist(), names)) == [
        (1000, 1, "CCC"), (1000, 5, "BBB"), (1000, 9, "AAA"), (2000, 10, "AAA"),
        (3000, 6, "BBB")]
    assert chunk.buyer_maker.tolist() == [True, True, False, True, False]
    assert np.array_equal(chunk.first_id, chunk.trade_id)


@pytest.mark.data
def test_the_agg_trades_layout_keeps_first_and_last_ids(shared_data: Path) -> None:  # noqa: F811
    feed = RecordedFeed.from_files([shared_data / XRPETH_FILE])
    chunk = feed.next_chunk()
    ref = xrpeth_aggtrades()
    assert chunk is not None and list(feed.symbols) == ["XRPETH"]
    assert chunk.trade_id.tolist() == ref["trade_id"].tolist()
    assert chunk.first_id.tolist() == ref["first_trade_id"].tolist()
    assert chunk.last_id.tolist() == ref["last_trade_id"].tolist()


@pytest.mark.parametrize(("rows", "message"), [
    (["AAA,1,1,1,1000,true", "AAA,1,1,1,1000,true"], "AAA: trade id 1 appears twice"),
    (["AAA,2,1,1,1000,true", "AAA,1,1,1,2000,true"], "AAA: trade id 1 goes backwards in time"),
    (["AAA,1,-1,1,1000,true"], "row 2: price must be > 0 and qty >= 0"),
    (["AAA,1,1,1"], "expected 6 fields, found 4"),
])
def test_bad_rows_are_named(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(TradeFileError, match=message):
        RecordedFeed.from_files([_write(tmp_path / "t.csv", rows, gz=False)])


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TradeFileError, match="no such file"):
        RecordedFeed.from_files([tmp_path / "missing.csv.gz"])
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(b"symbol,trade_id\n")[:12])
    with pytest.raises(TradeFileError, match="not a readable CSV file"):
        RecordedFeed.from_files([broken])
    empty = tmp_path / "empty.csv"
    empty.write_text(HEADER + "\n")
    with pytest.raises(TradeFileError, match="no trades"):
        RecordedFeed.from_files([empty])
