"""The embedded default store: one SQLite file (WAL, ``synchronous=NORMAL``) via aiosqlite.

Writes go through one connection, one transaction at a time (an ``asyncio.Lock``
plus ``BEGIN IMMEDIATE``, which also excludes other processes on the same file),
so alert ids are taken and committed in the same order. Reads use a second
connection and, thanks to WAL, never wait for a write and see committed data only;
each read runs whole on the reader's thread (no other statement in between), so it
sees every commit made before it was issued.
An in-memory database (``":memory:"``) has a single connection, so its reads
take the write lock as well.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import aiosqlite

from alerts.errors import UnavailableError
from alerts.storage._codec import Row
from alerts.storage._sql import Clock, Connection, SqlStore

MEMORY = ":memory:"
_BUSY_TIMEOUT_MS = 5000


@lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """``$n`` placeholders as SQLite's numbered ``?n``."""
    return re.sub(r"\$(\d+)", r"?\1", sql)


class _SqliteConnection(Connection):
    """``Connection`` over an aiosqlite connection."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        # One call on the connection's thread: execute, fetch every row, release the cursor.
        # As separate calls, another task's statement could run in between and read inside
        # this statement's still-open snapshot, missing commits made before it was issued.
        return list(await self._conn.execute_fetchall(_placeholders(sql), args))

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: object) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: object) -> int:
        async with self._conn.execute(_placeholders(sql), args) as cursor:
            return max(cursor.rowcount, 0)

    async def executemany(self, sql: str, args: Sequence[Sequence[object]]) -> None:
        await self._conn.executemany(_placeholders(sql), args)


class SqliteStore(SqlStore):
    """A ``Store`` in a SQLite file, or in memory for ``":memory:"``."""

    dialect = "sqlite"

    def __init__(self, path: str, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            self._writer = await self._connect(writer=True)
            if self.path != MEMORY:
                self._reader = await self._connect(writer=False)
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

    async def _connect(self, *, writer: bool) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if self.path != MEMORY:
                if writer:
                    await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute("PRAGMA synchronous = NORMAL")
            if not writer:
                await conn.execute("PRAGMA query_only = ON")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        async with self._write_lock:
            reader, writer = self._reader, self._writer
            self._reader = self._writer = None
            if reader is not None:
                await reader.close()
            if writer is not None:
                await writer.close()

    def _writer_conn(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise UnavailableError(f"the SQLite store {self.path} is not open")
        return self._writer

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Connection]:
        if self._reader is not None:
            yield _SqliteConnection(self._reader)
            return
        async with self._write_lock:
            yield _SqliteConnection(self._writer_conn())

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Connection]:
        async with self._write_lock:
            conn = self._writer_conn()
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield _SqliteConnection(conn)
                await conn.execute("COMMIT")
            except BaseException:
                # Queued behind whatever this task left running (even when it was cancelled
                # mid-statement), and a no-op unless a transaction is open by then.
                await conn.rollback()
                raise
