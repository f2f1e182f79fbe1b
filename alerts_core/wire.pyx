# distutils: language = c++
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""PublishTicks ticks to columns without a Python object per tick.

``decode_ticks`` reads the ``ticks`` (field 2) of a serialized
``alerts.v1.PublishTicksRequest`` straight into numpy columns, looks each
symbol up in a ``SymbolIds`` table (the name as published, as bytes -> the
kernel's symbol id) and checks every tick by the rules of ``tick_problem``.
Only a name the table does not hold yet becomes a Python object (``bytes``), so
the caller can qualify and intern it once.

The bytes come from the protobuf library's own serializer (the message was
parsed, and its strings checked as UTF-8, by the library first), so fields
arrive in the canonical form; anything else the wire format allows (unknown
fields, a field repeated: the last one counts, a Timestamp sent in parts: its
parts merge) is read as the library reads it, and bytes that are not a
message raise ``ValueError``.
"""

from cython.operator cimport dereference as deref
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy
from libc.math cimport isfinite
from libcpp.string cimport string
from libcpp.unordered_map cimport unordered_map
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

import numpy as np

cpdef enum:
    # ``tick_problem`` codes (0: none)
    BAD_SYMBOL = 1      # empty, or no name after the venue's ':', or no venue before it
    BAD_PRICE = 2       # not finite, or <= 0
    BAD_QUANTITY = 3    # not finite, or < 0
    BAD_TIMESTAMP = 4   # outside google.protobuf.Timestamp's range (years 1 to 9999)
    FUTURE_TIME = 5     # after the latest time allowed

#: google.protobuf.Timestamp's range, in seconds and in ms.
cdef int64_t MIN_SECONDS = -62135596800     # 0001-01-01T00:00:00Z
cdef int64_t MAX_SECONDS = 253402300799     # 9999-12-31T23:59:59Z
MIN_TIME_MS = MIN_SECONDS * 1000
MAX_TIME_MS = MAX_SECONDS * 1000 + 999


cdef inline int tick_problem(bint bad_symbol, double price, double qty, bint valid_time,
                             int64_t time_ms, int64_t max_time_ms) noexcept nogil:
    """The first of the checks a tick fails, in the order of the codes; 0 if none."""
    if bad_symbol:
        return BAD_SYMBOL
    if not (isfinite(price) and price > 0):
        return BAD_PRICE
    if not (isfinite(qty) and qty >= 0):
        return BAD_QUANTITY
    if not valid_time:
        return BAD_TIMESTAMP
    if time_ms > max_time_ms:
        return FUTURE_TIME
    return 0


def first_bad_tick(const uint8_t[::1] bad_symbol, const double[::1] price,
                   const double[::1] qty, const int64_t[::1] time_ms, int64_t max_time_ms):
    """(index, code) of the first tick with a problem, else None (columns already decoded)."""
    cdef Py_ssize_t i, n = price.shape[0]
    cdef int code = 0
    if bad_symbol.shape[0] != n or qty.shape[0] != n or time_ms.shape[0] != n:
        raise ValueError("columns of different lengths")
    with nogil:
        for i in range(n):
            code = tick_problem(bad_symbol[i], price[i], qty[i],
                                MIN_SECONDS * 1000 <= time_ms[i] <= MAX_SECONDS * 1000 + 999,
                                time_ms[i], max_time_ms)
            if code:
                break
    return (i, code) if code else None


cdef inline bint bad_name(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    """As ``qualify`` refuses: empty, ends in ':', or its last ':' is its first byte."""
    cdef Py_ssize_t k = n - 1
    if n == 0:
        return True
    while k >= 0 and s[k] != 58:    # ':'
        k -= 1
    return k == n - 1 or k == 0


cdef class SymbolIds:
    """Symbol names as published (UTF-8 bytes) -> kernel symbol ids.

    Every method, and ``decode_ticks``' lookups, run holding the GIL and never release
    it while they touch the table (nor hold an iterator across a Python call), so the
    event loop may decode while the engine's thread adds names.
    """

    cdef unordered_map[string, int32_t] _ids

    def add(self, bytes name, int32_t sid):
        self._ids[string(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name))] = sid

    def clear(self):
        self._ids.clear()

    def __len__(self):
        return self._ids.size()


#: Groups nested deeper than this are refused (the protobuf library's own limit is 100).
cdef enum:
    MAX_DEPTH = 100


cdef struct Reader:
    const uint8_t* p
    const uint8_t* end


cdef inline int read_varint(Reader* r, uint64_t* out) noexcept nogil:
    cdef uint64_t v = 0
    cdef int shift = 0
    cdef uint8_t b
    while True:
        if r.p >= r.end or shift > 63:
            return -1
        b = r.p[0]
        r.p += 1
        v |= (<uint64_t>(b & 0x7F)) << shift
        if b < 0x80:
            out[0] = v
            return 0
        shift += 7


cdef inline int read_fixed64(Reader* r, uint64_t* out) noexcept nogil:
    if r.end - r.p < 8:
        return -1
    memcpy(out, r.p, 8)         # little-endian on the wire and on every supported target
    r.p += 8
    return 0


cdef inline int read_length(Reader* r, Reader* inner) noexcept nogil:
    """A length-delimited field's bytes as ``inner``; ``r`` moves past them."""
    cdef uint64_t n
    if read_varint(r, &n) < 0 or n > <uint64_t>(r.end - r.p):
        return -1
    inner.p = r.p
    inner.end = r.p + n
    r.p += n
    return 0


cdef inline int read_tag(Reader* r, uint32_t* field, int* wire_type) noexcept nogil:
    cdef uint64_t tag
    if read_varint(r, &tag) < 0 or (tag >> 3) == 0 or (tag >> 3) > 0x1FFFFFFF:
        return -1
    field[0] = <uint32_t>(tag >> 3)
    wire_type[0] = <int>(tag & 7)
    return 0


cdef int skip(Reader* r, uint32_t field, int wire_type, int depth=0) noexcept nogil:
    """Move past a field's value (an unknown field's, or one ignored)."""
    cdef uint64_t v
    cdef Reader inner
    cdef uint32_t f
    cdef int wt
    if wire_type == 0:
        return read_varint(r, &v)
    if wire_type == 1:
        return read_fixed64(r, &v)
    if wire_type == 2:
        return read_length(r, &inner)
    if wire_type == 5:
        if r.end - r.p < 4:
            return -1
        r.p += 4
        return 0
    if wire_type == 3 and depth < MAX_DEPTH:    # a group (proto2), kept as unknown fields
        while True:
            if read_tag(r, &f, &wt) < 0:
                return -1
            if wt == 4:
                return 0 if f == field else -1
            if skip(r, f, wt, depth + 1) < 0:
                return -1
    return -1                   # a stray group end, too deep a nesting, or types 6 and 7


cdef inline int read_timestamp(Reader* r, int64_t* seconds, int32_t* nanos) noexcept nogil:
    """Merge a Timestamp's fields into ``seconds``/``nanos`` (the ones present)."""
    cdef uint32_t field
    cdef int wt
    cdef uint64_t v
    while r.p < r.end:
        if read_tag(r, &field, &wt) < 0:
            return -1
        if field == 1 and wt == 0:
            if read_varint(r, &v) < 0:
                return -1
            seconds[0] = <int64_t>v
        elif field == 2 and wt == 0:
            if read_varint(r, &v) < 0:
                return -1
            nanos[0] = <int32_t><uint32_t>v     # int32: the low 32 bits, as protobuf does
        elif skip(r, field, wt) < 0:
            return -1
    return 0


cdef struct Tick:
    const uint8_t* symbol
    Py_ssize_t symbol_len
    double price
    double qty
    int64_t seconds
    int32_t nanos
    uint64_t trade_id


cdef inline int read_tick(Reader* r, Tick* t) noexcept nogil:
    cdef uint32_t field
    cdef int wt
    cdef uint64_t v
    cdef Reader inner
    t.symbol = r.p
    t.symbol_len = 0
    t.price = 0.0
    t.qty = 0.0
    t.seconds = 0
    t.nanos = 0
    t.trade_id = 0
    while r.p < r.end:
        if read_tag(r, &field, &wt) < 0:
            return -1
        if field == 1 and wt == 2:
            if read_length(r, &inner) < 0:
                return -1
            t.symbol = inner.p
            t.symbol_len = inner.end - inner.p
        elif (field == 2 or field == 3) and wt == 1:
            if read_fixed64(r, &v) < 0:
                return -1
            memcpy(&t.price if field == 2 else &t.qty, &v, 8)
        elif field == 4 and wt == 2:
            if read_length(r, &inner) < 0 or read_timestamp(&inner, &t.seconds, &t.nanos) < 0:
                return -1
        elif field == 5 and wt == 0:
            if read_varint(r, &t.trade_id) < 0:
                return -1
        elif skip(r, field, wt) < 0:   # source (6) is ignored on input; unknown fields too
            return -1
    return 0


def decode_ticks(bytes message, SymbolIds ids, int64_t max_time_ms):
    """The ticks of a serialized PublishTicksRequest: ``(sid, time_ms, price, qty, trade_id,
    missing, problem)``.

    ``sid`` is the id ``ids`` holds for each tick's symbol, -1 where it holds none;
    ``missing`` lists those symbols' names (bytes), in tick order. ``problem`` is
    ``(index, code)`` of the first tick ``tick_problem`` refuses (then the columns are
    not filled in), else None. ``trade_id`` is the uint64 as int64 (bits kept).
    """
    cdef Reader r, body
    cdef uint32_t field
    cdef int wt, code = 0
    cdef Py_ssize_t n = 0, i = 0
    cdef Tick t
    cdef int64_t ms
    cdef bint valid
    cdef unordered_map[string, int32_t].iterator found
    r.p = <const uint8_t*>PyBytes_AS_STRING(message)
    r.end = r.p + PyBytes_GET_SIZE(message)
    cdef const uint8_t* start = r.p
    while r.p < r.end:                      # count the ticks
        if read_tag(&r, &field, &wt) < 0 or skip(&r, field, wt) < 0:
            raise ValueError("not a serialized PublishTicksRequest")
        if field == 2 and wt == 2:
            n += 1
    sid_a = np.empty(n, np.int32)
    time_a = np.empty(n, np.int64)
    price_a = np.empty(n, np.float64)
    qty_a = np.empty(n, np.float64)
    tid_a = np.empty(n, np.int64)
    cdef int32_t[::1] sid = sid_a
    cdef int64_t[::1] time_ms = time_a, trade_id = tid_a
    cdef double[::1] price = price_a, qty = qty_a
    missing = []
    r.p = start
    while r.p < r.end:
        read_tag(&r, &field, &wt)           # checked by the first pass
        if not (field == 2 and wt == 2):
            skip(&r, field, wt)
            continue
        read_length(&r, &body)
        if read_tick(&body, &t) < 0:
            raise ValueError(f"ticks[{i}] is not a serialized Tick")
        valid = MIN_SECONDS <= t.seconds <= MAX_SECONDS and 0 <= t.nanos <= 999_999_999
        ms = t.seconds * 1000 + t.nanos // 1_000_000 if valid else 0
        code = tick_problem(bad_name(t.symbol, t.symbol_len), t.price, t.qty, valid, ms,
                            max_time_ms)
        if code:
            return sid_a, time_a, price_a, qty_a, tid_a, missing, (i, code)
        found = ids._ids.find(string(<const char*>t.symbol, t.symbol_len))
        if found == ids._ids.end():
            sid[i] = -1
            missing.append(PyBytes_FromStringAndSize(<const char*>t.symbol, t.symbol_len))
        else:
            sid[i] = deref(found).second
        time_ms[i] = ms
        price[i] = t.price
        qty[i] = t.qty
        trade_id[i] = <int64_t>t.trade_id
        i += 1
    return sid_a, time_a, price_a, qty_a, tid_a, missing, None
