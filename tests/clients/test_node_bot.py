"""The Node.js example bot (clients/node/bot.js), built from proto/ alone, against a real server."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pytest
from alerts_client import AlertsClient

from alerts.v1 import rules_pb2, service_pb2
from tests.support.server import running_server, server_config

NODE_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"
WAIT = 30.0


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` binary, with clients/node's packages installed (once per session)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = "node" if node is None else "npm"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} is not installed, and CI must run the Node.js bot test")
        pytest.skip(f"{missing} is not installed: the Node.js bot cannot run here")
    done = subprocess.run([npm, "install", "--no-package-lock", "--no-audit", "--no-fund"],
                          cwd=NODE_DIR, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"npm install failed:\n{done.stdout}\n{done.stderr}"
    return node


class Lines:
    """Reads a stream's lines in a thread; ``wait_for`` returns the first matching one."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, match: Callable[[str], bool], timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"no matching line in {timeout} s; saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"the output ended; saw {self.seen}")
            self.seen.append(line)
            if match(line):
                return line

    def rest(self) -> list[str]:
        """Every line, once the stream has ended."""
        self._thread.join(WAIT)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return self.seen


def run_bot(node: str, *args: str, stderr: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([node, str(NODE_DIR / "bot.js"), *args], stdout=subprocess.PIPE,
                            stderr=stderr, text=True)


@pytest.fixture
def stopping() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)


def iso(alert_time: object) -> str:
    ms = alert_time.ToMilliseconds()  # type: ignore[attr-defined]
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_node_bot_prints_the_alerts_the_server_lists(node: str, tmp_path: Path,
                                                     stopping: list[subprocess.Popen[str]]
                                                     ) -> None:
    with (running_server(server_config(tmp_path)) as (server, stub),
          open(tmp_path / "bot.err", "w+") as err):
        proc = run_bot(node, "--server", server.target, "--symbol", "test:AAA",
                       "--condition", "price > 100", "--mode", "EVERY_TIME", "--count", "3",
                       stderr=err)
        stopping.append(proc)
        assert proc.stdout is not None
        lines = Lines(proc.stdout)
        lines.wait_for(lambda line: line == "READY")

        base = int(time.time() * 1000) - 20_000      # 2 s apart: past the 1 s default cooldown
        prices = [99.0, 101.0, 102.0, 103.0]
        with AlertsClient(server.target) as client:
            reply = client.publish_ticks("node-test", [
                ("test:AAA", base + 2000 * i, p, 1.0, i + 1) for i, p in enumerate(prices)])
        assert reply.accepted_count == 4
        code = proc.wait(WAIT)
        err.seek(0)
        assert code == 0, err.read()

        listed = stub.ListAlerts(service_pb2.ListAlertsRequest()).alerts
        rules = stub.ListRules(service_pb2.ListRulesRequest()).rules
    assert len(rules) == 1 and rules[0].trigger_mode == rules_pb2.TRIGGER_MODE_EVERY_TIME
    assert [a.price for a in listed] == [101.0, 102.0, 103.0]
    assert {a.rule for a in listed} == {rules[0].name}
    printed = [line for line in lines.rest() if line.startswith("ALERT ")]
    assert printed == [f"ALERT {a.id} {a.symbol} {iso(a.event_time)} {a.message}"
                       for a in listed]


def test_node_bot_reports_a_bad_rule_with_its_field_violation(
        node: str, tmp_path: Path) -> None:
    with running_server(server_config(tmp_path)) as (server, _):
        done = subprocess.run(
            [node, str(NODE_DIR / "bot.js"), "--server", server.target, "--symbol", "test:AAA",
             "--condition", "price >> 100"],
            capture_output=True, text=True, timeout=WAIT, check=False)
    assert done.returncode == 1
    assert "INVALID_ARGUMENT [INVALID_RULE]" in done.stderr
    assert "rule.condition_text: 1:8:" in done.stderr
