"""Alert messages rendered from a rule's template.

Placeholders: ``{{symbol}} {{price}} {{rule}} {{condition}} {{value}}
{{values}} {{timeframe}} {{time}}``; unknown ones are left as written, so a
typo shows in the message instead of failing the alert.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime

DEFAULT_TEMPLATE = "{{rule}}: {{condition}} on {{symbol}} at {{price}} ({{time}})"
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.10g}"


def render(
    template: str,
    *,
    rule: str,
    symbol: str,
    condition: str,
    price: float | None,
    values: Sequence[tuple[str, float]],
    timeframe: str | None,
    time_ms: int,
) -> str:
    context = {
        "rule": rule,
        "symbol": symbol,
        "condition": condition,
        "price": _number(price),
        "value": _number(values[0][1]) if values else "n/a",
        "values": ", ".join(f"{label}={_number(v)}" for label, v in values),
        "timeframe": timeframe or "tick",
        "time": datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="milliseconds"),
    }
    return _PLACEHOLDER.sub(lambda m: context.get(m.group(1), m.group(0)), template or
                            DEFAULT_TEMPLATE)
