"""Which history bars warm a new symbol up, and checking what a source returns.

A symbol's history is fed through the core's ``process_bars`` as contiguous
segments, coarsest timeframe first: each timeframe in use gets ``bars`` bars of
its own, and the finest segment is always 1-minute bars up to the whole minute
where live ticks take over, so every forming bar (5m, 1h, ...) holds exactly the
minutes before it. A coarse segment ends on one of its own bar boundaries, where
the next finer one begins, so no bar is fed twice and none is split.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from alerts.market.base import Bar
from alerts.rules.catalog import TIMEFRAME_MS

MINUTE_MS = 60_000


def floor_to(t: int, step: int) -> int:
    return t - t % step


def history_plan(timeframes: Iterable[str], end_ms: int, bars: int) -> list[tuple[str, int, int]]:
    """``(timeframe, start_ms, end_ms)`` requests, in time order, ending at ``end_ms``.

    ``end_ms`` is a whole minute. 1-second bars are never fetched (a 1s timeframe
    warms up live).
    """
    if end_ms % MINUTE_MS:
        raise ValueError("history must end on a whole minute")
    tfs = sorted((set(timeframes) - {"1s"}) | {"1m"}, key=TIMEFRAME_MS.__getitem__, reverse=True)
    starts = {tf: floor_to(end_ms, TIMEFRAME_MS[tf]) - bars * TIMEFRAME_MS[tf] for tf in tfs}
    plan: list[tuple[str, int, int]] = []
    pos = starts[tfs[0]]
    for i, tf in enumerate(tfs):
        step = TIMEFRAME_MS[tf]
        if i + 1 < len(tfs):
            seg_end = min(floor_to(starts[tfs[i + 1]], step), floor_to(end_ms, step))
        else:
            seg_end = end_ms
        if seg_end > pos:
            plan.append((tf, pos, seg_end))
            pos = seg_end
    return plan


def clean_bars(bars: Sequence[Bar], symbol: str, timeframe: str, start_ms: int,
               end_ms: int) -> list[Bar]:
    """The bars of the request only: the symbol's, aligned, in [start, end), once, in order."""
    step = TIMEFRAME_MS[timeframe]
    out: dict[int, Bar] = {}
    for b in bars:
        if (b.symbol == symbol and b.timeframe == timeframe and start_ms <= b.open_ms < end_ms
                and b.open_ms % step == 0):
            out.setdefault(b.open_ms, b)
    return [out[t] for t in sorted(out)]
