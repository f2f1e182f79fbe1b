"""What the rule language knows: timeframes, fields, indicators and their signatures.

One table serves the parser's validation, the proto conversion and the
compiler, so a name means the same thing everywhere. Indices of ``TIMEFRAMES``
and the ``core_kind`` names match ``alerts_core``'s constants.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Timeframe names in order, finest first; the index is the core's timeframe id.
TIMEFRAMES: tuple[str, ...] = ("1s", "1m", "5m", "15m", "1h", "4h", "1d")
TIMEFRAME_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}

MIN_PERIOD = 1
MAX_PERIOD = 1000
MAX_OFFSET = 1000
MAX_TEXT_BYTES = 4096
MAX_NESTING = 32
#: Deepest syntax tree (long chains such as ``a + b + c + ...`` nest without
#: parentheses). Each level costs two protobuf message levels and decoders refuse
#: messages nested more than 100 deep, so a stored condition must stay under 50.
MAX_TREE_DEPTH = 40


@dataclass(frozen=True)
class SeriesSpec:
    """Signature of one series name.

    ``params``: names of the numeric parameters, all required, in order.
    ``float_params``: the subset that may be fractional (others are periods,
    integers in MIN_PERIOD..MAX_PERIOD).
    ``outputs``: allowed ``.output`` names; empty for single-valued series.
    ``channel``: usable whole as a channel (``enters bb(20, 2, 1h)``).
    ``timeframe``: "bar" needs a timeframe (its own or the rule's); "none"
    takes none (``price``, ``vwap``).
    ``symbol``: may name an operand symbol.
    """

    params: tuple[str, ...] = ()
    float_params: frozenset[str] = frozenset()
    outputs: tuple[str, ...] = ()
    channel: bool = False
    timeframe: str = "bar"
    symbol: bool = True


FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "quote_volume", "trades")

SERIES: dict[str, SeriesSpec] = {
    "price": SeriesSpec(timeframe="none", symbol=False),
    **{name: SeriesSpec() for name in FIELDS},
    "sma": SeriesSpec(params=("period",)),
    "ema": SeriesSpec(params=("period",)),
    "wma": SeriesSpec(params=("period",)),
    "rsi": SeriesSpec(params=("period",)),
    "macd": SeriesSpec(params=("fast", "slow", "signal"), outputs=("line", "signal", "hist")),
    "bb": SeriesSpec(
        params=("period", "k"),
        float_params=frozenset({"k"}),
        outputs=("upper", "middle", "lower", "pct_b", "width"),
        channel=True,
    ),
    "atr": SeriesSpec(params=("period",)),
    "stoch": SeriesSpec(params=("k", "smooth", "d"), outputs=("k", "d")),
    "obv": SeriesSpec(),
    "vwap": SeriesSpec(timeframe="none"),
    "volume_z": SeriesSpec(params=("period",)),
    "change_pct": SeriesSpec(params=("period",)),
    "highest": SeriesSpec(params=("period",)),
    "lowest": SeriesSpec(params=("period",)),
    "donchian": SeriesSpec(params=("period",), outputs=("upper", "middle", "lower"), channel=True),
}

#: For channel tests: which outputs are the channel's lower and upper bounds.
CHANNEL_BOUNDS: dict[str, tuple[str, str]] = {
    "bb": ("lower", "upper"),
    "donchian": ("lower", "upper"),
}

#: Largest allowed bb k (standard deviations).
MAX_BB_K = 10.0
