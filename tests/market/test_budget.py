"""Request budgets: rolling limits, even pacing, provider pauses; waits, never errors."""

from __future__ import annotations

import itertools

import pytest

from alerts.market.budget import BudgetLimits, RequestBudget
from tests.market.fakes import FakeClock


async def _times(budget: RequestBudget, clock: FakeClock, n: int, *, paced: bool) -> list[float]:
    out = []
    for _ in range(n):
        await budget.acquire(paced=paced)
        out.append(clock.time())
    return out


def _max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


@pytest.mark.asyncio
async def test_per_minute_and_interval_are_hard_limits() -> None:
    clock = FakeClock(1_000.0)
    budget = RequestBudget(BudgetLimits(per_minute=5, min_interval_s=0.5), clock)
    times = await _times(budget, clock, 23, paced=False)
    assert _max_in_window(times, 60.0) == 5
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.5
    assert times[5] - times[0] == pytest.approx(60.0)     # the 6th waits for the window


@pytest.mark.asyncio
async def test_per_day_limit_is_paced_evenly() -> None:
    clock = FakeClock(0.0)
    limits = BudgetLimits(per_day=25, min_interval_s=1.0)
    budget = RequestBudget(limits, clock)
    times = await _times(budget, clock, 60, paced=True)
    assert _max_in_window(times, 86_400.0) <= 25
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(86_400 / 25)
    assert limits.spacing_s == pytest.approx(3_456.0)


@pytest.mark.asyncio
async def test_unpaced_requests_still_respect_the_day() -> None:
    clock = FakeClock(0.0)
    budget = RequestBudget(BudgetLimits(per_day=3, min_interval_s=1.0), clock)
    times = await _times(budget, clock, 4, paced=False)
    assert times[:3] == [0.0, 1.0, 2.0]
    assert times[3] == pytest.approx(86_400.0)
    assert budget.used() == (1, 3)


@pytest.mark.asyncio
async def test_pause_until_delays_the_next_request() -> None:
    clock = FakeClock(100.0)
    budget = RequestBudget(BudgetLimits(per_minute=60), clock)
    await budget.acquire()
    budget.pause_until(400.0)
    assert budget.wait_s() == pytest.approx(300.0)
    await budget.acquire()
    assert clock.time() == pytest.approx(400.0)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="per_day"):
        BudgetLimits(per_day=0)
    with pytest.raises(ValueError, match="min_interval_s"):
        BudgetLimits(min_interval_s=-1)

