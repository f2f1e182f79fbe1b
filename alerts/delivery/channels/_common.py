"""Helpers shared by the senders: HTTP clients, Retry-After, failures as outcomes, text limits."""

from __future__ import annotations

import asyncio
import json
import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from alerts.delivery.channels.base import Outcome


def http_client(timeout_s: float, user_agent: str, **kwargs: object) -> httpx.AsyncClient:
    """An HTTP client that follows no redirects and ignores proxy environment variables."""
    return httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False,
                             headers={"user-agent": user_agent}, **kwargs)  # type: ignore[arg-type]


_MAX_RESPONSE_BYTES = 64 * 1024


async def read_some(response: httpx.Response) -> str:
    """Up to 64 KiB of the response body as text (a destination cannot make us read more)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)[:_MAX_RESPONSE_BYTES].decode("utf-8", errors="replace")


async def post(client: httpx.AsyncClient, url: str, *, redact: str = "",
               **kwargs: Any) -> tuple[httpx.Response, str, float] | Outcome:
    """One POST: (response, body text, latency to the headers), or a retryable ``Outcome``
    when no answer came (``redact`` is removed from its error text). The client's timeout
    bounds the whole exchange, not only each read."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(total_timeout(client)):
            response = await client.send(client.build_request("POST", url, **kwargs),
                                         stream=True)
            try:
                latency = time.perf_counter() - started
                text = await read_some(response)
            finally:
                await response.aclose()
    except httpx.HTTPError as exc:
        return transport_failure(exc, started, redact)
    except TimeoutError:
        return timed_out(started)
    return response, text, latency


def total_timeout(client: httpx.AsyncClient) -> float | None:
    """The client's configured timeout, used as the deadline of one whole attempt."""
    return client.timeout.read


def timed_out(started: float) -> Outcome:
    """An attempt that ran past its deadline: retryable, status 0."""
    return Outcome(ok=False, status=0, latency_s=time.perf_counter() - started, retryable=True,
                   error="timeout: no complete answer within the attempt's deadline")


def json_object(text: str) -> dict[str, Any]:
    """The body as a JSON object, or {} when it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None if absent or malformed."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def transport_failure(exc: httpx.HTTPError, started: float, redact: str = "") -> Outcome:
    """A request that got no HTTP answer (timeout, refused, reset): retryable, status 0."""
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
    detail = str(exc) or kind
    if redact:
        detail = detail.replace(redact, "<redacted>")
    return Outcome(ok=False, status=0, latency_s=time.perf_counter() - started, retryable=True,
                   error=f"{kind}: {detail}")


def seconds_value(value: object) -> float | None:
    """A JSON number of seconds (>= 0), or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        return None
    return float(value)


def paced_out(wait_s: float) -> Outcome:
    """Nothing sent: the destination's rate limit would make us wait ``wait_s`` (> the maximum)."""
    return Outcome(ok=False, status=0, retryable=True, retry_after_s=wait_s,
                   error=f"not sent: destination rate limit frees a turn in {wait_s:.3f} s")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (how Telegram counts; never less than ``len(text)``)."""
    return len(text.encode("utf-16-le")) // 2


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` UTF-16 code units, never splitting a character; a cut text ends with
    an ellipsis."""
    if utf16_len(text) <= limit:
        return text
    budget = limit - 1
    cut = []
    for char in text:
        budget -= 2 if ord(char) > 0xFFFF else 1
        if budget < 0:
            break
        cut.append(char)
    return "".join(cut) + "\u2026"


def with_alert_id(text: str, alert_id: int, limit: int) -> str:
    """``text`` (cut to fit) followed by a line naming the alert id, within ``limit`` units."""
    suffix = f"\n\nalert {alert_id}"
    return truncate(text.strip() or "alert", limit - len(suffix)) + suffix


def short(text: str, limit: int = 300) -> str:
    """A response body shortened for an error message."""
    return truncate(" ".join(text.split()), limit)
