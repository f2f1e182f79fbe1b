"""The polled sources' wall clock moved ahead, for an ``alerts`` subprocess and its fakes.

Polled stock sources deliver a minute bar only once its minute has ended, so an
end-to-end test would wait for the next whole minute of the real clock (up to
60 s). Instead the test moves the clock of its ``alerts serve``'s sources ahead
to just before a whole minute: ``python -m tests.support.shifted_clock SECONDS
serve ...`` shifts ``alerts.market.clock.SystemClock`` (the one seam through
which polled sources read the time, made for tests) and runs the CLI; the fake
provider reads the same time through ``ShiftedClock``. The rest of the service
keeps the real clock (gRPC deadlines need it): the sources' times are then up
to a minute ahead of it, within what the engine accepts (``MAX_FUTURE_MS``).
"""

from __future__ import annotations

import asyncio
import sys
import time

from alerts.market import clock


class ShiftedClock:
    """``time.time() + shift_s`` (an ``alerts.market.clock.Clock``)."""

    def __init__(self, shift_s: float) -> None:
        self.shift_s = shift_s

    def time(self) -> float:
        return time.time() + self.shift_s

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def shift_to_minute_end(lead_s: float) -> float:
    """The shift (0 <= shift < 60 s) after which the clock is ``lead_s`` before a whole minute."""
    return (60.0 - lead_s - time.time() % 60.0) % 60.0


def _run(shift_s: float, argv: list[str]) -> int:
    clock.SystemClock.time = ShiftedClock(shift_s).time   # type: ignore[assignment,method-assign]
    from alerts.cli import main

    return main(argv)


if __name__ == "__main__":
    sys.exit(_run(float(sys.argv[1]), sys.argv[2:]))
