"""Feed events as DATA_QUALITY alerts.

Who gets one: every owner with a rule reading an affected symbol. An event about
one symbol goes to the owners of rules reading that symbol, with that symbol; an
event about a whole source goes once to each owner with a rule reading any
symbol of the source's venue, with the symbol ``<venue>:*``. BAD_MESSAGE events
are counted and logged only.

Identity (the store keeps one alert per identity): owner, rule ``data-quality``
(reserved: no rule can take that id; the API shows these alerts with an empty
``rule``, so filter on their kind), the symbol, the event's time, and a rank made of the source's place
in its route and the event kind (``position * 6 + kind index``), so two
different events at the same millisecond never collapse into one.
"""

from __future__ import annotations

from collections.abc import Iterable

from alerts.market.base import EVENT_KINDS, SourceEvent
from alerts.storage.records import NewAlert

RULE_ID = "data-quality"
"""The ``rule_id`` of every DATA_QUALITY alert."""

_TITLES = {
    "STALE": "feed stale",
    "GAP": "gap in the data",
    "RECONNECT": "reconnected",
    "RATE_LIMITED": "rate limited",
    "RECOVERED": "feed recovered",
}


def alerts_for(event: SourceEvent, *, symbol: str, owners: Iterable[str], position: int,
               now_ms: int) -> list[NewAlert]:
    """One DATA_QUALITY alert per owner (none for BAD_MESSAGE)."""
    if event.kind not in _TITLES:
        return []
    where = f" for {event.symbol}" if event.symbol else ""
    message = f"data quality: {_TITLES[event.kind]} on {event.source}{where}: {event.detail}"
    rank = position * len(EVENT_KINDS) + EVENT_KINDS.index(event.kind)
    return [
        NewAlert(owner=owner, rule_id=RULE_ID, symbol=symbol, kind="DATA_QUALITY",
                 message=message, condition_text="", event_time_ms=event.time_ms,
                 receive_time_ms=now_ms, decide_time_ms=now_ms, rank=rank,
                 details={"source": event.source, "event": event.kind,
                          "detail": event.detail})
        for owner in sorted(set(owners))
    ]
