"""Text of a rule condition -> syntax tree, validated against the catalog.

``parse_condition`` is a hand-written lexer and recursive-descent parser for the
grammar in ARCHITECTURE.md ("Rules"). It checks names, argument lists, ranges
and limits while it parses, and every problem is a ``RuleSyntaxError`` whose
``line:col`` (1-based, columns in characters) points at the offending token;
the end of the text is the position just after the last token.

Lexing: numbers ``12 12.5 .5 1e3 2.5e-3`` (finite only); timeframes are a
number glued to a unit (``15m``), and only ``catalog.TIMEFRAMES`` exist;
identifiers ``[A-Za-z_][A-Za-z0-9_]*`` (keywords are lowercase and
case-sensitive); venue-qualified symbols ``binance-usdm:BTCUSDT`` (venue
``[a-z][a-z0-9-]*``, ``:``, then ``[A-Za-z0-9._/-]+``); ASCII whitespace,
newlines included, between tokens. Symbols appear only as arguments; there a
bare identifier that is not a keyword or series name is a symbol too.

Arguments go numbers first (catalog order), then an optional timeframe, then an
optional symbol. ``-5`` in an expression is the constant ``Number(-5)``;
``-(5)`` is ``Neg(Number(5))``.

Limits: at most ``catalog.MAX_TEXT_BYTES`` of UTF-8 text (reported at 1:1).
Nesting depth, at most ``catalog.MAX_NESTING``, counts the constructs the parser
recurses into: each open parenthesis group ``( ... )`` (condition or
arithmetic), each channel bracket ``[lower, upper]``, each ``not`` and each
unary ``-`` enclosing the current token. Argument lists ``f(...)`` and offsets
``x[k]`` hold only literals and do not count. The depth is checked before the
parser recurses, so deep input cannot exhaust Python's stack. Separately, the
syntax tree may be at most ``catalog.MAX_TREE_DEPTH`` nodes deep (long chains such as
``a + b + c + ...`` nest to the left), so that the tree's consumers, which
recurse over it, stay far from Python's recursion limit.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, NoReturn

from alerts.errors import RuleSyntaxError
from alerts.rules import catalog
from alerts.rules.ast import (
    And,
    Arith,
    ArithOp,
    BinOp,
    Channel,
    ChannelOp,
    ChannelTest,
    Compare,
    CompareOp,
    Condition,
    Cross,
    CrossOp,
    MoveDirection,
    Moves,
    Neg,
    Not,
    Number,
    Or,
    Pos,
    RangeChannel,
    Series,
    SeriesChannel,
)
from alerts.rules.format import format_number

__all__ = ["KEYWORDS", "parse_condition"]

#: Deepest syntax tree accepted (a leaf is depth 1); see the module docstring.

_COMPARE_OPS: Final = frozenset({">", ">=", "<", "<=", "=="})
_CROSS_OPS: Final = frozenset({"crosses", "crosses_above", "crosses_below"})
_CHANNEL_OPS: Final = frozenset({"enters", "exits", "inside", "outside"})
_MOVE_OPS: Final = frozenset({"moves_up", "moves_down"})
_RELATION_WORDS: Final = _CROSS_OPS | _CHANNEL_OPS | _MOVE_OPS
KEYWORDS: Final = frozenset({"and", "or", "not", "within", "bars"}) | _RELATION_WORDS
_NOT_FINITE_WORDS: Final = frozenset({"inf", "infinity", "nan"})

_WHITESPACE: Final = frozenset(" \t\r\n\f\v")
_DIGITS: Final = frozenset("0123456789")
_LOWER: Final = frozenset("abcdefghijklmnopqrstuvwxyz")
_LETTERS: Final = _LOWER | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_IDENT_START: Final = _LETTERS | {"_"}
_IDENT_CHARS: Final = _IDENT_START | _DIGITS
_VENUE_CHARS: Final = _LOWER | _DIGITS | {"-"}
_SYMBOL_CHARS: Final = _LETTERS | _DIGITS | frozenset("._/-")
_TWO_CHAR_OPS: Final = frozenset({">=", "<=", "=="})
_ONE_CHAR_OPS: Final = frozenset("()[],.%+-*/<>")

_NUM = "number"
_TIMEFRAME = "timeframe"
_SYMBOL = "symbol"
_NAME = "name"
_OP = "operator"
_END = "end"

_MAX_QUOTED = 40


def parse_condition(text: str) -> Condition:
    """Parse and validate a condition; raise ``RuleSyntaxError`` with ``line:col`` if it is bad."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > catalog.MAX_TEXT_BYTES:
        raise RuleSyntaxError(
            1, 1, f"condition text is {size} bytes; at most {catalog.MAX_TEXT_BYTES} are allowed"
        )
    tokens = _Lexer(text).tokens()
    if tokens[0].kind == _END:
        raise RuleSyntaxError(1, 1, "empty condition")
    return _Parser(text, tokens).parse()


# --------------------------------------------------------------------------- lexer


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    pos: Pos
    start: int  # offset of the first character in the text
    end: int  # offset just after the last character
    value: float = 0.0

    def shown(self) -> str:
        """The token as error messages quote it."""
        if self.kind == _END:
            return "end of text"
        return f"'{_clip(self.text)}'"


class _Lexer:
    """Splits the text into tokens, tracking 1-based line and column."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._i = 0
        self._line = 1
        self._line_start = 0
        self._no_venue_before = 0  # a venue scan from any offset below this one fails

    def tokens(self) -> list[_Token]:
        out: list[_Token] = []
        while True:
            self._skip_space()
            if self._i >= len(self._text):
                out.append(self._end_token(out))
                return out
            out.append(self._token())

    def _pos(self, offset: int) -> Pos:
        return Pos(self._line, offset - self._line_start + 1)

    def _fail(self, offset: int, reason: str) -> NoReturn:
        pos = self._pos(offset)
        raise RuleSyntaxError(pos.line, pos.col, reason)

    def _skip_space(self) -> None:
        text = self._text
        while self._i < len(text) and text[self._i] in _WHITESPACE:
            if text[self._i] == "\n":
                self._line += 1
                self._line_start = self._i + 1
            self._i += 1

    def _end_token(self, previous: list[_Token]) -> _Token:
        if not previous:
            return _Token(_END, "", Pos(1, 1), 0, 0)
        last = previous[-1]
        pos = Pos(last.pos.line, last.pos.col + (last.end - last.start))
        return _Token(_END, "", pos, last.end, last.end)

    def _make(self, kind: str, start: int, value: float = 0.0) -> _Token:
        """The token from ``start`` to the current offset."""
        return _Token(kind, self._text[start : self._i], self._pos(start), start, self._i, value)

    def _token(self) -> _Token:
        ch = self._text[self._i]
        if ch in _DIGITS or (ch == "." and self._peek_char(1) in _DIGITS):
            return self._number()
        if ch in _IDENT_START:
            return self._word()
        return self._operator()

    def _peek_char(self, ahead: int) -> str:
        index = self._i + ahead
        return self._text[index] if index < len(self._text) else ""

    def _scan(self, chars: frozenset[str], index: int) -> int:
        text = self._text
        while index < len(text) and text[index] in chars:
            index += 1
        return index

    def _number(self) -> _Token:
        start = self._i
        index = self._scan(_DIGITS, start)
        if index < len(self._text) and self._text[index] == ".":
            after_dot = self._scan(_DIGITS, index + 1)
            if after_dot == index + 1:
                self._fail(start, f"malformed number '{self._text[start : index + 1]}'")
            index = after_dot
        index = self._exponent(index)
        suffix_end = self._scan(_IDENT_CHARS, index)
        if suffix_end > index:
            return self._timeframe(start, index, suffix_end)
        self._i = index
        value = float(self._text[start:index])
        if not math.isfinite(value):
            self._fail(start, f"number '{_clip(self._text[start:index])}' is not finite")
        return self._make(_NUM, start, value)

    def _exponent(self, index: int) -> int:
        """The end of an exponent ``e[+-]digits`` starting at ``index``, or ``index`` if none."""
        text = self._text
        if index >= len(text) or text[index] not in "eE":
            return index
        digits_at = index + 1
        if digits_at < len(text) and text[digits_at] in "+-":
            digits_at += 1
        digits_end = self._scan(_DIGITS, digits_at)
        return digits_end if digits_end > digits_at else index

    def _timeframe(self, start: int, number_end: int, end: int) -> _Token:
        text = self._text[start:end]
        if text in catalog.TIMEFRAMES:
            self._i = end
            return self._make(_TIMEFRAME, start)
        suffix = self._text[number_end:end]
        if suffix in KEYWORDS:
            number = self._text[start:number_end]
            self._fail(start, f"put a space between '{_clip(number)}' and '{suffix}'")
        if suffix[0] in "eE":
            self._fail(start, f"malformed number '{_clip(text)}'")
        self._fail(
            start,
            f"unknown timeframe '{_clip(text)}'; timeframes are {' '.join(catalog.TIMEFRAMES)}",
        )

    def _word(self) -> _Token:
        start = self._i
        if self._text[start] in _LOWER and start >= self._no_venue_before:
            venue_end = self._scan(_VENUE_CHARS, start)
            if venue_end < len(self._text) and self._text[venue_end] == ":":
                return self._qualified_symbol(start, venue_end)
            self._no_venue_before = venue_end
        self._i = self._scan(_IDENT_CHARS, start)
        return self._make(_NAME, start)

    def _qualified_symbol(self, start: int, colon: int) -> _Token:
        end = self._scan(_SYMBOL_CHARS, colon + 1)
        if end == colon + 1:
            self._fail(colon, f"expected a symbol after '{_clip(self._text[start : colon + 1])}'")
        self._i = end
        return self._make(_SYMBOL, start)

    def _operator(self) -> _Token:
        start = self._i
        pair = self._text[start : start + 2]
        if pair in _TWO_CHAR_OPS:
            self._i += 2
            return self._make(_OP, start)
        ch = self._text[start]
        if ch in _ONE_CHAR_OPS:
            self._i += 1
            return self._make(_OP, start)
        self._fail(start, _bad_character(ch, pair))


def _bad_character(ch: str, pair: str) -> str:
    if pair == "!=":
        return "'!=' is not supported; write 'not a == b'"
    if ch == "=":
        return "unexpected '='; compare with '=='"
    if ch == ":":
        return "unexpected ':'; a symbol is written venue:SYMBOL with a lowercase venue"
    return f"unexpected character {ch!r}"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 3] + "..."


# --------------------------------------------------------------------------- parser

_Node = Arith | Condition


@dataclass(frozen=True, slots=True)
class _Item:
    """A parsed node with its first token (parentheses included) and its tree depth."""

    node: _Node
    first: _Token
    depth: int


_Operand = Callable[[], _Item]


@dataclass(frozen=True, slots=True)
class _Args:
    params: tuple[float, ...]
    timeframe: str | None
    symbol: str | None


@dataclass(frozen=True, slots=True)
class _Channel:
    """A parsed channel and its tree depth."""

    node: Channel
    depth: int


class _Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self._text = text
        self._tokens = tokens
        self._i = 0
        self._nesting = 0

    # ---- helpers

    def _peek(self, ahead: int = 0) -> _Token:
        return self._tokens[min(self._i + ahead, len(self._tokens) - 1)]

    def _next(self) -> _Token:
        token = self._tokens[self._i]
        if token.kind != _END:
            self._i += 1
        return token

    def _at(self, text: str) -> bool:
        token = self._peek()
        return token.kind in (_OP, _NAME) and token.text == text

    def _expect(self, text: str, what: str | None = None) -> _Token:
        if not self._at(text):
            self._fail_expected(what or f"'{text}'")
        return self._next()

    def _fail_at(self, token: _Token, reason: str) -> NoReturn:
        raise RuleSyntaxError(token.pos.line, token.pos.col, reason)

    def _fail_expected(self, what: str) -> NoReturn:
        token = self._peek()
        if token.kind == _END:
            self._fail_at(token, f"unexpected end of text, expected {what}")
        self._fail_at(token, f"expected {what}, got {token.shown()}{_case_hint(token)}")

    def _source(self, item: _Item) -> str:
        """The text of an item as written (whitespace collapsed, clipped) for messages."""
        end = self._tokens[self._i - 1].end
        return _clip(" ".join(self._text[item.first.start : end].split()))

    def _enter(self, token: _Token) -> None:
        self._nesting += 1
        if self._nesting > catalog.MAX_NESTING:
            self._fail_at(
                token,
                f"nesting deeper than {catalog.MAX_NESTING} levels (parentheses, "
                "channel brackets, 'not' and unary '-' count)",
            )

    def _leave(self) -> None:
        self._nesting -= 1

    def _item(self, node: _Node, first: _Token, at: _Token, *children: _Item | _Channel) -> _Item:
        return _Item(node, first, self._depth(at, children))

    def _depth(self, at: _Token, children: tuple[_Item | _Channel, ...]) -> int:
        """The depth of a node over ``children``; too deep is an error at token ``at``."""
        depth = 1 + max((child.depth for child in children), default=0)
        if depth > catalog.MAX_TREE_DEPTH:
            self._fail_at(
                at,
                f"expression too deep: its syntax tree would be more than {catalog.MAX_TREE_DEPTH} "
                "levels deep; split the rule",
            )
        return depth

    def _condition(self, item: _Item) -> Condition:
        """The item as a condition; a bare arithmetic expression is an error at the next token."""
        if isinstance(item.node, Number | Series | Neg | BinOp):
            self._fail_expected(f"a comparison after '{self._source(item)}'")
        return item.node

    def _arith(self, item: _Item) -> Arith:
        """The item as an arithmetic expression; a condition there is an error at its start."""
        node = item.node
        if isinstance(node, Number | Series | Neg | BinOp):
            return node
        self._fail_at(
            item.first,
            "expected a number or series, not a condition: comparisons are between "
            "arithmetic expressions",
        )

    # ---- conditions

    def parse(self) -> Condition:
        item = self._or()
        condition = self._condition(item)
        token = self._peek()
        if token.kind != _END:
            self._fail_at(token, _trailing(token))
        return condition

    def _or(self) -> _Item:
        return self._chain("or", self._and, Or)

    def _and(self) -> _Item:
        return self._chain("and", self._not, And)

    def _chain(self, word: str, operand: _Operand, node_type: type[And | Or]) -> _Item:
        first = operand()
        if not self._at(word):
            return first
        items = [first]
        conditions = [self._condition(first)]
        while self._at(word):
            at = self._next()
            item = operand()
            conditions.append(self._condition(item))
            items.append(item)
        node = node_type(tuple(conditions), first.first.pos)
        return self._item(node, first.first, at, *items)

    def _not(self) -> _Item:
        if not self._at("not"):
            return self._relation()
        token = self._next()
        self._enter(token)
        operand = self._not()
        condition = self._condition(operand)
        self._leave()
        return self._item(Not(condition, token.pos), token, token, operand)

    def _relation(self) -> _Item:
        left = self._additive()
        token = self._peek()
        if not _is_relation(token):
            return left
        self._arith(left)
        if token.text in _MOVE_OPS:
            item = self._moves(left)
        elif token.text in _CHANNEL_OPS:
            item = self._channel_test(left)
        else:
            item = self._comparison(left)
        after = self._peek()
        if _is_relation(after):
            self._fail_at(
                after,
                f"comparisons cannot be chained: {after.shown()} follows a complete "
                "comparison; join comparisons with 'and'",
            )
        return item

    def _comparison(self, left: _Item) -> _Item:
        token = self._next()
        right = self._additive()
        left_node, right_node = self._arith(left), self._arith(right)
        node: Compare | Cross
        if token.text in _CROSS_OPS:
            node = Cross(_cross_op(token.text), left_node, right_node, left.first.pos)
        else:
            node = Compare(_compare_op(token.text), left_node, right_node, left.first.pos)
        return self._item(node, left.first, token, left, right)

    def _channel_test(self, left: _Item) -> _Item:
        token = self._next()
        channel = self._channel()
        node = ChannelTest(_channel_op(token.text), self._arith(left), channel.node, left.first.pos)
        return self._item(node, left.first, token, left, channel)

    def _moves(self, left: _Item) -> _Item:
        token = self._next()
        percent, percent_token = self._signed_number("a percentage")
        if not percent > 0:
            self._fail_at(
                percent_token,
                f"{token.text} percent must be greater than 0, got {format_number(percent)}",
            )
        self._expect("%", "'%' after the percentage")
        self._expect("within", "'within'")
        bars, bars_token = self._signed_number("a number of bars")
        self._check_whole(bars, bars_token, "bars", catalog.MIN_PERIOD, catalog.MAX_PERIOD)
        self._expect("bars", "'bars'")
        direction: MoveDirection = "up" if token.text == "moves_up" else "down"
        node = Moves(direction, self._arith(left), percent, int(bars), left.first.pos)
        return self._item(node, left.first, token, left)

    # ---- channels

    def _channel(self) -> _Channel:
        token = self._peek()
        if self._at("["):
            return self._range_channel()
        if token.kind == _NAME and token.text not in KEYWORDS:
            return self._series_channel()
        self._fail_expected("a channel: bb(...), donchian(...) or [lower, upper]")

    def _range_channel(self) -> _Channel:
        token = self._next()
        self._enter(token)
        lower = self._additive()
        self._expect(",", "',' between the channel's lower and upper bounds")
        upper = self._additive()
        self._expect("]", f"']' to close the '[' at {token.pos}")
        self._leave()
        node = RangeChannel(self._arith(lower), self._arith(upper), token.pos)
        return _Channel(node, self._depth(token, (lower, upper)))

    def _series_channel(self) -> _Channel:
        token = self._next()
        spec = self._spec(token)
        if not spec.channel:
            self._fail_at(
                token,
                f"{token.text} is not a channel; use bb(...), donchian(...) or [lower, upper]",
            )
        self._expect("(", f"'(' after '{token.text}'")
        args = self._args(token, spec)
        if self._at("."):
            dot = self._peek()
            output = self._peek(1).text if self._peek(1).kind == _NAME else "output"
            self._fail_at(
                dot,
                f"{token.text}(...).{_clip(output)} is a single series, not a channel; "
                f"use {token.text}(...) without an output",
            )
        node = SeriesChannel(token.text, args.params, args.timeframe, args.symbol, token.pos)
        return _Channel(node, 1)

    # ---- arithmetic

    def _additive(self) -> _Item:
        return self._binary(("+", "-"), self._term)

    def _term(self) -> _Item:
        return self._binary(("*", "/"), self._factor)

    def _binary(self, ops: tuple[str, str], operand: _Operand) -> _Item:
        left = operand()
        while self._peek().kind == _OP and self._peek().text in ops:
            token = self._next()
            left_node = self._arith(left)
            right = operand()
            node = BinOp(_arith_op(token.text), left_node, self._arith(right), left.first.pos)
            left = self._item(node, left.first, token, left, right)
        return left

    def _factor(self) -> _Item:
        token = self._peek()
        if self._at("-"):
            return self._negation()
        if self._at("("):
            return self._group()
        if token.kind == _NUM:
            self._next()
            return self._item(Number(token.value, token.pos), token, token)
        if token.kind == _NAME and token.text not in KEYWORDS:
            return self._series_factor()
        self._fail_expected("a number or series")

    def _negation(self) -> _Item:
        token = self._next()
        self._enter(token)
        if self._peek().kind == _NUM:
            number = self._next()
            self._leave()
            return self._item(Number(-number.value, token.pos), token, token)
        operand = self._factor()
        self._leave()
        return self._item(Neg(self._arith(operand), token.pos), token, token, operand)

    def _group(self) -> _Item:
        token = self._next()
        self._enter(token)
        inner = self._or()
        self._expect(")", f"')' to close the '(' at {token.pos}")
        self._leave()
        return _Item(inner.node, token, inner.depth)

    # ---- series

    def _series_factor(self) -> _Item:
        token = self._peek()
        series = self._series()
        if self._at("["):
            self._next()
            offset, offset_token = self._signed_number("an offset")
            self._check_whole(offset, offset_token, "offset", 0, catalog.MAX_OFFSET)
            self._expect("]", "']' after the offset")
            series = replace(series, offset=int(offset))
        return self._item(series, token, token)

    def _series(self) -> Series:
        token = self._next()
        spec = self._spec(token)
        name = token.text
        if name == "price":
            if self._at("("):
                self._fail_at(self._peek(), "price takes no parentheses")
            if self._at("."):
                self._fail_at(self._peek(), "price has no outputs")
            return Series(name, pos=token.pos)
        self._expect("(", f"'(' after '{name}'")
        args = self._args(token, spec)
        output = self._output(token, spec)
        return Series(name, args.params, args.timeframe, args.symbol, output, pos=token.pos)

    def _output(self, name: _Token, spec: catalog.SeriesSpec) -> str | None:
        if not self._at("."):
            if spec.outputs:
                self._fail_at(name, f"{name.text} needs an output: {_or_list(spec.outputs)}")
            return None
        dot = self._next()
        token = self._peek()
        if token.kind != _NAME:
            self._fail_expected(f"an output name after '{name.text}(...).'")
        if not spec.outputs:
            self._fail_at(dot, f"{name.text} has no outputs; remove '.{_clip(token.text)}'")
        if token.text not in spec.outputs:
            self._fail_at(
                token,
                f"{name.text} has outputs {', '.join(spec.outputs)}; got '{_clip(token.text)}'",
            )
        self._next()
        return token.text

    def _spec(self, token: _Token) -> catalog.SeriesSpec:
        spec = catalog.SERIES.get(token.text)
        if spec is not None:
            return spec
        if token.text.lower() in _NOT_FINITE_WORDS:
            self._fail_at(token, f"'{token.text}' is not a finite number")
        self._fail_at(token, f"unknown indicator '{_clip(token.text)}'{_suggestion(token.text)}")

    # ---- arguments

    def _args(self, name: _Token, spec: catalog.SeriesSpec) -> _Args:
        """Parse ``args ")"`` after the ``(`` of ``name``; check order, count and ranges."""
        numbers: list[tuple[float, _Token]] = []
        timeframe: _Token | None = None
        symbol: _Token | None = None
        after_numbers: _Token | None = None
        if not self._at(")"):
            while True:
                token = self._peek()
                kind = self._arg_kind(token)
                if kind == _NUM:
                    if timeframe or symbol:
                        self._fail_at(token, _order_message(name.text, "numbers"))
                    numbers.append(self._signed_number("a number"))
                else:
                    after_numbers = after_numbers or token
                    if kind == _TIMEFRAME:
                        timeframe = self._timeframe_arg(name, spec, timeframe, symbol)
                    else:
                        symbol = self._symbol_arg(name, spec, symbol)
                if not self._at(","):
                    break
                self._next()
        closing = self._expect(")", "',' or ')'")
        self._check_numbers(name, spec, numbers, after_numbers or closing)
        return _Args(
            tuple(value for value, _ in numbers),
            timeframe.text if timeframe else None,
            symbol.text if symbol else None,
        )

    def _arg_kind(self, token: _Token) -> str:
        if token.kind in (_NUM, _TIMEFRAME, _SYMBOL) or (token.kind == _OP and token.text == "-"):
            return _NUM if token.kind == _OP else token.kind
        if token.kind == _NAME and token.text not in KEYWORDS:
            if token.text in catalog.SERIES:
                self._fail_at(
                    token,
                    f"expected a number, timeframe or symbol, got {token.shown()}; arguments "
                    "are literals, not other series",
                )
            return _SYMBOL
        self._fail_expected("a number, timeframe or symbol")

    def _timeframe_arg(
        self, name: _Token, spec: catalog.SeriesSpec, seen: _Token | None, symbol: _Token | None
    ) -> _Token:
        token = self._next()
        if spec.timeframe == "none":
            self._fail_at(token, f"{name.text} takes no timeframe")
        if seen is not None:
            self._fail_at(token, f"{name.text} takes one timeframe, got a second: {token.shown()}")
        if symbol is not None:
            self._fail_at(token, _order_message(name.text, "timeframe"))
        return token

    def _symbol_arg(self, name: _Token, spec: catalog.SeriesSpec, seen: _Token | None) -> _Token:
        token = self._next()
        if not spec.symbol:
            self._fail_at(token, f"{name.text} takes no symbol")
        if seen is not None:
            self._fail_at(token, f"{name.text} takes one symbol, got a second: {token.shown()}")
        return token

    def _check_numbers(
        self,
        name: _Token,
        spec: catalog.SeriesSpec,
        numbers: list[tuple[float, _Token]],
        after_numbers: _Token,
    ) -> None:
        wanted = len(spec.params)
        if len(numbers) != wanted:
            at = numbers[wanted][1] if len(numbers) > wanted else after_numbers
            self._fail_at(at, _count_message(name.text, spec.params, len(numbers)))
        for param, (value, token) in zip(spec.params, numbers, strict=True):
            if param in spec.float_params:
                self._check_bb_k(name.text, param, value, token)
            else:
                self._check_whole(value, token, param, catalog.MIN_PERIOD, catalog.MAX_PERIOD)
        if name.text == "macd" and numbers[0][0] >= numbers[1][0]:
            fast, slow = (format_number(value) for value, _ in numbers[:2])
            self._fail_at(numbers[0][1], f"macd fast ({fast}) must be less than slow ({slow})")

    def _check_bb_k(self, name: str, param: str, value: float, token: _Token) -> None:
        if not (math.isfinite(value) and 0 < value <= catalog.MAX_BB_K):
            self._fail_at(
                token,
                f"{name} {param} must be finite, greater than 0 and at most "
                f"{format_number(catalog.MAX_BB_K)}, got {format_number(value)}",
            )

    def _check_whole(self, value: float, token: _Token, what: str, low: int, high: int) -> None:
        if not (value.is_integer() and low <= value <= high):
            self._fail_at(
                token,
                f"{what} must be a whole number from {low} to {high}, got {format_number(value)}",
            )

    def _signed_number(self, what: str) -> tuple[float, _Token]:
        """``[-] number``: its value and its first token."""
        first = self._peek()
        sign = 1.0
        if self._at("-"):
            self._next()
            sign = -1.0
        token = self._peek()
        if token.kind != _NUM:
            self._fail_expected(what)
        self._next()
        return sign * token.value, first


def _is_relation(token: _Token) -> bool:
    if token.kind == _OP:
        return token.text in _COMPARE_OPS
    return token.kind == _NAME and token.text in _RELATION_WORDS


def _compare_op(text: str) -> CompareOp:
    ops: dict[str, CompareOp] = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "==": "=="}
    return ops[text]


def _cross_op(text: str) -> CrossOp:
    ops: dict[str, CrossOp] = {
        "crosses": "crosses",
        "crosses_above": "crosses_above",
        "crosses_below": "crosses_below",
    }
    return ops[text]


def _channel_op(text: str) -> ChannelOp:
    ops: dict[str, ChannelOp] = {
        "enters": "enters",
        "exits": "exits",
        "inside": "inside",
        "outside": "outside",
    }
    return ops[text]


def _arith_op(text: str) -> ArithOp:
    ops: dict[str, ArithOp] = {"+": "+", "-": "-", "*": "*", "/": "/"}
    return ops[text]


def _trailing(token: _Token) -> str:
    if token.kind == _OP and token.text in (")", "]"):
        return f"unmatched {token.shown()}"
    return f"unexpected {token.shown()} after the end of the condition{_case_hint(token)}"


def _case_hint(token: _Token) -> str:
    lower = token.text.lower()
    if token.kind == _NAME and token.text != lower and lower in KEYWORDS:
        return f"; keywords are lowercase: '{lower}'"
    return ""


def _suggestion(name: str) -> str:
    known = list(catalog.SERIES)
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _or_list(outputs: tuple[str, ...]) -> str:
    names = [f".{output}" for output in outputs]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _count_message(name: str, params: tuple[str, ...], got: int) -> str:
    if not params:
        return f"{name} takes no numbers, got {got}"
    noun = "number" if len(params) == 1 else "numbers"
    return f"{name} takes {len(params)} {noun} ({', '.join(params)}), got {got}"


def _order_message(name: str, what: str) -> str:
    """``what`` (numbers or the timeframe) came after an argument it must precede."""
    if what == "numbers":
        return f"numbers must come first in {name}(...): numbers, then a timeframe, then a symbol"
    return f"the timeframe must come before the symbol in {name}(...)"
