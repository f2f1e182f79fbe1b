"""AIP-160 filters: one parser for every List call, each resource naming its fields.

Grammar (AIP-160's precedence: ``OR`` binds tighter than ``AND``; a sequence
of terms without an operator is an ``AND``)::

    expression  = sequence { "AND" sequence }
    sequence    = factor { factor }
    factor      = term { "OR" term }
    term        = ( "NOT" | "-" ) term | "(" expression ")" | restriction
    restriction = field ( "=" | "!=" ) value

Values are bare words or double-quoted strings with ``\\"`` and ``\\\\``
escapes. A resource subclasses ``FilterParser`` with its ``FIELDS`` (for error
messages), ``NARROWABLE`` (fields a store can answer) and ``field``. Errors are
INVALID_ARGUMENT on ``filter`` naming the column (``1:12: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from alerts.api import convert
from alerts.errors import InvalidArgumentError

R = TypeVar("R")

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>!=|=|\(|\))|(?P<word>[^\s()"=!]+))')
_KEYWORDS = ("AND", "OR", "NOT")


@dataclass(frozen=True)
class Token:
    """One lexeme of a filter."""

    kind: str     # "str", "op", "word" or "end"
    text: str
    col: int      # 1-based


def filter_error(col: int, why: str) -> InvalidArgumentError:
    """INVALID_ARGUMENT on ``filter`` at column ``col``."""
    return convert.invalid("filter", f"1:{col}: {why}")


def enum_value(names: dict[str, int], value: str, field_name: str, col: int,
               prefixes: tuple[str, ...] = ()) -> int:
    """The number of enum value ``value`` (case-insensitive, proto prefixes optional)."""
    key = value.upper()
    for prefix in prefixes:
        key = key.removeprefix(prefix)
    if key not in names:
        raise filter_error(col, f"{field_name} is one of {', '.join(names)}")
    return names[key]


def _lex(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].isspace():
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            start = len(text) - len(text[pos:].lstrip())
            raise filter_error(start + 1, f"unexpected {text[start]!r}")
        kind = match.lastgroup
        out.append(Token(kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    out.append(Token("end", "", len(text) + 1))
    return out


def _all(parts: list[Callable[[R], bool]]) -> Callable[[R], bool]:
    if len(parts) == 1:
        return parts[0]
    return lambda item: all(p(item) for p in parts)


class FilterParser(Generic[R]):
    """Recursive descent over the tokens, building a predicate on resources ``R``.

    ``narrow`` ends up holding the positive top-level ``field = value`` restrictions
    on ``NARROWABLE`` fields (field -> wanted value): a store may answer those, since
    every match satisfies them.
    """

    FIELDS = ""
    NARROWABLE: tuple[str, ...] = ()

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.i = 0
        self._narrow: dict[str, tuple[object, Callable[[R], bool]]] = {}

    def field(self, tok: Token, col: int, value: str) -> tuple[Callable[[R], Any], object]:
        """(getter, wanted value) for ``tok.text = value``; raise ``filter_error`` if bad."""
        raise NotImplementedError

    @property
    def narrow(self) -> dict[str, object]:
        return {name: wanted for name, (wanted, _) in self._narrow.items()}

    def parse(self) -> Callable[[R], bool]:
        pred = self._expression(top=True)
        tok = self._peek()
        if tok.kind != "end":
            raise filter_error(tok.col, f"unexpected {tok.text!r}")
        return pred

    def _peek(self) -> Token:
        return self.tokens[self.i]

    def _take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _is(self, kind: str, text: str) -> bool:
        tok = self._peek()
        return tok.kind == kind and tok.text == text

    def _expression(self, *, top: bool = False) -> Callable[[R], bool]:
        parts = [self._sequence(top=top)]
        while self._is("word", "AND"):
            self._take()
            parts.append(self._sequence(top=top))
        return _all(parts)

    def _sequence(self, *, top: bool) -> Callable[[R], bool]:
        parts = [self._factor(top=top)]
        while not (self._peek().kind == "end" or self._is("op", ")") or self._is("word", "AND")):
            parts.append(self._factor(top=top))
        return _all(parts)

    def _factor(self, *, top: bool) -> Callable[[R], bool]:
        first = self._term(top=top)
        if not self._is("word", "OR"):
            return first
        # a restriction that turns out to be an OR operand narrows nothing
        self._narrow = {k: v for k, v in self._narrow.items() if v[1] is not first}
        parts = [first]
        while self._is("word", "OR"):
            self._take()
            parts.append(self._term(top=False))
        return lambda item: any(p(item) for p in parts)

    def _term(self, *, top: bool) -> Callable[[R], bool]:
        tok = self._peek()
        if tok.kind == "word" and (tok.text == "NOT" or tok.text.startswith("-")):
            if tok.text in ("NOT", "-"):
                self._take()
            else:  # "-field": the rest of the word is the field
                self.tokens[self.i] = Token("word", tok.text[1:], tok.col + 1)
            inner = self._term(top=False)
            return lambda item: not inner(item)
        if self._is("op", "("):
            self._take()
            pred = self._expression()
            close = self._take()
            if close.kind != "op" or close.text != ")":
                raise filter_error(close.col, "expected ')'")
            return pred
        return self._restriction(top=top)

    def _restriction(self, *, top: bool) -> Callable[[R], bool]:
        field_tok = self._take()
        if field_tok.kind != "word" or field_tok.text in _KEYWORDS:
            shown = repr(field_tok.text) if field_tok.text else "the end of the filter"
            raise filter_error(field_tok.col, f"expected a field ({self.FIELDS}), got {shown}")
        op = self._take()
        if op.kind != "op" or op.text not in ("=", "!="):
            raise filter_error(op.col, f"expected = or != after {field_tok.text!r}")
        value_tok = self._take()
        if value_tok.kind == "str":
            value = re.sub(r"\\(.)", r"\1", value_tok.text[1:-1])
        elif value_tok.kind == "word" and value_tok.text not in _KEYWORDS:
            value = value_tok.text
        else:
            raise filter_error(value_tok.col, f"expected a value after {op.text!r}")
        get, wanted = self.field(field_tok, value_tok.col, value)
        equal = op.text == "="

        def pred(item: R) -> bool:
            return (get(item) == wanted) == equal
        name = field_tok.text
        if top and equal and name in self.NARROWABLE and name not in self._narrow:
            self._narrow[name] = (wanted, pred)
        return pred
