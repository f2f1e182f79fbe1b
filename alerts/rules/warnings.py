"""Warnings about valid rules that may not do what their author meant.

``rule_warnings`` looks at a parsed condition (the tree of :mod:`alerts.rules.ast`)
and the rule's trigger settings and returns ``RuleWarning``s for ValidateRule
(``alerts.v1.RuleWarning``: ``reason``, ``message``, ``field``). Nothing here
refuses a rule; every warning names something the language's semantics
(ARCHITECTURE.md, "Indicators", "Rules", "Evaluation") make really happen:

``CONSTANT_CONDITION``
    A test whose outcome does not depend on the market: two constants compared
    (``1 > 0``), an operand compared with or crossing itself (``price > price``,
    ``x crosses_above x``), a series compared with a value outside its range
    (``rsi(14, 1h) > 100``, ``close(1h) > 0``), a division by the constant 0
    (never defined), an empty range channel (``inside [70000, 60000]``), an
    ``and`` whose comparisons of one operand contradict each other
    (``rsi(14, 1h) > 70 and rsi(14, 1h) < 30``) or an ``or`` whose comparisons
    cover every value. When the whole condition can then never be true, the
    message says the rule never fires.
``EXACT_EQUALITY``
    ``==`` on a price or a computed indicator: true only at exactly that value,
    which a price skips between two trades and an average practically never
    hits. Counts (``volume``, ``quote_volume``, ``trades``, ``obv``) are exempt:
    ``volume(1m) == 0`` finds empty bars.
``MOVES_WINDOW_TIMEFRAME``
    ``x moves_up P% within N bars`` counts bars of the *rule's* timeframe (the
    shortest the condition names, unless set), so ``close(1h) moves_up 5% within
    3 bars`` in a rule on 1m is a 3-minute window.
``LONG_WARM_UP``
    A series needs more than ``long_warm_up_ms`` (default 24 h) of live bars
    before it is defined: its bars needed (TA-Lib look-back + 1, plus any ``[k]``
    offset) minus the ``history_bars`` the server loads from history (never for
    1s bars), times its timeframe. Likewise a ``moves`` window of N bars of the
    rule's timeframe, which each rule keeps itself. Durations are approximate
    (within one bar) and count continuous trading.
``REPEATED_FIRING``
    Mode EVERY_TIME with no cooldown or a zero one on a condition that can stay
    true (not made only of crossings, ``enters`` or ``exits``): it fires at every
    trade while the condition holds, up to one alert a second with the 1 s
    default.

Warnings come in condition order (depth first, left to right), then the
rule-level ones; at most one ``LONG_WARM_UP`` per distinct series.

Field paths: with ``condition_text=False`` (the structured form) they name proto
fields below ``{rule_field}.condition`` as :mod:`alerts.api.conditions` does
(``rule.condition.all_of.operands[1].compare.left.series``); with
``condition_text=True`` every condition warning is on
``{rule_field}.condition_text`` and its message starts with the ``line:col`` of
the node in the text, when the tree carries positions. Rule-level warnings are
on ``{rule_field}.trigger_mode`` or ``{rule_field}.cooldown``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Final, Literal, TypeAlias

from alerts.rules import ast
from alerts.rules.catalog import SERIES, TIMEFRAME_MS
from alerts.rules.compiler import DEFAULT_EVERY_TIME_COOLDOWN_MS, rule_timeframe
from alerts.rules.format import format_arith, format_condition, format_number, format_series

__all__ = ["DEFAULT_LONG_WARM_UP_MS", "RuleWarning", "rule_warnings"]

#: A series warming up live for longer than this gets ``LONG_WARM_UP``.
DEFAULT_LONG_WARM_UP_MS: Final = 86_400_000


@dataclass(frozen=True)
class RuleWarning:
    """One remark, shaped as ``alerts.v1.RuleWarning``."""

    reason: str
    message: str
    field: str


def rule_warnings(
    condition: ast.Condition,
    *,
    trigger_mode: str = "ON_TRUE",
    timeframe: str | None = None,
    cooldown_ms: int | None = None,
    history_bars: int,
    condition_text: bool = False,
    rule_field: str = "rule",
    long_warm_up_ms: int = DEFAULT_LONG_WARM_UP_MS,
) -> list[RuleWarning]:
    """Warnings for a rule that compiles (see the module docstring for the reasons).

    ``condition``: the parsed tree, from either form. ``trigger_mode``: a name of
    ``compiler.MODES``. ``timeframe``: the rule's own (None: the shortest the
    condition names). ``cooldown_ms``: as set on the rule (None: not set).
    ``history_bars`` (required, as the answer depends on it): closed bars per
    timeframe the server loads from history when it starts computing a series
    for a symbol (``Config.warmup_bars``); 0 when the symbol's source has none
    (PublishTicks, replays). ``condition_text``: the condition
    came as text (field paths, see the module docstring). ``rule_field``: path
    of the rule message in the request.
    """
    checker = _Checker(
        mode=trigger_mode,
        rule_tf=rule_timeframe(condition, timeframe),
        tf_was_set=timeframe is not None,
        history_bars=max(0, history_bars),
        text=condition_text,
        root=f"{rule_field}.condition",
        long_ms=long_warm_up_ms,
    )
    outcomes = checker.condition(condition, checker.root, is_root=True)
    checker.finish(condition, outcomes, cooldown_ms, rule_field)
    return [RuleWarning(w.reason, w.message, w.field) for w in checker.found]


# --------------------------------------------------------------------------- values

_T: Final = "true"
_F: Final = "false"
_U: Final = "undefined"
Outcomes: TypeAlias = frozenset[str]
_ANY: Final[Outcomes] = frozenset({_T, _F, _U})


class _Undefined:
    """The value of an expression that is never defined (a division by 0)."""


_UNDEFINED: Final = _Undefined()
#: A constant, never defined, or None when the expression reads the market.
_Folded: TypeAlias = float | _Undefined | None


def _fold(node: ast.Arith) -> _Folded:
    if isinstance(node, ast.Number):
        return float(node.value)
    if isinstance(node, ast.Series):
        return None
    if isinstance(node, ast.Neg):
        inner = _fold(node.operand)
        return -inner if isinstance(inner, float) else inner
    left, right = _fold(node.left), _fold(node.right)
    if _UNDEFINED in (left, right) or (node.op == "/" and right == 0.0):
        return _UNDEFINED
    if not isinstance(left, float) or not isinstance(right, float):
        return None
    value = {"+": left + right, "-": left - right, "*": left * right}.get(node.op)
    if value is None:
        value = left / right
    return _UNDEFINED if math.isnan(value) else value


def _and3(a: str, b: str) -> str:
    return _F if _F in (a, b) else _U if _U in (a, b) else _T


def _or3(a: str, b: str) -> str:
    return _T if _T in (a, b) else _U if _U in (a, b) else _F


def _combine(parts: list[Outcomes], op: Literal["and", "or"]) -> Outcomes:
    fn = _and3 if op == "and" else _or3
    acc = parts[0]
    for part in parts[1:]:
        acc = frozenset(fn(a, b) for a in acc for b in part)
    return acc


def _compare(op: ast.CompareOp, a: float, b: float) -> bool:
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b, "==": a == b}[op]


def _describe(out: Outcomes) -> str:
    """How a constant outcome set reads in a message."""
    if out == {_T}:
        return "always true"
    if out == {_F}:
        return "always false"
    if out == {_U}:
        return "never defined, so never true"
    if _T not in out:
        return "never true"
    return "true whenever it is defined"


# --------------------------------------------------------------------------- intervals

@dataclass(frozen=True)
class _Interval:
    lo: float
    lo_closed: bool
    hi: float
    hi_closed: bool

    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))

    def meet(self, other: _Interval) -> _Interval:
        if self.lo != other.lo:
            lo, lo_closed = max((self.lo, self.lo_closed), (other.lo, other.lo_closed),
                                key=lambda e: e[0])
        else:
            lo, lo_closed = self.lo, self.lo_closed and other.lo_closed
        if self.hi != other.hi:
            hi, hi_closed = min((self.hi, self.hi_closed), (other.hi, other.hi_closed),
                                key=lambda e: e[0])
        else:
            hi, hi_closed = self.hi, self.hi_closed and other.hi_closed
        return _Interval(lo, lo_closed, hi, hi_closed)

    def within(self, other: _Interval) -> bool:
        """Every value of self is in other (self not empty)."""
        return self.meet(other) == self


_REALS: Final = _Interval(-math.inf, False, math.inf, False)
_POSITIVE: Final = _Interval(0.0, False, math.inf, False)
_NON_NEGATIVE: Final = _Interval(0.0, True, math.inf, False)
_PERCENT: Final = _Interval(0.0, True, 100.0, True)

#: Ranges the semantics guarantee (tick prices are > 0, so are bars and their averages).
_RANGES: Final[dict[tuple[str, str | None], tuple[_Interval, str]]] = {
    **{(name, None): (_POSITIVE, "greater than 0") for name in (
        "price", "open", "high", "low", "close", "sma", "ema", "wma", "vwap", "highest",
        "lowest")},
    **{("donchian", out): (_POSITIVE, "greater than 0") for out in ("upper", "middle", "lower")},
    ("bb", "upper"): (_POSITIVE, "greater than 0"),
    ("bb", "middle"): (_POSITIVE, "greater than 0"),
    ("bb", "width"): (_NON_NEGATIVE, "at least 0"),
    **{(name, None): (_NON_NEGATIVE, "at least 0") for name in (
        "volume", "quote_volume", "trades", "atr")},
    ("rsi", None): (_PERCENT, "between 0 and 100"),
    ("stoch", "k"): (_PERCENT, "between 0 and 100"),
    ("stoch", "d"): (_PERCENT, "between 0 and 100"),
    ("change_pct", None): (_Interval(-100.0, True, math.inf, False), "at least -100"),
}

_FLIP: Final[dict[ast.CompareOp, ast.CompareOp]] = {
    ">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==",
}


def _constraint(op: ast.CompareOp, value: float) -> _Interval:
    """The values x with ``x op value``."""
    if op == ">":
        return _Interval(value, False, math.inf, False)
    if op == ">=":
        return _Interval(value, True, math.inf, False)
    if op == "<":
        return _Interval(-math.inf, False, value, False)
    if op == "<=":
        return _Interval(-math.inf, False, value, True)
    return _Interval(value, True, value, True)


def _covers(parts: Iterable[_Interval], domain: _Interval) -> bool:
    """The union of ``parts`` holds every value of ``domain``."""
    reach, point_open = domain.lo, domain.lo_closed   # point_open: ``reach`` still uncovered
    for part in sorted(parts, key=lambda p: (p.lo, not p.lo_closed)):
        if part.empty():
            continue
        if reach > domain.hi or (reach == domain.hi and not (point_open and domain.hi_closed)):
            return True
        if part.lo > reach or (part.lo == reach and point_open and not part.lo_closed):
            return False
        if part.hi > reach:
            reach, point_open = part.hi, not part.hi_closed
        elif part.hi == reach and part.hi_closed:
            point_open = False
    return reach > domain.hi or (reach == domain.hi and not (point_open and domain.hi_closed))


# --------------------------------------------------------------------------- warm-up

def _bars_needed(series: ast.Series | ast.SeriesChannel) -> int:
    """Bars of its timeframe (the current one included) before the series is defined.

    TA-Lib's look-back + 1, as ``alerts_core`` implements it; ``[k]`` adds k.
    """
    p = [int(v) for v in series.params]
    name = series.name
    if name in ("sma", "ema", "wma", "bb"):
        need = p[0]
    elif name in ("rsi", "atr", "change_pct", "volume_z", "highest", "lowest", "donchian"):
        need = p[0] + 1
    elif name == "macd":
        need = p[1] + p[2] - 1
    elif name == "stoch":
        need = p[0] + p[1] + p[2] - 2
    else:
        need = 1
    return need + (series.offset if isinstance(series, ast.Series) else 0)


def _duration(ms: float) -> str:
    for unit, size in (("days", 86_400_000), ("hours", 3_600_000), ("minutes", 60_000)):
        if ms >= 2 * size:
            return f"~{round(ms / size)} {unit}"
    return f"~{round(ms / 1000)} seconds"


#: Series whose exact equality with something is a real event (counts).
_COUNTS: Final = frozenset({"volume", "quote_volume", "trades", "obv"})


def _series_in(node: ast.Arith) -> Iterator[ast.Series]:
    if isinstance(node, ast.Series):
        yield node
    elif isinstance(node, ast.Neg):
        yield from _series_in(node.operand)
    elif isinstance(node, ast.BinOp):
        yield from _series_in(node.left)
        yield from _series_in(node.right)


def _is_edge(node: ast.Condition) -> bool:
    """True only at a change: it cannot stay true over consecutive evaluations."""
    if isinstance(node, ast.Cross):
        return True
    if isinstance(node, ast.ChannelTest):
        return node.op in ("enters", "exits")
    if isinstance(node, ast.And):
        return any(_is_edge(n) for n in node.operands)
    if isinstance(node, ast.Or):
        return all(_is_edge(n) for n in node.operands)
    return False


# --------------------------------------------------------------------------- the walk

@dataclass
class _Found:
    reason: str
    message: str
    field: str
    constant: bool = False      # a CONSTANT_CONDITION below the root


class _Checker:
    def __init__(self, *, mode: str, rule_tf: str | None, tf_was_set: bool, history_bars: int,
                 text: bool, root: str, long_ms: int) -> None:
        self.mode = mode
        self.rule_tf = rule_tf
        self.tf_was_set = tf_was_set
        self.history_bars = history_bars
        self.text = text
        self.root = root
        self.text_field = root + "_text"
        self.long_ms = long_ms
        self.found: list[_Found] = []
        self.warmed: set[str] = set()

    # ---- output

    def warn(self, reason: str, message: str, path: str, pos: ast.Pos = ast.NO_POS,
             *, constant: bool = False) -> None:
        if self.text:
            field = self.text_field
            if pos != ast.NO_POS:
                message = f"{pos}: {message}"
        else:
            field = path
        self.found.append(_Found(reason, message, field, constant))

    def finish(self, condition: ast.Condition, outcomes: Outcomes, cooldown_ms: int | None,
               rule_field: str) -> None:
        if _T not in outcomes:
            tail = " The whole condition can never be true, so the rule never fires."
        elif outcomes == {_T}:
            tail = " The whole condition is then always true."
        else:
            tail = ""
        for found in self.found:
            if found.constant and tail:
                found.message += tail
        if (self.mode == "EVERY_TIME" and not cooldown_ms and _T in outcomes
                and not _is_edge(condition)):
            limit = ("cooldown 0: no limit" if cooldown_ms == 0 else
                     f"with no cooldown set, {DEFAULT_EVERY_TIME_COOLDOWN_MS // 1000} s")
            field = "cooldown" if cooldown_ms == 0 else "trigger_mode"
            self.found.append(_Found(
                "REPEATED_FIRING",
                f"EVERY_TIME fires at every evaluation (every trade of a symbol the rule reads) while the "
                f"condition holds, at most once per cooldown ({limit}); "
                f"`{_clip(format_condition(condition))}` can hold for hours. ON_TRUE fires once "
                "each time it becomes true, ONCE_PER_BAR at most once a bar; or set a cooldown.",
                f"{rule_field}.{field}",
            ))

    # ---- normalisation

    def norm(self, node: ast.Arith) -> ast.Arith:
        """The expression with every series' timeframe resolved (what the core loads)."""
        if isinstance(node, ast.Series):
            spec = SERIES[node.name]
            if node.name == "price" and self.mode == "ONCE_PER_BAR_CLOSE":
                return ast.Series("close", timeframe=self.rule_tf)
            if spec.timeframe == "bar" and node.timeframe is None:
                return replace(node, timeframe=self.rule_tf)
            return node
        if isinstance(node, ast.Neg):
            return ast.Neg(self.norm(node.operand))
        if isinstance(node, ast.BinOp):
            return ast.BinOp(node.op, self.norm(node.left), self.norm(node.right))
        return node

    def range_of(self, node: ast.Arith) -> tuple[_Interval, str] | None:
        if not isinstance(node, ast.Series):
            return None
        return _RANGES.get((node.name, node.output))

    # ---- conditions

    def condition(self, node: ast.Condition, path: str, *, is_root: bool = False) -> Outcomes:
        if isinstance(node, ast.Compare):
            return self.compare(node, f"{path}.compare", is_root)
        if isinstance(node, ast.Cross):
            return self.cross(node, f"{path}.cross", is_root)
        if isinstance(node, ast.ChannelTest):
            return self.channel_test(node, f"{path}.channel_test", is_root)
        if isinstance(node, ast.Moves):
            return self.moves(node, f"{path}.moves", is_root)
        if isinstance(node, ast.Not):
            inner = self.condition(node.operand, f"{path}.negation.operand")
            return frozenset({_T: _F, _F: _T, _U: _U}[o] for o in inner)
        kind = "all_of" if isinstance(node, ast.And) else "any_of"
        parts = [self.condition(child, f"{path}.{kind}.operands[{i}]")
                 for i, child in enumerate(node.operands)]
        out = _combine(parts, "and" if isinstance(node, ast.And) else "or")
        return self.logical(node, parts, out, f"{path}.{kind}", is_root)

    def constant(self, node: ast.Condition, path: str, is_root: bool, why: str,
                 out: Outcomes) -> Outcomes:
        text = _clip(format_condition(node))
        self.warn("CONSTANT_CONDITION", f"`{text}` is {_describe(out)}: {why}.", path, node.pos,
                  constant=not is_root)
        return out

    def operands(self, node: ast.Compare | ast.Cross, path: str) -> None:
        self.arith(node.left, f"{path}.left")
        self.arith(node.right, f"{path}.right")

    def compare(self, node: ast.Compare, path: str, is_root: bool) -> Outcomes:
        self.operands(node, path)
        left, right = _fold(node.left), _fold(node.right)
        if _UNDEFINED in (left, right):
            return self.constant(node, path, is_root, "it divides by zero", frozenset({_U}))
        if isinstance(left, float) and isinstance(right, float):
            out = frozenset({_T if _compare(node.op, left, right) else _F})
            return self.constant(node, path, is_root, "it compares two constants", out)
        nl, nr = self.norm(node.left), self.norm(node.right)
        if nl == nr:
            out = frozenset({_T if node.op in (">=", "<=", "==") else _F, _U})
            return self.constant(node, path, is_root, self.same_value(node), out)
        ranged = self.ranged(node)
        if ranged is not None:
            series, op, value = ranged
            bounds = self.range_of(series)
            if bounds is not None:
                allowed = _constraint(op, value).meet(bounds[0])
                label = format_arith(series)
                if allowed.empty():
                    return self.constant(node, path, is_root, f"{label} is always {bounds[1]}",
                                         frozenset({_F, _U}))
                if bounds[0].within(_constraint(op, value)):
                    return self.constant(node, path, is_root, f"{label} is always {bounds[1]}",
                                         frozenset({_T, _U}))
        if node.op == "==":
            self.exact_equality(node, path)
        return _ANY

    def same_value(self, node: ast.Compare | ast.Cross) -> str:
        why = "both sides are always the same value"
        if node.op in ("crosses", "crosses_above", "crosses_below"):
            why += ", and a value never crosses itself"
        names = {s.name for side in (node.left, node.right) for s in _series_in(side)}
        if self.mode == "ONCE_PER_BAR_CLOSE" and "price" in names and node.left != node.right:
            why += f" (at a bar close, price is that bar's close, close({self.rule_tf}))"
        return why

    def ranged(self, node: ast.Compare) -> tuple[ast.Arith, ast.CompareOp, float] | None:
        """``(expression, op, constant)`` for ``expression op constant`` in either order."""
        left, right = _fold(node.left), _fold(node.right)
        if left is None and isinstance(right, float):
            return self.norm(node.left), node.op, right
        if right is None and isinstance(left, float):
            return self.norm(node.right), _FLIP[node.op], left
        return None

    def exact_equality(self, node: ast.Compare, path: str) -> None:
        names = {s.name for s in _series_in(node.left)} | {s.name for s in _series_in(node.right)}
        if names <= _COUNTS:
            return
        text = _clip(format_condition(node))
        self.warn(
            "EXACT_EQUALITY",
            f"`{text}` is true only when both sides are exactly equal; a price can move past a "
            "value between two trades without printing it, and a computed indicator practically "
            "never hits a value exactly. Use `crosses` to catch it passing, or "
            "`inside [low, high]` for a tolerance.",
            path, node.pos,
        )

    def cross(self, node: ast.Cross, path: str, is_root: bool) -> Outcomes:
        self.operands(node, path)
        left, right = _fold(node.left), _fold(node.right)
        if _UNDEFINED in (left, right):
            return self.constant(node, path, is_root, "it divides by zero", frozenset({_U}))
        if isinstance(left, float) and isinstance(right, float):
            return self.constant(node, path, is_root, "two constants never cross",
                                 frozenset({_F}))
        if self.norm(node.left) == self.norm(node.right):
            return self.constant(node, path, is_root, self.same_value(node),
                                 frozenset({_F, _U}))
        return _ANY

    def channel_test(self, node: ast.ChannelTest, path: str, is_root: bool) -> Outcomes:
        self.arith(node.operand, f"{path}.operand")
        channel = node.channel
        if isinstance(channel, ast.SeriesChannel):
            self.series(channel, f"{path}.channel.series_channel")
            if _fold(node.operand) is _UNDEFINED:
                return self.constant(node, path, is_root, "it divides by zero", frozenset({_U}))
            return _ANY
        self.arith(channel.lower, f"{path}.channel.range.lower")
        self.arith(channel.upper, f"{path}.channel.range.upper")
        x, lo, hi = _fold(node.operand), _fold(channel.lower), _fold(channel.upper)
        if _UNDEFINED in (x, lo, hi):
            return self.constant(node, path, is_root, "it divides by zero", frozenset({_U}))
        if not (isinstance(lo, float) and isinstance(hi, float)):
            return _ANY
        if isinstance(x, float):
            inside = lo <= x <= hi
            value = inside if node.op == "inside" else not inside
            out = frozenset({_F} if node.op in ("enters", "exits") else {_T if value else _F})
            return self.constant(node, path, is_root, "its operand and channel are constants",
                                 out)
        if lo > hi:
            why = (f"the range is empty (lower {format_number(lo)} > upper "
                   f"{format_number(hi)})")
            out = frozenset({_T if node.op == "outside" else _F, _U})
            return self.constant(node, path, is_root, why, out)
        return _ANY

    def moves(self, node: ast.Moves, path: str, is_root: bool) -> Outcomes:
        self.arith(node.operand, f"{path}.operand")
        self.moves_window(node, f"{path}.bars")
        x = _fold(node.operand)
        if x is _UNDEFINED:
            return self.constant(node, path, is_root, "it divides by zero", frozenset({_U}))
        if isinstance(x, float):
            factor = 1 + node.percent / 100 if node.direction == "up" else 1 - node.percent / 100
            hit = x >= factor * x if node.direction == "up" else x <= factor * x
            return self.constant(node, path, is_root, "its operand is a constant",
                                 frozenset({_T if hit else _F, _U}))
        return _ANY

    def logical(self, node: ast.And | ast.Or, parts: list[Outcomes], out: Outcomes, path: str,
                is_root: bool) -> Outcomes:
        """An ``and`` whose comparisons of one expression contradict, an ``or`` covering all."""
        is_and = isinstance(node, ast.And)
        if (_T not in out) if is_and else (_F not in out):
            return out          # already constant through an operand, reported there
        groups: dict[ast.Arith, list[tuple[_Interval, ast.Compare]]] = {}
        for child, part in zip(node.operands, parts, strict=True):
            if isinstance(child, ast.Compare) and part == _ANY:
                ranged = self.ranged(child)
                if ranged is not None:
                    key, op, value = ranged
                    groups.setdefault(key, []).append((_constraint(op, value), child))
        for key, items in groups.items():
            if len(items) < 2:
                continue
            bounds = self.range_of(key)
            domain = bounds[0] if bounds else _REALS
            tests = " and ".join(f"`{format_condition(c)}`" for _, c in items)
            label = _clip(format_arith(key))
            if is_and:
                meet = domain
                for interval, _ in items:
                    meet = meet.meet(interval)
                if meet.empty():
                    return self.constant(node, path, is_root,
                                         f"{label} cannot satisfy {tests} at once",
                                         frozenset(o for o in out if o != _T))
            elif _covers((interval for interval, _ in items), domain):
                tests = tests.replace("` and `", "` or `")
                return self.constant(node, path, is_root,
                                     f"every value of {label} satisfies {tests}",
                                     frozenset(o for o in out if o != _F))
        return out

    # ---- arithmetic and series

    def arith(self, node: ast.Arith, path: str) -> None:
        if isinstance(node, ast.Series):
            self.series(node, f"{path}.series")
        elif isinstance(node, ast.Neg):
            self.arith(node.operand, f"{path}.neg.operand")
        elif isinstance(node, ast.BinOp):
            self.arith(node.left, f"{path}.binary.left")
            self.arith(node.right, f"{path}.binary.right")

    def series(self, node: ast.Series | ast.SeriesChannel, path: str) -> None:
        spec = SERIES[node.name]
        if spec.timeframe != "bar":
            return
        tf = node.timeframe or self.rule_tf
        if tf is None:
            return
        need = _bars_needed(node)
        covered = 0 if tf == "1s" else self.history_bars
        live = max(0, need - covered)
        step = TIMEFRAME_MS[tf]
        if live * step <= self.long_ms:
            return
        if isinstance(node, ast.Series):
            shown = replace(node, timeframe=tf)
        else:
            shown = ast.Series(node.name, node.params, tf, node.symbol)
        label = format_series(shown)
        if label in self.warmed:
            return
        self.warmed.add(label)
        who = node.symbol or "the symbol"
        message = (f"{label} is undefined until {need} {tf} bars exist for {who} "
                   f"({_duration(need * step)})")
        if tf == "1s" and self.history_bars:
            message += "; 1s bars are never loaded from history"
        elif covered:
            message += (f"; the server loads at most {covered} bars of history, so about "
                        f"{live} more ({_duration(live * step)}) must come live")
        message += (". Unless the server already keeps it for the symbol, the rule is "
                    "WARMING_UP until then and what reads it is undefined.")
        self.warn("LONG_WARM_UP", message, path, node.pos)

    def moves_window(self, node: ast.Moves, path: str) -> None:
        tf = self.rule_tf
        if tf is None:
            return
        text = _clip(format_condition(node))
        step = TIMEFRAME_MS[tf]
        others = sorted({s.timeframe for s in _series_in(self.norm(node.operand))
                         if s.timeframe is not None and s.timeframe != tf},
                        key=TIMEFRAME_MS.__getitem__)
        if others:
            why = ("the rule's timeframe" if self.tf_was_set else
                   "the rule's timeframe, the shortest its condition names")
            message = (f"`{text}` counts bars of {why}, {tf}, not of {', '.join(others)}: the "
                       f"window is {node.bars} {tf} bars ({_duration(node.bars * step)})")
            if len(others) == 1:
                scaled = node.bars * TIMEFRAME_MS[others[0]] / step
                if scaled.is_integer() and scaled <= 1000:
                    message += (f"; for {node.bars} {others[0]} bars write "
                                f"`within {int(scaled)} bars`")
            self.warn("MOVES_WINDOW_TIMEFRAME", message + ".", path, node.pos)
        if node.bars * step > self.long_ms:
            source = " or, for a symbol new to the server, from history" if (
                self.history_bars and tf != "1s") else ""
            self.warn(
                "LONG_WARM_UP",
                f"`{text}` compares with the {node.bars} {tf} bars before now "
                f"({_duration(node.bars * step)}); the rule keeps that window itself and fills "
                f"it from bars that close after it is loaded{source}: until it is full the test "
                "is undefined.",
                path, node.pos,
            )


_MAX_QUOTED: Final = 80


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 3] + "..."
