"""Fresh PostgreSQL databases on the local server (ARCHITECTURE.md: 127.0.0.1:5432, trust)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def admin(*statements: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


@contextmanager
def fresh_databases(n: int = 1, prefix: str = "alerts_test") -> Iterator[list[str]]:
    """``n`` new empty databases (their URLs), dropped afterwards."""
    names = [f"{prefix}_{secrets.token_hex(4)}" for _ in range(n)]
    admin(*(f'CREATE DATABASE "{name}"' for name in names))
    try:
        yield [f"postgresql://postgres@127.0.0.1:5432/{name}" for name in names]
    finally:
        admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names))
