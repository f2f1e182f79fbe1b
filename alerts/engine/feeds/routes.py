"""Venue routing: which market sources feed a venue's symbols, in order of preference.

The mapping is written ``venue=source,source;venue=source`` (the ``market_routes``
setting), e.g. ``binance=binance;us=yahoo,alphavantage``: a symbol
``us:SPY`` is fed by ``yahoo`` while it is healthy, else by ``alphavantage``. Every source of a route feeds one engine clock, named
``feed:<venue>``, so a failover never changes the clock a symbol's bars close by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from alerts.errors import InvalidArgumentError

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class Route:
    """A venue and its sources, the first preferred."""

    venue: str
    sources: tuple[str, ...]

    @property
    def clock(self) -> str:
        """The engine source (clock) every source of the route feeds."""
        return f"feed:{self.venue}"


def parse_routes(text: str) -> tuple[Route, ...]:
    """Parse ``venue=a,b;venue=c``; a bad entry, a repeated venue or source is an error."""
    routes: list[Route] = []
    seen: set[str] = set()
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        venue, sep, names = entry.partition("=")
        venue = venue.strip()
        sources = tuple(n.strip() for n in names.split(",") if n.strip())
        if not sep or not _NAME.fullmatch(venue) or not sources:
            raise InvalidArgumentError(
                f"market_routes: {entry!r} is not venue=source[,source...]")
        for name in (venue, *sources):
            if not _NAME.fullmatch(name):
                raise InvalidArgumentError(f"market_routes: bad name {name!r}")
        for key in (f"venue {venue}", *(f"source {s}" for s in sources)):
            if key in seen:
                raise InvalidArgumentError(f"market_routes: {key} appears twice")
            seen.add(key)
        routes.append(Route(venue, sources))
    return tuple(routes)


def parse_venue_times(text: str, key: str) -> dict[str, int]:
    """Parse ``venue=ms;venue=ms`` (a per-venue override of a time setting)."""
    out: dict[str, int] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        venue, sep, value = (p.strip() for p in entry.partition("="))
        try:
            ms = int(value)
        except ValueError:
            ms = -1
        if not sep or not _NAME.fullmatch(venue) or ms < 0 or venue in out:
            raise InvalidArgumentError(f"{key}: {entry!r} is not venue=milliseconds (once each)")
        out[venue] = ms
    return out
