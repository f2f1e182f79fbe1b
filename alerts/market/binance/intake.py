"""The hot path of the source: one frame in, normalised ticks queued, in arrival order.

``TradeIntake`` parses a frame, keeps the per-socket order check (an aggregate
id lower than one already seen on the same socket is out of order, hence a
bad message; an equal one a duplicate), runs the ``Sequencer`` and appends
``Tick``s to ``ticks`` for the deliverer. Everything else (bad frames, gaps,
replies, shutdown notices) is handed to the owner through small callbacks.
It does no I/O and holds no tasks, so its speed is measured on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from alerts.market.base import Tick
from alerts.market.binance.connection import LinkState
from alerts.market.binance.messages import (
    AggTrade,
    MalformedMessage,
    Reply,
    ServerShutdown,
    StreamEvent,
    parse_frame,
)
from alerts.market.binance.sequencer import Offer, Sequencer

BadHook = Callable[[LinkState, str, "str | bytes | None", "str | None"], None]
"""(socket, why, raw frame or None, venue-qualified symbol or None)."""

GapHook = Callable[[str, str], None]
"""(bare symbol, why): ids were skipped; start a backfill."""


class TradeIntake:
    """Frames of every socket of one source into one ordered list of ticks."""

    def __init__(self, venue: str, *, on_bad: BadHook, on_gap: GapHook) -> None:
        self.venue = venue
        self.sequencer = Sequencer()
        self.ticks: list[Tick] = []
        self.qualified: dict[str, str] = {}       # BTCUSDT -> binance:BTCUSDT, followed only
        self.messages = 0
        self.duplicates = 0
        self.clock_ms = 0                          # latest event time seen on any socket
        self.woke = False                          # something new for the deliverer
        self._on_bad = on_bad
        self._on_gap = on_gap

    def follow(self, symbol: str) -> str:
        """Start taking ``symbol``'s trades (bare, upper case); returns its qualified name."""
        name = self.qualified.get(symbol)
        if name is None:
            name = self.qualified[symbol] = f"{self.venue}:{symbol}"
        return name

    def unfollow(self, symbol: str) -> None:
        self.qualified.pop(symbol, None)
        self.sequencer.forget(symbol)

    def on_frame(self, state: LinkState, raw: str | bytes) -> None:
        self.messages += 1
        state.last_message = time.monotonic()
        try:
            frame = parse_frame(raw)
        except MalformedMessage as exc:
            self._on_bad(state, str(exc), raw, None)
            return
        kind = type(frame)
        if kind is AggTrade:
            self._trade(state, frame)  # type: ignore[arg-type]
        elif kind is StreamEvent:
            if frame.event_ms > state.max_event_ms:  # type: ignore[union-attr]
                state.max_event_ms = frame.event_ms  # type: ignore[union-attr]
                self.woke = True
        elif kind is Reply:
            reply: Reply = frame  # type: ignore[assignment]
            if not state.resolve(reply):
                self._on_bad(state, f"reply to unknown request id {reply.id!r}", raw, None)
        elif kind is ServerShutdown:
            state.shutdown_notice.set()

    def _trade(self, state: LinkState, trade: AggTrade) -> None:
        if trade.event_ms > state.max_event_ms:  # noqa: PLR1730 - hot path, no call
            state.max_event_ms = trade.event_ms
        sym = trade.symbol
        qualified = self.qualified.get(sym)
        if qualified is None:
            return                                  # not followed (frames still in flight)
        seen = state.last_seen.get(sym)
        if seen is not None and trade.agg_id <= seen:
            if trade.agg_id < seen:
                self._on_bad(state, f"{sym}: aggregate id {trade.agg_id} after {seen} "
                                    "(out of order)", None, qualified)
            else:
                self.duplicates += 1
            return
        state.last_seen[sym] = trade.agg_id
        if trade.event_ms > self.clock_ms:  # noqa: PLR1730 - hot path, no call
            self.clock_ms = trade.event_ms
        offer = self.sequencer.offer(trade)
        if offer is Offer.ACCEPT:
            self.ticks.append(Tick(qualified, trade.price, trade.qty, trade.time_ms, trade.agg_id))
            self.woke = True
        elif offer is Offer.DUPLICATE:
            self.duplicates += 1
        elif offer is Offer.GAP:
            self._on_gap(sym, f"aggregate id {trade.agg_id} arrived after "
                              f"{self.sequencer.last_id(sym)}")

    def queue(self, trades: list[AggTrade]) -> None:
        """Backfilled trades (already sequenced) join the queue."""
        if trades:
            q = self.qualified
            self.ticks.extend(Tick(q[t.symbol], t.price, t.qty, t.time_ms, t.agg_id)
                              for t in trades if t.symbol in q)
            self.woke = True

    def take(self) -> list[Tick]:
        """Everything queued so far, sorted by event time (stable: per-symbol id order kept)."""
        batch, self.ticks = self.ticks, []
        batch.sort(key=_time)
        return batch


def _time(tick: Tick) -> int:
    return tick.time_ms
