"""``alerts channels ...`` against a real server: create, list, get, update, delete, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alerts.cli import main
from tests.support.server import running_server, server_config

DISCORD = "https://discord.com/api/webhooks/42/dIsCoRdToKeN"
TOKEN = "123456789:AAHsecretTelegramTokenXYZ_0123456789ab"


@pytest.fixture
def target(tmp_path: Path):  # type: ignore[no-untyped-def]
    with running_server(server_config(tmp_path, webhook_allow="127.0.0.0/8")) as (server, _):
        yield server


def run(target, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(["channels", "--server", target.target, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_channels_from_the_command_line(target, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(target, capsys, "create", "--id", "hook", "--webhook",
                       "http://127.0.0.1:8080/in", "--header", "X-Bot=grid", "--name", "Hook",
                       "--template", "{{symbol}}: {{message}}", "--label", "team=a")
    name, secret_line = out.splitlines()
    assert (code, name) == (0, "channels/hook")
    field, secret = secret_line.split("\t")
    assert field == "signing_secret" and secret.startswith("whsec_")
    assert target.call(target.app.store.get_channel("local", "hook")).secret == secret
    for args in (["--email", "a@example.com", "--email", "b@example.com", "--id", "mail"],
                 ["--sms", "+14155550100", "--id", "text"],
                 ["--discord", DISCORD, "--username", "bot", "--id", "disc"],
                 ["--telegram-token", TOKEN, "--telegram-chat", "@alerts_chan", "--id", "tg"],
                 ["--websocket", "--id", "ws", "--paused"]):
        code, out, err = run(target, capsys, "create", *args)
        assert code == 0 and out == f"channels/{args[-1 if args[-1] != '--paused' else -2]}\n", err
    code, out, _ = run(target, capsys, "list")
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[:3] for r in rows] == [
        ["channels/hook", "webhook", "ACTIVE"], ["channels/mail", "email", "ACTIVE"],
        ["channels/text", "sms", "ACTIVE"], ["channels/disc", "discord", "ACTIVE"],
        ["channels/tg", "telegram", "ACTIVE"], ["channels/ws", "websocket", "PAUSED"]]
    _, paused, _ = run(target, capsys, "list", "--filter", "paused = true")
    assert paused.split("\t")[0] == "channels/ws"
    code, out, _ = run(target, capsys, "get", "hook")
    got = json.loads(out)
    assert got["webhook"] == {"url": "http://127.0.0.1:8080/in", "headers": {"X-Bot": "grid"}}
    assert (got["displayName"], got["labels"]) == ("Hook", {"team": "a"})
    for cid, secret_text in (("disc", "dIsCoRdToKeN"), ("tg", "AAHsecret")):
        _, out, _ = run(target, capsys, "get", f"channels/{cid}")
        assert secret_text not in out
    etag = json.loads(run(target, capsys, "get", "mail")[1])["etag"]
    code, out, _ = run(target, capsys, "update", "mail", "--email", "c@example.com",
                       "--name", "desk", "--etag", etag)
    assert (code, out) == (0, "channels/mail\n")
    code, _, err = run(target, capsys, "update", "mail", "--name", "late", "--etag", etag)
    assert code == 2 and err.startswith("alerts: error: ABORTED")
    mail = json.loads(run(target, capsys, "get", "mail")[1])
    assert mail["email"]["toAddresses"] == ["c@example.com"] and mail["displayName"] == "desk"
    code, _, _ = run(target, capsys, "update", "hook", "--secret", "whsec_" + "QUFB" * 8)
    rec = target.call(target.app.store.get_channel("local", "hook"))
    assert code == 0 and rec.previous_secret == secret
    assert run(target, capsys, "delete", "mail")[0] == 0
    assert "channels/mail" not in run(target, capsys, "list")[1]


@pytest.mark.parametrize("args, message", [
    (["create", "--webhook", "https://10.1.1.1/x"],
     ("alerts: error: INVALID_ARGUMENT: channel.webhook.url: resolves to private address "
      "10.1.1.1")),
    (["create", "--email", "nope"], "alerts: error: INVALID_ARGUMENT: channel.email.to_addresses[0]"),
    (["create", "--name", "x"], "alerts: error: give the channel's kind"),
    (["create", "--sms", "+14155550100", "--email", "a@b.example"],
     "alerts: error: give the flags of one channel kind only"),
    (["create", "--websocket", "--label", "oops"], "alerts: error: --label takes KEY=VALUE"),
    (["get", "nope"], "alerts: error: NOT_FOUND: channel 'nope' not found"),
    (["update", "nope"], "alerts: error: nothing to change"),
    (["update", "nope", "--name", "x"], "alerts: error: NOT_FOUND"),
    (["delete", "Bad_Id"], "alerts: error: INVALID_ARGUMENT: name: expected channels/"),
])
def test_errors_are_one_line_and_exit_2(target, capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
                                        args: list[str], message: str) -> None:
    code, out, err = run(target, capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1, err


def test_a_channel_in_use_needs_force(target, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert run(target, capsys, "create", "--websocket", "--id", "ws")[0] == 0
    assert main(["rules", "--server", target.target, "create", "--symbol", "X", "--condition",
                 "price > 1", "--id", "r1", "--channel", "ws"]) == 0
    assert main(["rules", "--server", target.target, "create", "--symbol", "X", "--condition",
                 "price > 1", "--channel", "nope"]) == 2
    assert "rule.channels[0]: no channel 'channels/nope'" in capsys.readouterr().err
    code, _, err = run(target, capsys, "delete", "ws")
    assert code == 2 and "FAILED_PRECONDITION" in err and "r1" in err
    assert run(target, capsys, "delete", "ws", "--force")[0] == 0


def test_the_console_script_reports_an_unreachable_server_in_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "alerts.cli", "channels", "--server",
                           "127.0.0.1:1", "list"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("alerts: error: UNAVAILABLE") and proc.stderr.count("\n") == 1


def test_test_sends_one_message(target, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from tests.support.http_receiver import receiving

    with receiving() as endpoint:
        assert run(target, capsys, "create", "--id", "hook", "--webhook", endpoint.url)[0] == 0
        code, out, _ = run(target, capsys, "test", "hook", "--message", "from the CLI")
        assert code == 0 and out.startswith("delivered in ") and out.endswith(" ms\n")
        [request] = endpoint.wait_for(1)
        assert json.loads(request.body)["data"]["message"] == "from the CLI"
        endpoint.reply = lambda _: (410, {}, b"gone")
        code, out, err = run(target, capsys, "test", "hook")
        assert (code, out) == (1, "")
        assert err.startswith("alerts: not delivered: FAILED_PRECONDITION: ") and "410" in err
    code, _, err = run(target, capsys, "test", "nope")
    assert code == 2 and err.startswith("alerts: error: NOT_FOUND")
