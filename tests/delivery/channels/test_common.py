"""Shared helpers: Retry-After parsing and text limits."""

from __future__ import annotations

import pytest

from alerts.delivery.channels._common import (
    parse_retry_after,
    seconds_value,
    truncate,
    utf16_len,
    with_alert_id,
)

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT


@pytest.mark.parametrize("value,seconds", [
    ("120", 120.0), (" 2.5 ", 2.5), ("0", 0.0), ("-3", 0.0),
    ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0),
    ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),       # in the past: now
    ("soon", None), ("", None), (None, None), ("nan", None), ("inf", None),
])
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize("value,seconds", [(5, 5.0), (64.57, 64.57), (-1, None), (True, None),
                                           ("5", None), (float("inf"), None), (None, None)])
def test_seconds_value(value: object, seconds: float | None) -> None:
    assert seconds_value(value) == seconds


def test_truncate_counts_utf16_and_never_splits() -> None:
    assert truncate("abc", 3) == "abc"
    assert truncate("abcd", 3) == "ab\u2026"
    rocket = "\U0001F680"
    cut = truncate(rocket * 10, 6)
    assert cut == rocket * 2 + "\u2026" and utf16_len(cut) == 5
    assert utf16_len(truncate("é" * 10 + rocket * 10, 15)) <= 15


def test_with_alert_id_always_keeps_the_id() -> None:
    text = with_alert_id("x" * 100, 123456, 40)
    assert utf16_len(text) <= 40 and text.endswith("\n\nalert 123456")
    assert with_alert_id("  ", 7, 40) == "alert\n\nalert 7"
