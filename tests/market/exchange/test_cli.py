"""``alerts exchange replay|synthetic``: the start line, a working server, one-line errors."""

from __future__ import annotations

import gzip
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from alerts.cli import main

_LINE = re.compile(r"^exchange: ws (ws://\S+) rest (http://\S+) \((spot|usdm), (\d+) symbols, "
                   r"speed ([\d.]+)\)$")


def _trades_file(tmp_path: Path) -> Path:
    rows = ["symbol,trade_id,price,qty,time_ms,is_buyer_maker",
            "AAAUSDT,1,10,1,60000,false", "AAAUSDT,2,11,2,61000,true", "BBBUSDT,7,3,1,62000,true"]
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress("\n".join(rows).encode()))
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("alerts: error: ")
    return err


def test_missing_file_is_one_line_and_exit_2(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exchange", "replay", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv: no such file" in _one_error_line(capsys)


def test_unknown_columns_are_one_line_and_exit_2(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.csv"
    path.write_text("symbol,when,price\nA,1,2\n")
    assert main(["exchange", "replay", str(path)]) == 2
    assert "unknown columns symbol, when, price" in _one_error_line(capsys)


def test_bad_numbers_and_listen_addresses(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("symbol,trade_id,price,qty,time_ms\nA,1,abc,1,5\n")
    assert main(["exchange", "replay", str(path)]) == 2
    assert "bad number" in _one_error_line(capsys)
    assert main(["exchange", "synthetic", "--listen", "localhost"]) == 2
    assert "expected HOST:PORT" in _one_error_line(capsys)
    assert main(["exchange", "replay", str(_trades_file(tmp_path)), "--speed", "-2"]) == 2
    assert "speed must be >= 0" in _one_error_line(capsys)


@pytest.mark.parametrize("args", [["replay", "{file}", "--speed", "0", "--venue", "usdm"],
                                  ["synthetic", "--symbols", "3", "--seed", "4"]])
def test_serves_until_interrupted(tmp_path: Path, args: list[str]) -> None:
    argv = [a.replace("{file}", str(_trades_file(tmp_path))) for a in args]
    proc = subprocess.Popen([sys.executable, "-m", "alerts.cli", "exchange", *argv,
                             "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        match = _LINE.match(first)
        assert match, first
        venue = match.group(3)
        prefix = "/fapi/v1" if venue == "usdm" else "/api/v3"
        info = httpx.get(match.group(2) + prefix + "/exchangeInfo", timeout=10).json()
        assert len(info["symbols"]) == int(match.group(4))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "exchange: stopping" in out and "Traceback" not in err
