"""Checks every RPC of the servicer shares: page sizes and a deadline before a write."""

from __future__ import annotations

import grpc

from alerts.api import convert
from alerts.errors import DeadlineExceededError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(value: int, default: int = DEFAULT_PAGE_SIZE) -> int:
    """A request's ``page_size``: 0 means ``default``, larger than the maximum is clamped."""
    if value < 0:
        raise convert.invalid("page_size", "must be >= 0")
    return min(value or default, MAX_PAGE_SIZE)


def check_deadline(context: grpc.aio.ServicerContext) -> None:
    """Refuse to store a change the client has already given up on."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineExceededError("the deadline passed before the change was stored")
