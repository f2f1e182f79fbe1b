# Bars, timeframes and the state of one shared indicator series.
#
# A Series is ONE state per (symbol, timeframe, indicator, params), however
# many rules read it. Every indicator kind has a single maths function
# `<kind>_step(s, bar, out, commit)`: it writes the outputs the series would
# have if `bar` closed now, and commits `bar` into the state only when
# `commit` is true. The closed value (commit) and the intrabar value (peek)
# therefore cannot disagree: they are the same code.

from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.math cimport NAN
from alerts_core.ring cimport Ring, KSum, MonoDeque

cdef enum:
    N_TF = 7            # 1s 1m 5m 15m 1h 4h 1d
    MAX_OUT = 5         # most outputs of one series (bb)

# Operand kinds (values exported to Python as alerts_core.KINDS)
cdef enum:
    K_PRICE = 1
    K_OPEN = 2
    K_HIGH = 3
    K_LOW = 4
    K_CLOSE = 5
    K_VOLUME = 6
    K_QUOTE_VOLUME = 7
    K_TRADES = 8
    K_VWAP = 9
    K_SMA = 20
    K_EMA = 21
    K_WMA = 22
    K_RSI = 23
    K_MACD = 24
    K_BB = 25
    K_ATR = 26
    K_STOCH = 27
    K_OBV = 28
    K_VOLUME_Z = 29
    K_CHANGE_PCT = 30
    K_HIGHEST = 31
    K_LOWEST = 32
    K_DONCHIAN = 33


cdef inline int64_t tf_ms(int tf) noexcept nogil:
    if tf == 0:
        return 1000
    if tf == 1:
        return 60000
    if tf == 2:
        return 300000
    if tf == 3:
        return 900000
    if tf == 4:
        return 3600000
    if tf == 5:
        return 14400000
    return 86400000


cdef inline int64_t floor_to(int64_t t, int64_t step) noexcept nogil:
    """Start of the UTC-aligned bucket of width `step` holding t (floor, also for t < 0)."""
    cdef int64_t q = t // step
    if t % step != 0 and t < 0:
        q -= 1
    return q * step


ctypedef struct Bar:
    int64_t t0              # open time (bucket start), ms
    double open
    double high
    double low
    double close
    double volume
    double quote_volume
    int64_t trades


ctypedef struct Series:
    int kind                # K_* constant
    int tf                  # timeframe index
    int32_t symbol          # symbol id
    int refs                # operands (of all rules) reading it
    int p0                  # first period
    int p1                  # second period (macd slow, stoch smooth)
    int p2                  # third period (macd signal, stoch d)
    double k                # bb width in standard deviations
    int n_out               # outputs
    int64_t count           # closed bars consumed since the last reset
    double a[4]             # scalar state; meaning per kind
    KSum s0                 # running sum (meaning per kind)
    KSum s1                 # running sum (meaning per kind)
    Ring r0                 # window of inputs (meaning per kind)
    Ring r1                 # second window (stoch)
    MonoDeque* dq           # [max, min] deques for kinds over highs/lows, else NULL
    double closed[MAX_OUT]  # outputs at the last close (NAN: undefined)
    uint64_t peek_stamp     # evaluation stamp of `peek`
    double peek[MAX_OUT]    # cached intrabar outputs
    Ring* hist              # n_out rings of past closed outputs (x[k]), or NULL
    int hist_cap            # capacity of each hist ring
    void* group             # owning Group (engine.pyx)
    int pending             # added while its symbol traded: seed() rebuilds it from history
