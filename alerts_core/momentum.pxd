# Momentum: RSI (Wilder), MACD (TA-Lib seeding), Stochastic (SMA smoothing),
# change %.

from libc.math cimport NAN
from libc.stdint cimport int64_t
from alerts_core.ring cimport (Ring, KSum, MonoDeque, ring_push, ring_back, ring_oldest,
                               ksum_add, ksum_value, deque_push, deque_extreme)
from alerts_core.series cimport Series, Bar


cdef inline double _rsi(double gain, double loss) noexcept nogil:
    cdef double den = gain + loss
    if den == 0.0:
        return NAN          # no movement yet: 0/0 is undefined
    return 100.0 * (gain / den)


cdef inline void rsi_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # a[0]: previous close; a[1], a[2]: gain/loss sums, then Wilder averages
    cdef int n = s.p0
    cdef int64_t m = s.count          # previous closes seen = index of this bar
    cdef double c = b.close
    cdef double d, g = 0.0, l = 0.0, ag, al
    out[0] = NAN
    if m == 0:
        if commit:
            s.a[0] = c
            s.count += 1
        return
    d = c - s.a[0]
    if d > 0:
        g = d
    elif d < 0:
        l = -d
    if m < n:
        ag = s.a[1] + g
        al = s.a[2] + l
    elif m == n:
        ag = (s.a[1] + g) / n
        al = (s.a[2] + l) / n
        out[0] = _rsi(ag, al)
    else:
        ag = ((s.a[1] * (n - 1)) + g) / n
        al = ((s.a[2] * (n - 1)) + l) / n
        out[0] = _rsi(ag, al)
    if commit:
        s.a[0] = c
        s.a[1] = ag
        s.a[2] = al
        s.count += 1


cdef inline void macd_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # a[0]: fast EMA, a[1]: slow EMA, a[2]: signal EMA, a[3]: slow seed sum,
    # s0.s: signal seed sum; r0: last `fast` closes (for the fast EMA's seed).
    # As TA-Lib: the fast EMA starts at the slow one's first bar, seeded with the
    # SMA of the `fast` closes ending there; all outputs share the full look-back.
    cdef int f = s.p0, sl = s.p1, g = s.p2
    cdef int64_t i = s.count
    cdef double c = b.close
    cdef double fast = s.a[0], slow = s.a[1], sig = s.a[2]
    cdef double seed = 0.0, line = NAN, sig_seed = s.s0.s
    cdef int64_t j
    cdef int q
    out[0] = NAN
    out[1] = NAN
    out[2] = NAN
    if i < sl - 1:
        if commit:
            s.a[3] += c
            ring_push(&s.r0, c)
            s.count += 1
        return
    if i == sl - 1:
        slow = (s.a[3] + c) / sl
        for q in range(f - 2, -1, -1):
            seed += ring_back(&s.r0, q)
        fast = (seed + c) / f
    else:
        fast = ((c - fast) * (2.0 / (f + 1))) + fast
        slow = ((c - slow) * (2.0 / (sl + 1))) + slow
    line = fast - slow
    j = i - (sl - 1)                  # index of this line value
    if j < g - 1:
        sig_seed += line
    elif j == g - 1:
        sig = (sig_seed + line) / g
    else:
        sig = ((line - sig) * (2.0 / (g + 1))) + sig
    if j >= g - 1:
        out[0] = line
        out[1] = sig
        out[2] = line - sig
    if commit:
        s.a[0] = fast
        s.a[1] = slow
        s.a[2] = sig
        s.s0.s = sig_seed
        s.count += 1


cdef inline void _window_push(Ring* r, KSum* sum, double* nans, double x) noexcept nogil:
    # windowed sum of the finite values plus a count of the undefined ones
    cdef bint full = r.len == r.cap
    cdef double old = ring_push(r, x)
    if full:
        if old != old:
            nans[0] -= 1
        else:
            ksum_add(sum, -old)
    if x != x:
        nans[0] += 1
    else:
        ksum_add(sum, x)


cdef inline double _window_mean_with(const Ring* r, const KSum* sum, double nans, double x,
                                     int n) noexcept nogil:
    # mean of the last n-1 held values and x; NAN if any of them is undefined
    cdef double old = 0.0
    cdef double total = ksum_value(sum)
    if r.len == n:
        old = ring_oldest(r)
        if old != old:
            nans -= 1
            old = 0.0
    if nans > 0 or x != x:
        return NAN
    return (total - old + x) / n


cdef inline void stoch_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # dq[0]/dq[1]: max high / min low over the last k closed bars;
    # r0 (+ s0, a[0] undefined count): last `smooth` fast %K; r1 (+ s1, a[1]): last d slow %K
    cdef int fk = s.p0, sk = s.p1, sd = s.p2
    cdef int64_t i = s.count
    cdef double hh, ll, fast_k = NAN, slow_k = NAN, slow_d = NAN
    out[0] = NAN
    out[1] = NAN
    if i >= fk - 1:
        hh = deque_extreme(&s.dq[0], i - fk + 1)
        ll = deque_extreme(&s.dq[1], i - fk + 1)
        if hh != hh or b.high > hh:
            hh = b.high
        if ll != ll or b.low < ll:
            ll = b.low
        if hh != ll:
            fast_k = 100.0 * (b.close - ll) / (hh - ll)
        if i >= fk + sk - 2:
            slow_k = _window_mean_with(&s.r0, &s.s0, s.a[0], fast_k, sk)
            if i >= fk + sk + sd - 3:
                slow_d = _window_mean_with(&s.r1, &s.s1, s.a[1], slow_k, sd)
                out[0] = slow_k
                out[1] = slow_d
    if commit:
        deque_push(&s.dq[0], b.high)
        deque_push(&s.dq[1], b.low)
        if i >= fk - 1:
            _window_push(&s.r0, &s.s0, &s.a[0], fast_k)
        if i >= fk + sk - 2:
            _window_push(&s.r1, &s.s1, &s.a[1], slow_k)
        s.count += 1


cdef inline void change_pct_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # r0: the last n closes; x[n] is the oldest of them
    cdef double base
    out[0] = NAN
    if s.r0.len == s.p0:
        base = ring_oldest(&s.r0)
        if base != 0.0:
            out[0] = 100.0 * (b.close - base) / base
    if commit:
        ring_push(&s.r0, b.close)
        s.count += 1
