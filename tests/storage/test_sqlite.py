"""The SQLite back end's own machinery: transactions run whole on the writer's thread, and
the WAL is copied into the database file beside the writer (and stays bounded)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from alerts.storage import open_store, sqlite
from alerts.storage._sql import Connection
from alerts.storage.sqlite import SqliteStore
from tests.storage.test_store import alert

pytestmark = pytest.mark.asyncio


async def test_a_transaction_body_that_waits_on_anything_else_is_refused_and_rolled_back(
        tmp_path: Path) -> None:
    async with await open_store(f"sqlite:///{tmp_path}/alerts.db") as store:
        assert isinstance(store, SqliteStore)

        async def body(tx: Connection) -> None:
            await tx.execute("INSERT INTO watermarks (source, watermark_ms) VALUES ('s', 1)")
            await asyncio.sleep(0)

        with pytest.raises(RuntimeError, match="awaited something other than its connection"):
            await store._in_transaction(body)
        assert await store.watermarks() == {}
        [stored] = await store.commit_batch([alert(0)], [], {"s": 2})
        assert stored.alert_id == 1 and await store.watermarks() == {"s": 2}


async def test_commits_reach_the_database_file_without_the_writers_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite, "WRITER_CHECKPOINT_PAGES", 1_000_000)
    monkeypatch.setattr(sqlite, "CHECKPOINT_INTERVAL_S", 0.0)
    path = tmp_path / "alerts.db"
    async with await open_store(f"sqlite:///{path}") as store:
        await store.commit_batch([alert(0)], [], {})
        deadline = time.monotonic() + 10
        while _alerts_in_database_file(path) < 1:
            assert time.monotonic() < deadline, "the background checkpoint never copied"
            await store.commit_batch([], [], {"s": 1})    # a commit starts a checkpoint
        assert os.path.getsize(f"{path}-wal") > 0         # the WAL was not reset: copied


def _alerts_in_database_file(path: Path) -> int:
    """Alerts in the database file alone (a copy without its WAL: what a checkpoint wrote)."""
    copy = path.with_name("copy.db")
    copy.write_bytes(path.read_bytes())
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
    except sqlite3.DatabaseError:   # no table yet, or copied halfway through a checkpoint
        return 0
    finally:
        conn.close()
        copy.unlink()


async def test_the_wal_stays_bounded_while_commits_keep_coming(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def largest_wal(name: str) -> int:
        path = tmp_path / name
        async with await open_store(f"sqlite:///{path}") as store:
            largest = 0
            for i in range(600):
                await store.commit_batch([alert(i, message="x" * 4000)], [], {"s": i})
                largest = max(largest, os.path.getsize(f"{path}-wal"))
            assert len(await store.list_alerts("alice", limit=1000)) == 600
        return largest

    # never checkpointed: the WAL holds every commit
    monkeypatch.setattr(sqlite, "WRITER_CHECKPOINT_PAGES", 0)
    monkeypatch.setattr(sqlite, "CHECKPOINT_INTERVAL_S", 1e9)
    unbounded = await largest_wal("never.db")
    # the background checkpoint as often as it can, the writer's own past 100 pages: the
    # WAL starts over again and again (how soon depends on how the two overlap, so the
    # bound is loose: on this box 1.1-3.6 MB against 21 MB)
    monkeypatch.setattr(sqlite, "WRITER_CHECKPOINT_PAGES", 100)
    monkeypatch.setattr(sqlite, "CHECKPOINT_INTERVAL_S", 0.0)
    bounded = await largest_wal("checkpointed.db")
    assert bounded < unbounded / 4
