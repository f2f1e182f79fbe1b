"""The ListRules filter parser against an independent reading of AIP-160's grammar.

Random filters are built as trees, printed with AIP-160's precedence (OR binds
tighter than AND; NOT tightest) and parsed back; the parser must agree with the
tree's own evaluation on every rule of a small fixed set.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.api.rule_filter import parse_rule_query
from alerts.errors import InvalidArgumentError
from alerts.v1 import rules_pb2


def qualify(symbol: str) -> str:
    return symbol if ":" in symbol else f"binance:{symbol}"


RULES = [
    rules_pb2.Rule(name=f"rules/r{i}", symbol=qualify(sym), paused=paused, display_name=dn,
                   labels=labels)
    for i, (sym, paused, dn, labels) in enumerate([
        ("BTCUSDT", False, "a b", {"bot": "grid"}),
        ("ETHUSDT", True, 'say "hi"', {}),
        ("BTCUSDT", True, "x", {"bot": "dca", "team": "q"}),
        ("XRPUSDT", False, "a b", {"team": "q"}),
    ])
]

# (filter text, python check) leaves
LEAVES = [
    ("symbol = BTCUSDT", lambda r: r.symbol == "binance:BTCUSDT"),
    ('symbol != "binance:ETHUSDT"', lambda r: r.symbol != "binance:ETHUSDT"),
    ("paused = true", lambda r: r.paused),
    ('display_name = "a b"', lambda r: r.display_name == "a b"),
    (r'display_name = "say \"hi\""', lambda r: r.display_name == 'say "hi"'),
    ("labels.bot = grid", lambda r: r.labels.get("bot") == "grid"),
    ("labels.team != q", lambda r: r.labels.get("team") != "q"),
]

Tree = tuple


def trees() -> st.SearchStrategy[Tree]:
    leaf = st.sampled_from(range(len(LEAVES))).map(lambda i: ("leaf", i))
    return st.recursive(leaf, lambda kids: st.one_of(
        st.tuples(st.just("not"), kids),
        st.tuples(st.just("and"), kids, kids),
        st.tuples(st.just("or"), kids, kids),
    ), max_leaves=8)


def evaluate(tree: Tree, rule: rules_pb2.Rule) -> bool:
    op = tree[0]
    if op == "leaf":
        return bool(LEAVES[tree[1]][1](rule))
    if op == "not":
        return not evaluate(tree[1], rule)
    if op == "and":
        return evaluate(tree[1], rule) and evaluate(tree[2], rule)
    return evaluate(tree[1], rule) or evaluate(tree[2], rule)


def show(tree: Tree, parent: str = "and", negation: str = "NOT ") -> str:
    """Print with the fewest parentheses AIP-160's precedence allows (and < or < not)."""
    op = tree[0]
    if op == "leaf":
        return LEAVES[tree[1]][0]
    if op == "not":
        return negation + show(tree[1], "not", negation)
    rank = {"and": 0, "or": 1, "not": 2}
    text = f" {op.upper()} ".join(show(kid, op, negation) for kid in tree[1:])
    return f"({text})" if rank[op] < rank[parent] else text


@settings(max_examples=300, deadline=None)
@given(trees(), st.sampled_from(["NOT ", "-"]))
def test_parser_agrees_with_the_tree(tree: Tree, negation: str) -> None:
    text = show(tree, negation=negation)
    query = parse_rule_query(text, "", qualify)
    for rule in RULES:
        assert query.accepts(rule) == evaluate(tree, rule), (text, rule.name)
    # what the store is asked to narrow by never drops a matching rule
    for rule in RULES:
        if evaluate(tree, rule):
            assert query.symbol in (None, rule.symbol) and query.paused in (None, rule.paused)


def test_store_narrowing_only_from_top_level_conjuncts() -> None:
    q = parse_rule_query("symbol = BTCUSDT AND paused = false", "", qualify)
    assert (q.symbol, q.paused) == ("binance:BTCUSDT", False)
    for text in ("symbol = BTCUSDT OR paused = false", "NOT symbol = BTCUSDT",
                 "(symbol = BTCUSDT OR symbol = ETHUSDT)", "symbol != BTCUSDT"):
        q = parse_rule_query(text, "", qualify)
        assert (q.symbol, q.paused) == (None, None), text


@pytest.mark.parametrize(("text", "where"), [
    ("symbol = ", "1:10: expected a value"),
    ("(symbol = A", "1:12: expected ')'"),
    ("symbol = A )", "1:12: unexpected ')'"),
    ("colour = red", "1:1: unknown field 'colour'"),
    ("symbol ~ A", "1:8: expected = or != after 'symbol'"),
    ("symbol = A OR", "1:14: expected a field"),
    ("labels. = x", "1:1: unknown field 'labels.'"),
    ('display_name = "open', '1:16: unexpected \'"\''),
])
def test_errors_name_the_column(text: str, where: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        parse_rule_query(text, "", qualify)
    assert err.value.violations[0].field == "filter"
    assert where in err.value.violations[0].description
