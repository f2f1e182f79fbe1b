"""Alert messages rendered from a rule's template, and delivered texts from a channel's.

Placeholders: ``{{symbol}} {{price}} {{rule}} {{condition}} {{value}}
{{values}} {{timeframe}} {{time}}``; a channel's template (``render_alert``)
also has ``{{message}}`` (the alert's rendered message) and ``{{id}}`` (the
alert id). In a rule's template unknown ones are left as written, so a typo
shows in the message instead of failing the alert; a channel's template is
checked when the channel is created (``unknown_placeholders``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from alerts.storage.records import AlertRecord

DEFAULT_TEMPLATE = "{{rule}}: {{condition}} on {{symbol}} at {{price}} ({{time}})"
DEFAULT_CHANNEL_TEMPLATE = "{{message}}"
MAX_TEMPLATE_BYTES = 2048
"""Longest rule or channel template accepted (UTF-8 bytes)."""
RULE_PLACEHOLDERS = frozenset(
    {"symbol", "price", "rule", "condition", "value", "values", "timeframe", "time"})
CHANNEL_PLACEHOLDERS = RULE_PLACEHOLDERS | {"message", "id"}
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
    extra: Mapping[str, str] | None = None,
    default: str = DEFAULT_TEMPLATE,
) -> str:
    """``template`` (empty: ``default``) with its placeholders replaced; ``extra`` adds
    placeholders (``message`` and ``id`` for a channel)."""
    context = {
        "rule": rule,
        "symbol": symbol,
        "condition": condition,
        "price": _number(price),
        "value": _number(values[0][1]) if values else "n/a",
        "values": ", ".join(f"{label}={_number(v)}" for label, v in values),
        "timeframe": timeframe or "tick",
        "time": datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="milliseconds"),
        **(extra or {}),
    }
    return _PLACEHOLDER.sub(lambda m: context.get(m.group(1), m.group(0)), template or default)


def render_alert(template: str, alert: AlertRecord) -> str:
    """A channel's text for a stored alert (empty template: the alert's message)."""
    return render(
        template, rule=alert.rule_id, symbol=alert.symbol, condition=alert.condition_text,
        price=alert.price, values=alert.values, timeframe=alert.timeframe,
        time_ms=alert.event_time_ms,
        extra={"message": alert.message, "id": str(alert.alert_id)},
        default=DEFAULT_CHANNEL_TEMPLATE)


def unknown_placeholders(template: str, known: frozenset[str] = CHANNEL_PLACEHOLDERS
                         ) -> list[str]:
    """The placeholder names in ``template`` that ``known`` lacks, in order of appearance."""
    return [name for name in dict.fromkeys(_PLACEHOLDER.findall(template)) if name not in known]
