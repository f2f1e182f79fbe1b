"""``alerts serve`` as a user runs it: where it listens, a clean stop, one-line failures."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alerts.v1 import rules_pb2, service_pb2, service_pb2_grpc

SERVE = [sys.executable, "-m", "alerts.cli", "serve", "--metrics-listen", "",
         "--ws-listen", "127.0.0.1:0"]


def test_serve_prints_where_it_listens_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen([*SERVE, "--grpc-listen", "127.0.0.1:0",
                             "--store", f"sqlite:///{tmp_path / 'a.db'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("alerts: gRPC on 127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split(",")[0])
        assert ", WebSocket on ws://127.0.0.1:" in line, line
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                              timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()


def _one_line_failure(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line_failure([*SERVE, "--grpc-listen", f"127.0.0.1:{port}",
                                  "--store", f"sqlite:///{tmp_path / 'a.db'}"])
    assert line == (f"alerts: error: cannot listen on 127.0.0.1:{port}: the address is in use "
                    "or not valid here")


def test_unreachable_database_is_one_line_and_exit_2() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # nothing listens there once closed
    line = _one_line_failure([*SERVE, "--grpc-listen", "127.0.0.1:0",
                              "--store", f"postgresql://postgres@127.0.0.1:{port}/test"])
    assert line.startswith(f"alerts: error: cannot reach PostgreSQL at 127.0.0.1:{port}")


def test_bad_setting_in_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "alerts.toml"
    cfg.write_text('grpc_listen = "127.0.0.1:0"\nfrobnicate = 1\n')
    line = _one_line_failure([*SERVE, "--config", str(cfg)])
    assert line == f"alerts: error: config file {cfg}: unknown setting 'frobnicate'"


def test_websocket_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line_failure([*SERVE, "--grpc-listen", "127.0.0.1:0",
                                  "--ws-listen", f"127.0.0.1:{port}",
                                  "--store", f"sqlite:///{tmp_path / 'a.db'}"])
    assert line.startswith(f"alerts: error: cannot listen for WebSocket on 127.0.0.1:{port}: ")
    assert "address already in use" in line


def test_a_short_websocket_secret_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "alerts.toml"
    cfg.write_text('ws_jwt_secret = "too-short"\n')
    line = _one_line_failure([*SERVE, "--config", str(cfg), "--grpc-listen", "127.0.0.1:0",
                              "--store", f"sqlite:///{tmp_path / 'a.db'}"])
    assert line == ("alerts: error: ws_jwt_secret: at least 32 bytes are needed for HS256 "
                    "(got 9)")


def test_a_websocket_replay_limit_below_1_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "alerts.toml"
    cfg.write_text(f'ws_jwt_secret = "{"k" * 32}"\nws_replay_limit = 0\n')
    line = _one_line_failure([*SERVE, "--config", str(cfg), "--grpc-listen", "127.0.0.1:0",
                              "--ws-listen", "127.0.0.1:0",
                              "--store", f"sqlite:///{tmp_path / 'a.db'}"])
    assert line == "alerts: error: ws_replay_limit must be >= 1"


def test_rules_and_tail_commands_against_a_server(tmp_path: Path) -> None:
    from tests.support.server import running_server, server_config

    with running_server(server_config(tmp_path)) as (server, _):
        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "alerts.cli", *args[:1], "--server",
                                   server.target, *args[1:]], capture_output=True, text=True,
                                  timeout=60, check=False)
        made = cli("rules", "create", "--symbol", "test:A", "--condition", "price > 0",
                   "--mode", "EVERY_TIME", "--id", "cli-rule")
        assert (made.returncode, made.stdout) == (0, "rules/cli-rule\n"), made.stderr
        listed = cli("rules", "list")
        assert listed.stdout.split("\t")[:2] == ["rules/cli-rule", "test:A"]
        assert '"conditionText": "price > 0"' in cli("rules", "get", "cli-rule").stdout
        assert cli("rules", "list", "--filter", "symbol = test:B").stdout == ""
        assert cli("rules", "list", "--filter", "NOT symbol = test:B", "--order-by",
                   "display_name desc").stdout.startswith("rules/cli-rule\t")
        bad_filter = cli("rules", "list", "--filter", "symbol = test:A OR")
        assert bad_filter.returncode == 2
        assert bad_filter.stderr.startswith("alerts: error: INVALID_ARGUMENT: filter: 1:19: expected a field ")
        checked = cli("rules", "validate", "--symbol", "test:A", "--condition",
                      "rsi(14,1h)>100")
        assert (checked.returncode, checked.stdout) == (0, "rsi(14, 1h) > 100\n")
        assert checked.stderr.startswith("warning: CONSTANT_CONDITION: 1:1: ")
        assert checked.stderr.rstrip().endswith("(rule.condition_text)")
        bad = cli("rules", "create", "--symbol", "X", "--condition", "price >")
        assert bad.returncode == 2
        assert bad.stderr.startswith("alerts: error: INVALID_ARGUMENT: 1:8: ")
        banded = cli("rules", "create", "--symbol", "test:B", "--condition", "price > 1",
                     "--id", "banded", "--cooldown", "2.5", "--max-fires", "3", "--hold-for",
                     "0.25", "--hysteresis", "0.5", "--message", "{{symbol}} up")
        assert banded.returncode == 0, banded.stderr
        got = cli("rules", "get", "banded").stdout
        for part in ('"cooldown": "2.500s"', '"maxFires": 3', '"holdFor": "0.250s"',
                     '"hysteresis": 0.5', '"messageTemplate": "{{symbol}} up"'):
            assert part in got, (part, got)
        refused = cli("rules", "create", "--symbol", "test:B", "--condition", "price > 1",
                      "--mode", "EVERY_TIME", "--hysteresis", "0.5")
        assert refused.returncode == 2
        assert refused.stderr.startswith("alerts: error: INVALID_ARGUMENT: mode EVERY_TIME never")
        assert cli("rules", "delete", "banded").returncode == 0
        tail = subprocess.Popen([sys.executable, "-m", "alerts.cli", "tail", "--server",
                                 server.target, "--resume-after", "0"],
                                stdout=subprocess.PIPE, text=True)
        try:
            from tests.api.test_streams import publish, ts

            with grpc.insecure_channel(server.target) as channel:
                publish(service_pb2_grpc.AlertServiceStub(channel), 1)
            assert tail.stdout is not None
            fields = tail.stdout.readline().split("\t")
            assert fields[0] == "1" and fields[2] == "test:A" and fields[3] == "rules/cli-rule"
            # a SYSTEM alert shows the resource it concerns where a rule alert has its rule
            with grpc.insecure_channel(server.target) as channel:
                stub = service_pb2_grpc.AlertServiceStub(channel)
                stub.CreateRule(service_pb2.CreateRuleRequest(rule_id="lapse", rule=rules_pb2.Rule(
                    symbol="test:L", condition_text="price > 5", expire_time=ts(1_000))))
                publish(stub, 1, start=5, symbol="test:L")
            fields = tail.stdout.readline().split("\t")
            assert fields[2:4] == ["test:L", "rules/lapse"] and "rule expired" in fields[4]
        finally:
            tail.kill()
            tail.wait()
        paused = cli("rules", "pause", "cli-rule")
        assert (paused.returncode, paused.stdout) == (0, "rules/cli-rule\tSTATE_PAUSED\n")
        resumed = cli("rules", "resume", "cli-rule")
        assert resumed.returncode == 0 and "STATE_PAUSED" not in resumed.stdout
        missing = cli("rules", "pause", "no-such-rule")
        assert missing.returncode == 2 and missing.stderr.startswith("alerts: error: NOT_FOUND")
        assert cli("rules", "list", "--filter", "state = EXPIRED").stdout.startswith(
            "rules/lapse\ttest:L\tSTATE_EXPIRED\t")
        assert cli("rules", "delete", "cli-rule").returncode == 0
        assert cli("rules", "delete", "lapse").returncode == 0
        assert cli("rules", "list").stdout == ""


def test_market_sources_this_build_cannot_make_are_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text('market_sources = true\nmarket_routes = "binance=nowhere"\n')
    line = _one_line_failure([*SERVE, "--config", str(config), "--grpc-listen", "127.0.0.1:0",
                              "--store", f"sqlite:///{tmp_path / 'a.db'}"])
    assert line.startswith("alerts: error: market_routes names source(s) this build cannot "
                           "make: nowhere"), line


def test_an_unreachable_exchange_is_unhealthy_not_fatal(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]          # nothing listens there once closed
    config = tmp_path / "alerts.toml"
    config.write_text(f'market_sources = true\nmarket_routes = "binance=binance"\n'
                      f'binance_ws_url = "ws://127.0.0.1:{dead}"\n'
                      f'binance_rest_url = "http://127.0.0.1:{dead}"\n')
    proc = subprocess.Popen([*SERVE, "--config", str(config), "--grpc-listen", "127.0.0.1:0",
                             "--store", f"sqlite:///{tmp_path / 'a.db'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("alerts: gRPC on 127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split(",")[0])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
                health_pb2.HealthCheckResponse.SERVING
            stub = service_pb2_grpc.AlertServiceStub(channel)
            stub.CreateRule(service_pb2.CreateRuleRequest(rule=rules_pb2.Rule(
                symbol="BTCUSDT", condition_text="price > 1")), timeout=10)
            watch = health.Watch(health_pb2.HealthCheckRequest(
                service="alerts.v1.source.binance"), timeout=30)
            statuses = [next(watch).status]
            while statuses[-1] != health_pb2.HealthCheckResponse.NOT_SERVING:
                statuses.append(next(watch).status)
            watch.cancel()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
