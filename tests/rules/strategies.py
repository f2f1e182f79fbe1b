"""Hypothesis strategies for valid condition trees, shared by the rule-language tests.

Every tree drawn here is one ``parse_condition`` accepts back from its
``format_condition`` text: catalog names with in-range parameters, timeframes
and symbols only where the catalog allows them, outputs exactly where needed,
offsets 0..MAX_OFFSET, ``moves`` percent > 0 and bars 1..MAX_PERIOD, ``and``/``or``
with two or more operands. Depth is bounded by ``max_depth`` so the formatted
text stays well inside the nesting, tree-depth and size limits. Positions are
left at ``NO_POS`` (they do not take part in equality).
"""

from __future__ import annotations

from hypothesis import strategies as st

from alerts.rules import catalog
from alerts.rules.ast import (
    And,
    Arith,
    BinOp,
    Channel,
    ChannelTest,
    Compare,
    Condition,
    Cross,
    Moves,
    Neg,
    Not,
    Number,
    Or,
    RangeChannel,
    Series,
    SeriesChannel,
)
from alerts.rules.format import format_condition

COMPARE_OPS = (">", ">=", "<", "<=", "==")
CROSS_OPS = ("crosses", "crosses_above", "crosses_below")
CHANNEL_OPS = ("enters", "exits", "inside", "outside")
ARITH_OPS = ("+", "-", "*", "/")
SERIES_NAMES = tuple(sorted(catalog.SERIES))
CHANNEL_NAMES = tuple(sorted(name for name, spec in catalog.SERIES.items() if spec.channel))


def finite_floats() -> st.SearchStrategy[float]:
    """Any finite float, with small whole numbers (the common case) drawn often."""
    whole = st.integers(-100_000, 100_000).map(float)
    return st.one_of(whole, st.floats(allow_nan=False, allow_infinity=False))


def number_nodes() -> st.SearchStrategy[Number]:
    return st.builds(Number, finite_floats())


def timeframes() -> st.SearchStrategy[str]:
    return st.sampled_from(catalog.TIMEFRAMES)


def symbols() -> st.SearchStrategy[str]:
    """Bare (``ETHUSDT``) or venue-qualified (``binance-usdm:BTCUSDT``) operand symbols."""
    bare = st.from_regex(r"[A-Z][A-Za-z0-9_]{0,11}", fullmatch=True)
    qualified = st.from_regex(r"[a-z][a-z0-9-]{0,11}:[A-Za-z0-9._/-]{1,12}", fullmatch=True)
    return st.one_of(st.sampled_from(("ETHUSDT", "binance:BTCUSDT", "us:SPY")), bare, qualified)


def periods() -> st.SearchStrategy[float]:
    return st.integers(catalog.MIN_PERIOD, catalog.MAX_PERIOD).map(float)


def params_for(name: str) -> st.SearchStrategy[tuple[float, ...]]:
    """Valid numeric arguments of series ``name`` (macd: fast < slow)."""
    spec = catalog.SERIES[name]
    if name == "macd":
        fast_slow = st.lists(periods(), min_size=2, max_size=2, unique=True).map(sorted)
        return st.tuples(fast_slow, periods()).map(lambda fs_sig: (*fs_sig[0], fs_sig[1]))
    parts = [
        st.floats(0, catalog.MAX_BB_K, exclude_min=True)
        if param in spec.float_params
        else periods()
        for param in spec.params
    ]
    return st.tuples(*parts)


def _timeframe_for(spec: catalog.SeriesSpec) -> st.SearchStrategy[str | None]:
    return (st.none() | timeframes()) if spec.timeframe == "bar" else st.none()


def _symbol_for(spec: catalog.SeriesSpec) -> st.SearchStrategy[str | None]:
    return (st.none() | symbols()) if spec.symbol else st.none()


def offsets() -> st.SearchStrategy[int]:
    return st.one_of(st.just(0), st.integers(0, 3), st.integers(0, catalog.MAX_OFFSET))


def series_of(name: str) -> st.SearchStrategy[Series]:
    """A valid ``Series`` of the given catalog name (with an output if it has outputs)."""
    spec = catalog.SERIES[name]
    return st.builds(
        Series,
        name=st.just(name),
        params=params_for(name),
        timeframe=_timeframe_for(spec),
        symbol=_symbol_for(spec),
        output=st.sampled_from(spec.outputs) if spec.outputs else st.none(),
        offset=offsets(),
    )


def series_nodes() -> st.SearchStrategy[Series]:
    return st.sampled_from(SERIES_NAMES).flatmap(series_of)


def arith_nodes(max_depth: int = 3) -> st.SearchStrategy[Arith]:
    """Numbers and series combined by ``+ - * /`` and unary minus, at most ``max_depth`` deep."""
    leaves: st.SearchStrategy[Arith] = st.one_of(number_nodes(), series_nodes())
    if max_depth <= 1:
        return leaves
    sub = arith_nodes(max_depth - 1)
    return st.one_of(
        leaves,
        st.builds(Neg, sub),
        st.builds(BinOp, st.sampled_from(ARITH_OPS), sub, sub),
    )


def channel_nodes(arith_depth: int = 2) -> st.SearchStrategy[Channel]:
    def series_channel(name: str) -> st.SearchStrategy[SeriesChannel]:
        spec = catalog.SERIES[name]
        return st.builds(
            SeriesChannel,
            name=st.just(name),
            params=params_for(name),
            timeframe=_timeframe_for(spec),
            symbol=_symbol_for(spec),
        )

    ranges = st.builds(RangeChannel, arith_nodes(arith_depth), arith_nodes(arith_depth))
    return st.one_of(st.sampled_from(CHANNEL_NAMES).flatmap(series_channel), ranges)


def leaf_conditions(arith_depth: int = 2) -> st.SearchStrategy[Condition]:
    """Comparisons, crossings, channel tests and moves over arithmetic operands."""
    arith = arith_nodes(arith_depth)
    moves = st.builds(
        Moves,
        st.sampled_from(("up", "down")),
        arith,
        st.floats(min_value=0, allow_infinity=False, allow_nan=False, exclude_min=True),
        st.integers(catalog.MIN_PERIOD, catalog.MAX_PERIOD),
    )
    return st.one_of(
        st.builds(Compare, st.sampled_from(COMPARE_OPS), arith, arith),
        st.builds(Cross, st.sampled_from(CROSS_OPS), arith, arith),
        st.builds(ChannelTest, st.sampled_from(CHANNEL_OPS), arith, channel_nodes(arith_depth)),
        moves,
    )


def condition_nodes(max_depth: int = 3, arith_depth: int = 2) -> st.SearchStrategy[Condition]:
    """Valid condition trees: leaves under ``not``/``and``/``or``, at most ``max_depth`` deep.

    Trees whose text would exceed ``catalog.MAX_TEXT_BYTES`` (rare) are left out.
    """
    return _conditions(max_depth, arith_depth).filter(_fits_text_limit)


def _conditions(max_depth: int, arith_depth: int) -> st.SearchStrategy[Condition]:
    leaves = leaf_conditions(arith_depth)
    if max_depth <= 1:
        return leaves
    sub = _conditions(max_depth - 1, arith_depth)
    operands = st.lists(sub, min_size=2, max_size=4).map(tuple)
    return st.one_of(leaves, st.builds(Not, sub), st.builds(And, operands), st.builds(Or, operands))


def _fits_text_limit(tree: Condition) -> bool:
    return len(format_condition(tree).encode()) <= catalog.MAX_TEXT_BYTES
