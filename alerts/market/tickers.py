"""Venue-qualified symbols (``us:SPY``) to a stock provider's own tickers.

A symbol of the source's venue maps to the text after the colon (``us:SPY`` ->
``SPY``) unless the configured overrides name it (``us:BRK.B`` -> ``BRK-B`` on
Yahoo). A symbol of another venue, or with no ticker, is refused with a field
violation on ``symbol``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from alerts.errors import FieldViolation, InvalidArgumentError


@dataclass(frozen=True)
class TickerMap:
    """How one source names the symbols of its venue."""

    venue: str = "us"
    overrides: Mapping[str, str] = field(default_factory=dict)

    def ticker(self, symbol: str) -> str:
        """The provider's ticker for ``symbol`` (InvalidArgumentError if not this venue's)."""
        mapped = self.overrides.get(symbol)
        if mapped:
            return mapped
        venue, sep, ticker = symbol.partition(":")
        if not sep or venue != self.venue or not ticker.strip():
            message = f"symbol {symbol!r} is not a {self.venue}:TICKER symbol"
            raise InvalidArgumentError(message, violations=(FieldViolation("symbol", message),))
        return ticker
