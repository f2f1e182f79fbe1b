"""The fake stock provider fixture: both providers' answers on a real loopback socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.market.fakes import FakeClock, FakeStockProvider
from tests.market.support import DAY_START_S, bars_of


@pytest_asyncio.fixture
async def provider() -> AsyncIterator[FakeStockProvider]:
    clock = FakeClock(DAY_START_S)
    fake = FakeStockProvider({t: bars_of(t) for t in ("SPY", "IBM", "AIG", "BAC")}, clock)
    await fake.start()
    yield fake
    await fake.stop()
