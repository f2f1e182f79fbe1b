"""``SqlStore``: the ``Store`` semantics written once over a small connection interface.

SQL here is written with PostgreSQL's ``$1`` placeholders and in the subset both
back ends understand (``ON CONFLICT ... DO UPDATE``, ``RETURNING``, ``CAST``); the
SQLite back end rewrites ``$n`` to its ``?n``. Optional filters add fixed clauses
with their own placeholders: values always travel as parameters.

A back end supplies connections (``_read`` for single statements outside a
transaction, ``_write`` for a transaction) and may override ``_insert_alerts``,
``_lock_schema`` and ``_in_transaction``.

Commit order: every ``commit_batch`` starts by updating the single row of
``alert_counter`` (which holds the last issued id). That row lock serialises
committers until each commits, so ids are taken and made visible in the same order.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from alerts.errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from alerts.storage import _codec, _paging, migrations
from alerts.storage._codec import Row
from alerts.storage.base import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    REQUEST_ID_RETENTION_MS,
    BatchWrite,
    Store,
)
from alerts.storage.records import (
    DELIVERY_STATES,
    AlertRecord,
    AttemptOutcome,
    ChannelDeliveryStats,
    ChannelRecord,
    Checkpoint,
    DeliveryAttempt,
    DeliveryRecord,
    DueDelivery,
    NewAlert,
    RuleRecord,
    SubscriptionRecord,
    TriggerState,
)

T = TypeVar("T")

Clock = Callable[[], int]
"""Returns the current time in epoch milliseconds."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Connection(Protocol):
    """What ``SqlStore`` needs of a connection (``$n`` placeholders)."""

    async def fetch(self, sql: str, *args: object) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...

    async def fetchval(self, sql: str, *args: object) -> Any: ...

    async def execute(self, sql: str, *args: object) -> int:
        """Runs one statement; returns the number of rows it changed."""
        ...

    async def executemany(self, sql: str, args: Sequence[Sequence[object]]) -> None: ...


_INSERT_RULE = (
    f"INSERT INTO rules ({_codec.RULE_COLUMNS}) VALUES"
    " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
    " ON CONFLICT (owner, rule_id) DO NOTHING RETURNING rule_id"
)
_INSERT_CHANNEL = (
    f"INSERT INTO channels ({_codec.CHANNEL_COLUMNS}) VALUES"
    " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    " ON CONFLICT (owner, channel_id) DO NOTHING RETURNING channel_id"
)
_UPDATE_CHANNEL = (
    "UPDATE channels SET display_name = $3, kind = $4, settings = $5, secret = $6,"
    " previous_secret = $7, previous_secret_expire_ms = $8, message_template = $9,"
    " paused = $10, labels = $11, create_time_ms = $12, update_time_ms = $13, etag = $14,"
    " revision = $15 WHERE owner = $1 AND channel_id = $2"
)
# A no-op update: locks the row (PostgreSQL) until the transaction ends, and reads it.
_LOCK_CHANNEL = (
    "UPDATE channels SET revision = revision WHERE owner = $1 AND channel_id = $2"
    f" RETURNING {_codec.CHANNEL_COLUMNS}"
)
_CHANNEL_PREFIX = "channels/"
_UPDATE_RULE = (
    "UPDATE rules SET display_name = $3, symbol = $4, condition_text = $5, trigger_mode = $6,"
    " timeframe = $7, cooldown_ms = $8, expire_time_ms = $9, max_fires = $10, hysteresis = $11,"
    " hold_for_ms = $12, message_template = $13, channels = $14, labels = $15, paused = $16,"
    " create_time_ms = $17, update_time_ms = $18, etag = $19, revision = $20"
    " WHERE owner = $1 AND rule_id = $2"
)
_INSERT_ALERT = (
    f"INSERT INTO alerts ({_codec.ALERT_COLUMNS}) VALUES"
    " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,"
    " $19, $20, $21) ON CONFLICT DO NOTHING RETURNING alert_id"
)
_INSERT_DELIVERY = (
    f"INSERT INTO deliveries ({_codec.DELIVERY_COLUMNS}) VALUES"
    " ($1, $2, $3, 'PENDING', 0, 0, $4, $4, NULL, NULL, 0, '', NULL)"
    " ON CONFLICT DO NOTHING"
)
_ALERT_COLUMNS_OF_A = ", ".join(f"a.{c.strip()}" for c in _codec.ALERT_COLUMNS.split(","))
_DUE_DELIVERIES = (
    f"SELECT {_ALERT_COLUMNS_OF_A}, d.channel_id, d.state, d.attempts, d.attempt_seq,"
    " d.create_time_ms, d.next_attempt_ms, d.first_attempt_ms, d.last_attempt_ms,"
    " d.last_status, d.last_error, d.done_time_ms"
    " FROM deliveries d JOIN alerts a ON a.alert_id = d.alert_id"
    " WHERE d.owner = $1 AND d.channel_id = $2 AND d.state = 'PENDING'"
    " AND d.next_attempt_ms <= $3 ORDER BY d.alert_id LIMIT $4"
)
_RECORD_ATTEMPT = (
    "UPDATE deliveries SET state = $5, attempts = attempts + 1, attempt_seq = $4,"
    " next_attempt_ms = $6, first_attempt_ms = COALESCE(first_attempt_ms, $7),"
    " last_attempt_ms = $7, last_status = $8, last_error = $9,"
    " done_time_ms = CASE WHEN $5 = 'PENDING' THEN NULL ELSE CAST($10 AS BIGINT) END"
    " WHERE owner = $1 AND channel_id = $2 AND alert_id = $3 AND state = 'PENDING'"
    " AND attempt_seq = $4 - 1"
)
_INSERT_ATTEMPT = (
    f"INSERT INTO delivery_attempts (owner, channel_id, alert_id, {_codec.ATTEMPT_COLUMNS})"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)
_UPSERT_STATE = (
    f"INSERT INTO trigger_states ({_codec.STATE_COLUMNS})"
    " SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS BIGINT), CAST($4 AS BIGINT),"
    " CAST($5 AS BOOLEAN), CAST($6 AS BOOLEAN), CAST($7 AS BOOLEAN)"
    " WHERE EXISTS (SELECT 1 FROM rules WHERE owner = $1 AND rule_id = $2)"
    " ON CONFLICT (owner, rule_id) DO UPDATE SET fires = excluded.fires,"
    " last_fire_ms = excluded.last_fire_ms, armed = excluded.armed,"
    " completed = excluded.completed, expired = excluded.expired"
)
_UPSERT_WATERMARK = (
    "INSERT INTO watermarks (source, watermark_ms) VALUES ($1, $2)"
    " ON CONFLICT (source) DO UPDATE SET watermark_ms = excluded.watermark_ms"
)
_UPSERT_SUBSCRIPTION = (
    f"INSERT INTO subscriptions ({_codec.SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (owner, subscription_id) DO UPDATE SET acked_id = excluded.acked_id,"
    " filters = excluded.filters, max_unacked = excluded.max_unacked,"
    " update_time_ms = excluded.update_time_ms"
)
_UPSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (id, blob, watermarks, create_time_ms) VALUES (1, $1, $2, $3)"
    " ON CONFLICT (id) DO UPDATE SET blob = excluded.blob, watermarks = excluded.watermarks,"
    " create_time_ms = excluded.create_time_ms"
)


def _rule_not_found(rule_id: str) -> NotFoundError:
    # The same words whether the rule is missing or another owner's.
    return NotFoundError(f"rule {rule_id!r} not found", metadata={"rule_id": rule_id})


def _etag_mismatch(rule_id: str) -> AbortedError:
    return AbortedError(
        f"rule {rule_id!r} was changed since the etag given was read",
        reason="ETAG_MISMATCH",
        violations=(FieldViolation("etag", "does not match the rule's current etag"),),
        metadata={"rule_id": rule_id},
    )


def _channel_not_found(channel_id: str) -> NotFoundError:
    return NotFoundError(
        f"channel {channel_id!r} not found", metadata={"channel_id": channel_id}
    )


def _channel_etag_mismatch(channel_id: str) -> AbortedError:
    return AbortedError(
        f"channel {channel_id!r} was changed since the etag given was read",
        reason="ETAG_MISMATCH",
        violations=(FieldViolation("etag", "does not match the channel's current etag"),),
        metadata={"channel_id": channel_id},
    )


def _key_token_valid(key: list[object]) -> bool:
    return len(key) == 2 and type(key[0]) is int and isinstance(key[1], str)


def _size(page_size: int) -> int:
    if page_size < 0:
        raise InvalidArgumentError(
            "page_size must not be negative",
            violations=(FieldViolation("page_size", "must not be negative"),),
        )
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


@dataclass(frozen=True)
class _Kind:
    """A resource table with client-chosen ids and AIP-155 request ids (``<noun>_requests``)."""

    noun: str
    table: str
    id_column: str
    columns: str
    from_row: Callable[[Row], Any]


_RULES = _Kind("rule", "rules", "rule_id", _codec.RULE_COLUMNS, _codec.rule_from_row)
_CHANNELS = _Kind("channel", "channels", "channel_id", _codec.CHANNEL_COLUMNS,
                  _codec.channel_from_row)


class SqlStore(Store):
    """A ``Store`` over SQL; subclasses provide connections and the dialect name."""

    dialect: str

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or wall_clock_ms

    # -- back-end hooks --------------------------------------------------------------------

    @abstractmethod
    def _read(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for reads; each statement sees committed data only."""

    @abstractmethod
    def _write(self) -> AbstractAsyncContextManager[Connection]:
        """A connection inside a transaction, committed on normal exit, else rolled back."""

    async def _in_transaction(self, body: Callable[[Connection], Coroutine[Any, Any, T]]) -> T:
        """``body(tx)`` in one write transaction, like ``_write``.

        ``body`` awaits nothing but ``tx``, so a back end may run it whole elsewhere
        (SQLite: on its connection's thread, in one hand-over instead of one per statement).
        """
        async with self._write() as tx:
            return await body(tx)

    async def _lock_schema(self, tx: Connection) -> None:
        """Keeps concurrent openers from migrating at the same time (if ``_write`` does not)."""

    async def _insert_alerts(
        self, tx: Connection, alerts: Sequence[NewAlert], first_id: int, commit_time_ms: int
    ) -> list[AlertRecord]:
        """Insert the alerts not yet stored, with ids from ``first_id`` on, in input order.

        Runs inside ``commit_batch``'s transaction, which holds the counter row lock.
        """
        stored: list[AlertRecord] = []
        next_id = first_id
        for alert in alerts:
            params = _codec.alert_params(alert, next_id, commit_time_ms)
            if await tx.fetchrow(_INSERT_ALERT, *params) is not None:
                stored.append(_codec.stored_alert(alert, next_id, commit_time_ms))
                next_id += 1
        return stored

    # -- schema ----------------------------------------------------------------------------

    async def _migrate(self) -> None:
        steps = migrations.MIGRATIONS
        latest = migrations.latest_version(steps)
        async with self._write() as tx:
            await self._lock_schema(tx)
            await tx.execute(migrations.render(migrations.BOOTSTRAP, self.dialect))
            current = await tx.fetchval("SELECT MAX(version) FROM schema_version") or 0
            if current > latest:
                raise FailedPreconditionError(
                    f"the database's schema is version {current}, newer than the {latest}"
                    " this build knows; run a newer build or restore a matching backup",
                    reason="SCHEMA_TOO_NEW",
                    metadata={"schema_version": str(current), "known_version": str(latest)},
                )
            for step in steps:
                if step.version <= current:
                    continue
                for statement in step.render(self.dialect):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_version (version, description, applied_time_ms)"
                    " VALUES ($1, $2, $3)",
                    step.version,
                    step.description,
                    self._clock(),
                )

    async def schema_version(self) -> int:
        """The schema version the database is at (for diagnostics)."""
        async with self._read() as conn:
            return int(await conn.fetchval("SELECT MAX(version) FROM schema_version") or 0)

    async def _create_once(self, tx: Connection, kind: _Kind, owner: str, resource_id: str,
                           request_id: str | None, now: int,
                           insert: Callable[[], Awaitable[bool]]) -> Any:
        """A create with an optional request id (AIP-155), inside the transaction ``tx``.

        A request id seen for the owner within ``REQUEST_ID_RETENTION_MS`` returns the
        resource that request created (``NotFoundError`` if it has since been deleted) and
        inserts nothing; otherwise ``insert()`` runs (False: the id is taken, which is
        ``AlreadyExistsError`` unless a concurrent twin of the request committed meanwhile)
        and the request id is remembered. Returns None when this call inserted.
        """
        requests = f"{kind.noun}_requests"
        if request_id:
            await tx.execute(f"DELETE FROM {requests} WHERE create_time_ms < $1",
                             now - REQUEST_ID_RETENTION_MS)
            earlier = await self._of_request(tx, kind, owner, request_id)
            if earlier is not None:
                return earlier
        if not await insert():
            if request_id:
                earlier = await self._of_request(tx, kind, owner, request_id)
                if earlier is not None:
                    return earlier
            raise AlreadyExistsError(f"{kind.noun} {resource_id!r} already exists",
                                     metadata={kind.id_column: resource_id})
        if request_id:
            await tx.execute(
                f"INSERT INTO {requests} (owner, request_id, {kind.id_column}, create_time_ms)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (owner, request_id) DO NOTHING",
                owner, request_id, resource_id, now)
        return None

    async def _of_request(self, tx: Connection, kind: _Kind, owner: str,
                          request_id: str) -> Any:
        """The resource a remembered request id created, or None."""
        resource_id = await tx.fetchval(
            f"SELECT {kind.id_column} FROM {kind.noun}_requests"
            " WHERE owner = $1 AND request_id = $2 AND create_time_ms >= $3",
            owner, request_id, self._clock() - REQUEST_ID_RETENTION_MS)
        if resource_id is None:
            return None
        row = await tx.fetchrow(
            f"SELECT {kind.columns} FROM {kind.table} WHERE owner = $1 AND {kind.id_column} = $2",
            owner, resource_id)
        if row is None:
            raise NotFoundError(
                f"{kind.noun} {resource_id!r}, created by request {request_id!r}, has since"
                " been deleted", metadata={kind.id_column: resource_id})
        return kind.from_row(row)

    # -- rules -----------------------------------------------------------------------------

    async def create_rule(self, rec: RuleRecord, request_id: str | None = None) -> RuleRecord:
        async with self._write() as tx:
            now = self._clock()  # read in the transaction: create times follow commit order
            stored = replace(
                rec,
                labels=_codec.sorted_labels(rec.labels),
                create_time_ms=now,
                update_time_ms=now,
                revision=1,
            )
            stored = replace(stored, etag=_codec.rule_etag(stored))

            async def insert() -> bool:
                await self._check_channels(tx, rec)
                return await tx.fetchrow(_INSERT_RULE, *_codec.rule_params(stored)) is not None
            earlier = await self._create_once(tx, _RULES, rec.owner, rec.rule_id, request_id,
                                              now, insert)
        return stored if earlier is None else earlier

    async def get_rule(self, owner: str, rule_id: str) -> RuleRecord:
        async with self._read() as conn:
            row = await conn.fetchrow(
                f"SELECT {_codec.RULE_COLUMNS} FROM rules WHERE owner = $1 AND rule_id = $2",
                owner,
                rule_id,
            )
        if row is None:
            raise _rule_not_found(rule_id)
        return _codec.rule_from_row(row)

    async def list_rules(
        self,
        owner: str,
        *,
        page_size: int,
        page_token: str | None,
        symbol: str | None = None,
        paused: bool | None = None,
    ) -> tuple[list[RuleRecord], str | None]:
        size = _size(page_size)
        scope = [owner, symbol, paused]
        args: list[object] = [owner]
        where = ["owner = $1"]
        if page_token:
            after_time, after_id = _paging.decode_token(page_token, scope, _key_token_valid)
            args += [after_time, after_id]
            where.append(
                f"(create_time_ms > ${len(args) - 1}"
                f" OR (create_time_ms = ${len(args) - 1} AND rule_id > ${len(args)}))"
            )
        if symbol is not None:
            args.append(symbol)
            where.append(f"symbol = ${len(args)}")
        if paused is not None:
            args.append(paused)
            where.append(f"paused = ${len(args)}")
        args.append(size + 1)
        sql = (
            f"SELECT {_codec.RULE_COLUMNS} FROM rules WHERE {' AND '.join(where)}"
            f" ORDER BY create_time_ms, rule_id LIMIT ${len(args)}"
        )
        async with self._read() as conn:
            rows = await conn.fetch(sql, *args)
        rules = [_codec.rule_from_row(row) for row in rows[:size]]
        if len(rows) <= size:
            return rules, None
        last = rules[-1]
        return rules, _paging.encode_token(scope, last.create_time_ms, last.rule_id)

    async def count_rules(self, owner: str) -> int:
        async with self._read() as conn:
            return int(await conn.fetchval("SELECT COUNT(*) FROM rules WHERE owner = $1", owner))

    async def update_rule(self, rec: RuleRecord, *, expected_etag: str | None) -> RuleRecord:
        async with self._write() as tx:
            # Channels first, as delete_channel locks them: one lock order, no deadlock.
            await self._check_channels(tx, rec)
            # A no-op update locks the row (PostgreSQL) and reads its latest committed state.
            row = await tx.fetchrow(
                "UPDATE rules SET revision = revision WHERE owner = $1 AND rule_id = $2"
                f" RETURNING {_codec.RULE_COLUMNS}",
                rec.owner,
                rec.rule_id,
            )
            if row is None:
                raise _rule_not_found(rec.rule_id)
            current = _codec.rule_from_row(row)
            if expected_etag is not None and expected_etag != current.etag:
                raise _etag_mismatch(rec.rule_id)
            stored = replace(
                rec,
                labels=_codec.sorted_labels(rec.labels),
                create_time_ms=current.create_time_ms,
                update_time_ms=max(self._clock(), current.update_time_ms),
                revision=current.revision + 1,
            )
            stored = replace(stored, etag=_codec.rule_etag(stored))
            await tx.execute(_UPDATE_RULE, *_codec.rule_params(stored))
        return stored

    async def _check_channels(self, tx: Connection, rec: RuleRecord) -> None:
        """Every channel the rule names exists; their rows stay locked until commit, so a
        concurrent ``delete_channel`` either sees this rule or ran before the check. Locks
        are taken in channel id order (two rule changes never wait on each other in a ring)."""
        for i, name in sorted(enumerate(rec.channels), key=lambda pair: pair[1]):
            channel_id = name.removeprefix(_CHANNEL_PREFIX)
            if not name.startswith(_CHANNEL_PREFIX) or await tx.fetchrow(
                _LOCK_CHANNEL, rec.owner, channel_id
            ) is None:
                why = f"no channel {name!r}"
                raise InvalidArgumentError(
                    f"rule.channels[{i}]: {why}",
                    reason="UNKNOWN_CHANNEL",
                    violations=(FieldViolation(f"rule.channels[{i}]", why),),
                    metadata={"channel": name},
                )

    async def delete_rule(
        self, owner: str, rule_id: str, *, expected_etag: str | None = None
    ) -> None:
        args: list[object] = [owner, rule_id]
        sql = "DELETE FROM rules WHERE owner = $1 AND rule_id = $2"
        if expected_etag is not None:
            args.append(expected_etag)
            sql += " AND etag = $3"
        async with self._write() as tx:
            if await tx.execute(sql, *args) != 1:
                exists = await tx.fetchval(
                    "SELECT 1 FROM rules WHERE owner = $1 AND rule_id = $2", owner, rule_id
                )
                raise _etag_mismatch(rule_id) if exists else _rule_not_found(rule_id)
            await tx.execute(
                "DELETE FROM trigger_states WHERE owner = $1 AND rule_id = $2", owner, rule_id
            )

    async def all_rules(self) -> list[RuleRecord]:
        async with self._read() as conn:
            rows = await conn.fetch(
                f"SELECT {_codec.RULE_COLUMNS} FROM rules ORDER BY owner, create_time_ms, rule_id"
            )
        return [_codec.rule_from_row(row) for row in rows]

    # -- channels --------------------------------------------------------------------------

    async def create_channel(
        self, rec: ChannelRecord, request_id: str | None = None
    ) -> ChannelRecord:
        async with self._write() as tx:
            now = self._clock()
            stored = replace(
                rec,
                labels=_codec.sorted_labels(rec.labels),
                create_time_ms=now,
                update_time_ms=now,
                revision=1,
            )
            stored = replace(stored, etag=_codec.channel_etag(stored))

            async def insert() -> bool:
                return await tx.fetchrow(_INSERT_CHANNEL, *_codec.channel_params(stored)) is not None
            earlier = await self._create_once(tx, _CHANNELS, rec.owner, rec.channel_id,
                                              request_id, now, insert)
        return stored if earlier is None else earlier

    async def get_channel(self, owner: str, channel_id: str) -> ChannelRecord:
        async with self._read() as conn:
            row = await conn.fetchrow(
                f"SELECT {_codec.CHANNEL_COLUMNS} FROM channels"
                " WHERE owner = $1 AND channel_id = $2",
                owner,
                channel_id,
            )
        if row is None:
            raise _channel_not_found(channel_id)
        return _codec.channel_from_row(row)

    async def list_channels(
        self,
        owner: str,
        *,
        page_size: int,
        page_token: str | None,
        paused: bool | None = None,
    ) -> tuple[list[ChannelRecord], str | None]:
        size = _size(page_size)
        scope = ["channels", owner, paused]
        args: list[object] = [owner]
        where = ["owner = $1"]
        if page_token:
            after_time, after_id = _paging.decode_token(page_token, scope, _key_token_valid)
            args += [after_time, after_id]
            where.append(
                f"(create_time_ms > ${len(args) - 1}"
                f" OR (create_time_ms = ${len(args) - 1} AND channel_id > ${len(args)}))"
            )
        if paused is not None:
            args.append(paused)
            where.append(f"paused = ${len(args)}")
        args.append(size + 1)
        sql = (
            f"SELECT {_codec.CHANNEL_COLUMNS} FROM channels WHERE {' AND '.join(where)}"
            f" ORDER BY create_time_ms, channel_id LIMIT ${len(args)}"
        )
        async with self._read() as conn:
            rows = await conn.fetch(sql, *args)
        channels = [_codec.channel_from_row(row) for row in rows[:size]]
        if len(rows) <= size:
            return channels, None
        last = channels[-1]
        return channels, _paging.encode_token(scope, last.create_time_ms, last.channel_id)

    async def update_channel(
        self, rec: ChannelRecord, *, expected_etag: str | None
    ) -> ChannelRecord:
        async with self._write() as tx:
            row = await tx.fetchrow(_LOCK_CHANNEL, rec.owner, rec.channel_id)
            if row is None:
                raise _channel_not_found(rec.channel_id)
            current = _codec.channel_from_row(row)
            if expected_etag is not None and expected_etag != current.etag:
                raise _channel_etag_mismatch(rec.channel_id)
            if rec.kind != current.kind:
                why = f"a {current.kind} channel cannot become a {rec.kind} channel"
                raise InvalidArgumentError(
                    f"channel: {why}",
                    reason="CHANNEL_KIND_CHANGED",
                    violations=(FieldViolation("channel", why),),
                )
            stored = replace(
                rec,
                labels=_codec.sorted_labels(rec.labels),
                create_time_ms=current.create_time_ms,
                update_time_ms=max(self._clock(), current.update_time_ms),
                revision=current.revision + 1,
            )
            stored = replace(stored, etag=_codec.channel_etag(stored))
            await tx.execute(_UPDATE_CHANNEL, *_codec.channel_params(stored))
        return stored

    async def delete_channel(
        self,
        owner: str,
        channel_id: str,
        *,
        expected_etag: str | None = None,
        force: bool = False,
    ) -> list[RuleRecord]:
        name = _CHANNEL_PREFIX + channel_id
        async with self._write() as tx:
            row = await tx.fetchrow(_LOCK_CHANNEL, owner, channel_id)
            if row is None:
                raise _channel_not_found(channel_id)
            if expected_etag is not None and expected_etag != row["etag"]:
                raise _channel_etag_mismatch(channel_id)
            # channel ids have no LIKE wildcards; the JSON is then checked exactly
            rows = await tx.fetch(
                f"SELECT {_codec.RULE_COLUMNS} FROM rules WHERE owner = $1 AND channels LIKE $2"
                " ORDER BY create_time_ms, rule_id",
                owner,
                f'%"{name}"%',
            )
            users = [r for r in map(_codec.rule_from_row, rows) if name in r.channels]
            if users and not force:
                ids = [r.rule_id for r in users]
                raise FailedPreconditionError(
                    f"channel {channel_id!r} is named by {len(ids)} rule(s): "
                    f"{', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}; remove it from "
                    "them first or delete with force",
                    reason="CHANNEL_IN_USE",
                    metadata={"channel_id": channel_id, "rules": ",".join(ids)},
                )
            changed: list[RuleRecord] = []
            for rule in users:
                stored = replace(
                    rule,
                    channels=tuple(c for c in rule.channels if c != name),
                    update_time_ms=max(self._clock(), rule.update_time_ms),
                    revision=rule.revision + 1,
                )
                stored = replace(stored, etag=_codec.rule_etag(stored))
                await tx.execute(_UPDATE_RULE, *_codec.rule_params(stored))
                changed.append(stored)
            await tx.execute(
                "DELETE FROM channels WHERE owner = $1 AND channel_id = $2", owner, channel_id
            )
        return changed

    # -- alerts ----------------------------------------------------------------------------

    async def commit_batch(
        self,
        alerts: Sequence[NewAlert],
        states: Sequence[TriggerState],
        watermarks: Mapping[str, int],
    ) -> list[AlertRecord]:
        return await self._in_transaction(self._commit_body(BatchWrite(alerts, states, watermarks)))

    def _commit_body(self, write: BatchWrite
                     ) -> Callable[[Connection], Coroutine[Any, Any, list[AlertRecord]]]:
        """``commit_batch``'s transaction body for ``write``."""
        alerts, states, watermarks = write

        async def body(tx: Connection) -> list[AlertRecord]:
            # Taking the counter row first serialises committers (see the module docstring).
            counter = await tx.fetchrow(
                "UPDATE alert_counter SET last_id = last_id WHERE id = 1"
                " RETURNING last_id, last_commit_ms"
            )
            assert counter is not None, "alert_counter has its one row from migration 1"
            last_id, last_commit_ms = int(counter["last_id"]), int(counter["last_commit_ms"])
            commit_time_ms = max(self._clock(), last_commit_ms)
            stored = await self._insert_alerts(tx, alerts, last_id + 1, commit_time_ms)
            deliveries = [
                (rec.owner, channel_id, rec.alert_id, commit_time_ms)
                for rec in stored
                for channel_id in dict.fromkeys(rec.channels)
            ]
            if deliveries:
                await tx.executemany(_INSERT_DELIVERY, deliveries)
            if states:
                await tx.executemany(_UPSERT_STATE, [_codec.state_params(s) for s in states])
            if watermarks:
                await tx.executemany(
                    _UPSERT_WATERMARK, [(str(k), int(v)) for k, v in watermarks.items()]
                )
            if stored:
                await tx.execute(
                    "UPDATE alert_counter SET last_id = $1, last_commit_ms = $2 WHERE id = 1",
                    stored[-1].alert_id,
                    commit_time_ms,
                )
            return stored

        return body

    async def list_alerts(
        self,
        owner: str | None,
        *,
        after_id: int = 0,
        before_id: int | None = None,
        descending: bool = False,
        limit: int,
        rule_id: str | None = None,
        symbol: str | None = None,
        kind: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        channel_id: str | None = None,
    ) -> list[AlertRecord]:
        if limit < 1:
            raise InvalidArgumentError(
                "limit must be at least 1",
                violations=(FieldViolation("limit", "must be at least 1"),),
            )
        args: list[object] = [after_id]
        where = ["alert_id > $1"]
        for clause, value in (
            ("owner = ", owner),
            ("alert_id < ", before_id),
            ("rule_id = ", rule_id),
            ("symbol = ", symbol),
            ("kind = ", kind),
            ("event_time_ms >= ", since_ms),
            ("event_time_ms < ", until_ms),
        ):
            if value is not None:
                args.append(value)
                where.append(f"{clause}${len(args)}")
        if channel_id is not None:
            args.append(_codec.channel_pattern(channel_id))
            where.append(f"channels LIKE ${len(args)} ESCAPE '!'")
        args.append(limit)
        sql = (
            f"SELECT {_codec.ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)}"
            f" ORDER BY alert_id{' DESC' if descending else ''} LIMIT ${len(args)}"
        )
        async with self._read() as conn:
            rows = await conn.fetch(sql, *args)
        return [_codec.alert_from_row(row) for row in rows]

    async def last_alert_id(self) -> int:
        async with self._read() as conn:
            return int(await conn.fetchval("SELECT last_id FROM alert_counter WHERE id = 1"))

    async def first_alert_id(self) -> int | None:
        async with self._read() as conn:
            value = await conn.fetchval("SELECT MIN(alert_id) FROM alerts")
        return None if value is None else int(value)

    async def prune_alerts(self, before_ms: int) -> int:
        async with self._write() as tx:
            for table in ("delivery_attempts", "deliveries"):
                await tx.execute(
                    f"DELETE FROM {table} WHERE alert_id IN"  # a fixed name, not data
                    " (SELECT alert_id FROM alerts WHERE commit_time_ms < $1)",
                    before_ms,
                )
            return await tx.execute("DELETE FROM alerts WHERE commit_time_ms < $1", before_ms)

    async def trigger_states(self) -> list[TriggerState]:
        async with self._read() as conn:
            rows = await conn.fetch(
                f"SELECT {_codec.STATE_COLUMNS} FROM trigger_states ORDER BY owner, rule_id"
            )
        return [_codec.state_from_row(row) for row in rows]

    async def watermarks(self) -> dict[str, int]:
        async with self._read() as conn:
            rows = await conn.fetch("SELECT source, watermark_ms FROM watermarks")
        return {row["source"]: int(row["watermark_ms"]) for row in rows}

    # -- deliveries (the outbox) -----------------------------------------------------------

    async def due_deliveries(
        self, owner: str, channel_id: str, *, now_ms: int, limit: int
    ) -> list[DueDelivery]:
        async with self._read() as conn:
            rows = await conn.fetch(_DUE_DELIVERIES, owner, channel_id, now_ms, limit)
        return [
            DueDelivery(delivery=_codec.delivery_from_row(row), alert=_codec.alert_from_row(row))
            for row in rows
        ]

    async def next_attempt_time(self, owner: str, channel_id: str, *, after_ms: int) -> int | None:
        async with self._read() as conn:
            value = await conn.fetchval(
                "SELECT MIN(next_attempt_ms) FROM deliveries WHERE owner = $1"
                " AND channel_id = $2 AND state = 'PENDING' AND next_attempt_ms > $3",
                owner,
                channel_id,
                after_ms,
            )
        return None if value is None else int(value)

    async def pending_channels(self) -> list[tuple[str, str]]:
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT owner, channel_id FROM deliveries WHERE state = 'PENDING'"
                " ORDER BY owner, channel_id"
            )
        return [(row["owner"], row["channel_id"]) for row in rows]

    async def record_attempts(self, outcomes: Sequence[AttemptOutcome]) -> list[bool]:
        for o in outcomes:
            if o.state not in DELIVERY_STATES:
                raise InvalidArgumentError(f"unknown delivery state {o.state!r}")
        applied: list[bool] = []
        if not outcomes:
            return applied
        async with self._write() as tx:
            now = self._clock()
            for o in outcomes:
                a = o.attempt
                changed = await tx.execute(
                    _RECORD_ATTEMPT, o.owner, o.channel_id, o.alert_id, a.seq, o.state,
                    o.next_attempt_ms, a.time_ms, a.status, a.error, max(now, a.time_ms),
                )
                applied.append(changed == 1)
            rows = [(o.owner, o.channel_id, o.alert_id, o.attempt.seq, o.attempt.time_ms,
                     bool(o.attempt.ok), o.attempt.status, float(o.attempt.latency_ms),
                     o.attempt.error)
                    for o, ok in zip(outcomes, applied, strict=True) if ok]
            if rows:
                await tx.executemany(_INSERT_ATTEMPT, rows)
        return applied

    async def list_deliveries(
        self,
        owner: str,
        channel_id: str,
        *,
        state: str | None = None,
        page_size: int,
        page_token: str | None,
    ) -> tuple[list[DeliveryRecord], str | None]:
        if page_size < 0:
            raise InvalidArgumentError(
                "page_size must not be negative",
                violations=(FieldViolation("page_size", "must not be negative"),),
            )
        if state is not None and state not in DELIVERY_STATES:
            raise InvalidArgumentError(
                f"unknown delivery state {state!r}",
                violations=(FieldViolation("state", f"one of {', '.join(DELIVERY_STATES)}"),),
            )
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        scope = ["deliveries", owner, channel_id, state]
        args: list[object] = [owner, channel_id]
        where = ["owner = $1", "channel_id = $2"]
        if page_token:
            [after_id] = _paging.decode_token(
                page_token, scope, lambda key: len(key) == 1 and type(key[0]) is int)
            args.append(after_id)
            where.append(f"alert_id > ${len(args)}")
        if state is not None:
            args.append(state)
            where.append(f"state = ${len(args)}")
        args.append(size + 1)
        sql = (
            f"SELECT {_codec.DELIVERY_COLUMNS} FROM deliveries WHERE {' AND '.join(where)}"
            f" ORDER BY alert_id LIMIT ${len(args)}"
        )
        async with self._read() as conn:
            rows = (await conn.fetch(sql, *args))[: size + 1]
            page = rows[:size]
            history: dict[int, list[DeliveryAttempt]] = {}
            if page:
                attempts = await conn.fetch(
                    f"SELECT alert_id, {_codec.ATTEMPT_COLUMNS} FROM delivery_attempts"
                    " WHERE owner = $1 AND channel_id = $2 AND alert_id >= $3"
                    " AND alert_id <= $4 ORDER BY alert_id, seq",
                    owner,
                    channel_id,
                    int(page[0]["alert_id"]),
                    int(page[-1]["alert_id"]),
                )
                for row in attempts:
                    history.setdefault(int(row["alert_id"]), []).append(
                        _codec.attempt_from_row(row)
                    )
        out = [
            _codec.delivery_from_row(row, tuple(history.get(int(row["alert_id"]), ())))
            for row in page
        ]
        if len(rows) <= size:
            return out, None
        return out, _paging.encode_token(scope, out[-1].alert_id)

    async def redeliver(
        self, owner: str, channel_id: str, *, alert_ids: Sequence[int] | None, now_ms: int
    ) -> int:
        sql = (
            "UPDATE deliveries SET state = 'PENDING', attempts = 0, next_attempt_ms = $3,"
            " first_attempt_ms = NULL, done_time_ms = NULL"
            " WHERE owner = $1 AND channel_id = $2 AND state = 'DEAD'"
        )
        async with self._write() as tx:
            if alert_ids is None:
                return await tx.execute(sql, owner, channel_id, now_ms)
            moved = 0
            for alert_id in dict.fromkeys(alert_ids):
                moved += await tx.execute(
                    sql + " AND alert_id = $4", owner, channel_id, now_ms, int(alert_id)
                )
            return moved

    async def channel_delivery_stats(self, owner: str, channel_id: str) -> ChannelDeliveryStats:
        async with self._read() as conn:
            counts = await conn.fetch(
                "SELECT state, COUNT(*) AS n FROM deliveries WHERE owner = $1 AND channel_id = $2"
                " AND state <> 'DELIVERED' GROUP BY state",
                owner,
                channel_id,
            )
            delivered = await conn.fetchrow(
                "SELECT MAX(alert_id) AS last_id, MAX(done_time_ms) AS last_time FROM deliveries"
                " WHERE owner = $1 AND channel_id = $2 AND state = 'DELIVERED'",
                owner,
                channel_id,
            )
            latest = await conn.fetchrow(
                "SELECT ok, error, time_ms FROM delivery_attempts"
                " WHERE owner = $1 AND channel_id = $2 ORDER BY time_ms DESC, alert_id DESC,"
                " seq DESC LIMIT 1",
                owner,
                channel_id,
            )
        by_state = {row["state"]: int(row["n"]) for row in counts}
        failed = latest is not None and not latest["ok"]
        return ChannelDeliveryStats(
            pending=by_state.get("PENDING", 0),
            dead_letters=by_state.get("DEAD", 0),
            last_delivered_alert_id=int(delivered["last_id"] or 0) if delivered else 0,
            last_delivery_time_ms=(
                None if delivered is None or delivered["last_time"] is None
                else int(delivered["last_time"])
            ),
            last_error=latest["error"] if failed and latest is not None else "",
            last_error_time_ms=int(latest["time_ms"]) if failed and latest is not None else None,
        )

    async def delivery_counts(self) -> dict[str, int]:
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state ORDER BY state"
            )
        return {row["state"]: int(row["n"]) for row in rows}

    # -- subscriptions ---------------------------------------------------------------------

    async def get_subscription(
        self, owner: str, subscription_id: str
    ) -> SubscriptionRecord | None:
        async with self._read() as conn:
            row = await conn.fetchrow(
                f"SELECT {_codec.SUBSCRIPTION_COLUMNS} FROM subscriptions"
                " WHERE owner = $1 AND subscription_id = $2",
                owner,
                subscription_id,
            )
        return None if row is None else _codec.subscription_from_row(row)

    async def save_subscription(self, rec: SubscriptionRecord) -> None:
        async with self._write() as tx:
            await tx.execute(_UPSERT_SUBSCRIPTION, *_codec.subscription_params(rec))

    # -- checkpoints -----------------------------------------------------------------------

    async def save_checkpoint(self, cp: Checkpoint) -> None:
        async with self._write() as tx:
            await tx.execute(
                _UPSERT_CHECKPOINT,
                bytes(cp.blob),
                _codec.encode_watermarks(cp.watermarks),
                cp.create_time_ms,
            )

    async def load_checkpoint(self) -> Checkpoint | None:
        async with self._read() as conn:
            row = await conn.fetchrow(
                "SELECT blob, watermarks, create_time_ms FROM checkpoints WHERE id = 1"
            )
        return None if row is None else _codec.checkpoint_from_row(row)
