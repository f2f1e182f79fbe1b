"""alerts_core.wire: PublishTicks ticks read into columns in C, checked against the
protobuf library's own parse of the same bytes (the oracle) on generated messages,
including the wire format's odd corners: unknown fields, groups, a field repeated,
a Tick or a Timestamp sent in parts."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.v1 import market_pb2, service_pb2
from alerts_core import wire

MIN_S, MAX_S = -62135596800, 253402300799
NAMES = ["BTCUSDT", "binance:ETHUSDT", "test:A", "", ":X", "x:", "a:b:c", "::", "é:ü", "v:Ω"]


def reference(data: bytes, known: dict[bytes, int], max_time_ms: int) -> tuple[object, ...]:
    """What decode_ticks must give, from the library's parse and the rules in words."""
    req = service_pb2.PublishTicksRequest.FromString(data)
    ids, times, prices, qtys, tids, new = [], [], [], [], [], []
    for i, t in enumerate(req.ticks):
        colon = t.symbol.rfind(":")
        s, n = t.event_time.seconds, t.event_time.nanos
        valid = MIN_S <= s <= MAX_S and 0 <= n <= 999_999_999
        ms = s * 1000 + n // 1_000_000
        checks = [
            (wire.BAD_SYMBOL, not t.symbol or colon in (0, len(t.symbol) - 1)),
            (wire.BAD_PRICE, not (math.isfinite(t.price) and t.price > 0)),
            (wire.BAD_QUANTITY, not (math.isfinite(t.quantity) and t.quantity >= 0)),
            (wire.BAD_TIMESTAMP, not valid),
            (wire.FUTURE_TIME, valid and ms > max_time_ms),
        ]
        bad = [code for code, failed in checks if failed]
        if bad:
            return ("problem", (i, bad[0]))
        name = t.symbol.encode()
        ids.append(known.get(name, -1))
        if name not in known:
            new.append(name)
        times.append(ms)
        prices.append(t.price)
        qtys.append(t.quantity)
        tids.append(t.trade_id - (1 << 64) if t.trade_id >= 1 << 63 else t.trade_id)
    return ("ok", ids, times, prices, qtys, tids, new)


def decoded(data: bytes, known: dict[bytes, int], max_time_ms: int) -> tuple[object, ...]:
    table = wire.SymbolIds()
    for name, sid in known.items():
        table.add(name, sid)
    sid, time_ms, price, qty, trade_id, new, problem = wire.decode_ticks(data, table,
                                                                          max_time_ms)
    if problem is not None:
        return ("problem", problem)
    for col, dtype in ((sid, np.int32), (time_ms, np.int64), (price, np.float64),
                       (qty, np.float64), (trade_id, np.int64)):
        assert col.dtype == dtype and len(col) == len(sid)
    return ("ok", sid.tolist(), time_ms.tolist(), price.tolist(), qty.tolist(),
            trade_id.tolist(), new)


def same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Equal, NaN == NaN (a refused batch never gets that far, but be exact anyway)."""
    return repr(a) == repr(b)


# -- hand-made wire bytes ---------------------------------------------------------------------

def varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field(num: int, wire_type: int, payload: bytes) -> bytes:
    tag = varint(num << 3 | wire_type)
    return tag + (varint(len(payload)) + payload if wire_type == 2 else payload)


unknown_fields = st.lists(st.one_of(
    st.builds(lambda n, v: field(n, 0, varint(v)), st.integers(7, 99), st.integers(0, 2**64 - 1)),
    st.builds(lambda n, b: field(n, 2, b), st.integers(7, 99), st.binary(max_size=8)),
    st.builds(lambda n, b: field(n, 1, b), st.integers(7, 99), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, b: field(n, 5, b), st.integers(7, 99), st.binary(min_size=4, max_size=4)),
    st.builds(lambda n, v: field(n, 3, field(1, 0, varint(v))) + field(n, 4, b""),
              st.integers(7, 99), st.integers(0, 300)),
), max_size=3).map(b"".join)

seconds = st.one_of(st.integers(1_600_000_000, 1_800_000_000), st.integers(MIN_S - 5, MIN_S + 5),
                    st.integers(MAX_S - 5, MAX_S + 5), st.integers(-2**63, 2**63 - 1))
nanos = st.one_of(st.integers(0, 999_999_999), st.integers(-2**31, 2**31 - 1))
prices = st.one_of(st.floats(0.01, 1e6), st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def tick_bytes(draw: st.DrawFn) -> bytes:
    """One Tick, perhaps in parts (a later part's fields win, a Timestamp's parts merge);
    mostly good ones, so a batch is not refused at its first tick every time."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        odd = draw(st.integers(0, 9)) == 0      # a value to refuse, now and then
        t = market_pb2.Tick(trade_id=draw(st.integers(0, 2**64 - 1)))
        if draw(st.booleans()):
            t.symbol = draw(st.text(max_size=6) if odd else st.sampled_from(NAMES[:3]))
        if draw(st.booleans()):
            t.price = draw(prices if odd else st.floats(0.01, 1e6))
        if draw(st.booleans()):
            t.quantity = draw(st.floats(-1, 1e6) | st.just(math.inf) | st.just(math.nan)
                              if odd else st.floats(0, 1e6))
        if draw(st.booleans()):
            t.event_time.seconds = draw(seconds if odd else st.integers(0, 1_700_000_000))
        if draw(st.booleans()):
            t.event_time.nanos = draw(nanos if odd else st.integers(0, 999_999_999))
        t.source = draw(st.sampled_from(["", "feed"]))
        parts.append(t.SerializeToString() + draw(unknown_fields))
    first = market_pb2.Tick(symbol="BTCUSDT", price=1.0)     # so that most parts fill in a good tick
    return first.SerializeToString() + b"".join(parts)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    out = [field(1, 2, b"src")] if draw(st.booleans()) else []
    for t in draw(st.lists(tick_bytes(), max_size=6)):
        out.append(field(2, 2, t))
        out.append(draw(unknown_fields))
    if draw(st.booleans()):
        out.append(field(3, 2, field(1, 0, varint(1_700_000_000))))
    return b"".join(out)


known_names = st.dictionaries(st.sampled_from(NAMES).map(str.encode), st.integers(0, 2**31 - 1),
                              max_size=4)
max_times = st.sampled_from([2**63 - 1, 1_700_000_000_000, 0])


@settings(max_examples=400, deadline=None)
@given(data=messages(), known=known_names, max_time_ms=max_times)
def test_decoding_equals_the_librarys_parse(data: bytes, known: dict[bytes, int],
                                            max_time_ms: int) -> None:
    expected = reference(data, known, max_time_ms)
    assert same(decoded(data, known, max_time_ms), expected)
    # And as the service decodes: the library's own re-serialization of the message.
    canonical = service_pb2.PublishTicksRequest.FromString(data).SerializeToString()
    assert same(decoded(canonical, known, max_time_ms), expected)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=64) | messages().map(lambda b: b[: len(b) // 2]))
def test_bytes_that_are_not_a_message_raise_value_error_never_crash(data: bytes) -> None:
    try:
        service_pb2.PublishTicksRequest.FromString(data)
        parsed = True
    except DecodeError:
        parsed = False
    try:
        result = decoded(data, {}, 2**63 - 1)
    except ValueError:
        assert not parsed       # what the library reads, the decoder reads too
        return
    if parsed:
        assert same(result, reference(data, {}, 2**63 - 1))


def test_a_batch_of_known_and_new_names() -> None:
    req = service_pb2.PublishTicksRequest(source="s")
    for i, name in enumerate(["BTCUSDT", "kraken:XBT", "BTCUSDT", "kraken:XBT", "ETHUSDT"]):
        t = req.ticks.add(symbol=name, price=100.0 + i, quantity=0.5, trade_id=2**64 - 1 - i)
        t.event_time.FromMilliseconds(1_700_000_000_123 + i)
    table = wire.SymbolIds()
    table.add(b"BTCUSDT", 7)
    assert len(table) == 1
    sid, time_ms, price, qty, trade_id, new, problem = wire.decode_ticks(
        req.SerializeToString(), table, 2**63 - 1)
    assert problem is None
    assert sid.tolist() == [7, -1, 7, -1, -1]
    assert new == [b"kraken:XBT", b"kraken:XBT", b"ETHUSDT"]
    assert time_ms.tolist() == [1_700_000_000_123 + i for i in range(5)]
    assert price.tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert qty.tolist() == [0.5] * 5
    assert trade_id.view(np.uint64).tolist() == [2**64 - 1 - i for i in range(5)]
    table.clear()
    assert len(table) == 0


@pytest.mark.parametrize(("tick", "code"), [
    (market_pb2.Tick(symbol=":BTC", price=1, quantity=1), wire.BAD_SYMBOL),
    (market_pb2.Tick(symbol="BTC", price=-1, quantity=1), wire.BAD_PRICE),
    (market_pb2.Tick(symbol="BTC", price=1, quantity=math.nan), wire.BAD_QUANTITY),
    (market_pb2.Tick(symbol="BTC", price=1, quantity=1,
                     event_time={"seconds": MAX_S + 1}), wire.BAD_TIMESTAMP),
    (market_pb2.Tick(symbol="BTC", price=1, quantity=1,
                     event_time={"seconds": 1, "nanos": -1}), wire.BAD_TIMESTAMP),
    (market_pb2.Tick(symbol="BTC", price=1, quantity=1,
                     event_time={"seconds": 2_000_000_000}), wire.FUTURE_TIME),
])
def test_the_first_bad_tick_is_named_with_its_first_problem(tick: market_pb2.Tick,
                                                            code: int) -> None:
    good = market_pb2.Tick(symbol="BTC", price=1, quantity=1, event_time={"seconds": 1})
    req = service_pb2.PublishTicksRequest(ticks=[good, tick, tick])
    *_, problem = wire.decode_ticks(req.SerializeToString(), wire.SymbolIds(), 1_800_000_000_000)
    assert problem == (1, code)
    # The same rules over columns (a feed's batch), from the same C function.
    ms = [1000, tick.event_time.seconds * 1000 + tick.event_time.nanos // 10**6]
    bad_symbol = np.array([0, code == wire.BAD_SYMBOL], np.uint8)
    if code == wire.BAD_TIMESTAMP:
        ms[1] = wire.MAX_TIME_MS + 1 if tick.event_time.seconds > 0 else wire.MIN_TIME_MS - 1
    assert wire.first_bad_tick(bad_symbol, np.array([1.0, tick.price]),
                               np.array([1.0, tick.quantity]), np.array(ms, np.int64),
                               1_800_000_000_000) == (1, code)


def test_a_double_is_read_bit_for_bit() -> None:
    for value in (5e-324, 1.7976931348623157e308, 0.1 + 0.2, 65_001.25):
        raw = field(2, 2, field(1, 2, b"X") + field(2, 1, struct.pack("<d", value))
                    + field(3, 1, struct.pack("<d", 1.0)))
        _, _, price, *_ = wire.decode_ticks(raw, wire.SymbolIds(), 2**63 - 1)
        assert price.tolist() == [value]
