"""The embedded default store: one SQLite file (WAL, ``synchronous=NORMAL``).

Each connection is a plain ``sqlite3`` connection owned by a thread of its own
(``SqliteWorker``), which runs the calls handed to it in order; the event loop never
touches it. Writes go through one connection, one transaction at a time (an
``asyncio.Lock`` plus ``BEGIN IMMEDIATE``, which also excludes other processes on
the same file), so alert ids are taken and committed in the same order. A
transaction given as a whole (``_in_transaction``: the alert commit) runs whole on
the writer's thread, BEGIN to COMMIT in one hand-over, instead of one per
statement. Reads use a second connection and, thanks to WAL, never wait for a
write and see committed data only; each read runs whole on the reader's thread (no
other statement in between), so it sees every commit made before it was issued.
An in-memory database (``":memory:"``) has a single connection, so its reads
take the write lock as well.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, TypeVar

import structlog

from alerts.errors import UnavailableError
from alerts.storage._codec import Row
from alerts.storage._sql import Clock, Connection, SqlStore
from alerts.storage._sqlite_worker import SqliteWorker
from alerts.storage.base import BatchWrite
from alerts.storage.records import AlertRecord

MEMORY = ":memory:"
_BUSY_TIMEOUT_MS = 5000
#: The writer checkpoints the WAL itself once it holds this many pages (~40 MB); see
#: ``_Checkpointer``.
WRITER_CHECKPOINT_PAGES = 10_000
#: The background checkpoint runs at most this often.
CHECKPOINT_INTERVAL_S = 0.5

log = structlog.get_logger("alerts.storage")

T = TypeVar("T")
E = TypeVar("E")


@lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """``$n`` placeholders as SQLite's numbered ``?n``."""
    return re.sub(r"\$(\d+)", r"?\1", sql)


def _complete(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (one over a ``_DirectConnection``)."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a SQLite transaction body awaited something other than its connection")


class _DirectConnection(Connection):
    """``Connection`` over a ``sqlite3`` connection, on its own thread: no await suspends."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return self._conn.execute(_placeholders(sql), args).fetchall()

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: object) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: object) -> int:
        return max(self._conn.execute(_placeholders(sql), args).rowcount, 0)

    async def executemany(self, sql: str, args: Sequence[Sequence[object]]) -> None:
        self._conn.executemany(_placeholders(sql), args)


def _statement(conn: sqlite3.Connection,
               statement: Callable[..., Coroutine[Any, Any, T]], args: tuple[Any, ...]) -> T:
    return _complete(statement(_DirectConnection(conn), *args))


def _transaction(conn: sqlite3.Connection,
                 body: Callable[[Connection], Coroutine[Any, Any, T]]) -> T:
    """``body`` in one write transaction, run whole on the connection's thread."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = _complete(body(_DirectConnection(conn)))
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise
    return result


def _produce_and_commit(
        conn: sqlite3.Connection, produce: Callable[[], tuple[BatchWrite, E]],
        body_of: Callable[[BatchWrite], Callable[[Connection], Coroutine[Any, Any, T]]],
) -> tuple[T, E]:
    """``produce()``, then its write in one transaction, both on the connection's thread."""
    write, extra = produce()
    return _transaction(conn, body_of(write)), extra


def _connect(path: str, role: str) -> sqlite3.Connection:
    """A connection for the ``role`` "writer", "reader" or "checkpointer"."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if path != MEMORY:
            if role == "writer":
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}")
            conn.execute("PRAGMA synchronous = NORMAL")
        if role == "reader":
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class _Checkpointer:
    """Copies the WAL into the database file beside the writer, on a connection of its own.

    SQLite checkpoints in the COMMIT that takes the WAL past ``wal_autocheckpoint``
    pages, and that COMMIT waits for the copy and its two fsyncs (at 20k ticks/s: ~15
    ms every half second, the tail of tick -> alert). Here a PASSIVE checkpoint, started
    after a commit at most every ``CHECKPOINT_INTERVAL_S`` and never two at once, does
    that work while the writer goes on. The writer's own checkpoint, at
    ``WRITER_CHECKPOINT_PAGES`` (every ~5 s at that load), is left the pages since the
    last one, though it still waits for its fsyncs: it is what lets the WAL start over
    while commits keep coming (a transaction restarts it only when every page was
    copied, which a checkpoint that overlapped a commit never achieves), and it keeps
    the WAL bounded should this one fall behind.
    """

    def __init__(self, worker: SqliteWorker) -> None:
        self._worker = worker
        self._next_s = 0.0
        self._running: asyncio.Future[None] | None = None

    def committed(self) -> None:
        """After a commit: start a checkpoint unless one runs or one started lately."""
        now = time.monotonic()
        if self._running is not None or now < self._next_s:
            return
        self._next_s = now + CHECKPOINT_INTERVAL_S
        self._running = self._worker.submit(_checkpoint)
        self._running.add_done_callback(self._finished)

    def _finished(self, done: asyncio.Future[None]) -> None:
        self._running = None
        if not done.cancelled() and (exc := done.exception()) is not None:
            log.warning("background WAL checkpoint failed; the writer's own will do it",
                        error=str(exc))

    async def close(self) -> None:
        if self._running is not None:
            await asyncio.wait([self._running])  # a failure is logged by _finished
        await self._worker.close()


class _SqliteConnection(Connection):
    """``Connection`` used from the event loop: each statement is one call on the thread."""

    def __init__(self, worker: SqliteWorker) -> None:
        self._worker = worker

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        # One call on the connection's thread: execute, fetch every row, release the cursor.
        # As separate calls, another task's statement could run in between and read inside
        # this statement's still-open snapshot, missing commits made before it was issued.
        return await self._worker.call(_statement, _DirectConnection.fetch, (sql, *args))

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        return await self._worker.call(_statement, _DirectConnection.fetchrow, (sql, *args))

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self._worker.call(_statement, _DirectConnection.fetchval, (sql, *args))

    async def execute(self, sql: str, *args: object) -> int:
        return await self._worker.call(_statement, _DirectConnection.execute, (sql, *args))

    async def executemany(self, sql: str, args: Sequence[Sequence[object]]) -> None:
        await self._worker.call(_statement, _DirectConnection.executemany, (sql, args))


class SqliteStore(SqlStore):
    """A ``Store`` in a SQLite file, or in memory for ``":memory:"``."""

    dialect = "sqlite"

    def __init__(self, path: str, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.path = path
        self._writer: SqliteWorker | None = None
        self._reader: SqliteWorker | None = None
        self._checkpointer: _Checkpointer | None = None
        self._write_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            self._writer = await self._connect("writer")
            if self.path != MEMORY:
                self._reader = await self._connect("reader")
                self._checkpointer = _Checkpointer(await self._connect("checkpointer"))
        except sqlite3.Error as exc:
            await self.close()
            raise UnavailableError(
                f"cannot open the SQLite database {self.path}: {exc}",
                metadata={"path": self.path},
            ) from None
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def _connect(self, role: str) -> SqliteWorker:
        return await SqliteWorker.open(functools.partial(_connect, self.path, role),
                                       name=f"alerts-sqlite-{role}",
                                       what=f"the SQLite store {self.path}")

    async def close(self) -> None:
        async with self._write_lock:
            checkpointer, reader, writer = self._checkpointer, self._reader, self._writer
            self._checkpointer, self._reader, self._writer = None, None, None
            if checkpointer is not None:
                await checkpointer.close()
            if reader is not None:
                await reader.close()
            if writer is not None:
                await writer.close()

    def _writer_or_raise(self) -> SqliteWorker:
        if self._writer is None:
            raise UnavailableError(f"the SQLite store {self.path} is not open")
        return self._writer

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Connection]:
        if self._reader is not None:
            yield _SqliteConnection(self._reader)
            return
        async with self._write_lock:
            yield _SqliteConnection(self._writer_or_raise())

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Connection]:
        async with self._write_lock:
            worker = self._writer_or_raise()
            tx = _SqliteConnection(worker)
            try:
                await tx.execute("BEGIN IMMEDIATE")
                yield tx
                await tx.execute("COMMIT")
                self._committed()
            except BaseException:
                # Queued behind whatever this task left running (even when it was cancelled
                # mid-statement), and a no-op unless a transaction is open by then.
                await worker.call(sqlite3.Connection.rollback)
                raise

    async def _in_transaction(self, body: Callable[[Connection], Coroutine[Any, Any, T]]) -> T:
        return await self._write_whole(_transaction, body)

    async def commit_produced(
        self, produce: Callable[[], tuple[BatchWrite, E]], executor: Executor
    ) -> tuple[list[AlertRecord], E]:
        """``produce`` runs on the writer's thread, right before its transaction."""
        return await self._write_whole(_produce_and_commit, produce, self._commit_body)

    async def _write_whole(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)``, a whole write transaction, in one hand-over."""
        async with self._write_lock:
            result = await self._writer_or_raise().call(fn, *args)
            self._committed()
            return result

    def _committed(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.committed()
