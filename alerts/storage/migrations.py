"""Numbered schema migrations, shared by the SQLite and PostgreSQL back ends.

Each ``Migration`` is a version number and DDL statements written once, with
``{BIGINT}``, ``{DOUBLE}``, ``{BOOL}`` and ``{BLOB}`` standing for the dialect's
column types (see ``TYPES``); a step may add statements for one dialect only.
A store applies the steps above its ``schema_version`` in order, in one
transaction, and refuses a database whose version is above ``latest_version()``.
Released steps are never edited: a change to the schema is a new step.

JSON-encoded columns (``channels``, ``labels``, ``operand_values``, ``details``,
``filters``, ``watermarks``, ``settings``) are plain ``TEXT`` on both back ends.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"BIGINT": "INTEGER", "DOUBLE": "REAL", "BOOL": "INTEGER", "BLOB": "BLOB"},
    "postgres": {
        "BIGINT": "BIGINT",
        "DOUBLE": "DOUBLE PRECISION",
        "BOOL": "BOOLEAN",
        "BLOB": "BYTEA",
    },
}
"""Column type names per dialect."""

BOOTSTRAP = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY,"
    " description TEXT NOT NULL,"
    " applied_time_ms {BIGINT} NOT NULL)"
)
"""The table that records applied steps; created before anything else."""


@dataclass(frozen=True)
class Migration:
    """One schema step: DDL for both dialects, plus optional dialect-only statements."""

    version: int
    description: str
    statements: tuple[str, ...]
    sqlite: tuple[str, ...] = ()
    postgres: tuple[str, ...] = ()

    def render(self, dialect: str) -> list[str]:
        """The step's statements for ``dialect`` (``"sqlite"`` or ``"postgres"``)."""
        extra = self.sqlite if dialect == "sqlite" else self.postgres
        return [render(stmt, dialect) for stmt in (*self.statements, *extra)]


def render(statement: str, dialect: str) -> str:
    """``statement`` with the type placeholders of ``TYPES`` filled in for ``dialect``."""
    return statement.format_map(TYPES[dialect])


_V1 = Migration(
    version=1,
    description="rules, request ids, trigger states, alerts, watermarks, subscriptions, "
    "checkpoints",
    statements=(
        """CREATE TABLE rules (
            owner TEXT NOT NULL,
            rule_id TEXT NOT NULL,
            display_name TEXT NOT NULL,
            symbol TEXT NOT NULL,
            condition_text TEXT NOT NULL,
            trigger_mode TEXT NOT NULL,
            timeframe TEXT,
            cooldown_ms {BIGINT},
            expire_time_ms {BIGINT},
            max_fires {BIGINT} NOT NULL,
            hysteresis {DOUBLE} NOT NULL,
            hold_for_ms {BIGINT} NOT NULL,
            message_template TEXT NOT NULL,
            channels TEXT NOT NULL,
            labels TEXT NOT NULL,
            paused {BOOL} NOT NULL,
            create_time_ms {BIGINT} NOT NULL,
            update_time_ms {BIGINT} NOT NULL,
            etag TEXT NOT NULL,
            revision {BIGINT} NOT NULL,
            PRIMARY KEY (owner, rule_id))""",
        "CREATE INDEX rules_by_create_time ON rules (owner, create_time_ms, rule_id)",
        """CREATE TABLE rule_requests (
            owner TEXT NOT NULL,
            request_id TEXT NOT NULL,
            rule_id TEXT NOT NULL,
            create_time_ms {BIGINT} NOT NULL,
            PRIMARY KEY (owner, request_id))""",
        "CREATE INDEX rule_requests_by_time ON rule_requests (create_time_ms)",
        """CREATE TABLE trigger_states (
            owner TEXT NOT NULL,
            rule_id TEXT NOT NULL,
            fires {BIGINT} NOT NULL,
            last_fire_ms {BIGINT},
            armed {BOOL} NOT NULL,
            completed {BOOL} NOT NULL,
            expired {BOOL} NOT NULL,
            PRIMARY KEY (owner, rule_id))""",
        """CREATE TABLE alerts (
            alert_id {BIGINT} PRIMARY KEY,
            owner TEXT NOT NULL,
            rule_id TEXT NOT NULL,
            symbol TEXT NOT NULL,
            kind TEXT NOT NULL,
            timeframe TEXT,
            bar_open_ms {BIGINT},
            operand_values TEXT NOT NULL,
            message TEXT NOT NULL,
            condition_text TEXT NOT NULL,
            event_time_ms {BIGINT} NOT NULL,
            receive_time_ms {BIGINT} NOT NULL,
            decide_time_ms {BIGINT} NOT NULL,
            trade_id {BIGINT} NOT NULL,
            fire_rank {BIGINT} NOT NULL,
            price {DOUBLE},
            details TEXT NOT NULL,
            commit_time_ms {BIGINT} NOT NULL)""",
        (
            "CREATE UNIQUE INDEX alerts_identity"
            " ON alerts (owner, rule_id, symbol, event_time_ms, fire_rank)"
        ),
        "CREATE INDEX alerts_by_owner ON alerts (owner, alert_id)",
        "CREATE INDEX alerts_by_commit_time ON alerts (commit_time_ms)",
        """CREATE TABLE alert_counter (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_id {BIGINT} NOT NULL,
            last_commit_ms {BIGINT} NOT NULL)""",
        "INSERT INTO alert_counter (id, last_id, last_commit_ms) VALUES (1, 0, 0)",
        """CREATE TABLE watermarks (
            source TEXT PRIMARY KEY,
            watermark_ms {BIGINT} NOT NULL)""",
        """CREATE TABLE subscriptions (
            owner TEXT NOT NULL,
            subscription_id TEXT NOT NULL,
            acked_id {BIGINT} NOT NULL,
            filters TEXT NOT NULL,
            max_unacked {BIGINT} NOT NULL,
            update_time_ms {BIGINT} NOT NULL,
            PRIMARY KEY (owner, subscription_id))""",
        """CREATE TABLE checkpoints (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            blob {BLOB} NOT NULL,
            watermarks TEXT NOT NULL,
            create_time_ms {BIGINT} NOT NULL)""",
    ),
)

_V2 = Migration(
    version=2,
    description="channels, channel request ids",
    statements=(
        """CREATE TABLE channels (
            owner TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            display_name TEXT NOT NULL,
            kind TEXT NOT NULL,
            settings TEXT NOT NULL,
            secret TEXT NOT NULL,
            previous_secret TEXT NOT NULL,
            previous_secret_expire_ms {BIGINT},
            message_template TEXT NOT NULL,
            paused {BOOL} NOT NULL,
            labels TEXT NOT NULL,
            create_time_ms {BIGINT} NOT NULL,
            update_time_ms {BIGINT} NOT NULL,
            etag TEXT NOT NULL,
            revision {BIGINT} NOT NULL,
            PRIMARY KEY (owner, channel_id))""",
        "CREATE INDEX channels_by_create_time ON channels (owner, create_time_ms, channel_id)",
        """CREATE TABLE channel_requests (
            owner TEXT NOT NULL,
            request_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            create_time_ms {BIGINT} NOT NULL,
            PRIMARY KEY (owner, request_id))""",
        "CREATE INDEX channel_requests_by_time ON channel_requests (create_time_ms)",
    ),
)

_V3 = Migration(
    version=3,
    description="delivery outbox: deliveries per (alert, channel) and every attempt",
    statements=(
        """CREATE TABLE deliveries (
            owner TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            alert_id {BIGINT} NOT NULL,
            state TEXT NOT NULL,
            attempts {BIGINT} NOT NULL,
            attempt_seq {BIGINT} NOT NULL,
            create_time_ms {BIGINT} NOT NULL,
            next_attempt_ms {BIGINT} NOT NULL,
            first_attempt_ms {BIGINT},
            last_attempt_ms {BIGINT},
            last_status {BIGINT} NOT NULL,
            last_error TEXT NOT NULL,
            done_time_ms {BIGINT},
            PRIMARY KEY (owner, channel_id, alert_id))""",
        "CREATE INDEX deliveries_by_state ON deliveries (owner, channel_id, state, alert_id)",
        (
            "CREATE INDEX deliveries_pending ON deliveries (owner, channel_id, next_attempt_ms)"
            " WHERE state = 'PENDING'"
        ),
        "CREATE INDEX deliveries_by_alert ON deliveries (alert_id)",
        """CREATE TABLE delivery_attempts (
            owner TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            alert_id {BIGINT} NOT NULL,
            seq {BIGINT} NOT NULL,
            time_ms {BIGINT} NOT NULL,
            ok {BOOL} NOT NULL,
            status {BIGINT} NOT NULL,
            latency_ms {DOUBLE} NOT NULL,
            error TEXT NOT NULL,
            PRIMARY KEY (owner, channel_id, alert_id, seq))""",
        "CREATE INDEX delivery_attempts_by_time ON delivery_attempts (owner, channel_id, time_ms)",
    ),
)

_V4 = Migration(
    version=4,
    description="alerts keep their rule's display name and labels at fire time",
    statements=(
        "ALTER TABLE alerts ADD COLUMN rule_display_name TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE alerts ADD COLUMN rule_labels TEXT NOT NULL DEFAULT '{{}}'",
    ),
)

_V5 = Migration(
    version=5,
    description="alerts keep the channels their rule named at fire time",
    statements=("ALTER TABLE alerts ADD COLUMN channels TEXT NOT NULL DEFAULT '[]'",),
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4, _V5)
"""Every step, in version order (1, 2, ...)."""


def latest_version(steps: tuple[Migration, ...] = MIGRATIONS) -> int:
    """The schema version a store is at once ``steps`` are applied."""
    return steps[-1].version if steps else 0
