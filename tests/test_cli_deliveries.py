"""``alerts deliveries list|redeliver`` against a real server and a real webhook endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.cli import main
from alerts.v1 import deliveries_pb2
from tests.support.delivery import (
    DELIVERED,
    deliveries,
    fire,
    prepare,
    receivers,
    stored_ids,
    wait_until,
)
from tests.support.server import running_server, server_config
from tests.support.webhook_receiver import ACCEPT, Behaviour, WebhookReceiver

__all__ = ["receivers"]
DEAD = deliveries_pb2.Delivery.STATE_DEAD


def test_list_shows_dead_letters_and_redeliver_sends_them_again(
        tmp_path: Path, receivers: list[WebhookReceiver], capsys: pytest.CaptureFixture[str]
) -> None:
    hook = receivers[0]
    hook.behaviour = Behaviour(status=410)          # gone: each delivery is dead at once
    store_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    prepare(store_url, [hook])
    config = server_config(tmp_path, store_url=store_url, webhook_allow="127.0.0.1")
    with running_server(config) as (server, stub):
        fire(stub, 3)
        ids = sorted(stored_ids(stub))
        wait_until(lambda: len(deliveries(stub, "hook-0", DEAD)) == 3, what="3 dead letters")
        capsys.readouterr()
        assert main(["deliveries", "--server", server.target, "list", "hook-0",
                     "--state", "dead"]) == 0
        rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
        assert [(int(r[0]), r[1], r[2], r[3]) for r in rows] == [
            (i, "DEAD", "1", "410") for i in ids]
        assert all(r[4].startswith("HTTP 410") for r in rows)

        hook.behaviour = ACCEPT
        assert main(["deliveries", "--server", server.target, "redeliver", "channels/hook-0",
                     "--alert", str(ids[0])]) == 0
        assert capsys.readouterr().out == "redelivered 1\n"
        hook.wait_accepted({ids[0]})
        wait_until(lambda: deliveries(stub, "hook-0")[0].state == DELIVERED)
        assert main(["deliveries", "--server", server.target, "list", "hook-0"]) == 0
        states = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()]
        assert states == ["DELIVERED", "DEAD", "DEAD"]
        assert main(["deliveries", "--server", server.target, "list", "nope"]) == 2
        assert "NOT_FOUND" in capsys.readouterr().err
