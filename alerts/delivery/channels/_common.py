"""Helpers shared by the senders: HTTP clients, Retry-After, failures as outcomes, text limits."""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime

import httpx

from alerts.delivery.channels.base import Outcome


def http_client(timeout_s: float, user_agent: str, **kwargs: object) -> httpx.AsyncClient:
    """An HTTP client that follows no redirects and ignores proxy environment variables."""
    return httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False,
                             headers={"user-agent": user_agent}, **kwargs)  # type: ignore[arg-type]


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


def paced_out(wait_s: float) -> Outcome:
    """Nothing sent: the destination's rate limit would make us wait ``wait_s`` (> the maximum)."""
    return Outcome(ok=False, status=0, retryable=True, retry_after_s=wait_s,
                   error=f"not sent: destination rate limit frees a turn in {wait_s:.3f} s")


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters; a cut text ends with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "\u2026"


def with_alert_id(text: str, alert_id: int, limit: int) -> str:
    """``text`` (cut to fit) followed by a line naming the alert id, within ``limit`` chars."""
    suffix = f"\n\nalert {alert_id}"
    return truncate(text.strip() or "alert", limit - len(suffix)) + suffix


def short(text: str, limit: int = 300) -> str:
    """A response body shortened for an error message."""
    return truncate(" ".join(text.split()), limit)
