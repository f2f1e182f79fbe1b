"""Sliding-window pacing, full-jitter backoff and request-weight accounting."""

from __future__ import annotations

import asyncio
import random

import pytest

from alerts.market.binance.limits import SlidingWindowLimiter, full_jitter
from alerts.market.binance.weight import WeightTracker


class FakeClock:
    """Time that moves only when the limiter sleeps (so the arithmetic is exact)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.asyncio
async def test_five_per_second_then_waits_for_the_window() -> None:
    clock = FakeClock()
    pacer = SlidingWindowLimiter(5, 1.0, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(12):
        await pacer.acquire()
        sent.append(clock.now)
    # no window of 1 s ever holds more than 5 sends
    for i in range(len(sent)):
        assert sum(1 for t in sent if sent[i] <= t < sent[i] + 1.0) <= 5
    assert sent[:5] == [1000.0] * 5 and sent[5] == pytest.approx(1001.0)
    assert sent[10] == pytest.approx(1002.0)


@pytest.mark.asyncio
async def test_concurrent_acquirers_are_served_in_order() -> None:
    clock = FakeClock()
    pacer = SlidingWindowLimiter(2, 1.0, clock=clock, sleep=clock.sleep)
    order: list[int] = []

    async def one(i: int) -> None:
        await pacer.acquire()
        order.append(i)

    await asyncio.gather(*(one(i) for i in range(6)))
    assert order == list(range(6))
    assert clock.now == pytest.approx(1002.0)


def test_connection_attempts_300_per_5_minutes() -> None:
    clock = FakeClock()
    attempts = SlidingWindowLimiter(300, 300.0, clock=clock)
    for i in range(300):
        assert attempts.delay() == 0
        attempts.record()
        clock.now += 0.5
    # the 301st waits until the first attempt leaves the window
    assert attempts.delay() == pytest.approx(300.0 - 150.0)
    clock.now += 150.0
    assert attempts.delay() == 0


def test_limiter_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 1.0)


def test_full_jitter_stays_under_the_capped_exponential() -> None:
    rng = random.Random(7)
    for attempt in range(20):
        ceiling = min(30.0, 0.5 * 2 ** attempt)
        draws = [full_jitter(attempt, base_s=0.5, cap_s=30.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # full jitter spreads over the whole range, not just near the ceiling
        assert min(draws) < ceiling * 0.1 and max(draws) > ceiling * 0.9
    assert full_jitter(10_000, base_s=0.5, cap_s=30.0, rng=rng) <= 30.0


def test_weight_is_free_below_the_soft_limit() -> None:
    w = WeightTracker(1000, slow_fraction=0.8)
    w.observe(100, now_s=6000.0)
    assert w.delay(4, now_s=6000.0) == 0.0


def test_weight_spreads_the_rest_of_the_budget_past_the_soft_limit() -> None:
    w = WeightTracker(1000, slow_fraction=0.8)
    w.observe(900, now_s=6030.0)             # 30 s left in the minute, 100 weight left
    assert w.delay(10, now_s=6030.0) == pytest.approx(30.0 * 10 / 100)
    w.observe(980, now_s=6030.0)
    assert w.delay(10, now_s=6030.0) == pytest.approx(30.0 * 10 / 20)


def test_weight_over_budget_waits_for_the_next_minute_which_resets_it() -> None:
    w = WeightTracker(1000)
    w.observe(995, now_s=6045.0)
    assert w.delay(10, now_s=6045.0) == pytest.approx(15.05)
    assert w.delay(10, now_s=6060.0) == 0.0      # a new minute: nothing used yet
    assert w.used == 0


def test_weight_counts_requests_in_flight() -> None:
    w = WeightTracker(100, slow_fraction=1.0)
    w.observe(90, now_s=0.0)
    w.spend(8, now_s=0.0)
    assert w.delay(4, now_s=0.0) > 0           # 90 + 8 + 4 > 100
    w.observe(95, now_s=1.0)                  # a late answer does not lower the count
    assert w.used == 98
