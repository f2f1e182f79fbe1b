"""The ``alerts`` command: validate and backtest, and one clear line with exit 2 on bad input."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from alerts.cli import main


def test_validate_prints_the_resolved_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "rsi(14, 5m) > 70 and volume_z(20, 1m) > 3"]) == 0
    out = capsys.readouterr().out
    assert "timeframe: 1m" in out
    assert "operand:   rsi(14, 5m)  [binance:BTCUSDT]" in out


def test_validate_error_names_the_position(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "rsi(14, 5m) > 70 and volme_z(20, 1m) > 3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("alerts: error: 1:22: unknown indicator 'volme_z'")
    assert err.count("\n") == 1


def test_backtest_over_a_trades_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.csv.gz"
    rows = ["symbol,trade_id,price,qty,time_ms,is_buyer_maker"]
    prices = [99, 101, 102, 98, 103]
    rows += [f"AAA,{i + 1},{p},1,{i * 1000},false" for i, p in enumerate(prices)]
    path.write_bytes(gzip.compress("\n".join(rows).encode()))
    assert main(["backtest", str(path), "--symbol", "test:AAA", "--rule", "price > 100"]) == 0
    out = capsys.readouterr()
    fired = [line.split("\t")[0] for line in out.out.splitlines()]
    assert fired == ["1000", "4000"]
    assert "5 accepted, 0 late, 0 duplicate, 0 invalid" in out.err


def test_backtest_refuses_unknown_columns(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    assert main(["backtest", str(path), "--symbol", "X", "--rule", "price > 1"]) == 2
    assert "unknown columns a, b" in capsys.readouterr().err


def test_console_script_bad_flag_exits_2_without_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "alerts.cli", "validate"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
