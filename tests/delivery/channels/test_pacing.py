"""The local rate limiter on a controlled clock."""

from __future__ import annotations

import pytest

from alerts.delivery.channels.pacing import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_spaced_reservations() -> None:
    clock = Clock()
    pacer = Pacer(rate=2.0, burst=2, clock=clock)
    assert [pacer.reserve() for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    clock.now += 1.0  # two tokens' worth refilled: the queue of reservations is paid off
    assert pacer.reserve() == 0.5


def test_cancel_returns_the_turn() -> None:
    clock = Clock()
    pacer = Pacer(rate=1.0, burst=1, clock=clock)
    assert pacer.reserve() == 0.0
    assert pacer.reserve() == 1.0
    pacer.cancel()
    assert pacer.reserve() == 1.0


def test_hold_for_delays_every_turn_until_it_ends() -> None:
    clock = Clock()
    pacer = Pacer(rate=100.0, burst=10, clock=clock)
    pacer.hold_for(3.0)
    pacer.hold_for(1.0)  # a shorter hold does not shorten the longer one
    assert pacer.reserve() == 3.0
    clock.now += 3.0
    assert pacer.reserve() == 0.0


@pytest.mark.asyncio
async def test_wait_turn_refuses_a_long_wait_without_taking_it() -> None:
    clock = Clock()
    pacer = Pacer(rate=1.0, burst=1, clock=clock)
    assert await pacer.wait_turn(0.5) is None
    assert await pacer.wait_turn(0.5) == 1.0
    assert pacer.reserve() == 1.0  # the refused turn was given back


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Pacer(rate=0)
    with pytest.raises(ValueError):
        Pacer(rate=1, burst=0)
