"""Faults a test (or ``alerts exchange --drop-after``) switches on, applied deterministically.

Every stream fault applies to the connections open when it is called, in the
order messages leave them: ``drop(after_messages=N)`` cuts each connection
(no close frame) once it has sent N more stream messages (0: at once);
``stall(seconds)`` freezes them (nothing read, nothing sent, no pings; the
stream messages of that time are lost to them); ``malformed_json(n)`` and
``wrong_fields(n)`` put a bad frame before each of their next n stream
messages (extra frames: no data is lost); ``reorder(n)`` swaps their next n
pairs of stream messages (a frame with no successor within 0.5 s goes out
alone, so nothing is lost). ``refuse_connections(seconds)`` answers new
stream connections with HTTP 503 (an outage, for reconnect back-off).
``rate_limit(seconds)`` answers every REST request
with 429 for a while (clients that ignore ``Retry-After`` get banned: 418).
"""

from __future__ import annotations

import json
from typing import Any, Protocol


class FaultTarget(Protocol):
    """A stream connection as faults see it."""

    drop_after: int | None
    bad_frames: list[str]
    swaps: int

    def stall(self, seconds: float) -> None: ...

    def abort(self) -> None: ...


class FaultHost(Protocol):
    """The exchange as faults see it."""

    def fault_targets(self) -> list[FaultTarget]: ...

    def force_rate_limit(self, seconds: float) -> None: ...

    def refuse_connections(self, seconds: float) -> None: ...


MALFORMED = "malformed"
WRONG_FIELDS = "wrong_fields"


def corrupt(kind: str, frame: str) -> str:
    """A bad copy of the stream frame ``frame``: cut short, or with fields of the wrong type."""
    if kind == MALFORMED:
        return frame[: max(1, len(frame) // 2)]
    message: dict[str, Any] = json.loads(frame)
    data = message.get("data", message)
    wrong = {"e": data.get("e"), "E": str(data.get("E")), "s": 0, "p": "not-a-number",
             "q": None, "T": [data.get("T")]}
    if "data" in message:
        return json.dumps({"stream": message["stream"], "data": wrong}, separators=(",", ":"))
    return json.dumps(wrong, separators=(",", ":"))


class Faults:
    """The fault switches of one exchange (see the module docstring)."""

    def __init__(self, host: FaultHost) -> None:
        self._host = host

    def drop(self, *, after_messages: int = 0) -> int:
        """Cut every open connection now, or after each has sent ``after_messages`` more; returns how many."""
        targets = self._host.fault_targets()
        for target in targets:
            if after_messages <= 0:
                target.abort()
            else:
                target.drop_after = after_messages
        return len(targets)

    def stall(self, seconds: float) -> int:
        """Freeze every open connection for ``seconds``; returns how many."""
        targets = self._host.fault_targets()
        for target in targets:
            target.stall(seconds)
        return len(targets)

    def malformed_json(self, count: int = 1) -> None:
        """Precede each open connection's next ``count`` stream messages by a truncated copy."""
        for target in self._host.fault_targets():
            target.bad_frames.extend([MALFORMED] * count)

    def wrong_fields(self, count: int = 1) -> None:
        """Precede each open connection's next ``count`` stream messages by one with wrong fields."""
        for target in self._host.fault_targets():
            target.bad_frames.extend([WRONG_FIELDS] * count)

    def reorder(self, pairs: int = 1) -> None:
        """Swap each open connection's next ``pairs`` pairs of consecutive stream messages."""
        for target in self._host.fault_targets():
            target.swaps += pairs

    def refuse_connections(self, seconds: float) -> None:
        """Answer every new stream connection with HTTP 503 (``-1008``) for ``seconds``."""
        self._host.refuse_connections(seconds)

    def rate_limit(self, seconds: float) -> None:
        """Answer every REST request with 429 (``-1003``, ``Retry-After``) for ``seconds``."""
        self._host.force_rate_limit(seconds)
