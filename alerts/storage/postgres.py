"""The production store: PostgreSQL through an asyncpg connection pool.

Transactions run at READ COMMITTED. Alert ids come from the single row of
``alert_counter``, not from a sequence: a sequence hands out numbers when they
are drawn, so two committers could commit ids 6 then 5 and a reader that saw 6
would later see 5. ``commit_batch`` instead first updates the counter row, which
row-locks it until the transaction ends: the next committer waits, then (READ
COMMITTED re-reads the row after the wait) continues from the committed last id.
PostgreSQL makes a transaction visible before it releases its locks, so ids are
issued and become visible in the same order, and the counter survives pruning.

Alerts of a batch go in with one statement over ``unnest`` arrays.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from alerts.errors import InvalidArgumentError, UnavailableError
from alerts.storage import _codec
from alerts.storage._codec import Row
from alerts.storage._sql import Clock, Connection, SqlStore
from alerts.storage.records import AlertRecord, NewAlert

CONNECT_TIMEOUT_S = 5.0
_MIGRATION_LOCK_KEY = 0x616C_6572_7473_0001  # "alerts" + 1: one migrator at a time

_INSERT_ALERTS = f"""
INSERT INTO alerts ({_codec.ALERT_COLUMNS})
SELECT $1::bigint + row_number() OVER (ORDER BY t.ord) - 1, t.owner, t.rule_id, t.symbol,
       t.kind, t.timeframe, t.bar_open_ms, t.operand_values, t.message, t.condition_text,
       t.event_time_ms, t.receive_time_ms, t.decide_time_ms, t.trade_id, t.fire_rank, t.price,
       t.details, t.rule_display_name, t.rule_labels, t.channels, $2::bigint
FROM (
    SELECT DISTINCT ON (u.owner, u.rule_id, u.symbol, u.event_time_ms, u.fire_rank) u.*
    FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[],
                $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[],
                $14::bigint[], $15::bigint[], $16::bigint[], $17::float8[], $18::text[],
                $19::text[], $20::text[], $21::text[])
         WITH ORDINALITY AS u(owner, rule_id, symbol, kind, timeframe, bar_open_ms,
                              operand_values, message, condition_text, event_time_ms,
                              receive_time_ms, decide_time_ms, trade_id, fire_rank, price,
                              details, rule_display_name, rule_labels, channels, ord)
    ORDER BY u.owner, u.rule_id, u.symbol, u.event_time_ms, u.fire_rank, u.ord
) AS t
WHERE NOT EXISTS (
    SELECT 1 FROM alerts a
    WHERE a.owner = t.owner AND a.rule_id = t.rule_id AND a.symbol = t.symbol
      AND a.event_time_ms = t.event_time_ms AND a.fire_rank = t.fire_rank)
ORDER BY t.ord
ON CONFLICT DO NOTHING
RETURNING alert_id, owner, rule_id, symbol, event_time_ms, fire_rank
"""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def server_address(dsn: str) -> str:
    """``host:port`` of a PostgreSQL URL, for messages (never the credentials)."""
    parts = urllib.parse.urlsplit(dsn)
    query = urllib.parse.parse_qs(parts.query)
    host = parts.hostname or query.get("host", ["localhost"])[-1]
    try:
        port = parts.port or int(query.get("port", ["5432"])[-1])
    except ValueError:
        port = 5432
    return f"{host}:{port}"


class _PgConnection(Connection):
    """``Connection`` over an asyncpg connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return list(await self._conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        row: Row | None = await self._conn.fetchrow(sql, *args)
        return row

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self._conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: object) -> int:
        status: str = await self._conn.execute(sql, *args)
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def executemany(self, sql: str, args: Sequence[Sequence[object]]) -> None:
        await self._conn.executemany(sql, args)


class PostgresStore(SqlStore):
    """A ``Store`` in a PostgreSQL database (``postgresql://user@host:port/db``)."""

    dialect = "postgres"

    def __init__(
        self, dsn: str, *, clock: Clock | None = None, min_size: int = 1, max_size: int = 10
    ) -> None:
        super().__init__(clock=clock)
        self._dsn = dsn
        self.address = server_address(dsn)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({self.address!r})"

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=CONNECT_TIMEOUT_S,
            )
        except asyncpg.ClientConfigurationError as exc:
            raise InvalidArgumentError(
                f"bad PostgreSQL URL for {self.address}: {_one_line(exc)}"
            ) from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise UnavailableError(
                f"cannot reach PostgreSQL at {self.address}: {_one_line(exc)}",
                metadata={"address": self.address},
            ) from None
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _pool_or_raise(self) -> asyncpg.Pool:
        if self._pool is None:
            raise UnavailableError(f"the PostgreSQL store at {self.address} is not open")
        return self._pool

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Connection]:
        async with self._pool_or_raise().acquire() as conn:
            yield _PgConnection(conn)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Connection]:
        async with (
            self._pool_or_raise().acquire() as conn,
            conn.transaction(isolation="read_committed"),
        ):
            yield _PgConnection(conn)

    async def _lock_schema(self, tx: Connection) -> None:
        await tx.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)

    async def _insert_alerts(
        self, tx: Connection, alerts: Sequence[NewAlert], first_id: int, commit_time_ms: int
    ) -> list[AlertRecord]:
        if not alerts:
            return []
        columns = list(zip(*(_codec.alert_params(a, 0, 0)[1:-1] for a in alerts), strict=True))
        rows = await tx.fetch(_INSERT_ALERTS, first_id, commit_time_ms, *map(list, columns))
        first_of: dict[tuple[object, ...], NewAlert] = {}
        for alert in alerts:
            key = (alert.owner, alert.rule_id, alert.symbol, alert.event_time_ms, alert.rank)
            first_of.setdefault(key, alert)
        stored = [
            _codec.stored_alert(
                first_of[(r["owner"], r["rule_id"], r["symbol"], r["event_time_ms"],
                          r["fire_rank"])],
                int(r["alert_id"]),
                commit_time_ms,
            )
            for r in rows
        ]
        stored.sort(key=lambda a: a.alert_id)
        return stored
