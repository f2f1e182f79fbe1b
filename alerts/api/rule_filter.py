"""ListRules filters: ``field = value`` / ``field != value`` terms joined by ``AND``.

Fields: ``symbol``, ``paused``, ``state`` (``ACTIVE``, ``WARMING_UP``, ``PAUSED``,
``COMPLETED``, ``EXPIRED``), ``trigger_mode`` (``ON_TRUE`` ...), ``timeframe``
(``1m`` ...), ``display_name`` and ``labels.<key>``. Values may be quoted
(``"binance:BTCUSDT"``). ``symbol =`` and ``paused =`` are answered by the store;
the rest are checked on each rule. A bad filter is INVALID_ARGUMENT on ``filter``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.api import convert
from alerts.api.conditions import timeframe_to_proto
from alerts.rules.catalog import TIMEFRAMES
from alerts.v1 import rules_pb2

_TERM = re.compile(r'\s*([a-z_]+(?:\.[A-Za-z0-9_.-]+)?)\s*(!=|=)\s*("[^"]*"|[^\s"]+)\s*')
_STATES = {name.removeprefix("STATE_"): value
           for name, value in rules_pb2.Rule.State.items() if value}
_MODES = {name.removeprefix("TRIGGER_MODE_"): value
          for name, value in rules_pb2.TriggerMode.items() if value}


@dataclass
class RuleFilter:
    """What the store can narrow by, and the checks left for each rule."""

    symbol: str | None = None
    paused: bool | None = None
    checks: list[Callable[[rules_pb2.Rule], bool]] = field(default_factory=list)

    def accepts(self, rule: rules_pb2.Rule) -> bool:
        return all(check(rule) for check in self.checks)


def parse_rule_filter(text: str, qualify: Callable[[str], str]) -> RuleFilter:
    out = RuleFilter()
    if not text.strip():
        return out
    for term in re.split(r"\s+AND\s+", text.strip()):
        match = _TERM.fullmatch(term)
        if match is None:
            raise convert.invalid("filter", f"expected field = value or field != value, "
                                            f"got {term.strip()!r}")
        name, op, value = match.group(1), match.group(2), match.group(3).strip('"')
        equal = op == "="
        if name == "symbol":
            wanted = qualify(value)
            if equal and out.symbol is None:
                out.symbol = wanted
            else:
                out.checks.append(_compare(lambda r: r.symbol, wanted, equal))
        elif name == "paused":
            if value not in ("true", "false"):
                raise convert.invalid("filter", "paused is true or false")
            if equal and out.paused is None:
                out.paused = value == "true"
            else:
                out.checks.append(_compare(lambda r: r.paused, value == "true", equal))
        elif name == "state":
            out.checks.append(_compare(lambda r: r.state, _enum(_STATES, value, name), equal))
        elif name == "trigger_mode":
            mode = _enum(_MODES, value, name)
            # an unset mode is ON_TRUE
            out.checks.append(_compare(
                lambda r: r.trigger_mode or rules_pb2.TRIGGER_MODE_ON_TRUE, mode, equal))
        elif name == "timeframe":
            if value not in TIMEFRAMES:
                raise convert.invalid("filter", f"timeframe is one of {', '.join(TIMEFRAMES)}")
            tf = timeframe_to_proto(value)
            out.checks.append(_compare(lambda r: r.effective_timeframe, tf, equal))
        elif name == "display_name":
            out.checks.append(_compare(lambda r: r.display_name, value, equal))
        elif name.startswith("labels."):
            key = name.removeprefix("labels.")
            out.checks.append(_compare(lambda r, k=key: r.labels.get(k), value, equal))
        else:
            raise convert.invalid("filter", f"unknown field {name!r}: use symbol, paused, "
                                            "state, trigger_mode, timeframe, display_name "
                                            "or labels.<key>")
    return out


def _enum(names: dict[str, int], value: str, field_name: str) -> int:
    key = value.upper().removeprefix("STATE_").removeprefix("TRIGGER_MODE_")
    if key not in names:
        raise convert.invalid("filter", f"{field_name} is one of {', '.join(names)}")
    return names[key]


def _compare(get: Callable[[rules_pb2.Rule], object], wanted: object,
             equal: bool) -> Callable[[rules_pb2.Rule], bool]:
    return lambda rule: (get(rule) == wanted) == equal
