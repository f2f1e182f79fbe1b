"""Fixtures for the replay exchange: a paused spot exchange over the shared trades, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio

from alerts.market.exchange import ReplayExchange
from tests.support.market_data import SPOT_TRADES_FILE, shared_data  # noqa: F401 - fixture


@pytest_asyncio.fixture
async def spot(shared_data: Path) -> AsyncIterator[ReplayExchange]:  # noqa: F811
    """The spot trades file, speed 0, paused before the first trade."""
    async with ReplayExchange.from_files([shared_data / SPOT_TRADES_FILE], speed=0,
                                         paused=True) as exchange:
        yield exchange


@pytest_asyncio.fixture
async def rest(spot: ReplayExchange) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=spot.rest_url, timeout=10) as client:
        yield client
