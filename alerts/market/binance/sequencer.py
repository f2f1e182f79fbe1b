"""Per-symbol ordering of aggregate trades by their contiguous ids.

Binance's aggregate ids increase by one per symbol, so the next trade to hand
on is always ``last + 1``. ``Sequencer.offer`` classifies a live trade:
ACCEPT (the next one), DUPLICATE (already handed on: overlapping connections,
a backfill that overtook the stream), GAP (ids were skipped: the caller
backfills from REST while later live trades are HELD), HOLD (the symbol is
being backfilled). ``absorb`` merges a REST page with the held live trades and
returns what became contiguous. No I/O here.
"""

from __future__ import annotations

import enum

from alerts.market.binance.messages import AggTrade


class Offer(enum.Enum):
    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    GAP = "gap"
    HOLD = "hold"


class Sequencer:
    """Last handed-on aggregate id per symbol, and the live trades held during a backfill."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._held: dict[str, dict[int, AggTrade]] = {}
        self._missed: dict[str, int] = {}      # REST rows the stream never delivered, per backfill

    def last_id(self, symbol: str) -> int | None:
        return self._last.get(symbol)

    def next_id(self, symbol: str) -> int:
        """The aggregate id that must come next (the symbol must have a last id)."""
        return self._last[symbol] + 1

    def recovering(self, symbol: str) -> bool:
        return symbol in self._held

    @property
    def recovering_symbols(self) -> list[str]:
        return list(self._held)

    def offer(self, trade: AggTrade) -> Offer:
        sym = trade.symbol
        last = self._last.get(sym)
        held = self._held.get(sym)
        if last is not None and trade.agg_id <= last:
            return Offer.DUPLICATE
        if held is not None:
            held.setdefault(trade.agg_id, trade)
            return Offer.HOLD
        if last is None or trade.agg_id == last + 1:
            self._last[sym] = trade.agg_id
            return Offer.ACCEPT
        self._held[sym] = {trade.agg_id: trade}
        return Offer.GAP

    def begin(self, symbol: str) -> bool:
        """Hold ``symbol``'s live trades for a backfill; False: no last id to resume from."""
        if symbol not in self._last:
            return False
        self._held.setdefault(symbol, {})
        return True

    def held_ids(self, symbol: str) -> list[int]:
        return sorted(self._held.get(symbol, ()))

    def absorb(self, symbol: str, rows: list[AggTrade]) -> list[AggTrade]:
        """REST rows (ascending) then the held trades: what now follows ``last``, in id order."""
        last = self._last[symbol]
        held = self._held[symbol]
        out: list[AggTrade] = []
        missed = 0
        for row in rows:
            if row.agg_id <= last:
                continue
            if row.agg_id != last + 1:
                break
            out.append(row)
            last = row.agg_id
            missed += row.agg_id not in held
        if missed:
            self._missed[symbol] = self._missed.get(symbol, 0) + missed
        while (nxt := held.pop(last + 1, None)) is not None:
            out.append(nxt)
            last += 1
        for stale in [k for k in held if k <= last]:
            del held[stale]
        self._last[symbol] = last
        return out

    def skip(self, symbol: str) -> tuple[int, list[AggTrade]]:
        """Give up on the missing ids: jump to the first held trade; (first missing id, drained)."""
        missing = self._last[symbol] + 1
        held = self._held.get(symbol, {})
        if held:
            self._last[symbol] = min(held) - 1
        return missing, self.absorb(symbol, [])

    def end(self, symbol: str) -> int:
        """The backfill is over (nothing is held any more): live trades flow again.

        Returns how many trades came from REST only (the stream never delivered them).
        """
        held = self._held.pop(symbol, {})
        if held:
            raise RuntimeError(f"{symbol}: backfill ended with trades still held: {sorted(held)}")
        return self._missed.pop(symbol, 0)

    def forget(self, symbol: str) -> None:
        self._last.pop(symbol, None)
        self._held.pop(symbol, None)
        self._missed.pop(symbol, None)
