"""ListRules queries: an AIP-160 ``filter`` and an AIP-132 ``order_by``.

Filter grammar (AIP-160's precedence: ``OR`` binds tighter than ``AND``; a
sequence of terms without an operator is an ``AND``)::

    expression  = sequence { "AND" sequence }
    sequence    = factor { factor }
    factor      = term { "OR" term }
    term        = [ "NOT" | "-" ] ( restriction | "(" expression ")" )
    restriction = field ( "=" | "!=" ) value

Fields: ``symbol`` (a bare symbol takes the default venue), ``paused``
(``true``/``false``), ``state`` (``ACTIVE``, ``WARMING_UP``, ``PAUSED``,
``COMPLETED``, ``EXPIRED``), ``trigger_mode`` (``ON_TRUE`` ...), ``timeframe``
(the effective one: ``1m`` ...), ``display_name`` and ``labels.<key>`` (a
missing label equals nothing, so ``labels.bot != grid`` also matches rules with
no ``bot`` label). Values are bare words or double-quoted strings with ``\\"``
and ``\\\\`` escapes. A bad filter is INVALID_ARGUMENT on ``filter`` naming the
column.

``order_by``: comma-separated ``create_time``, ``update_time``,
``display_name``, ``symbol``, ``name``, each optionally followed by ``asc`` or
``desc``; ties are broken by ``name``. Empty: ``create_time`` (oldest first).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cmp_to_key

from alerts.api import convert
from alerts.api.conditions import timeframe_to_proto
from alerts.errors import InvalidArgumentError
from alerts.rules.catalog import TIMEFRAMES
from alerts.v1 import rules_pb2

Predicate = Callable[[rules_pb2.Rule], bool]

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>!=|=|\(|\))|(?P<word>[^\s()"=!]+))')
_STATES = {name.removeprefix("STATE_"): value
           for name, value in rules_pb2.Rule.State.items() if value}
_MODES = {name.removeprefix("TRIGGER_MODE_"): value
          for name, value in rules_pb2.TriggerMode.items() if value}
_FIELDS = "symbol, paused, state, trigger_mode, timeframe, display_name or labels.<key>"
_KEYWORDS = ("AND", "OR", "NOT")


@dataclass(frozen=True)
class _Token:
    kind: str     # "str", "op", "word" or "end"
    text: str
    col: int      # 1-based


def _bad(where: str, col: int, why: str) -> InvalidArgumentError:
    return convert.invalid(where, f"1:{col}: {why}")


def _lex(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].isspace():
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            start = len(text) - len(text[pos:].lstrip())
            raise _bad("filter", start + 1, f"unexpected {text[start]!r}")
        kind = match.lastgroup
        out.append(_Token(kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    out.append(_Token("end", "", len(text) + 1))
    return out


class _Parser:
    """Recursive descent over the tokens; builds predicates on ``rules_pb2.Rule``.

    ``FIELDS`` and ``field`` are the column set; ``channel_filter`` subclasses them.
    """

    FIELDS = _FIELDS

    def __init__(self, text: str, qualify: Callable[[str], str]) -> None:
        self.tokens = _lex(text)
        self.i = 0
        self.qualify = qualify
        # positive top-level restrictions the store can narrow by
        self.narrow: dict[str, object] = {}

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "word" and tok.text == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Predicate:
        pred = self.expression(top=True)
        tok = self.peek()
        if tok.kind != "end":
            raise _bad("filter", tok.col, f"unexpected {tok.text!r}")
        return pred

    def expression(self, *, top: bool = False) -> Predicate:
        parts = [self.sequence(top=top)]
        while self.keyword("AND"):
            parts.append(self.sequence(top=top))
        return _all(parts)

    def sequence(self, *, top: bool) -> Predicate:
        parts = [self.factor(top=top)]
        while self.peek().kind != "end" and not (
                self.peek().kind == "op" and self.peek().text == ")") and not (
                self.peek().kind == "word" and self.peek().text == "AND"):
            parts.append(self.factor(top=top))
        return _all(parts)

    def factor(self, *, top: bool) -> Predicate:
        first = self.term(top=top)
        if not (self.peek().kind == "word" and self.peek().text == "OR"):
            return first
        self._unnarrow(first)
        parts = [first]
        while self.keyword("OR"):
            parts.append(self.term(top=False))
        return lambda rule: any(p(rule) for p in parts)

    def _unnarrow(self, pred: Predicate) -> None:
        # a restriction that turns out to be an OR operand narrows nothing
        for key, (value, owner) in list(self.narrow.items()):  # type: ignore[misc]
            if owner is pred:
                del self.narrow[key]

    def term(self, *, top: bool) -> Predicate:
        tok = self.peek()
        if tok.kind == "word" and (tok.text == "NOT" or tok.text.startswith("-")):
            if tok.text in ("NOT", "-"):
                self.take()
            else:  # "-field": the rest of the word is the field
                self.tokens[self.i] = _Token("word", tok.text[1:], tok.col + 1)
            inner = self.term(top=False)
            return lambda rule: not inner(rule)
        if tok.kind == "op" and tok.text == "(":
            self.take()
            pred = self.expression()
            close = self.take()
            if close.kind != "op" or close.text != ")":
                raise _bad("filter", close.col, "expected ')'")
            return pred
        return self.restriction(top=top)

    def restriction(self, *, top: bool) -> Predicate:
        field_tok = self.take()
        if field_tok.kind != "word" or field_tok.text in _KEYWORDS:
            shown = repr(field_tok.text) if field_tok.text else "the end of the filter"
            raise _bad("filter", field_tok.col, f"expected a field ({self.FIELDS}), got {shown}")
        op = self.take()
        if op.kind != "op" or op.text not in ("=", "!="):
            raise _bad("filter", op.col, f"expected = or != after {field_tok.text!r}")
        value_tok = self.take()
        if value_tok.kind == "str":
            value = re.sub(r"\\(.)", r"\1", value_tok.text[1:-1])
        elif value_tok.kind == "word" and value_tok.text not in _KEYWORDS:
            value = value_tok.text
        else:
            raise _bad("filter", value_tok.col, f"expected a value after {op.text!r}")
        get, wanted = self.field(field_tok, value_tok.col, value)
        equal = op.text == "="

        def pred(rule: rules_pb2.Rule) -> bool:
            return (get(rule) == wanted) == equal
        if top and equal and field_tok.text in ("symbol", "paused") \
                and field_tok.text not in self.narrow:
            self.narrow[field_tok.text] = (wanted, pred)
        return pred

    def field(self, tok: _Token, col: int, value: str
              ) -> tuple[Callable[[rules_pb2.Rule], object], object]:
        name = tok.text
        if name == "symbol":
            return (lambda r: r.symbol), self.qualify(value)
        if name == "paused":
            if value not in ("true", "false"):
                raise _bad("filter", col, "paused is true or false")
            return (lambda r: r.paused), value == "true"
        if name == "state":
            return (lambda r: r.state), _enum(_STATES, value, name, col)
        if name == "trigger_mode":
            # an unset mode is ON_TRUE
            return ((lambda r: r.trigger_mode or rules_pb2.TRIGGER_MODE_ON_TRUE),
                    _enum(_MODES, value, name, col))
        if name == "timeframe":
            if value not in TIMEFRAMES:
                raise _bad("filter", col, f"timeframe is one of {', '.join(TIMEFRAMES)}")
            return (lambda r: r.effective_timeframe), timeframe_to_proto(value)
        if name == "display_name":
            return (lambda r: r.display_name), value
        if name.startswith("labels.") and len(name) > len("labels."):
            key = name.removeprefix("labels.")
            return (lambda r: r.labels.get(key)), value
        raise _bad("filter", tok.col, f"unknown field {name!r}: use {_FIELDS}")


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    return lambda rule: all(p(rule) for p in parts)


def _enum(names: dict[str, int], value: str, field_name: str, col: int) -> int:
    key = value.upper().removeprefix("STATE_").removeprefix("TRIGGER_MODE_")
    if key not in names:
        raise _bad("filter", col, f"{field_name} is one of {', '.join(names)}")
    return names[key]


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
        return sorted(rules, key=cmp_to_key(lambda a, b: self.compare(self.key(a), self.key(b))))

    def valid_key(self, key: Sequence[object]) -> bool:
        types = {"create_time": int, "update_time": int}
        return len(key) == len(self.order) and all(
            type(v) is types.get(f, str) for (f, _), v in zip(self.order, key, strict=True))


def parse_rule_query(filter_text: str, order_by: str,
                     qualify: Callable[[str], str]) -> RuleQuery:
    order = tuple(_parse_order(order_by))
    if not filter_text.strip():
        return RuleQuery(None, None, lambda rule: True, order)
    parser = _Parser(filter_text, qualify)
    accepts = parser.parse()
    symbol = parser.narrow.get("symbol")
    paused = parser.narrow.get("paused")
    return RuleQuery(
        symbol[0] if symbol else None,   # type: ignore[index]
        paused[0] if paused else None,   # type: ignore[index]
        accepts, order)
