"""Fixtures for the delivery tests: an open store of each back end on the wall clock, and
two webhook receivers (``receivers``).

The PostgreSQL half uses the store suite's session database (a fresh schema per
test) and is skipped, with the reason, when the server cannot be reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from alerts.storage import Store, open_store
from tests.storage.conftest import postgres_database, store_url
from tests.support.delivery import receivers

__all__ = ["live_store", "postgres_database", "receivers", "store_url"]


@pytest_asyncio.fixture
async def live_store(store_url: str) -> AsyncIterator[Store]:
    """An open, migrated, empty store (SQLite and PostgreSQL) on the wall clock."""
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()
