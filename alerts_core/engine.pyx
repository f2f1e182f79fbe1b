# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The batch kernel: bars, shared indicator states, compiled rule programs.

``Engine.process`` (ticks) and ``Engine.process_bars`` (closed bars) take
columnar numpy arrays and run entirely without the GIL; no Python object is
touched per tick. Fired rules land in a preallocated event buffer read with
``Engine.events()``. Rules are added and removed between batches without
touching unrelated state; a state nobody reads any more is freed.

The semantics are ARCHITECTURE.md's "Market semantics" and "Evaluation":
per tick of symbol S, (1) the source clock advances and closes every quiet
symbol's bars ending at or before clock - grace; (2) S's bars ending at or
before the tick close, oldest first, flat bars included, and bar-close rules
are evaluated on closed values; (3) the tick enters the forming bars; (4) every
other rule reading S is evaluated on intrabar values.
"""

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint32_t, uint64_t, INT64_MAX, INT64_MIN
from libc.string cimport memcpy, memmove, memset
from libc.math cimport NAN, INFINITY, fabs

import numpy as np
cimport numpy as cnp
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Realloc

from alerts_core.memory cimport mem_alloc, mem_alloc_raw, mem_free, alerts_core_bytes
from alerts_core.ring cimport (Ring, KSum, MonoDeque, ring_init, ring_free, ring_clear, ring_push,
                               ring_back, ksum_add, ksum_value, ksum_clear, deque_init, deque_free,
                               deque_clear, deque_push, deque_extreme)
from alerts_core.series cimport *
from alerts_core.averages cimport sma_step, ema_step, wma_step
from alerts_core.momentum cimport rsi_step, macd_step, stoch_step, change_pct_step
from alerts_core.volatility cimport bb_step, atr_step, extremes_step
from alerts_core.volume cimport obv_step, volume_z_step

cnp.import_array()

# ---------------------------------------------------------------- constants --

cdef enum:
    MAX_VALUES = 8          # operand values carried by one event
    ST_ACCEPTED = 0
    ST_LATE = 1
    ST_DUPLICATE = 2
    ST_INVALID = 3
    ST_NOMEM = -1

cdef enum:
    MODE_ON_TRUE = 0
    MODE_EVERY_TIME = 1
    MODE_ONCE_PER_BAR = 2
    MODE_ONCE_PER_BAR_CLOSE = 3

cdef enum:
    OP_CONST = 1
    OP_LOAD = 2
    OP_NEG = 3
    OP_ADD = 4
    OP_SUB = 5
    OP_MUL = 6
    OP_DIV = 7
    OP_GT = 10
    OP_GE = 11
    OP_LT = 12
    OP_LE = 13
    OP_EQ = 14
    OP_AND = 20
    OP_OR = 21
    OP_NOT = 22
    OP_CROSS = 30
    OP_CROSS_ABOVE = 31
    OP_CROSS_BELOW = 32
    OP_INSIDE = 40
    OP_OUTSIDE = 41
    OP_ENTERS = 42
    OP_EXITS = 43
    OP_MOVES_UP = 50
    OP_MOVES_DOWN = 51

cdef enum:
    EV_TICK = 0
    EV_BAR_CLOSE = 1
    EV_EXPIRED = 2          # not a fire: the rule expired (time: its expire time)

cdef extern from *:
    """
    #define ALERTS_PREFETCH(p) __builtin_prefetch((const void*)(p), 1, 3)
    """
    void ALERTS_PREFETCH(const void* p) noexcept nogil

cdef enum:
    PREFETCH_SYMBOL = 12        # ticks ahead: the symbol's struct
    PREFETCH_STATE = 6          # ticks ahead: its bars and rules (struct already near)

cdef int64_t NO_TIME = INT64_MIN
cdef int64_t MINUTE_MS = 60000
cdef int64_t DAY_MS = 86400000

cdef enum:
    TAPE_LEN = 8                # closed minutes a symbol's tape keeps
    TF_MINUTE = 1               # timeframe index of 1m
    TF_HOUR = 4                 # timeframe index of 1h


cdef inline size_t _align8(size_t n) noexcept nogil:
    return (n + 7) & ~(<size_t>7)
cdef int64_t GAP_RESTART_MS = 7 * 86400000

KINDS = {
    "price": K_PRICE, "open": K_OPEN, "high": K_HIGH, "low": K_LOW, "close": K_CLOSE,
    "volume": K_VOLUME, "quote_volume": K_QUOTE_VOLUME, "trades": K_TRADES, "vwap": K_VWAP,
    "sma": K_SMA, "ema": K_EMA, "wma": K_WMA, "rsi": K_RSI, "macd": K_MACD, "bb": K_BB,
    "atr": K_ATR, "stoch": K_STOCH, "obv": K_OBV, "volume_z": K_VOLUME_Z,
    "change_pct": K_CHANGE_PCT, "highest": K_HIGHEST, "lowest": K_LOWEST,
    "donchian": K_DONCHIAN,
}
#: ``events()["kind"]`` values: fires at a tick and at a bar close, and expiries.
EVENTS = {"tick": EV_TICK, "bar_close": EV_BAR_CLOSE, "expired": EV_EXPIRED}
MODES = {"ON_TRUE": MODE_ON_TRUE, "EVERY_TIME": MODE_EVERY_TIME,
         "ONCE_PER_BAR": MODE_ONCE_PER_BAR, "ONCE_PER_BAR_CLOSE": MODE_ONCE_PER_BAR_CLOSE}
OPS = {
    "const": OP_CONST, "load": OP_LOAD, "neg": OP_NEG, "+": OP_ADD, "-": OP_SUB, "*": OP_MUL,
    "/": OP_DIV, ">": OP_GT, ">=": OP_GE, "<": OP_LT, "<=": OP_LE, "==": OP_EQ, "and": OP_AND,
    "or": OP_OR, "not": OP_NOT, "crosses": OP_CROSS, "crosses_above": OP_CROSS_ABOVE,
    "crosses_below": OP_CROSS_BELOW, "inside": OP_INSIDE, "outside": OP_OUTSIDE,
    "enters": OP_ENTERS, "exits": OP_EXITS, "moves_up": OP_MOVES_UP, "moves_down": OP_MOVES_DOWN,
}
#: outputs per series kind
N_OUTPUTS = {K_MACD: 3, K_BB: 5, K_STOCH: 2, K_DONCHIAN: 3}

# ------------------------------------------------------------------- lists --

ctypedef struct IntList:
    int32_t* v
    int n
    int cap


cdef int il_add(IntList* l, int32_t x) noexcept nogil:
    cdef int32_t* nv
    cdef int cap
    if l.n == l.cap:
        cap = 4 if l.cap == 0 else l.cap * 2
        nv = <int32_t*>mem_alloc(cap * sizeof(int32_t))
        if nv == NULL:
            return -1
        if l.n:
            memcpy(nv, l.v, l.n * sizeof(int32_t))
        mem_free(l.v)
        l.v = nv
        l.cap = cap
    l.v[l.n] = x
    l.n += 1
    return 0


cdef void il_remove(IntList* l, int32_t x) noexcept nogil:
    """Remove one occurrence of x, keeping order; shrink when mostly empty."""
    cdef int i, j
    cdef int32_t* nv
    for i in range(l.n):
        if l.v[i] == x:
            for j in range(i, l.n - 1):
                l.v[j] = l.v[j + 1]
            l.n -= 1
            break
    if l.n == 0:
        mem_free(l.v)
        l.v = NULL
        l.cap = 0
    elif l.cap > 8 and l.n < l.cap // 4:
        nv = <int32_t*>mem_alloc((l.cap // 2) * sizeof(int32_t))
        if nv != NULL:
            memcpy(nv, l.v, l.n * sizeof(int32_t))
            mem_free(l.v)
            l.v = nv
            l.cap = l.cap // 2


cdef void il_free(IntList* l) noexcept nogil:
    mem_free(l.v)
    l.v = NULL
    l.n = 0
    l.cap = 0

# ------------------------------------------------------------------ structs --

ctypedef struct IdRun:
    int64_t lo                  # first trade id of the run
    int64_t hi                  # last trade id of the run
    int32_t src                 # source


ctypedef struct Symbol:
    int32_t id
    int source                  # bound source (first tick's), -1 before
    bint started                # a tick or bar was applied
    double last_price
    int64_t last_time
    int64_t closed_until        # ticks before this time are late
    int64_t advanced_to         # latest time its bars were closed up to
    int64_t next_end            # earliest end of a pending bar (INT64_MIN: recompute)
    void* groups[N_TF]          # Group* per timeframe in use
    int vwap_refs
    int vwap_pending            # vwap() added while it traded: seed() sums its day so far
    int64_t vwap_day
    KSum vwap_pv
    KSum vwap_v
    int64_t dd_bucket           # finest bucket whose trade ids the runs hold
    IdRun* dd_runs              # (source, trade id) seen in it, as sorted runs of ids
    int dd_n
    int dd_cap
    int dd_last                 # the run touched last (monotonic ids extend it)
    IntList tick_rules          # rules evaluated on this symbol's ticks
    # the tape: its last minutes as 1-minute bars, whatever timeframes are in use,
    # so that a state added while it trades can be seeded exactly (seed())
    Bar tape_forming
    bint tape_has
    int64_t tape_from           # every minute from here on is in the tape (NO_TIME: none)
    int tape_head
    int tape_len
    Bar tape[TAPE_LEN]          # closed minutes, a ring


ctypedef struct Group:
    int tf
    int64_t tf_ms
    Symbol* sym
    int refs                    # operands, series and rule registrations using it
    bint has_forming            # the forming bar has data
    bint has_closed
    Bar forming
    Bar last_closed
    int64_t closed_through      # bars ending at or before this closed (see _closed_through)
    int64_t first_t0            # no bar before this open time (a timeframe added mid-bar)
    Bar* hist                   # ring of closed bars for field offsets
    int hist_cap
    int hist_head
    int hist_len
    Series** series             # indicator states updated at each close
    int n_series
    int cap_series
    IntList close_rules         # rules evaluated at this group's closes
    int pending                 # added while its symbol traded: seed() rebuilds its bars


ctypedef struct Source:
    bint used
    bint fill_gaps
    int64_t grace
    int64_t clock
    int64_t swept_until
    IntList symbols


ctypedef struct Op:
    int16_t op
    int16_t pol                 # comparisons, crossings, channels, moves: +1, or -1
                                # under an odd number of nots (see ``hysteresis``)
    int32_t a                   # operand / slot / moves index
    int32_t b                   # moves: window length in bars
    int32_t d                   # moves: first op of its operand's code
    double c                    # constant; moves: percent


ctypedef struct Operand:
    int kind
    int tf
    int out
    int offset
    Symbol* sym
    Group* g
    Series* s


ctypedef struct Rule:
    # ordered for an evaluation's reads (what it always touches first: mode, trigger
    # state, then the program's arrays) and with no padding between fields
    int32_t symbol
    int mode
    int tf                      # -1: tick level
    bint paused
    int64_t cooldown
    int64_t hold                # hold_for: true this long (event time) before firing; 0: none
    int64_t expire              # INT64_MAX: never
    int64_t max_fires           # 0: unlimited
    int64_t hold_start          # first true evaluation of the current true run (NO_TIME: none)
    bint armed
    bint completed
    bint expired
    bint evaluated
    Op* ops
    int n_ops
    int n_operands
    double hyst                 # hysteresis: re-arm band (ON_TRUE, ONCE_PER_BAR); 0: none.
                                # Beside the program's fields: an evaluation tests it first
    Operand* operands
    double* slots               # crossing / channel memory
    int n_slots
    int n_moves
    double* stack
    double* vals                # operand values of the last evaluation
    MonoDeque* moves            # moves_up/down windows of closed operand values
    double* moves_x             # their closed operand values in this evaluation
    int32_t* read_syms
    int n_read
    bint moves_hook             # intrabar rule with moves: fed at its symbol's closes
    int64_t fires
    int64_t last_fire
    int32_t last_rank
    int64_t last_bucket
    int64_t last_closed_eval


ctypedef struct SeriesKey:
    # checkpoint key of a symbol (sid), a group (sid, tf) or a series (all fields)
    int32_t sid
    int32_t tf
    int32_t kind
    int32_t p0
    int32_t p1
    int32_t p2
    double k


ctypedef struct Event:
    int32_t rule
    int32_t symbol
    int64_t time
    int64_t bar_open
    int64_t trade_id
    int32_t rank
    int8_t kind
    int8_t tf
    int8_t n_values
    double price                # the rule symbol's last price (its bar close at a close)
    double values[MAX_VALUES]

# ----------------------------------------------------------- series helpers --

cdef inline void series_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    cdef int k = s.kind
    if k == K_SMA:
        sma_step(s, b, out, commit)
    elif k == K_EMA:
        ema_step(s, b, out, commit)
    elif k == K_WMA:
        wma_step(s, b, out, commit)
    elif k == K_RSI:
        rsi_step(s, b, out, commit)
    elif k == K_MACD:
        macd_step(s, b, out, commit)
    elif k == K_BB:
        bb_step(s, b, out, commit)
    elif k == K_ATR:
        atr_step(s, b, out, commit)
    elif k == K_STOCH:
        stoch_step(s, b, out, commit)
    elif k == K_OBV:
        obv_step(s, b, out, commit)
    elif k == K_VOLUME_Z:
        volume_z_step(s, b, out, commit)
    elif k == K_CHANGE_PCT:
        change_pct_step(s, b, out, commit)
    else:
        extremes_step(s, b, out, commit)


cdef int series_alloc_windows(Series* s) noexcept nogil:
    cdef int k = s.kind
    cdef int w = 0
    if k == K_SMA or k == K_WMA or k == K_BB or k == K_VOLUME_Z or k == K_CHANGE_PCT:
        w = s.p0
    elif k == K_MACD:
        w = s.p0
    if w and ring_init(&s.r0, w) < 0:
        return -1
    if k == K_STOCH:
        if ring_init(&s.r0, s.p1) < 0 or ring_init(&s.r1, s.p2) < 0:
            return -1
    if k == K_STOCH or k == K_HIGHEST or k == K_LOWEST or k == K_DONCHIAN:
        s.dq = <MonoDeque*>mem_alloc(2 * sizeof(MonoDeque))
        if s.dq == NULL:
            return -1
        if deque_init(&s.dq[0], s.p0, True) < 0 or deque_init(&s.dq[1], s.p0, False) < 0:
            return -1
    return 0


cdef void series_reset(Series* s) noexcept nogil:
    cdef int q
    s.count = 0
    for q in range(4):
        s.a[q] = 0.0
    ksum_clear(&s.s0)
    ksum_clear(&s.s1)
    ring_clear(&s.r0)
    ring_clear(&s.r1)
    if s.dq != NULL:
        deque_clear(&s.dq[0])
        deque_clear(&s.dq[1])
    for q in range(MAX_OUT):
        s.closed[q] = NAN
    if s.hist != NULL:
        for q in range(s.n_out):
            ring_clear(&s.hist[q])
    s.peek_stamp = 0


cdef void series_free(Series* s) noexcept nogil:
    cdef int q
    ring_free(&s.r0)
    ring_free(&s.r1)
    if s.dq != NULL:
        deque_free(&s.dq[0])
        deque_free(&s.dq[1])
        mem_free(s.dq)
    if s.hist != NULL:
        for q in range(s.n_out):
            ring_free(&s.hist[q])
        mem_free(s.hist)
    mem_free(s)


cdef int series_ensure_hist(Series* s, int cap) noexcept nogil:
    """Keep at least `cap` past closed outputs (history kept when growing)."""
    cdef Ring* nh
    cdef Ring tmp
    cdef int q, j
    if cap <= s.hist_cap:
        return 0
    nh = <Ring*>mem_alloc(s.n_out * sizeof(Ring))
    if nh == NULL:
        return -1
    for q in range(s.n_out):
        if ring_init(&nh[q], cap) < 0:
            return -1
        if s.hist != NULL:
            for j in range(s.hist[q].len - 1, -1, -1):
                ring_push(&nh[q], ring_back(&s.hist[q], j))
            ring_free(&s.hist[q])
    mem_free(s.hist)
    s.hist = nh
    s.hist_cap = cap
    return 0

# ------------------------------------------------------------ group helpers --

cdef inline int64_t group_pending_end(const Group* g, bint fill) noexcept nogil:
    if g.has_forming:
        return g.forming.t0 + g.tf_ms
    if fill and g.has_closed:
        return g.last_closed.t0 + 2 * g.tf_ms
    return INT64_MAX


cdef inline bint bar_merge(Bar* f, bint* has, int64_t t, int64_t step, double o, double h,
                           double l, double c, double v, double qv, int64_t n) noexcept nogil:
    """Merge data at time t into the forming bar; True when it starts a new bar."""
    if not has[0]:
        f.t0 = floor_to(t, step)
        f.open = o
        f.high = h
        f.low = l
        f.close = c
        f.volume = v
        f.quote_volume = qv
        f.trades = n
        has[0] = True
        return True
    else:
        if h > f.high:
            f.high = h
        if l < f.low:
            f.low = l
        f.close = c
        f.volume += v
        f.quote_volume += qv
        f.trades += n
        return False


cdef inline void flat_after(const Bar* last, int64_t step, Bar* out) noexcept nogil:
    """The bar after ``last`` when nothing traded: flat at its close, no volume."""
    out.t0 = last.t0 + step
    out.open = last.close
    out.high = last.close
    out.low = last.close
    out.close = last.close
    out.volume = 0.0
    out.quote_volume = 0.0
    out.trades = 0


cdef inline double bar_field(const Bar* b, int kind) noexcept nogil:
    if kind == K_OPEN:
        return b.open
    if kind == K_HIGH:
        return b.high
    if kind == K_LOW:
        return b.low
    if kind == K_CLOSE:
        return b.close
    if kind == K_VOLUME:
        return b.volume
    if kind == K_QUOTE_VOLUME:
        return b.quote_volume
    return <double>b.trades


cdef inline const Bar* group_hist_back(const Group* g, int k) noexcept nogil:
    cdef int i
    if k < 0 or k >= g.hist_len:
        return NULL
    i = g.hist_head - 1 - k
    if i < 0:
        i += g.hist_cap
    return &g.hist[i]


cdef int group_ensure_hist(Group* g, int cap) noexcept nogil:
    cdef Bar* nh
    cdef int j
    cdef const Bar* b
    if cap <= g.hist_cap:
        return 0
    nh = <Bar*>mem_alloc(cap * sizeof(Bar))
    if nh == NULL:
        return -1
    for j in range(g.hist_len):
        b = group_hist_back(g, g.hist_len - 1 - j)
        nh[j] = b[0]
    mem_free(g.hist)
    g.hist = nh
    g.hist_cap = cap
    g.hist_head = g.hist_len % cap
    return 0


cdef inline void group_hist_push(Group* g, const Bar* b) noexcept nogil:
    if g.hist_cap == 0:
        return
    g.hist[g.hist_head] = b[0]
    g.hist_head += 1
    if g.hist_head == g.hist_cap:
        g.hist_head = 0
    if g.hist_len < g.hist_cap:
        g.hist_len += 1


cdef void group_reset(Group* g) noexcept nogil:
    cdef int q
    g.has_forming = False
    g.has_closed = False
    g.hist_len = 0
    g.hist_head = 0
    for q in range(g.n_series):
        series_reset(g.series[q])


# ------------------------------------------------------------- tape helpers --

cdef inline void tape_clear(Symbol* sym) noexcept nogil:
    sym.tape_has = False
    sym.tape_len = 0
    sym.tape_head = 0
    sym.tape_from = NO_TIME


cdef inline void tape_merge(Symbol* sym, int64_t t, bint whole, double o, double h, double l,
                            double c, double v, double qv, int64_t n) noexcept nogil:
    """Data at time t into the symbol's minute tape (``whole``: it starts its minute)."""
    cdef int64_t m
    cdef Bar* old
    if sym.tape_has and sym.tape_forming.t0 <= t < sym.tape_forming.t0 + MINUTE_MS:
        bar_merge(&sym.tape_forming, &sym.tape_has, t, MINUTE_MS, o, h, l, c, v, qv, n)
        return                          # the minute goes on: the per-tick path
    m = floor_to(t, MINUTE_MS)
    if sym.tape_has and m > sym.tape_forming.t0:
        if sym.tape_len == TAPE_LEN:
            old = &sym.tape[sym.tape_head]      # the oldest minute leaves the tape
            if old.t0 + MINUTE_MS > sym.tape_from:
                sym.tape_from = old.t0 + MINUTE_MS
        else:
            sym.tape_len += 1
        sym.tape[sym.tape_head] = sym.tape_forming
        sym.tape_head = (sym.tape_head + 1) % TAPE_LEN
        sym.tape_has = False
    if sym.tape_from == NO_TIME:
        sym.tape_from = m if whole else m + MINUTE_MS
    bar_merge(&sym.tape_forming, &sym.tape_has, t, MINUTE_MS, o, h, l, c, v, qv, n)


cdef inline void vwap_add(Symbol* sym, int64_t t, double pv, double v) noexcept nogil:
    """Price x volume and volume at time t into the symbol's VWAP of the UTC day."""
    cdef int64_t day = floor_to(t, DAY_MS)
    if day != sym.vwap_day:
        sym.vwap_day = day
        ksum_clear(&sym.vwap_pv)
        ksum_clear(&sym.vwap_v)
    ksum_add(&sym.vwap_pv, pv)
    ksum_add(&sym.vwap_v, v)


cdef inline const Bar* tape_at(const Symbol* sym, int i) noexcept nogil:
    """The i-th closed minute of the tape, oldest first."""
    return &sym.tape[(sym.tape_head - sym.tape_len + i + TAPE_LEN) % TAPE_LEN]


ctypedef struct Seeding:
    # one group being seeded: history and tape minutes aggregated into its bars
    Group* g
    bint whole                  # the group itself is new: its bars are rebuilt too
    int64_t cutoff              # its bars ending at or before this are closed
    int64_t start               # history starts here: a bar opening before it is partial
    bint fill
    Bar forming
    bint has_forming
    Bar last_closed
    bint has_closed


# ------------------------------------------------------------------- Engine --

def _check_band(int mode, double hysteresis):
    if not (0.0 <= hysteresis < INFINITY):
        raise ValueError("hysteresis must be finite and >= 0")
    if hysteresis > 0.0 and mode not in (MODE_ON_TRUE, MODE_ONCE_PER_BAR):
        raise ValueError("hysteresis applies to modes ON_TRUE and ONCE_PER_BAR only")


cdef int32_t _checked_max_id(const int32_t[::1] symbol) except -1:
    """The largest symbol id of a batch (not empty); a negative id raises ValueError."""
    cdef Py_ssize_t i
    cdef int32_t lo = symbol[0], hi = symbol[0]
    with nogil:
        for i in range(1, symbol.shape[0]):
            if symbol[i] < lo:
                lo = symbol[i]
            elif symbol[i] > hi:
                hi = symbol[i]
    if lo < 0:
        raise ValueError("symbol ids must be >= 0")
    return hi


cdef class Engine:
    """The kernel. See the module docstring; ``alerts.engine.kernel`` is its Python owner.

    Symbols are small integers chosen by the caller (interned names); sources are
    created with ``add_source``; rules are compiled programs given to ``add_rule``.
    """

    cdef Symbol** syms
    cdef int syms_cap
    cdef Source* sources
    cdef int n_sources
    cdef Rule** rules
    cdef int rules_cap
    cdef int n_rules
    cdef IntList free_rules
    cdef Event* evbuf
    cdef int n_ev
    cdef int evcap
    cdef int evcap0
    cdef uint64_t stamp
    cdef int finest
    cdef int64_t finest_ms
    cdef bint nomem
    cdef dict series_index
    cdef int n_groups
    cdef int n_symbols
    cdef readonly bint enable_1s

    def __cinit__(self, *, bint enable_1s=False, int event_capacity=4096):
        if event_capacity < 1:
            raise ValueError("event_capacity must be positive")
        self.enable_1s = enable_1s
        self.finest = 0 if enable_1s else 1
        self.finest_ms = tf_ms(self.finest)
        self.series_index = {}
        self.evcap0 = event_capacity
        self.evbuf = <Event*>mem_alloc_raw(event_capacity * sizeof(Event))
        if self.evbuf == NULL:
            raise MemoryError()
        self.evcap = event_capacity

    def __dealloc__(self):
        cdef int i, t
        cdef Symbol* sym
        for i in range(self.rules_cap):
            if self.rules != NULL and self.rules[i] != NULL:
                self._free_rule_struct(self.rules[i])
        mem_free(self.rules)
        il_free(&self.free_rules)
        for i in range(self.syms_cap):
            sym = self.syms[i]
            if sym == NULL:
                continue
            for t in range(N_TF):
                if sym.groups[t] != NULL:
                    self._free_group(<Group*>sym.groups[t], True)
            mem_free(sym.dd_runs)
            il_free(&sym.tick_rules)
            mem_free(sym)
        mem_free(self.syms)
        for i in range(self.n_sources):
            il_free(&self.sources[i].symbols)
        mem_free(self.sources)
        mem_free(self.evbuf)

    # ------------------------------------------------------------ sources --

    def add_source(self, *, bint fill_gaps=True, int64_t grace_ms=1000):
        """A new clock (a live feed, a replay, one PublishTicks stream); returns its id."""
        cdef Source* ns
        if grace_ms < 0:
            raise ValueError("grace_ms must be >= 0")
        ns = <Source*>mem_alloc((self.n_sources + 1) * sizeof(Source))
        if ns == NULL:
            raise MemoryError()
        if self.n_sources:
            memcpy(ns, self.sources, self.n_sources * sizeof(Source))
        mem_free(self.sources)
        self.sources = ns
        ns[self.n_sources].used = True
        ns[self.n_sources].fill_gaps = fill_gaps
        ns[self.n_sources].grace = grace_ms
        ns[self.n_sources].clock = NO_TIME
        ns[self.n_sources].swept_until = NO_TIME
        self.n_sources += 1
        return self.n_sources - 1

    def source_clock(self, int source):
        """The source's clock (ms), or None before its first tick."""
        self._check_source(source)
        c = self.sources[source].clock
        return None if c == NO_TIME else c

    cdef _check_source(self, int source):
        if source < 0 or source >= self.n_sources:
            raise ValueError(f"unknown source {source}")

    # ------------------------------------------------------------ symbols --

    cdef int _ensure_symbols(self, int64_t max_id) except -1:
        cdef int cap
        cdef Symbol** ns
        if max_id < 0:
            raise ValueError("symbol ids must be >= 0")
        if max_id >= 2147483647:
            raise ValueError("symbol id out of range")
        if max_id < self.syms_cap:
            return 0
        cap = max(16, self.syms_cap * 2)
        while cap <= max_id:
            cap *= 2
        ns = <Symbol**>mem_alloc(cap * sizeof(Symbol*))
        if ns == NULL:
            raise MemoryError()
        if self.syms_cap:
            memcpy(ns, self.syms, self.syms_cap * sizeof(Symbol*))
        mem_free(self.syms)
        self.syms = ns
        self.syms_cap = cap
        return 0

    cdef Symbol* _symbol(self, int32_t sid) noexcept nogil:
        cdef Symbol* s = self.syms[sid]
        if s != NULL:
            return s
        s = <Symbol*>mem_alloc(sizeof(Symbol))
        if s == NULL:
            return NULL
        s.id = sid
        s.source = -1
        s.last_price = NAN
        s.last_time = NO_TIME
        s.closed_until = NO_TIME
        s.advanced_to = NO_TIME
        s.next_end = NO_TIME
        s.dd_bucket = NO_TIME
        s.vwap_day = NO_TIME
        s.tape_from = NO_TIME
        self.syms[sid] = s
        self.n_symbols += 1
        return s

    cdef int _bind(self, Symbol* sym, int si) noexcept nogil:
        if sym.source >= 0:
            return 0
        sym.source = si
        return il_add(&self.sources[si].symbols, sym.id)

    # ----------------------------------------------------------- dedupe --

    cdef int _seen(self, Symbol* sym, int32_t si, int64_t tid) noexcept nogil:
        """1 if (source, trade id) was seen in the symbol's forming bucket, else records it.

        Seen ids are kept as sorted runs of consecutive ids, so an exchange's
        increasing ids cost one run however many trades a bar has; the last run
        touched is tried first, which makes the common case O(1).
        """
        cdef IdRun* runs = sym.dd_runs
        cdef int n = sym.dd_n
        cdef int lo = 0, hi = n, mid, p
        cdef IdRun* r
        cdef bint prev_adj, next_adj
        if n:
            r = &runs[sym.dd_last]
            if r.src == si:
                if r.lo <= tid and tid <= r.hi:
                    return 1
                if tid == r.hi + 1 and (sym.dd_last + 1 == n or runs[sym.dd_last + 1].src != si
                                        or runs[sym.dd_last + 1].lo > tid + 1):
                    r.hi = tid
                    return 0
        while lo < hi:
            mid = (lo + hi) >> 1
            if runs[mid].src < si or (runs[mid].src == si and runs[mid].lo <= tid):
                lo = mid + 1
            else:
                hi = mid
        p = lo
        if p > 0 and runs[p - 1].src == si and runs[p - 1].hi >= tid:
            return 1
        prev_adj = p > 0 and runs[p - 1].src == si and runs[p - 1].hi + 1 == tid
        next_adj = p < n and runs[p].src == si and runs[p].lo - 1 == tid
        if prev_adj and next_adj:
            runs[p - 1].hi = runs[p].hi
            memmove(&runs[p], &runs[p + 1], (n - p - 1) * sizeof(IdRun))
            sym.dd_n -= 1
            sym.dd_last = p - 1
        elif prev_adj:
            runs[p - 1].hi = tid
            sym.dd_last = p - 1
        elif next_adj:
            runs[p].lo = tid
            sym.dd_last = p
        else:
            if n == sym.dd_cap and self._grow_runs(sym) < 0:
                return -1
            runs = sym.dd_runs
            memmove(&runs[p + 1], &runs[p], (n - p) * sizeof(IdRun))
            runs[p].lo = tid
            runs[p].hi = tid
            runs[p].src = si
            sym.dd_n += 1
            sym.dd_last = p
        return 0

    cdef int _grow_runs(self, Symbol* sym) noexcept nogil:
        cdef int cap = 4 if sym.dd_cap == 0 else sym.dd_cap * 2
        cdef IdRun* nr = <IdRun*>mem_alloc(cap * sizeof(IdRun))
        if nr == NULL:
            return -1
        if sym.dd_n:
            memcpy(nr, sym.dd_runs, sym.dd_n * sizeof(IdRun))
        mem_free(sym.dd_runs)
        sym.dd_runs = nr
        sym.dd_cap = cap
        return 0

    cdef void _new_id_bucket(self, Symbol* sym, int64_t t) noexcept nogil:
        """Forget the previous bucket's ids; give back runs a busy bucket needed."""
        cdef IdRun* nr
        sym.dd_bucket = floor_to(t, self.finest_ms)
        if sym.dd_cap > 4 and sym.dd_n < sym.dd_cap // 4:
            nr = <IdRun*>mem_alloc((sym.dd_cap // 2) * sizeof(IdRun))
            if nr != NULL:
                mem_free(sym.dd_runs)
                sym.dd_runs = nr
                sym.dd_cap = sym.dd_cap // 2
        sym.dd_n = 0
        sym.dd_last = 0

    # --------------------------------------------------------- bar closing --

    cdef void _sweep(self, int si) noexcept nogil:
        """Close every bar of the source's symbols ending at or before clock - grace."""
        cdef Source* src = &self.sources[si]
        cdef int64_t T = src.clock - src.grace
        cdef int64_t fl = floor_to(T, self.finest_ms)
        cdef int i
        if src.swept_until != NO_TIME and fl <= src.swept_until:
            return
        src.swept_until = fl
        for i in range(src.symbols.n):
            self._advance(self.syms[src.symbols.v[i]], T)

    cdef void _advance(self, Symbol* sym, int64_t T) noexcept nogil:
        """Close the symbol's bars ending at or before T, oldest first (finer first on ties)."""
        cdef bint fill
        cdef int64_t fl, e, best_end
        cdef Group* g
        cdef Group* best
        cdef int t
        if sym.closed_until == NO_TIME or T >= sym.closed_until + self.finest_ms:
            fl = floor_to(T, self.finest_ms)
            if sym.closed_until == NO_TIME or fl > sym.closed_until:
                sym.closed_until = fl
        if T > sym.advanced_to:
            sym.advanced_to = T
        if T < sym.next_end:
            return                      # nothing ends yet: the per-tick fast path
        fill = sym.source >= 0 and self.sources[sym.source].fill_gaps
        if fill and sym.started and T - sym.last_time > GAP_RESTART_MS:
            self._restart(sym, T)
            sym.next_end = NO_TIME
            return
        while True:
            best = NULL
            best_end = INT64_MAX
            for t in range(N_TF):
                g = <Group*>sym.groups[t]
                if g != NULL:
                    e = group_pending_end(g, fill)
                    if e < best_end:
                        best_end = e
                        best = g
            if best == NULL or best_end > T:
                break
            self._close(best)
        sym.next_end = best_end

    cdef void _restart(self, Symbol* sym, int64_t T) noexcept nogil:
        """A gap of more than 7 days: close real bars, then restart every series."""
        cdef int t
        cdef Group* g
        for t in range(N_TF):
            g = <Group*>sym.groups[t]
            if g != NULL and g.has_forming and g.forming.t0 + g.tf_ms <= T:
                self._close(g)
        for t in range(N_TF):
            g = <Group*>sym.groups[t]
            if g != NULL:
                group_reset(g)
                g.closed_through = floor_to(T, g.tf_ms)
        tape_clear(sym)

    cdef void _close(self, Group* g) noexcept nogil:
        cdef Bar b
        cdef double out[MAX_OUT]
        cdef int q, o
        cdef Series* s
        cdef int64_t E
        cdef Rule* r
        if g.has_forming:
            b = g.forming
            g.has_forming = False
        else:
            flat_after(&g.last_closed, g.tf_ms, &b)
        g.last_closed = b
        g.has_closed = True
        group_hist_push(g, &b)
        E = b.t0 + g.tf_ms
        if E > g.closed_through:
            g.closed_through = E
        self.stamp += 1
        for q in range(g.n_series):
            s = g.series[q]
            series_step(s, &b, out, True)
            for o in range(s.n_out):
                s.closed[o] = out[o]
                if s.hist != NULL:
                    ring_push(&s.hist[o], out[o])
        for q in range(g.close_rules.n):
            r = self.rules[g.close_rules.v[q]]
            if r.mode == MODE_ONCE_PER_BAR_CLOSE:
                if r.last_closed_eval < E and self._all_closed(r, g.tf, E):
                    r.last_closed_eval = E
                    self._evaluate(r, g.close_rules.v[q], True, E, 0, b.t0, EV_BAR_CLOSE)
            elif r.symbol == g.sym.id:
                self._feed_moves(r)

    cdef bint _all_closed(self, Rule* r, int tf, int64_t E) noexcept nogil:
        cdef int i
        cdef Group* g
        for i in range(r.n_read):
            g = <Group*>self.syms[r.read_syms[i]].groups[tf]
            if g == NULL or self._closed_through(g) < E:
                return False
        return True

    cdef inline int64_t _closed_through(self, Group* g) noexcept nogil:
        """Every bar of g ending at or before this time is closed."""
        cdef int64_t e = g.closed_through
        cdef int64_t a = g.sym.advanced_to
        if a != NO_TIME and a >= e + g.tf_ms:
            e = floor_to(a, g.tf_ms)
        return e

    # ------------------------------------------------------------- ticks --

    cdef inline void _prefetch_state(self, Symbol* sym) noexcept nogil:
        cdef int q
        cdef Rule* r
        if sym == NULL:
            return
        for q in range(N_TF):
            if sym.groups[q] != NULL:
                ALERTS_PREFETCH(sym.groups[q])
        for q in range(sym.tick_rules.n):
            r = self.rules[sym.tick_rules.v[q]]
            ALERTS_PREFETCH(r)
            ALERTS_PREFETCH(<char*>r + 64)
            ALERTS_PREFETCH(r.ops)
            ALERTS_PREFETCH(r.operands)

    cdef int _tick(self, int si, int32_t sid, int64_t t, double price, double qty,
                   int64_t tid) noexcept nogil:
        cdef Source* src = &self.sources[si]
        cdef Symbol* sym
        cdef int q, seen
        cdef int64_t bucket
        cdef Group* g
        if not (price > 0.0 and price < INFINITY and qty >= 0.0 and qty < INFINITY):
            return ST_INVALID
        sym = self._symbol(sid)
        if sym == NULL:
            return ST_NOMEM
        if src.swept_until != NO_TIME and t < src.swept_until:
            return ST_LATE
        if sym.closed_until != NO_TIME and t < sym.closed_until:
            return ST_LATE
        if tid != 0:
            if sym.dd_bucket == NO_TIME or t < sym.dd_bucket or t >= sym.dd_bucket + self.finest_ms:
                self._new_id_bucket(sym, t)
            seen = self._seen(sym, si, tid)
            if seen < 0:
                return ST_NOMEM
            if seen:
                return ST_DUPLICATE
        if self._bind(sym, si) < 0:
            return ST_NOMEM
        if src.clock == NO_TIME or t > src.clock:
            src.clock = t
            self._sweep(si)
        self._advance(sym, t)
        # the tick enters the forming bars
        sym.last_price = price
        sym.last_time = t
        sym.started = True
        tape_merge(sym, t, False, price, price, price, price, qty, price * qty, 1)
        for q in range(N_TF):
            g = <Group*>sym.groups[q]
            if g != NULL and t >= g.first_t0 and bar_merge(&g.forming, &g.has_forming, t,
                                                            g.tf_ms, price, price,
                                       price, price, qty, price * qty, 1):
                if g.forming.t0 + g.tf_ms < sym.next_end:
                    sym.next_end = g.forming.t0 + g.tf_ms
        if sym.vwap_refs:
            vwap_add(sym, t, price * qty, qty)
        self._evaluate_tick_rules(sym, t, tid)
        return ST_ACCEPTED

    cdef void _evaluate_tick_rules(self, Symbol* sym, int64_t t, int64_t tid) noexcept nogil:
        cdef int q
        self.stamp += 1
        for q in range(sym.tick_rules.n):
            self._evaluate(self.rules[sym.tick_rules.v[q]], sym.tick_rules.v[q], False, t, tid,
                           NO_TIME, EV_TICK)

    cdef int _bar(self, int si, int base, int32_t sid, int64_t t0, double o, double h, double l,
                  double c, double v, double qv, int64_t n) noexcept nogil:
        cdef int64_t base_ms = tf_ms(base)
        cdef int64_t end = t0 + base_ms
        cdef Symbol* sym
        cdef Group* g
        cdef int q
        if not (l > 0.0 and h < INFINITY and l <= o and l <= c and o <= h and c <= h
                and v >= 0.0 and v < INFINITY and qv >= 0.0 and qv < INFINITY and n >= 0
                and floor_to(t0, base_ms) == t0):
            return ST_INVALID
        sym = self._symbol(sid)
        if sym == NULL:
            return ST_NOMEM
        if sym.closed_until != NO_TIME and t0 < sym.closed_until:
            return ST_LATE
        if self._bind(sym, si) < 0:
            return ST_NOMEM
        self._advance(sym, t0)
        sym.last_price = c
        sym.last_time = end - 1
        sym.started = True
        if base <= TF_MINUTE:
            tape_merge(sym, t0, t0 % MINUTE_MS == 0, o, h, l, c, v, qv, n)
        else:
            tape_clear(sym)             # coarser bars say nothing of single minutes
        if sym.vwap_refs:
            vwap_add(sym, t0, qv, v)
        for q in range(base, N_TF):
            g = <Group*>sym.groups[q]
            if g != NULL and t0 >= g.first_t0 and bar_merge(&g.forming, &g.has_forming, t0,
                                                             g.tf_ms, o, h, l, c, v,
                                       qv, n):
                if g.forming.t0 + g.tf_ms < sym.next_end:
                    sym.next_end = g.forming.t0 + g.tf_ms
        # intrabar rules see the complete bar, before it closes
        self._evaluate_tick_rules(sym, end, 0)
        self._advance(sym, end)
        return ST_ACCEPTED

    # ---------------------------------------------------------- evaluation --

    cdef inline bint _peek_bar(self, Group* g, Bar* out) noexcept nogil:
        """The bar that would close now: the forming one, else a flat one with fill_gaps."""
        if g.has_forming:
            out[0] = g.forming
            return True
        if g.has_closed and g.sym.source >= 0 and self.sources[g.sym.source].fill_gaps:
            flat_after(&g.last_closed, g.tf_ms, out)
            return True
        return False

    cdef double _operand(self, Operand* o, bint closed) noexcept nogil:
        cdef int k = o.kind
        cdef Bar b
        cdef const Bar* hb
        cdef Series* s
        cdef Symbol* sym = o.sym
        cdef double v
        if k == K_PRICE:
            return sym.last_price
        if k == K_VWAP:
            v = ksum_value(&sym.vwap_v)
            if v > 0.0:
                return ksum_value(&sym.vwap_pv) / v
            return NAN
        if k < K_VWAP:
            if closed or o.offset > 0:
                hb = group_hist_back(o.g, o.offset if closed else o.offset - 1)
                return bar_field(hb, k) if hb != NULL else NAN
            if self._peek_bar(o.g, &b):
                return bar_field(&b, k)
            if o.g.has_closed:
                return bar_field(&o.g.last_closed, k)
            return NAN
        s = o.s
        if closed:
            if o.offset == 0:
                return s.closed[o.out]
            return ring_back(&s.hist[o.out], o.offset)
        if o.offset > 0:
            return ring_back(&s.hist[o.out], o.offset - 1)
        if s.peek_stamp != self.stamp:
            if self._peek_bar(<Group*>s.group, &b):
                series_step(s, &b, s.peek, False)
            else:
                memcpy(s.peek, s.closed, MAX_OUT * sizeof(double))
            s.peek_stamp = self.stamp
        return s.peek[o.out]

    cdef double _run(self, Rule* r, int start, int end, bint closed, bint record,
                     double h) noexcept nogil:
        """Run ops[start:end] on the rule's stack; returns the top (truth: 1, 0 or NAN).

        ``h > 0`` runs the *relaxed* condition of ``hysteresis``: each comparison's
        threshold moves by ``h`` toward keeping the whole condition true (away from it
        under an odd number of nots: ``op.pol`` -1), so ``a > b`` is ``a > b - h``,
        ``a == b`` is ``|a - b| <= h``, a channel is widened (inside, enters) or
        narrowed (outside, exits) by ``h`` on both sides, ``crosses_above`` is
        ``a >= b - h``, ``crosses_below`` ``a <= b + h`` and ``crosses``
        ``|a - b| <= h``, so each is false only once beyond by more than ``h``. A
        crossing or enters/exits under -1 keeps its plain value (memory before this
        evaluation). The relaxed run reads the crossing and channel memory but never
        writes it, nor the recorded values; it runs before the plain one.
        """
        cdef double* st = r.stack
        cdef int sp = 0
        cdef int i
        cdef Op* op
        cdef double a, b, x, lo, up, pa, pb, ins, prev, ext, w
        cdef bint relaxed = h > 0.0
        cdef int64_t N
        for i in range(start, end):
            op = &r.ops[i]
            if op.op == OP_CONST:
                st[sp] = op.c
                sp += 1
            elif op.op == OP_LOAD:
                x = self._operand(&r.operands[op.a], closed)
                if record:
                    r.vals[op.a] = x
                st[sp] = x
                sp += 1
            elif op.op == OP_NEG:
                st[sp - 1] = -st[sp - 1]
            elif op.op <= OP_DIV:
                sp -= 1
                b = st[sp]
                a = st[sp - 1]
                if op.op == OP_ADD:
                    x = a + b
                elif op.op == OP_SUB:
                    x = a - b
                elif op.op == OP_MUL:
                    x = a * b
                else:
                    x = a / b if b != 0.0 else NAN
                if x == INFINITY or x == -INFINITY:
                    x = NAN
                st[sp - 1] = x
            elif op.op <= OP_EQ:
                sp -= 1
                b = st[sp]
                a = st[sp - 1]
                if relaxed:             # move a rather than the threshold b
                    w = h * op.pol
                    if op.op <= OP_GE:
                        a += w
                    elif op.op <= OP_LE:
                        a -= w
                    elif w > 0.0 and fabs(a - b) <= w:
                        a = b
                if a != a or b != b:
                    st[sp - 1] = NAN
                elif op.op == OP_GT:
                    st[sp - 1] = 1.0 if a > b else 0.0
                elif op.op == OP_GE:
                    st[sp - 1] = 1.0 if a >= b else 0.0
                elif op.op == OP_LT:
                    st[sp - 1] = 1.0 if a < b else 0.0
                elif op.op == OP_LE:
                    st[sp - 1] = 1.0 if a <= b else 0.0
                else:
                    st[sp - 1] = 1.0 if a == b else 0.0
            elif op.op == OP_AND:
                sp -= 1
                b = st[sp]
                a = st[sp - 1]
                if a == 0.0 or b == 0.0:
                    st[sp - 1] = 0.0
                elif a != a or b != b:
                    st[sp - 1] = NAN
                else:
                    st[sp - 1] = 1.0
            elif op.op == OP_OR:
                sp -= 1
                b = st[sp]
                a = st[sp - 1]
                if a == 1.0 or b == 1.0:
                    st[sp - 1] = 1.0
                elif a != a or b != b:
                    st[sp - 1] = NAN
                else:
                    st[sp - 1] = 0.0
            elif op.op == OP_NOT:
                a = st[sp - 1]
                st[sp - 1] = NAN if a != a else 1.0 - a
            elif op.op <= OP_CROSS_BELOW:
                sp -= 1
                b = st[sp]
                a = st[sp - 1]
                pa = r.slots[op.a]
                pb = r.slots[op.a + 1]
                if not relaxed:
                    r.slots[op.a] = a
                    r.slots[op.a + 1] = b
                if a != a or b != b:
                    x = NAN
                elif relaxed and op.pol > 0:
                    if op.op == OP_CROSS_ABOVE:
                        x = 1.0 if a >= b - h else 0.0
                    elif op.op == OP_CROSS_BELOW:
                        x = 1.0 if a <= b + h else 0.0
                    else:
                        x = 1.0 if fabs(a - b) <= h else 0.0
                elif pa != pa or pb != pb:
                    x = 0.0
                elif op.op == OP_CROSS_ABOVE:
                    x = 1.0 if (pa <= pb and a > b) else 0.0
                elif op.op == OP_CROSS_BELOW:
                    x = 1.0 if (pa >= pb and a < b) else 0.0
                else:
                    x = 1.0 if ((pa <= pb and a > b) or (pa >= pb and a < b)) else 0.0
                st[sp - 1] = x
            elif op.op <= OP_EXITS:
                up = st[sp - 1]
                lo = st[sp - 2]
                x = st[sp - 3]
                sp -= 2
                # relaxed: inside and enters widen the channel, outside and exits narrow it;
                # enters/exits under a not keep the plain channel
                w = 0.0
                if relaxed and (op.op <= OP_OUTSIDE or op.pol > 0):
                    w = h * op.pol if (op.op == OP_INSIDE or op.op == OP_ENTERS) else -h * op.pol
                if x != x or lo != lo or up != up:
                    ins = NAN
                else:
                    ins = 1.0 if (lo - w <= x and x <= up + w) else 0.0
                if op.op == OP_INSIDE or (relaxed and op.pol > 0 and op.op == OP_ENTERS):
                    st[sp - 1] = ins
                elif op.op == OP_OUTSIDE or (relaxed and op.pol > 0):
                    st[sp - 1] = NAN if ins != ins else 1.0 - ins
                else:
                    prev = r.slots[op.a]
                    if not relaxed:
                        r.slots[op.a] = ins
                    if ins != ins:
                        st[sp - 1] = NAN
                    elif prev != prev:
                        st[sp - 1] = 0.0
                    elif op.op == OP_ENTERS:
                        st[sp - 1] = 1.0 if (prev == 0.0 and ins == 1.0) else 0.0
                    else:
                        st[sp - 1] = 1.0 if (prev == 1.0 and ins == 0.0) else 0.0
            else:
                x = st[sp - 1]
                N = op.b
                if closed and record:
                    r.moves_x[op.a] = x
                ext = NAN
                if r.moves[op.a].pushed >= N and r.moves[op.a].size > 0:
                    ext = deque_extreme(&r.moves[op.a], r.moves[op.a].pushed - N)
                if x != x or ext != ext:
                    st[sp - 1] = NAN
                elif op.op == OP_MOVES_UP:
                    st[sp - 1] = 1.0 if x >= (1.0 + op.c / 100.0) * ext - h * op.pol else 0.0
                else:
                    st[sp - 1] = 1.0 if x <= (1.0 - op.c / 100.0) * ext + h * op.pol else 0.0
        return st[0]

    cdef inline void _moves_push(self, Rule* r, int m, double x) noexcept nogil:
        if x != x:
            deque_clear(&r.moves[m])
        else:
            deque_push(&r.moves[m], x)

    cdef void _feed_moves(self, Rule* r) noexcept nogil:
        """Intrabar rule with moves_up/down: record its operands' closed values."""
        cdef int i
        cdef Op* op
        for i in range(r.n_ops):
            op = &r.ops[i]
            if op.op == OP_MOVES_UP or op.op == OP_MOVES_DOWN:
                self._moves_push(r, op.a, self._run(r, op.d, i, True, False, 0.0))

    cdef void _evaluate(self, Rule* r, int32_t idx, bint closed, int64_t E, int64_t tid,
                        int64_t bar_open, int8_t kind) noexcept nogil:
        # a disarmed rule with a band also needs its relaxed condition (before the plain
        # run, which moves the crossing and channel memory on)
        cdef bint in_band = False
        if r.hyst > 0.0 and not r.armed:
            in_band = self._in_band(r, closed)
        cdef double truth = self._run(r, 0, r.n_ops, closed, True, 0.0)
        cdef int m
        if closed:
            for m in range(r.n_moves):
                self._moves_push(r, m, r.moves_x[m])
        r.evaluated = True
        self._trigger(r, idx, truth == 1.0, in_band, E, tid, bar_open, kind)

    cdef bint _in_band(self, Rule* r, bint closed) noexcept nogil:
        """The relaxed condition of ``hysteresis`` holds (see ``_run``); apart from the
        evaluation so that the plain one stays as compact as without a band."""
        if r.paused or r.completed or r.expired:
            return False
        return self._run(r, 0, r.n_ops, closed, False, r.hyst) == 1.0

    cdef void _trigger(self, Rule* r, int32_t idx, bint is_true, bint in_band, int64_t E,
                       int64_t tid, int64_t bar_open, int8_t kind) noexcept nogil:
        """Decide whether an evaluation at event time E fires.

        The hold (``hold_for``): a false or undefined evaluation clears ``hold_start``;
        a true one sets it to E when clear. A true evaluation is *held* when
        ``hold == 0`` or ``E - hold_start >= hold``; only held evaluations count as
        true below. ON_TRUE: the first held evaluation while armed fires and disarms,
        a false or undefined one re-arms; a true one not yet held does neither (the
        rule stays armed). ONCE_PER_BAR: the first held evaluation in a bar, while
        armed. Every other mode (EVERY_TIME; ONCE_PER_BAR_CLOSE, whose evaluations are
        the closes): every held evaluation. Then cooldown, then max fires. A paused,
        completed or expired rule returns first: its hold is neither started nor
        cleared. The first evaluation at or after the expire time expires the rule and
        adds one ``EV_EXPIRED`` event (time: the expire time), which is not a fire.

        The band (``hyst`` > 0, ON_TRUE and ONCE_PER_BAR): a fire disarms, and only a
        false or undefined evaluation whose relaxed condition (``in_band``, see
        ``_run``) is not true either re-arms. With no band ONCE_PER_BAR never disarms.
        """
        cdef bint fire = False
        cdef bint held
        cdef int64_t bucket
        cdef int32_t rank
        cdef Event* ev
        cdef int q
        if r.paused or r.completed or r.expired:
            return
        if E >= r.expire:
            r.expired = True
            self._expiry_event(r, idx, tid)
            return
        if is_true:
            if r.hold_start == NO_TIME:
                r.hold_start = E
            held = r.hold == 0 or E - r.hold_start >= r.hold
        else:
            r.hold_start = NO_TIME
            held = False
        if r.mode == MODE_ON_TRUE:
            if held:
                fire = r.armed
                r.armed = False
            elif not is_true and not in_band:
                r.armed = True
        elif r.mode == MODE_ONCE_PER_BAR:
            if held and r.armed:
                bucket = floor_to(E, tf_ms(r.tf))
                if bucket != r.last_bucket:
                    r.last_bucket = bucket
                    fire = True
                    r.armed = r.hyst == 0.0
            elif not is_true and not in_band:
                r.armed = True
        else:
            fire = held
        if not fire:
            return
        if r.cooldown > 0 and r.last_fire != NO_TIME and E - r.last_fire < r.cooldown:
            return
        rank = r.last_rank + 1 if r.last_fire == E else 0
        ev = self._push_event(r, idx, E, bar_open, tid, rank, kind)
        if ev == NULL:
            return
        ev.n_values = <int8_t>(r.n_operands if r.n_operands < MAX_VALUES else MAX_VALUES)
        if kind == EV_BAR_CLOSE and self.syms[r.symbol].groups[r.tf] != NULL:
            ev.price = (<Group*>self.syms[r.symbol].groups[r.tf]).last_closed.close
        for q in range(ev.n_values):
            ev.values[q] = r.vals[q]
        r.fires += 1
        r.last_fire = E
        r.last_rank = rank
        if r.max_fires > 0 and r.fires >= r.max_fires:
            r.completed = True

    cdef void _expiry_event(self, Rule* r, int32_t idx, int64_t tid) noexcept nogil:
        """Add the ``EV_EXPIRED`` event of a rule that just expired (kept out of
        ``_trigger``, which runs for every evaluation)."""
        cdef Event* ev = self._push_event(r, idx, r.expire, NO_TIME, tid, 0, EV_EXPIRED)
        if ev != NULL:
            ev.n_values = 0

    cdef inline Event* _push_event(self, Rule* r, int32_t idx, int64_t time, int64_t bar_open,
                                   int64_t tid, int32_t rank, int8_t kind) noexcept nogil:
        """A new event of rule ``r`` with its price the symbol's last (NULL: out of
        memory, ``nomem`` set); the caller sets its values."""
        cdef Event* ev
        if self.n_ev == self.evcap and self._grow_events() < 0:
            return NULL
        ev = &self.evbuf[self.n_ev]
        self.n_ev += 1
        ev.rule = idx
        ev.symbol = r.symbol
        ev.time = time
        ev.bar_open = bar_open
        ev.trade_id = tid
        ev.rank = rank
        ev.kind = kind
        ev.tf = <int8_t>r.tf
        ev.price = self.syms[r.symbol].last_price
        return ev

    cdef int _grow_events(self) noexcept nogil:
        cdef int cap = self.evcap * 2
        cdef Event* ne = <Event*>mem_alloc_raw(cap * sizeof(Event))
        if ne == NULL:
            self.nomem = True
            return -1
        memcpy(ne, self.evbuf, self.n_ev * sizeof(Event))
        mem_free(self.evbuf)
        self.evbuf = ne
        self.evcap = cap
        return 0

    cdef _reset_events(self, bint release=False):
        """Forget the previous batch's events.

        A buffer a burst grew is kept for the next batches (growing it again costs
        page faults), unless it is over 16 times its initial size or ``release``.
        """
        cdef Event* ne
        self.n_ev = 0
        self.nomem = False
        if self.evcap > self.evcap0 and (release or self.evcap > 16 * self.evcap0):
            ne = <Event*>mem_alloc_raw(self.evcap0 * sizeof(Event))
            if ne == NULL:
                raise MemoryError()
            mem_free(self.evbuf)
            self.evbuf = ne
            self.evcap = self.evcap0

    # ------------------------------------------------------------- batches --

    def process(self, int source, const int32_t[::1] symbol, const int64_t[::1] time_ms,
                const double[::1] price, const double[::1] qty, const int64_t[::1] trade_id):
        """Apply a batch of ticks of one source, in arrival order, without the GIL.

        Returns ``(accepted, late, duplicate, invalid)``; fired events are then
        in ``events()`` (replacing the previous batch's).
        """
        cdef Py_ssize_t n = symbol.shape[0], i
        cdef int code
        cdef int64_t counts[4]
        self._check_source(source)
        if time_ms.shape[0] != n or price.shape[0] != n or qty.shape[0] != n or trade_id.shape[0] != n:
            raise ValueError("tick columns must have the same length")
        self._reset_events()
        if n == 0:
            return (0, 0, 0, 0)
        self._ensure_symbols(_checked_max_id(symbol))
        memset(counts, 0, sizeof(counts))
        with nogil:
            for i in range(n):
                # symbols come in arrival order, which the batch knows ahead: start
                # fetching later ticks' state so cache misses overlap
                if i + PREFETCH_SYMBOL < n:
                    ALERTS_PREFETCH(self.syms[symbol[i + PREFETCH_SYMBOL]])
                if i + PREFETCH_STATE < n:
                    self._prefetch_state(self.syms[symbol[i + PREFETCH_STATE]])
                code = self._tick(source, symbol[i], time_ms[i], price[i], qty[i], trade_id[i])
                if code < 0:
                    self.nomem = True
                    break
                counts[code] += 1
        if self.nomem:
            raise MemoryError("alerts_core: out of memory")
        return (counts[ST_ACCEPTED], counts[ST_LATE], counts[ST_DUPLICATE], counts[ST_INVALID])

    def process_bars(self, int source, int timeframe, const int32_t[::1] symbol,
                     const int64_t[::1] open_time_ms, const double[::1] open,
                     const double[::1] high, const double[::1] low, const double[::1] close,
                     const double[::1] volume, const double[::1] quote_volume,
                     const int64_t[::1] trades):
        """Apply closed bars of one timeframe (warm-up from history, backtests), without the GIL.

        Each bar enters the forming bars of its timeframe and every coarser one in
        use, intrabar rules are evaluated with the complete bar (event time = the
        bar's end), then the bar closes. Returns ``(accepted, late, invalid)``.
        """
        cdef Py_ssize_t n = symbol.shape[0], i
        cdef int code
        cdef int64_t counts[4]
        self._check_source(source)
        if timeframe < self.finest or timeframe >= N_TF:
            raise ValueError(f"timeframe {timeframe} is not available")
        if (open_time_ms.shape[0] != n or open.shape[0] != n or high.shape[0] != n
                or low.shape[0] != n or close.shape[0] != n or volume.shape[0] != n
                or quote_volume.shape[0] != n or trades.shape[0] != n):
            raise ValueError("bar columns must have the same length")
        self._reset_events()
        if n == 0:
            return (0, 0, 0)
        self._ensure_symbols(_checked_max_id(symbol))
        memset(counts, 0, sizeof(counts))
        with nogil:
            for i in range(n):
                code = self._bar(source, timeframe, symbol[i], open_time_ms[i], open[i], high[i],
                                 low[i], close[i], volume[i], quote_volume[i], trades[i])
                if code < 0:
                    self.nomem = True
                    break
                counts[code] += 1
        if self.nomem:
            raise MemoryError("alerts_core: out of memory")
        return (counts[ST_ACCEPTED], counts[ST_LATE], counts[ST_INVALID])

    def advance_clock(self, int source, int64_t clock_ms):
        """Move a source's clock forward (a watermark, or the wall clock of a live feed)."""
        self._check_source(source)
        self._reset_events()
        cdef Source* src = &self.sources[source]
        with nogil:
            if src.clock == NO_TIME or clock_ms > src.clock:
                src.clock = clock_ms
                self._sweep(source)
        if self.nomem:
            raise MemoryError("alerts_core: out of memory")

    # ------------------------------------------------------------- seeding --
    #
    # A state (timeframe or indicator) added to a symbol that is trading would
    # start at its next whole bar. seed() gives it the bars it missed instead:
    # history (closed bars, e.g. REST klines) up to a whole minute S, then the
    # symbol's own tape of minutes from S on, aggregated exactly as live ticks
    # would have been. Every pending series restarts and steps through those
    # bars; a pending group also gets its closed bars and its forming bar. The
    # rules reading a seeded state are then evaluated once, paused, so their
    # crossing memory holds the last values and nothing fires (as a warm-up).

    def pending_timeframes(self, int32_t sid):
        """Timeframe indices with states added while the symbol traded (1s never seeds)."""
        cdef Symbol* sym
        cdef Group* g
        cdef int t, q
        out = []
        if sid < 0 or sid >= self.syms_cap or self.syms[sid] == NULL:
            return out
        sym = self.syms[sid]
        for t in range(TF_MINUTE, N_TF):
            g = <Group*>sym.groups[t]
            if g == NULL:
                continue
            if g.pending:
                out.append(t)
                continue
            for q in range(g.n_series):
                if g.series[q].pending:
                    out.append(t)
                    break
        if sym.vwap_pending:            # the day so far: hours, then minutes
            out = sorted(set(out) | {TF_MINUTE, TF_HOUR})
        return out

    def tape_from(self, int32_t sid):
        """The first minute of the symbol's tape (seed history must reach it), or None."""
        if sid < 0 or sid >= self.syms_cap or self.syms[sid] == NULL:
            return None
        cdef int64_t t = self.syms[sid].tape_from
        return None if t == NO_TIME else t

    def seed(self, int32_t sid, list segments):
        """Seed the pending states of a trading symbol from history.

        ``segments``: ``(timeframe, start_ms, end_ms, open_time_ms, open, high, low,
        close, volume, quote_volume, trades)`` in time order and contiguous, the last
        of 1-minute bars: closed bars, each entering its timeframe and every coarser
        one. History is used up to S, the later of the tape's first minute and the
        start of the last segment; the tape follows from S. Returns the number of
        states seeded, or -1 when the history ends before the tape begins (nothing
        changes: fetch history up to a later minute).
        """
        cdef Symbol* sym
        cdef Seeding zs[N_TF]
        cdef Seeding* z
        cdef int nz = 0, t, q, i, j, tb, seeded = 0
        cdef int64_t S, end, step, day
        cdef bint fill, some
        cdef Group* g
        cdef Bar b
        cdef const int64_t[::1] ot
        cdef const double[::1] o, h, l, c, v, qv
        cdef const int64_t[::1] n
        if sid < 0 or sid >= self.syms_cap or self.syms[sid] == NULL:
            return 0
        sym = self.syms[sid]
        if not segments:
            raise ValueError("no history")
        for seg in segments:
            if len(seg) != 11 or not 0 <= seg[0] < N_TF:
                raise ValueError("bad history segment")
            for col in seg[4:]:
                if len(col) != len(seg[3]):
                    raise ValueError("bar columns must have the same length")
        last = segments[len(segments) - 1]      # (no wraparound in this module)
        if last[0] != TF_MINUTE:
            raise ValueError("the last history segment must be 1-minute bars")
        if not sym.started or not self.pending_timeframes(sid):
            return 0
        end = last[2]
        if sym.tape_from == NO_TIME or end < sym.tape_from:
            return -1
        S = max(sym.tape_from, <int64_t>last[1])
        fill = sym.source >= 0 and self.sources[sym.source].fill_gaps
        for t in range(TF_MINUTE, N_TF):
            g = <Group*>sym.groups[t]
            if g == NULL:
                continue
            z = &zs[nz]
            memset(z, 0, sizeof(Seeding))
            z.g = g
            z.whole = g.pending != 0
            z.cutoff = floor_to(sym.advanced_to, g.tf_ms)
            z.start = segments[0][1]
            z.fill = fill
            some = z.whole
            for q in range(g.n_series):
                if g.series[q].pending:
                    series_reset(g.series[q])
                    some = True
            if z.whole:
                g.hist_len = 0
                g.hist_head = 0
            if some:
                nz += 1
        day = floor_to(sym.last_time, DAY_MS)
        if sym.vwap_pending:
            ksum_clear(&sym.vwap_pv)
            ksum_clear(&sym.vwap_v)
            sym.vwap_day = day
        # history before S
        for seg in segments:
            tb = seg[0]
            step = tf_ms(tb)
            ot, o, h, l, c, v, qv, n = seg[3], seg[4], seg[5], seg[6], seg[7], seg[8], seg[9], seg[10]
            for i in range(ot.shape[0]):
                b.t0 = ot[i]
                if b.t0 + step > S or b.t0 < seg[1] or b.t0 % step != 0:
                    continue
                if not (l[i] > 0.0 and h[i] < INFINITY and l[i] <= o[i] and l[i] <= c[i]
                        and o[i] <= h[i] and c[i] <= h[i] and v[i] >= 0.0 and qv[i] >= 0.0
                        and n[i] >= 0):
                    continue
                b.open, b.high, b.low, b.close = o[i], h[i], l[i], c[i]
                b.volume, b.quote_volume, b.trades = v[i], qv[i], n[i]
                for j in range(nz):
                    if zs[j].g.tf >= tb:
                        self._seed_bar(&zs[j], &b)
                if sym.vwap_pending and b.t0 >= day:
                    vwap_add(sym, b.t0, b.quote_volume, b.volume)
        # the tape from S
        for i in range(sym.tape_len + 1):
            if i < sym.tape_len:
                b = tape_at(sym, i)[0]
            elif sym.tape_has:
                b = sym.tape_forming
            else:
                break
            if b.t0 < S:
                continue
            for j in range(nz):
                self._seed_bar(&zs[j], &b)
            if sym.vwap_pending and b.t0 >= day:
                vwap_add(sym, b.t0, b.quote_volume, b.volume)
        for j in range(nz):
            seeded += self._seed_finish(&zs[j])
        if sym.vwap_pending:
            sym.vwap_pending = 2        # seeded now (see _prime)
            seeded += 1
        self._prime(sym)
        sym.next_end = NO_TIME
        return seeded

    cdef void _seed_bar(self, Seeding* z, const Bar* b) noexcept nogil:
        cdef int64_t step = z.g.tf_ms
        cdef int64_t bucket = floor_to(b.t0, step)
        if bucket < z.start:
            return                      # its bar would miss what came before the history
        if z.has_forming and bucket > z.forming.t0:
            self._seed_close(z, &z.forming)
            z.has_forming = False
        self._seed_fill(z, bucket)
        bar_merge(&z.forming, &z.has_forming, b.t0, step, b.open, b.high, b.low, b.close,
                  b.volume, b.quote_volume, b.trades)

    cdef void _seed_fill(self, Seeding* z, int64_t upto) noexcept nogil:
        """Flat bars for the empty buckets before ``upto`` (with fill_gaps, as _close)."""
        cdef Bar f
        while z.fill and z.has_closed and z.last_closed.t0 + z.g.tf_ms < upto:
            flat_after(&z.last_closed, z.g.tf_ms, &f)
            self._seed_close(z, &f)

    cdef void _seed_close(self, Seeding* z, const Bar* b) noexcept nogil:
        cdef Group* g = z.g
        cdef Series* s
        cdef double out[MAX_OUT]
        cdef int q, o
        if b.t0 + g.tf_ms > z.cutoff:
            return                      # not closed yet (cannot happen for whole minutes)
        for q in range(g.n_series):
            s = g.series[q]
            if s.pending:
                series_step(s, b, out, True)
                for o in range(s.n_out):
                    s.closed[o] = out[o]
                    if s.hist != NULL:
                        ring_push(&s.hist[o], out[o])
        if z.whole:
            group_hist_push(g, b)
        z.last_closed = b[0]
        z.has_closed = True

    cdef int _seed_finish(self, Seeding* z) noexcept:
        """Close what ended by the cutoff; a new group takes the bars; returns states seeded."""
        cdef Group* g = z.g
        cdef int q, n = 0
        if z.has_forming and z.forming.t0 + g.tf_ms <= z.cutoff:
            self._seed_close(z, &z.forming)
            z.has_forming = False
        self._seed_fill(z, z.cutoff)
        if z.whole:
            if z.has_closed:
                g.last_closed = z.last_closed
                g.has_closed = True
                if g.closed_through == NO_TIME or z.cutoff > g.closed_through:
                    g.closed_through = z.cutoff
            if not g.has_forming and z.has_forming:
                g.forming = z.forming
                g.has_forming = True
            g.first_t0 = NO_TIME
            g.pending = 2               # seeded now (see _prime)
            n += 1
        for q in range(g.n_series):
            if g.series[q].pending:
                g.series[q].pending = 2
                g.series[q].peek_stamp = 0
                n += 1
        return n

    cdef void _prime(self, Symbol* sym) noexcept nogil:
        """Evaluate, paused, every rule reading a state seeded now; then clear the marks.

        The rules reading the symbol are its tick rules and the bar-close rules of its
        groups (a tick rule with moves is in a group's list too: it is skipped there).
        """
        cdef int t, q
        cdef Group* g
        for q in range(sym.tick_rules.n):
            self._prime_rule(sym, sym.tick_rules.v[q])
        for t in range(N_TF):
            g = <Group*>sym.groups[t]
            if g == NULL:
                continue
            for q in range(g.close_rules.n):
                if self.rules[g.close_rules.v[q]].mode == MODE_ONCE_PER_BAR_CLOSE:
                    self._prime_rule(sym, g.close_rules.v[q])
        if sym.vwap_pending == 2:
            sym.vwap_pending = 0
        for t in range(N_TF):
            g = <Group*>sym.groups[t]
            if g == NULL:
                continue
            if g.pending == 2:
                g.pending = 0
            for q in range(g.n_series):
                if g.series[q].pending == 2:
                    g.series[q].pending = 0

    cdef void _prime_rule(self, Symbol* sym, int32_t idx) noexcept nogil:
        cdef Rule* r = self.rules[idx]
        cdef Operand* op
        cdef int i
        cdef bint hit = r.tf >= 0 and sym.groups[r.tf] != NULL and (
            (<Group*>sym.groups[r.tf]).pending == 2)
        cdef bint was
        for i in range(r.n_operands):
            op = &r.operands[i]
            if op.sym != sym or op.kind == K_PRICE:
                continue
            if op.kind == K_VWAP:
                hit = hit or sym.vwap_pending == 2
            elif op.kind < K_VWAP:
                hit = hit or op.g.pending == 2
            else:
                hit = hit or op.s.pending == 2
        if not hit:
            return
        was = r.paused
        r.paused = True
        self.stamp += 1
        self._evaluate(r, idx, r.mode == MODE_ONCE_PER_BAR_CLOSE, sym.last_time, 0, NO_TIME,
                       EV_TICK)
        r.paused = was

    @property
    def n_events(self):
        """How many events the last batch fired."""
        return self.n_ev

    def clear_events(self, *, bint release=False):
        """Drop the last batch's events now; ``release`` also gives back a grown buffer."""
        self._reset_events(release)

    def events(self):
        """The last batch's fired events as a dict of numpy columns."""
        cdef Py_ssize_t n = self.n_ev, i
        cdef int q
        cdef Event* e
        rule = np.empty(n, np.int32)
        sym = np.empty(n, np.int32)
        t = np.empty(n, np.int64)
        bar_open = np.empty(n, np.int64)
        tid = np.empty(n, np.int64)
        rank = np.empty(n, np.int32)
        kind = np.empty(n, np.int8)
        tf = np.empty(n, np.int8)
        nv = np.empty(n, np.int8)
        vals = np.full((n, MAX_VALUES), np.nan)
        price = np.empty(n)
        cdef double[::1] price_v = price
        cdef int32_t[::1] rule_v = rule, sym_v = sym, rank_v = rank
        cdef int64_t[::1] t_v = t, bo_v = bar_open, tid_v = tid
        cdef int8_t[::1] kind_v = kind, tf_v = tf, nv_v = nv
        cdef double[:, ::1] vals_v = vals
        for i in range(n):
            e = &self.evbuf[i]
            rule_v[i] = e.rule
            sym_v[i] = e.symbol
            t_v[i] = e.time
            bo_v[i] = e.bar_open
            tid_v[i] = e.trade_id
            rank_v[i] = e.rank
            kind_v[i] = e.kind
            tf_v[i] = e.tf
            nv_v[i] = e.n_values
            price_v[i] = e.price
            for q in range(e.n_values):
                vals_v[i, q] = e.values[q]
        return {"rule": rule, "symbol": sym, "time_ms": t, "bar_open_ms": bar_open,
                "trade_id": tid, "rank": rank, "kind": kind, "timeframe": tf,
                "n_values": nv, "values": vals, "price": price}

    # --------------------------------------------------------------- rules --

    cdef Group* _group(self, Symbol* sym, int tf) except NULL:
        cdef Group* g = <Group*>sym.groups[tf]
        if g != NULL:
            return g
        g = <Group*>mem_alloc(sizeof(Group))
        if g == NULL:
            raise MemoryError()
        g.tf = tf
        g.tf_ms = tf_ms(tf)
        g.sym = sym
        g.closed_through = NO_TIME
        g.first_t0 = NO_TIME
        if sym.closed_until != NO_TIME:
            g.closed_through = floor_to(sym.closed_until, g.tf_ms)
        if sym.started:
            # the symbol is trading: its first bar of this timeframe is the next whole
            # one, unless seed() gives it the bars before
            g.first_t0 = floor_to(sym.last_time, g.tf_ms) + g.tf_ms
            g.pending = True
        sym.groups[tf] = g
        sym.next_end = NO_TIME
        self.n_groups += 1
        return g

    cdef void _release_group(self, Group* g) noexcept:
        g.refs -= 1
        if g.refs <= 0:
            g.sym.groups[g.tf] = NULL
            g.sym.next_end = NO_TIME
            self._free_group(g, False)

    cdef void _free_group(self, Group* g, bint with_series) noexcept:
        cdef int q
        if with_series:
            for q in range(g.n_series):
                series_free(g.series[q])
        mem_free(g.series)
        mem_free(g.hist)
        il_free(&g.close_rules)
        mem_free(g)
        self.n_groups -= 1

    cdef Series* _series(self, Symbol* sym, int tf, int kind, int p0, int p1, int p2,
                         double k) except NULL:
        key = (sym.id, tf, kind, p0, p1, p2, k)
        cdef size_t addr = self.series_index.get(key, 0)
        cdef Series* s
        cdef Group* g
        cdef Series** ns
        cdef int q
        if addr:
            return <Series*>addr
        g = self._group(sym, tf)
        s = <Series*>mem_alloc(sizeof(Series))
        if s == NULL:
            raise MemoryError()
        s.kind = kind
        s.tf = tf
        s.symbol = sym.id
        s.p0 = p0
        s.p1 = p1
        s.p2 = p2
        s.k = k
        s.n_out = N_OUTPUTS.get(kind, 1)
        for q in range(MAX_OUT):
            s.closed[q] = NAN
        s.group = g
        s.pending = sym.started
        if series_alloc_windows(s) < 0:
            series_free(s)
            raise MemoryError()
        if g.n_series == g.cap_series:
            ns = <Series**>mem_alloc((g.cap_series * 2 + 2) * sizeof(Series*))
            if ns == NULL:
                series_free(s)
                raise MemoryError()
            if g.n_series:
                memcpy(ns, g.series, g.n_series * sizeof(Series*))
            mem_free(g.series)
            g.series = ns
            g.cap_series = g.cap_series * 2 + 2
        g.series[g.n_series] = s
        g.n_series += 1
        g.refs += 1
        self.series_index[key] = <size_t>s
        return s

    cdef void _release_series(self, Series* s) noexcept:
        cdef Group* g = <Group*>s.group
        cdef int q, j
        s.refs -= 1
        if s.refs > 0:
            return
        del self.series_index[(s.symbol, s.tf, s.kind, s.p0, s.p1, s.p2, s.k)]
        for q in range(g.n_series):
            if g.series[q] == s:
                for j in range(q, g.n_series - 1):
                    g.series[j] = g.series[j + 1]
                g.n_series -= 1
                break
        series_free(s)
        self._release_group(g)

    def add_rule(self, int32_t symbol, int mode, int timeframe, int64_t cooldown_ms,
                 expire_ms, int64_t max_fires, list ops, list operands, int n_slots,
                 list moves, bint paused=False, int64_t hold_ms=0, double hysteresis=0.0):
        """Load a compiled rule; returns its index (valid until ``remove_rule``).

        ``ops``: ``(opcode, a, b, d, c)`` tuples of a stack program (see ``OPS``).
        ``operands``: ``(kind, symbol, timeframe, p0, p1, p2, k, output, offset)``.
        ``moves``: window length (bars) of each moves_up/moves_down node.
        ``timeframe``: -1 for a tick-level rule. ``expire_ms``: None for never.
        ``hold_ms``: the rule's hold_for (see ``_trigger``), 0 for none.
        ``hysteresis``: the re-arm band (see ``_run`` and ``_trigger``), 0 for none;
        only modes ON_TRUE and ONCE_PER_BAR take one.
        The program is checked here, so a bad one is a ValueError, never a crash.
        """
        cdef Rule* r
        cdef int i, depth = 0, max_depth = 0, need, push, n_ops = len(ops)
        cdef int32_t idx
        cdef Symbol* sym
        cdef Operand* o
        cdef Group* g
        if mode not in (MODE_ON_TRUE, MODE_EVERY_TIME, MODE_ONCE_PER_BAR, MODE_ONCE_PER_BAR_CLOSE):
            raise ValueError(f"unknown mode {mode}")
        if timeframe < -1 or timeframe >= N_TF or (0 <= timeframe < self.finest):
            raise ValueError(f"timeframe {timeframe} is not available")
        if timeframe == -1 and mode in (MODE_ONCE_PER_BAR, MODE_ONCE_PER_BAR_CLOSE):
            raise ValueError("bar modes need a timeframe")
        if n_ops == 0 or n_slots < 0 or cooldown_ms < 0 or max_fires < 0 or hold_ms < 0:
            raise ValueError("empty program or negative limits")
        _check_band(mode, hysteresis)
        # check the program: known ops, indices in range, stack never underflows; and
        # each op's polarity: -1 under an odd number of nots, else +1 (hysteresis moves
        # a comparison's threshold the other way under a not)
        polarity = [1] * n_ops
        under = []                  # per stack value: the ops of its subtree
        for i, (code, a, b, d, c) in enumerate(ops):
            if code == OP_CONST or code == OP_LOAD:
                need, push = 0, 1
                if code == OP_LOAD and not 0 <= a < len(operands):
                    raise ValueError(f"op {i}: operand {a} out of range")
            elif code == OP_NEG or code == OP_NOT:
                need, push = 1, 1
            elif OP_ADD <= code <= OP_DIV or OP_GT <= code <= OP_EQ or code in (OP_AND, OP_OR):
                need, push = 2, 1
            elif OP_CROSS <= code <= OP_CROSS_BELOW:
                need, push = 2, 1
                if not 0 <= a < n_slots - 1:
                    raise ValueError(f"op {i}: slot {a} out of range")
            elif OP_INSIDE <= code <= OP_EXITS:
                need, push = 3, 1
                if code >= OP_ENTERS and not 0 <= a < n_slots:
                    raise ValueError(f"op {i}: slot {a} out of range")
            elif code in (OP_MOVES_UP, OP_MOVES_DOWN):
                need, push = 1, 1
                if not 0 <= a < len(moves) or moves[a] != b or not 0 <= d < i:
                    raise ValueError(f"op {i}: bad moves window")
                if timeframe < 0:
                    raise ValueError("moves_up/moves_down need a timeframe")
            else:
                raise ValueError(f"op {i}: unknown opcode {code}")
            if depth < need:
                raise ValueError(f"op {i}: stack underflow")
            depth += push - need
            max_depth = max(max_depth, depth)
            tree = [i]
            for _ in range(need):
                tree += under.pop()
            if code == OP_NOT:
                for j in tree:
                    polarity[j] = -polarity[j]
            under.append(tree)
        if depth != 1:
            raise ValueError("program must leave exactly one value")
        for m in moves:
            if not 1 <= m <= 100000:
                raise ValueError("moves window out of range")
        for (kind, sid, tf, p0, p1, p2, k, out, offset) in operands:
            if sid < 0 or offset < 0 or offset > 100000:
                raise ValueError("bad operand")
            if kind in (K_PRICE, K_VWAP):
                continue
            if not (self.finest <= tf < N_TF) or kind not in KINDS.values():
                raise ValueError(f"bad operand kind/timeframe {kind}/{tf}")
            if kind >= K_SMA and kind != K_OBV and (not 1 <= p0 <= 100000 or
                                  (kind in (K_MACD, K_STOCH) and (not 1 <= p1 <= 100000 or
                                                                  not 1 <= p2 <= 100000))):
                raise ValueError("bad operand period")
            if not 0 <= out < N_OUTPUTS.get(kind, 1):
                raise ValueError("bad operand output")
        # allocate
        # one block per rule: the struct, then its program and scratch arrays, so an
        # evaluation reads a few adjacent cache lines
        read = list(dict.fromkeys([symbol] + [o_[1] for o_ in operands]))
        n_operands = len(operands)
        n_moves = len(moves)
        cdef size_t at[10]
        at[0] = 0
        at[1] = _align8(sizeof(Rule))
        at[2] = at[1] + _align8(n_ops * sizeof(Op))
        at[3] = at[2] + _align8(n_operands * sizeof(Operand))
        at[4] = at[3] + _align8((max_depth + 1) * sizeof(double))
        at[5] = at[4] + _align8((n_slots + 1) * sizeof(double))
        at[6] = at[5] + _align8((n_operands + 1) * sizeof(double))
        at[7] = at[6] + _align8(n_moves * sizeof(MonoDeque))
        at[8] = at[7] + _align8((n_moves + 1) * sizeof(double))
        at[9] = at[8] + len(read) * sizeof(int32_t)
        cdef char* block = <char*>mem_alloc(at[9])
        if block == NULL:
            raise MemoryError()
        r = <Rule*>block
        r.ops = <Op*>(block + at[1])
        r.operands = <Operand*>(block + at[2])
        r.stack = <double*>(block + at[3])
        r.slots = <double*>(block + at[4])
        r.vals = <double*>(block + at[5])
        r.moves = <MonoDeque*>(block + at[6])
        r.moves_x = <double*>(block + at[7])
        r.read_syms = <int32_t*>(block + at[8])
        try:
            r.symbol = symbol
            r.mode = mode
            r.tf = timeframe
            r.cooldown = cooldown_ms
            r.hold = hold_ms
            r.hold_start = NO_TIME
            r.hyst = hysteresis
            r.expire = INT64_MAX if expire_ms is None else <int64_t>expire_ms
            r.max_fires = max_fires
            r.paused = paused
            r.armed = True
            r.last_fire = NO_TIME
            r.last_bucket = NO_TIME
            r.last_closed_eval = NO_TIME
            r.n_ops = n_ops
            r.n_slots = n_slots
            r.n_operands = n_operands
            for i, (code, a, b, d, c) in enumerate(ops):
                r.ops[i].op = code
                r.ops[i].pol = polarity[i]
                r.ops[i].a = a
                r.ops[i].b = b
                r.ops[i].d = d
                r.ops[i].c = c
            for i in range(n_slots):
                r.slots[i] = NAN
            for i in range(r.n_operands):
                r.vals[i] = NAN
            for i, m in enumerate(moves):
                r.n_moves = i + 1
                if deque_init(&r.moves[i], m, True) < 0:
                    raise MemoryError()
                r.moves[i].is_max = any(op[0] == OP_MOVES_DOWN and op[1] == i for op in ops)
            # symbols read: the rule's own, then every operand's
            self._ensure_symbols(max(read))
            r.n_read = len(read)
            for i, sid in enumerate(read):
                r.read_syms[i] = sid
                if self._symbol(sid) == NULL:
                    raise MemoryError()
            # operands: shared states
            for i, (kind, sid, tf, p0, p1, p2, k, out, offset) in enumerate(operands):
                o = &r.operands[i]
                sym = self.syms[sid]
                o.kind = kind
                o.tf = tf
                o.out = out
                o.offset = offset
                o.sym = sym
                if kind == K_PRICE:
                    pass
                elif kind == K_VWAP:
                    if sym.vwap_refs == 0:      # nothing summed while nobody read it
                        ksum_clear(&sym.vwap_pv)
                        ksum_clear(&sym.vwap_v)
                        sym.vwap_day = NO_TIME
                        sym.vwap_pending = sym.started
                    sym.vwap_refs += 1
                elif kind < K_VWAP:
                    o.g = self._group(sym, tf)
                    o.g.refs += 1
                    if group_ensure_hist(o.g, offset + 1) < 0:
                        raise MemoryError()
                else:
                    o.s = self._series(sym, tf, kind, p0, p1, p2, k)
                    o.s.refs += 1
                    if offset > 0 and series_ensure_hist(o.s, offset + 1) < 0:
                        raise MemoryError()
        except BaseException:
            self._release_rule_resources(r)
            self._free_rule_struct(r)
            raise
        # slot
        if self.free_rules.n:
            self.free_rules.n -= 1
            idx = self.free_rules.v[self.free_rules.n]
        else:
            if self.n_rules == self.rules_cap:
                self._grow_rules()
            idx = self.n_rules          # no free slot: slots 0..n_rules-1 are all in use
        self.rules[idx] = r
        self.n_rules += 1
        self._register(r, idx)
        return idx

    cdef _grow_rules(self):
        cdef int cap = max(16, self.rules_cap * 2)
        cdef Rule** nr = <Rule**>mem_alloc(cap * sizeof(Rule*))
        if nr == NULL:
            raise MemoryError()
        if self.rules_cap:
            memcpy(nr, self.rules, self.rules_cap * sizeof(Rule*))
        mem_free(self.rules)
        self.rules = nr
        self.rules_cap = cap

    cdef _register(self, Rule* r, int32_t idx):
        """Hook the rule to the ticks or closes that evaluate it."""
        cdef int i
        cdef Group* g
        cdef Symbol* sym
        if r.mode == MODE_ONCE_PER_BAR_CLOSE:
            for i in range(r.n_read):
                g = self._group(self.syms[r.read_syms[i]], r.tf)
                g.refs += 1
                if il_add(&g.close_rules, idx) < 0:
                    raise MemoryError()
        else:
            for i in range(r.n_read):
                if il_add(&self.syms[r.read_syms[i]].tick_rules, idx) < 0:
                    raise MemoryError()
            if r.n_moves:
                r.moves_hook = True
                g = self._group(self.syms[r.symbol], r.tf)
                g.refs += 1
                if il_add(&g.close_rules, idx) < 0:
                    raise MemoryError()

    cdef void _release_rule_resources(self, Rule* r) noexcept:
        cdef int i
        cdef Operand* o
        if r.operands == NULL:
            return
        for i in range(r.n_operands):
            o = &r.operands[i]
            if o.s != NULL:
                self._release_series(o.s)
                o.s = NULL
            elif o.g != NULL:
                self._release_group(o.g)
                o.g = NULL
            elif o.kind == K_VWAP and o.sym != NULL:
                o.sym.vwap_refs -= 1
                o.sym = NULL

    cdef void _free_rule_struct(self, Rule* r) noexcept:
        """Free a rule's block (its program and arrays live inside it)."""
        cdef int i
        for i in range(r.n_moves):
            deque_free(&r.moves[i])
        mem_free(r)

    cdef Rule* _rule(self, int idx) except NULL:
        if idx < 0 or idx >= self.rules_cap or self.rules[idx] == NULL:
            raise KeyError(f"no rule {idx}")
        return self.rules[idx]

    def remove_rule(self, int idx):
        """Unload a rule; states no other rule reads are freed."""
        cdef Rule* r = self._rule(idx)
        cdef int i
        cdef Group* g
        if r.mode == MODE_ONCE_PER_BAR_CLOSE or r.moves_hook:
            for i in range(r.n_read if r.mode == MODE_ONCE_PER_BAR_CLOSE else 1):
                g = <Group*>self.syms[r.read_syms[i]].groups[r.tf]
                il_remove(&g.close_rules, idx)
                self._release_group(g)
        if r.mode != MODE_ONCE_PER_BAR_CLOSE:
            for i in range(r.n_read):
                il_remove(&self.syms[r.read_syms[i]].tick_rules, idx)
        self._release_rule_resources(r)
        self._free_rule_struct(r)
        self.rules[idx] = NULL
        self.n_rules -= 1
        if self.n_rules == 0:
            mem_free(self.rules)
            self.rules = NULL
            self.rules_cap = 0
            il_free(&self.free_rules)
        elif il_add(&self.free_rules, idx) < 0:
            raise MemoryError()

    def set_rule_limits(self, int idx, *, int64_t cooldown_ms, expire_ms, int64_t max_fires,
                        hold_ms=None, hysteresis=None):
        """Change cooldown, expiry, max fires, hold and band (None: unchanged), keeping
        the trigger state. A hold in progress keeps its start: the new hold is measured
        from the first true evaluation of the current run (it may fire at the next held
        one). A disarmed rule stays disarmed under a new band (its next non-true
        evaluation is tested against it), except that a ONCE_PER_BAR rule whose band is
        removed re-arms at once, as it would never have disarmed without one."""
        cdef Rule* r = self._rule(idx)
        if cooldown_ms < 0 or max_fires < 0 or (hold_ms is not None and hold_ms < 0):
            raise ValueError("negative limits")
        if hysteresis is not None:
            _check_band(r.mode, hysteresis)
            r.hyst = hysteresis
            if r.mode == MODE_ONCE_PER_BAR and r.hyst == 0.0:
                r.armed = True
        if hold_ms is not None:
            r.hold = <int64_t>hold_ms
        r.cooldown = cooldown_ms
        r.expire = INT64_MAX if expire_ms is None else <int64_t>expire_ms
        r.max_fires = max_fires
        r.completed = max_fires > 0 and r.fires >= max_fires
        r.expired = False

    def set_rule_trigger_state(self, int idx, *, int64_t fires, last_fire_ms, bint armed,
                               bint completed, bint expired):
        """Restore a rule's trigger state (after a restart, from the store)."""
        cdef Rule* r = self._rule(idx)
        if fires < 0:
            raise ValueError("fires must be >= 0")
        r.fires = fires
        r.last_fire = NO_TIME if last_fire_ms is None else <int64_t>last_fire_ms
        r.last_rank = 0
        r.armed = armed
        r.completed = completed
        r.expired = expired
        r.hold_start = NO_TIME          # the store keeps no hold in progress

    def set_rule_paused(self, int idx, bint paused):
        """Pause or resume. Resuming restarts the hold: the evaluations skipped while
        paused were not watched, so they cannot count as held."""
        cdef Rule* r = self._rule(idx)
        if r.paused and not paused:
            r.hold_start = NO_TIME
        r.paused = paused

    def rule_state(self, int idx):
        """Trigger state and the operand values of the last evaluation."""
        cdef Rule* r = self._rule(idx)
        return {
            "armed": bool(r.armed), "fires": r.fires, "completed": bool(r.completed),
            "expired": bool(r.expired), "paused": bool(r.paused),
            "evaluated": bool(r.evaluated),
            "last_fire_ms": None if r.last_fire == NO_TIME else r.last_fire,
            "hold_ms": r.hold,
            "hysteresis": r.hyst,
            "hold_start_ms": None if r.hold_start == NO_TIME else r.hold_start,
            "values": tuple(r.vals[i] for i in range(r.n_operands)),
        }

    def snapshot(self, int32_t sid, int closed_bars=1):
        """A symbol's last price, its bars (forming and up to ``closed_bars`` closed, newest
        first, per timeframe in use) and every indicator state on it (closed and intrabar
        outputs), for GetSymbolSnapshot. None for a symbol the engine does not know."""
        cdef Symbol* sym
        cdef Group* g
        cdef Series* s
        cdef const Bar* b
        cdef Bar peek
        cdef double out[MAX_OUT]
        cdef int t, q, j
        if sid < 0 or sid >= self.syms_cap or self.syms[sid] == NULL:
            return None
        sym = self.syms[sid]
        bars = []
        series = []
        for t in range(N_TF):
            g = <Group*>sym.groups[t]
            if g == NULL:
                continue
            if g.has_forming:
                bars.append((t, False, _bar_tuple(&g.forming)))
            # closed bars are kept as far back as rules read them; the last one always
            if g.hist_len == 0 and g.has_closed and closed_bars > 0:
                bars.append((t, True, _bar_tuple(&g.last_closed)))
            for j in range(min(closed_bars, g.hist_len)):
                b = group_hist_back(g, j)
                bars.append((t, True, _bar_tuple(b)))
            for q in range(g.n_series):
                s = g.series[q]
                if self._peek_bar(g, &peek):
                    series_step(s, &peek, out, False)
                else:
                    memcpy(out, s.closed, MAX_OUT * sizeof(double))
                series.append((s.kind, t, s.p0, s.p1, s.p2, s.k,
                               tuple(s.closed[o] for o in range(s.n_out)),
                               tuple(out[o] for o in range(s.n_out))))
        return {"price": sym.last_price,
                "last_time_ms": None if sym.last_time == NO_TIME else sym.last_time,
                "bars": bars, "series": series}

    def stats(self):
        """Counts of live state; ``core_bytes`` is the process-wide memory of all engines."""
        return {
            "symbols": self.n_symbols,
            "groups": self.n_groups,
            "series": len(self.series_index),
            "rules": self.n_rules,
            "sources": self.n_sources,
            "event_capacity": self.evcap,
            "core_bytes": alerts_core_bytes(),
        }

    # ---------------------------------------------------------- checkpoints --
    #
    # A checkpoint is every value of the engine's state, keyed so that it can be
    # put back into an engine that was rebuilt with the same symbols (same ids)
    # and the same rules: records of (tag, key, payload). Payloads are raw
    # little-endian values written and read field by field; a record whose key
    # is not in the engine, or whose shape (window sizes) differs, is skipped
    # and that state starts fresh. The blob starts with its format: ACK3 (written)
    # adds a rule's hold_start after last_closed_eval; ACK2 (before hold_for ran)
    # is still read, its rules with no hold in progress.

    def checkpoint(self, dict rule_keys):
        """All state as bytes; ``rule_keys`` maps rule index -> a stable key (its id)."""
        cdef _Buf out = _Buf()
        cdef int i, t, q
        cdef size_t at
        cdef Symbol* sym
        cdef Group* g
        cdef Series* s
        cdef Rule* r
        cdef SeriesKey key
        cdef bytes rid
        out.put(b"ACK3", 4)
        for i in range(self.n_sources):
            at = out.begin(b"S", &i, sizeof(int))
            out.put(&self.sources[i].fill_gaps, sizeof(bint))
            out.put(&self.sources[i].grace, sizeof(int64_t))
            out.put(&self.sources[i].clock, sizeof(int64_t))
            out.put(&self.sources[i].swept_until, sizeof(int64_t))
            out.end(at)
        for i in range(self.syms_cap):
            sym = self.syms[i]
            if sym == NULL:
                continue
            at = out.begin(b"Y", &i, sizeof(int))
            out.put(&sym.source, sizeof(int))
            out.put(&sym.started, sizeof(bint))
            out.put(&sym.last_price, sizeof(double))
            out.put(&sym.last_time, sizeof(int64_t))
            out.put(&sym.closed_until, sizeof(int64_t))
            out.put(&sym.advanced_to, sizeof(int64_t))
            out.put(&sym.vwap_day, sizeof(int64_t))
            out.put(&sym.vwap_pv, sizeof(KSum))
            out.put(&sym.vwap_v, sizeof(KSum))
            out.put(&sym.dd_bucket, sizeof(int64_t))
            out.put(&sym.dd_n, sizeof(int))
            out.put(sym.dd_runs, sym.dd_n * sizeof(IdRun))
            out.end(at)
            for t in range(N_TF):
                g = <Group*>sym.groups[t]
                if g == NULL:
                    continue
                memset(&key, 0, sizeof(SeriesKey))
                key.sid = i
                key.tf = t
                at = out.begin(b"G", &key, 2 * sizeof(int32_t))
                out.put(&g.has_forming, sizeof(bint))
                out.put(&g.has_closed, sizeof(bint))
                out.put(&g.forming, sizeof(Bar))
                out.put(&g.last_closed, sizeof(Bar))
                out.put(&g.closed_through, sizeof(int64_t))
                out.put(&g.first_t0, sizeof(int64_t))
                out.put(&g.hist_cap, sizeof(int))
                out.put(&g.hist_len, sizeof(int))
                for q in range(g.hist_len - 1, -1, -1):
                    out.put(group_hist_back(g, q), sizeof(Bar))
                out.end(at)
                for q in range(g.n_series):
                    s = g.series[q]
                    key.kind = s.kind
                    key.p0 = s.p0
                    key.p1 = s.p1
                    key.p2 = s.p2
                    key.k = s.k
                    at = out.begin(b"E", &key, sizeof(SeriesKey))
                    _series_state(out, s)
                    out.end(at)
        for i in range(self.rules_cap):
            r = self.rules[i] if self.rules != NULL else NULL
            if r == NULL or i not in rule_keys:
                continue
            rid = str(rule_keys[i]).encode()
            at = out.begin(b"R", <const char*>rid, len(rid))
            out.put(&r.armed, sizeof(bint))
            out.put(&r.completed, sizeof(bint))
            out.put(&r.expired, sizeof(bint))
            out.put(&r.evaluated, sizeof(bint))
            out.put(&r.fires, sizeof(int64_t))
            out.put(&r.last_fire, sizeof(int64_t))
            out.put(&r.last_rank, sizeof(int32_t))
            out.put(&r.last_bucket, sizeof(int64_t))
            out.put(&r.last_closed_eval, sizeof(int64_t))
            out.put(&r.hold_start, sizeof(int64_t))
            out.put(&r.n_slots, sizeof(int))
            out.put(r.slots, r.n_slots * sizeof(double))
            out.put(&r.n_operands, sizeof(int))
            out.put(r.vals, r.n_operands * sizeof(double))
            out.put(&r.n_moves, sizeof(int))
            for q in range(r.n_moves):
                _w_deque(out, &r.moves[q])
            out.end(at)
        return out.to_bytes()

    def restore(self, const unsigned char[::1] blob, dict rule_index):
        """Put a checkpoint back; ``rule_index`` maps a rule key -> its index here.

        Returns the number of records applied; sources must already exist (same
        order) and symbols must have their checkpoint ids.
        """
        cdef _Reader rd = _Reader(blob)
        cdef _Reader p
        cdef int applied = 0, i, t, n
        cdef Symbol* sym
        cdef Group* g
        cdef Series* s
        cdef Rule* r
        cdef size_t addr
        cdef SeriesKey key
        cdef bint has_hold
        magic = rd.take(4)
        if magic == b"ACK3":
            has_hold = True
        elif magic == b"ACK2":
            has_hold = False
        else:
            raise ValueError("not an alerts_core checkpoint")
        while not rd.done():
            tag, raw, p = rd.record()
            if tag != b"R":
                memset(&key, 0, sizeof(SeriesKey))
                if len(raw) > <Py_ssize_t>sizeof(SeriesKey):
                    raise ValueError("bad checkpoint record key")
                memcpy(&key, <const char*>raw, len(raw))
            if tag == b"S":
                i = key.sid
                if i >= self.n_sources:
                    continue
                p.read(&self.sources[i].fill_gaps, sizeof(bint))
                p.read(&self.sources[i].grace, sizeof(int64_t))
                p.read(&self.sources[i].clock, sizeof(int64_t))
                p.read(&self.sources[i].swept_until, sizeof(int64_t))
                il_free(&self.sources[i].symbols)
            elif tag == b"Y":
                i = key.sid
                self._ensure_symbols(i)
                sym = self._symbol(i)
                if sym == NULL:
                    raise MemoryError()
                p.read(&sym.source, sizeof(int))
                p.read(&sym.started, sizeof(bint))
                p.read(&sym.last_price, sizeof(double))
                p.read(&sym.last_time, sizeof(int64_t))
                p.read(&sym.closed_until, sizeof(int64_t))
                p.read(&sym.advanced_to, sizeof(int64_t))
                p.read(&sym.vwap_day, sizeof(int64_t))
                p.read(&sym.vwap_pv, sizeof(KSum))
                p.read(&sym.vwap_v, sizeof(KSum))
                p.read(&sym.dd_bucket, sizeof(int64_t))
                p.read(&n, sizeof(int))
                while sym.dd_cap < n:
                    if self._grow_runs(sym) < 0:
                        raise MemoryError()
                p.read(sym.dd_runs, n * sizeof(IdRun))
                sym.dd_n = n
                sym.dd_last = 0
                sym.next_end = NO_TIME
                if sym.source >= self.n_sources:
                    sym.source = -1
            elif tag == b"G":
                i = key.sid
                t = key.tf
                if i < 0 or not 0 <= t < N_TF or i >= self.syms_cap or self.syms[i] == NULL or self.syms[i].groups[t] == NULL:
                    continue
                g = <Group*>self.syms[i].groups[t]
                self._restore_group(g, p)
            elif tag == b"E":
                addr = self.series_index.get(
                    (key.sid, key.tf, key.kind, key.p0, key.p1, key.p2, key.k), 0)
                if addr == 0:
                    continue
                _restore_series(<Series*>addr, p)
            elif tag == b"R":
                rule_key = raw.decode()
                if rule_key not in rule_index:
                    continue
                r = self._rule(rule_index[rule_key])
                self._restore_rule(r, p, has_hold)
            else:
                continue
            applied += 1
        for i in range(self.syms_cap):
            sym = self.syms[i]
            if sym != NULL and sym.source >= 0:
                if il_add(&self.sources[sym.source].symbols, sym.id) < 0:
                    raise MemoryError()
        return applied

    cdef _restore_group(self, Group* g, _Reader p):
        cdef int cap, n, q
        cdef Bar b
        p.read(&g.has_forming, sizeof(bint))
        p.read(&g.has_closed, sizeof(bint))
        p.read(&g.forming, sizeof(Bar))
        p.read(&g.last_closed, sizeof(Bar))
        p.read(&g.closed_through, sizeof(int64_t))
        p.read(&g.first_t0, sizeof(int64_t))
        p.read(&cap, sizeof(int))
        p.read(&n, sizeof(int))
        g.hist_len = 0
        g.hist_head = 0
        for q in range(n):
            p.read(&b, sizeof(Bar))
            group_hist_push(g, &b)

    cdef _restore_rule(self, Rule* r, _Reader p, bint has_hold):
        cdef int n, q
        p.read(&r.armed, sizeof(bint))
        p.read(&r.completed, sizeof(bint))
        p.read(&r.expired, sizeof(bint))
        p.read(&r.evaluated, sizeof(bint))
        p.read(&r.fires, sizeof(int64_t))
        p.read(&r.last_fire, sizeof(int64_t))
        p.read(&r.last_rank, sizeof(int32_t))
        p.read(&r.last_bucket, sizeof(int64_t))
        p.read(&r.last_closed_eval, sizeof(int64_t))
        r.hold_start = NO_TIME
        if has_hold:
            p.read(&r.hold_start, sizeof(int64_t))
        p.read(&n, sizeof(int))
        if n != r.n_slots:
            return
        p.read(r.slots, n * sizeof(double))
        p.read(&n, sizeof(int))
        if n != r.n_operands:
            return
        p.read(r.vals, n * sizeof(double))
        p.read(&n, sizeof(int))
        if n != r.n_moves:
            return
        for q in range(n):
            _r_deque(p, &r.moves[q])


cdef tuple _bar_tuple(const Bar* b):
    return (b.t0, b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.trades)


cdef class _Buf:
    """A growing byte buffer for checkpoints: fields are copied in, records framed."""
    cdef char* data
    cdef size_t n
    cdef size_t cap

    def __dealloc__(self):
        PyMem_Free(self.data)

    cdef int put(self, const void* p, size_t k) except -1:
        cdef size_t cap
        cdef char* nd
        if k == 0:
            return 0
        if self.n + k > self.cap:
            cap = self.cap * 2
            if cap < self.n + k:
                cap = self.n + k
            if cap < 65536:
                cap = 65536
            nd = <char*>PyMem_Realloc(self.data, cap)
            if nd == NULL:
                raise MemoryError()
            self.data = nd
            self.cap = cap
        memcpy(self.data + self.n, p, k)
        self.n += k
        return 0

    cdef size_t begin(self, const char* tag, const void* key, uint32_t kl) except? 0:
        """Start a record: tag, key bytes, and room for the payload's length."""
        cdef uint32_t zero = 0
        self.put(tag, 1)
        self.put(&kl, sizeof(uint32_t))
        self.put(key, kl)
        self.put(&zero, sizeof(uint32_t))
        return self.n

    cdef void end(self, size_t start) noexcept:
        cdef uint32_t length = <uint32_t>(self.n - start)
        memcpy(self.data + start - sizeof(uint32_t), &length, sizeof(uint32_t))

    cdef bytes to_bytes(self):
        return PyBytes_FromStringAndSize(self.data, self.n)


cdef int _w_ring(_Buf out, const Ring* r) except -1:
    cdef int j
    cdef double v
    out.put(&r.cap, sizeof(int))
    out.put(&r.len, sizeof(int))
    for j in range(r.len - 1, -1, -1):
        v = ring_back(r, j)
        out.put(&v, sizeof(double))
    return 0


cdef int _w_deque(_Buf out, const MonoDeque* d) except -1:
    cdef int j, pos
    out.put(&d.cap, sizeof(int))
    out.put(&d.size, sizeof(int))
    out.put(&d.pushed, sizeof(int64_t))
    for j in range(d.size):
        pos = (d.front + j) % d.cap
        out.put(&d.idx[pos], sizeof(int64_t))
        out.put(&d.val[pos], sizeof(double))
    return 0


cdef int _series_state(_Buf p, Series* s) except -1:
    cdef int has_dq = s.dq != NULL, q
    p.put(&s.count, sizeof(int64_t))
    p.put(s.a, 4 * sizeof(double))
    p.put(&s.s0, sizeof(KSum))
    p.put(&s.s1, sizeof(KSum))
    _w_ring(p, &s.r0)
    _w_ring(p, &s.r1)
    p.put(&has_dq, sizeof(int))
    if has_dq:
        _w_deque(p, &s.dq[0])
        _w_deque(p, &s.dq[1])
    p.put(s.closed, MAX_OUT * sizeof(double))
    p.put(&s.hist_cap, sizeof(int))
    if s.hist != NULL:
        for q in range(s.n_out):
            _w_ring(p, &s.hist[q])
    return 0


cdef class _Reader:
    cdef const unsigned char[::1] buf
    cdef Py_ssize_t pos

    def __cinit__(self, const unsigned char[::1] buf):
        self.buf = buf
        self.pos = 0

    cdef bint done(self):
        return self.pos >= self.buf.shape[0]

    cdef int read(self, void* out, size_t n) except -1:
        if n == 0:
            return 0
        if self.pos + <Py_ssize_t>n > self.buf.shape[0]:
            raise ValueError("truncated checkpoint")
        memcpy(out, &self.buf[self.pos], n)
        self.pos += n
        return 0

    cdef bytes take(self, size_t n):
        cdef bytes out
        if self.pos + <Py_ssize_t>n > self.buf.shape[0]:
            raise ValueError("truncated checkpoint")
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    cdef tuple record(self):
        cdef uint32_t kl, pl
        tag = self.take(1)
        self.read(&kl, sizeof(uint32_t))
        key = self.take(kl)
        self.read(&pl, sizeof(uint32_t))
        return tag, key, _Reader(self.take(pl))


cdef int _r_ring(_Reader p, Ring* r) except -1:
    """Refill a ring; False (0) when its capacity differs (its values are consumed)."""
    cdef int cap, n, j
    cdef double v
    p.read(&cap, sizeof(int))
    p.read(&n, sizeof(int))
    ring_clear(r)
    for j in range(n):
        p.read(&v, sizeof(double))
        if cap == r.cap:
            ring_push(r, v)
    return cap == r.cap


cdef int _r_deque(_Reader p, MonoDeque* d) except -1:
    cdef int cap, n, j
    cdef int64_t pushed, ix
    cdef double v
    p.read(&cap, sizeof(int))
    p.read(&n, sizeof(int))
    p.read(&pushed, sizeof(int64_t))
    deque_clear(d)
    for j in range(n):
        p.read(&ix, sizeof(int64_t))
        p.read(&v, sizeof(double))
        if cap == d.cap:
            d.idx[j] = ix
            d.val[j] = v
    if cap == d.cap:
        d.size = n
        d.pushed = pushed
    return cap == d.cap


cdef int _restore_series(Series* s, _Reader p) except -1:
    cdef int has_dq, ok = 1, q, hist_cap
    p.read(&s.count, sizeof(int64_t))
    p.read(s.a, 4 * sizeof(double))
    p.read(&s.s0, sizeof(KSum))
    p.read(&s.s1, sizeof(KSum))
    ok &= _r_ring(p, &s.r0)
    ok &= _r_ring(p, &s.r1)
    p.read(&has_dq, sizeof(int))
    if has_dq:
        if s.dq == NULL:
            return 0
        ok &= _r_deque(p, &s.dq[0])
        ok &= _r_deque(p, &s.dq[1])
    p.read(s.closed, MAX_OUT * sizeof(double))
    p.read(&hist_cap, sizeof(int))
    if hist_cap and s.hist != NULL and hist_cap == s.hist_cap:
        for q in range(s.n_out):
            _r_ring(p, &s.hist[q])
    s.peek_stamp = 0
    if not ok:
        series_reset(s)
    return ok
