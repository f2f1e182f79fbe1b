"""ListChannels filters: the AIP-160 grammar of ``aip160`` over channel columns.

Fields: ``state`` (``ACTIVE``, ``PAUSED``, ``FAILING``), ``display_name``,
``paused`` (``true``/``false``) and ``labels.<key>``. A top-level ``paused =``
is answered by the store; the rest is checked on each channel. A bad filter is
INVALID_ARGUMENT on ``filter`` naming the column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alerts.api.aip160 import FilterParser, Token, enum_value, filter_error
from alerts.v1 import channels_pb2

ChannelPredicate = Callable[[channels_pb2.Channel], bool]

_STATES = {name.removeprefix("STATE_"): value
           for name, value in channels_pb2.Channel.State.items() if value}


class _ChannelParser(FilterParser[channels_pb2.Channel]):
    FIELDS = "state, display_name, paused or labels.<key>"
    NARROWABLE = ("paused",)

    def field(self, tok: Token, col: int, value: str
              ) -> tuple[Callable[[channels_pb2.Channel], object], object]:
        name = tok.text
        if name == "paused":
            if value not in ("true", "false"):
                raise filter_error(col, "paused is true or false")
            return (lambda c: c.paused), value == "true"
        if name == "state":
            return (lambda c: c.state), enum_value(_STATES, value, name, col, ("STATE_",))
        if name == "display_name":
            return (lambda c: c.display_name), value
        if name.startswith("labels.") and len(name) > len("labels."):
            key = name.removeprefix("labels.")
            return (lambda c: c.labels.get(key)), value
        raise filter_error(tok.col, f"unknown field {name!r}: use {self.FIELDS}")


@dataclass(frozen=True)
class ChannelFilter:
    """What the store can narrow by (``paused``) and the predicate for the rest."""

    paused: bool | None
    accepts: ChannelPredicate


def parse_channel_filter(text: str) -> ChannelFilter:
    if not text.strip():
        return ChannelFilter(None, lambda channel: True)
    parser = _ChannelParser(text)
    accepts = parser.parse()
    return ChannelFilter(parser.narrow.get("paused"), accepts)  # type: ignore[arg-type]
