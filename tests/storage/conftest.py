"""Fixtures for the store suite: one test body, run against SQLite and the real PostgreSQL.

PostgreSQL: the session creates a fresh database ``alerts_test_<random>`` through a
connection to ``ALERTS_TEST_POSTGRES_URL`` (default: database ``test`` on
127.0.0.1:5432) and drops it at the end; each test gets its own schema in it,
selected with the URL's ``search_path`` setting. When the server cannot be
reached the PostgreSQL half is skipped with the reason (a failure under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
import pytest_asyncio

from alerts.storage import Store, open_store

ADMIN_URL = os.environ.get("ALERTS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
START_MS = 1_700_000_000_000


class FakeClock:
    """Epoch milliseconds under the test's control; ``step`` ms are added after each reading."""

    def __init__(self, now_ms: int = START_MS, step: int = 0) -> None:
        self.now_ms = now_ms
        self.step = step

    def __call__(self) -> int:
        now = self.now_ms
        self.now_ms += self.step
        return now

    def advance(self, ms: int) -> None:
        self.now_ms += ms


def _with_database(url: str, database: str, **query: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(
        parts._replace(path=f"/{database}", query=urllib.parse.urlencode(query))
    )


async def _create_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')  # a generated identifier, not data
    finally:
        await conn.close()


async def _drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a database created for this session (dropped at its end)."""
    name = f"alerts_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_create_database(name))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL unreachable at {ADMIN_URL}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + "; CI must have it", pytrace=False)
        pytest.skip(reason)
    try:
        yield _with_database(ADMIN_URL, name)
    finally:
        asyncio.run(_drop_database(name))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL naming an empty store of each back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/alerts.db"
    database_url: str = request.getfixturevalue("postgres_database")
    schema = f"t_{secrets.token_hex(6)}"
    asyncio.run(_create_schema(database_url, schema))
    return _with_database(
        database_url, urllib.parse.urlsplit(database_url).path[1:], search_path=schema
    )


async def _create_schema(database_url: str, schema: str) -> None:
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')  # a generated identifier, not data
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def store(store_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    """An open, migrated, empty store on the fake clock."""
    opened = await open_store(store_url, clock=clock)
    try:
        yield opened
    finally:
        await opened.close()
