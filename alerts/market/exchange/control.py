"""Live control messages of a stream connection: SUBSCRIBE, UNSUBSCRIBE,
LIST_SUBSCRIPTIONS, SET_PROPERTY and GET_PROPERTY, with Binance's replies.

No I/O here: ``handle_control`` takes one text message and the connection's
``Subscriptions`` and returns the reply text plus the streams added and
removed. Replies echo ``id``: ``{"result":null,"id":1}``. Errors are wrapped as
Binance wraps them on the wire, ``{"error":{"code":2,"msg":"..."},"id":2}``:
0 ``Unknown property``; 1 ``Invalid value type: expected Boolean``;
2 ``Invalid request: ...``; 3 ``Invalid JSON: expected value at line L column C``.

Choices where the documentation is silent: ``id`` may be a signed 64-bit
integer, a string of at most 36 characters or null (absent = null); another
id is refused and the reply's id is null. An unknown method names it as
serde does (``unknown variant `FOO`, expected one of ...``). A request that
would take the connection past its stream cap is refused whole with
``Invalid request: too many streams``; so is a SUBSCRIBE/UNSUBSCRIBE with an
invalid stream name (``Invalid request: invalid stream``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from alerts.market.exchange.streams import Stream, dumps, parse_stream

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_INT64 = (-(2 ** 63), 2 ** 63 - 1)
_MAX_ID_TEXT = 36


@dataclass
class Subscriptions:
    """A connection's streams (in subscription order) and its ``combined`` property."""

    combined: bool
    max_streams: int
    streams: dict[str, Stream] = field(default_factory=dict)


@dataclass(frozen=True)
class ControlResult:
    """The reply to send and how the subscriptions changed."""

    reply: str
    added: tuple[Stream, ...] = ()
    removed: tuple[Stream, ...] = ()


class _RequestError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def error_reply(code: int, msg: str, request_id: Any) -> str:
    return dumps({"error": {"code": code, "msg": msg}, "id": request_id})


def result_reply(result: Any, request_id: Any) -> str:
    return dumps({"result": result, "id": request_id})


def _valid_id(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    return isinstance(value, str) and len(value) <= _MAX_ID_TEXT


def handle_control(text: str | bytes, subs: Subscriptions) -> ControlResult:
    """Apply one control message to ``subs`` and say what to answer."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        return ControlResult(error_reply(
            3, f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}", None))
    except UnicodeDecodeError:
        return ControlResult(error_reply(3, "Invalid JSON: expected value at line 1 column 1",
                                         None))
    if not isinstance(message, dict):
        return ControlResult(error_reply(2, "Invalid request: missing field `method`", None))
    request_id = message.get("id")
    if not _valid_id(request_id):
        return ControlResult(error_reply(
            2, "Invalid request: request ID must be an unsigned integer", None))
    try:
        return _dispatch(message, subs, request_id)
    except _RequestError as err:
        return ControlResult(error_reply(err.code, err.msg, request_id))


def _dispatch(message: dict[str, Any], subs: Subscriptions, request_id: Any) -> ControlResult:
    if "method" not in message:
        raise _RequestError(2, "Invalid request: missing field `method`")
    method = message["method"]
    if method not in METHODS:
        shown = method if isinstance(method, str) else dumps(method)
        expected = ", ".join(f"`{m}`" for m in METHODS)
        raise _RequestError(2, f"Invalid request: unknown variant `{shown}`, "
                               f"expected one of {expected}")
    params = message.get("params")
    if params is None:
        params = []
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        streams = _streams(params)
        if method == "SUBSCRIBE":
            return _subscribe(streams, subs, request_id)
        removed = tuple(subs.streams.pop(s.name) for s in streams if s.name in subs.streams)
        return ControlResult(result_reply(None, request_id), removed=removed)
    if method == "LIST_SUBSCRIPTIONS":
        if params != []:
            raise _RequestError(2, "Invalid request: too many parameters")
        return ControlResult(result_reply(list(subs.streams), request_id))
    if not isinstance(params, list):
        raise _RequestError(2, "Invalid request: property name must be a string")
    if method == "GET_PROPERTY":
        if len(params) > 1:
            raise _RequestError(2, "Invalid request: too many parameters")
        _property_name(params)
        return ControlResult(result_reply(subs.combined, request_id))
    if len(params) > 2:
        raise _RequestError(2, "Invalid request: too many parameters")
    _property_name(params)
    value = params[1] if len(params) > 1 else None
    if not isinstance(value, bool):
        raise _RequestError(1, "Invalid value type: expected Boolean")
    subs.combined = value
    return ControlResult(result_reply(None, request_id))


def _property_name(params: list[Any]) -> None:
    if not params or not isinstance(params[0], str):
        raise _RequestError(2, "Invalid request: property name must be a string")
    if params[0] != "combined":
        raise _RequestError(0, "Unknown property")


def _streams(params: Any) -> list[Stream]:
    if not isinstance(params, list):
        raise _RequestError(2, "Invalid request: invalid stream")
    streams: list[Stream] = []
    for name in params:
        stream = parse_stream(name) if isinstance(name, str) else None
        if stream is None:
            raise _RequestError(2, "Invalid request: invalid stream")
        streams.append(stream)
    return streams


def _subscribe(streams: list[Stream], subs: Subscriptions, request_id: Any) -> ControlResult:
    new: dict[str, Stream] = {}
    for stream in streams:
        if stream.name not in subs.streams:
            new.setdefault(stream.name, stream)
    if len(subs.streams) + len(new) > subs.max_streams:
        raise _RequestError(2, "Invalid request: too many streams")
    subs.streams.update(new)
    return ControlResult(result_reply(None, request_id), added=tuple(new.values()))
