"""ListRules queries: an AIP-160 ``filter`` (``alerts.api.aip160``) and an AIP-132 ``order_by``.

Filter fields: ``symbol`` (a bare symbol takes the default venue), ``paused``
(``true``/``false``), ``state`` (``ACTIVE``, ``WARMING_UP``, ``PAUSED``,
``COMPLETED``, ``EXPIRED``), ``trigger_mode`` (``ON_TRUE`` ...), ``timeframe``
(the effective one: ``1m`` ...), ``display_name`` and ``labels.<key>`` (a
missing label equals nothing, so ``labels.bot != grid`` also matches rules with
no ``bot`` label). Top-level ``symbol =`` and ``paused =`` are answered by the
store.

``order_by``: comma-separated ``create_time``, ``update_time``,
``display_name``, ``symbol``, ``name``, each optionally followed by ``asc`` or
``desc``; ties are broken by ``name``. Empty: ``create_time`` (oldest first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cmp_to_key

from alerts.api import convert
from alerts.api.aip160 import FilterParser, Token, enum_value, filter_error
from alerts.api.conditions import timeframe_to_proto
from alerts.rules.catalog import TIMEFRAMES
from alerts.v1 import rules_pb2

Predicate = Callable[[rules_pb2.Rule], bool]

_STATES = {name.removeprefix("STATE_"): value
           for name, value in rules_pb2.Rule.State.items() if value}
_MODES = {name.removeprefix("TRIGGER_MODE_"): value
          for name, value in rules_pb2.TriggerMode.items() if value}


class _RuleFilterParser(FilterParser[rules_pb2.Rule]):
    FIELDS = "symbol, paused, state, trigger_mode, timeframe, display_name or labels.<key>"
    NARROWABLE = ("symbol", "paused")

    def __init__(self, text: str, qualify: Callable[[str], str]) -> None:
        super().__init__(text)
        self.qualify = qualify

    def field(self, tok: Token, col: int, value: str
              ) -> tuple[Callable[[rules_pb2.Rule], object], object]:
        name = tok.text
        if name == "symbol":
            return (lambda r: r.symbol), self.qualify(value)
        if name == "paused":
            if value not in ("true", "false"):
                raise filter_error(col, "paused is true or false")
            return (lambda r: r.paused), value == "true"
        if name == "state":
            return (lambda r: r.state), enum_value(_STATES, value, name, col, ("STATE_",))
        if name == "trigger_mode":
            # an unset mode is ON_TRUE
            return ((lambda r: r.trigger_mode or rules_pb2.TRIGGER_MODE_ON_TRUE),
                    enum_value(_MODES, value, name, col, ("TRIGGER_MODE_",)))
        if name == "timeframe":
            if value not in TIMEFRAMES:
                raise filter_error(col, f"timeframe is one of {', '.join(TIMEFRAMES)}")
            return (lambda r: r.effective_timeframe), timeframe_to_proto(value)
        if name == "display_name":
            return (lambda r: r.display_name), value
        if name.startswith("labels.") and len(name) > len("labels."):
            key = name.removeprefix("labels.")
            return (lambda r: r.labels.get(key)), value
        raise filter_error(tok.col, f"unknown field {name!r}: use {self.FIELDS}")


_ORDER_KEYS: dict[str, Callable[[rules_pb2.Rule], object]] = {
    "create_time": lambda r: r.create_time.ToMilliseconds(),
    "update_time": lambda r: r.update_time.ToMilliseconds(),
    "display_name": lambda r: r.display_name,
    "symbol": lambda r: r.symbol,
    "name": lambda r: r.name,
}


def _parse_order(text: str) -> list[tuple[str, bool]]:
    """``[(field, descending)]`` ending with ``name`` (the unique tie-breaker)."""
    out: list[tuple[str, bool]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        words = part.split()
        if words[0] not in _ORDER_KEYS or len(words) > 2 or (
                len(words) == 2 and words[1] not in ("asc", "desc")):
            raise convert.invalid("order_by", f"{part!r}: use {', '.join(_ORDER_KEYS)}, "
                                              "each optionally followed by asc or desc")
        if any(f == words[0] for f, _ in out):
            raise convert.invalid("order_by", f"{words[0]!r} is named twice")
        out.append((words[0], len(words) == 2 and words[1] == "desc"))
    if not out:
        out.append(("create_time", False))
    if out[-1][0] != "name" and all(f != "name" for f, _ in out):
        out.append(("name", False))
    return out


DEFAULT_ORDER = (("create_time", False), ("name", False))
"""The order of an empty ``order_by``, which is also the store's own order."""


@dataclass(frozen=True)
class RuleQuery:
    """A parsed ListRules request: what the store can narrow by, the rest, the order."""

    symbol: str | None
    paused: bool | None
    accepts: Predicate
    order: tuple[tuple[str, bool], ...]

    def key(self, rule: rules_pb2.Rule) -> list[object]:
        """The rule's sort key (one value per order field): what a page token stores."""
        return [_ORDER_KEYS[f](rule) for f, _ in self.order]

    def compare(self, a: Sequence[object], b: Sequence[object]) -> int:
        for (_, desc), x, y in zip(self.order, a, b, strict=True):
            if x != y:
                less = x < y  # type: ignore[operator]
                return (1 if less else -1) if desc else (-1 if less else 1)
        return 0

    def sort(self, rules: list[rules_pb2.Rule]) -> list[rules_pb2.Rule]:
        keyed: list[tuple[list[object], rules_pb2.Rule]] = [(self.key(r), r) for r in rules]

        def by_key(a: tuple[list[object], rules_pb2.Rule],
                   b: tuple[list[object], rules_pb2.Rule]) -> int:
            return self.compare(a[0], b[0])
        keyed.sort(key=cmp_to_key(by_key))
        return [rule for _, rule in keyed]

    def valid_key(self, key: Sequence[object]) -> bool:
        types = {"create_time": int, "update_time": int}
        return len(key) == len(self.order) and all(
            type(v) is types.get(f, str) for (f, _), v in zip(self.order, key, strict=True))


def parse_rule_query(filter_text: str, order_by: str,
                     qualify: Callable[[str], str]) -> RuleQuery:
    order = tuple(_parse_order(order_by))
    if not filter_text.strip():
        return RuleQuery(None, None, lambda rule: True, order)
    parser = _RuleFilterParser(filter_text, qualify)
    accepts = parser.parse()
    narrow = parser.narrow
    return RuleQuery(narrow.get("symbol"), narrow.get("paused"),  # type: ignore[arg-type]
                     accepts, order)
