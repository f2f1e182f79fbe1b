# Volatility and ranges: Bollinger Bands (population sigma), ATR (Wilder),
# highest/lowest/Donchian over the n closed bars before the current one.

from libc.math cimport NAN, sqrt, fabs
from libc.stdint cimport int64_t
from alerts_core.ring cimport (Ring, KSum, ring_push, ring_oldest, ksum_add, ksum_value,
                               deque_push, deque_extreme, ring_moments)
from alerts_core.series cimport Series, Bar, K_LOWEST


cdef inline void bb_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # r0: last n closes; sums of (x - a[0]) in s0 and of its square in s1, a[0]
    # being a recent close (a shift that keeps the variance exact; renewed, with the
    # sums recomputed, every n bars).
    # outputs: upper, middle, lower, pct_b, width
    cdef int n = s.p0
    cdef bint full = s.r0.len == n
    cdef double c = b.close
    cdef double shift
    cdef double d, old = 0.0, m1, m2, var, sd, mid, up, lo
    cdef int q
    if s.count == 0 and s.r0.len == 0:
        shift = c
    else:
        shift = s.a[0]
    d = c - shift
    if full:
        old = ring_oldest(&s.r0) - shift
    for q in range(5):
        out[q] = NAN
    if s.r0.len + 1 >= n:
        m1 = (ksum_value(&s.s0) - old + d) / n
        m2 = (ksum_value(&s.s1) - old * old + d * d) / n
        var = m2 - m1 * m1
        sd = sqrt(var) if var > 0.0 else 0.0
        mid = shift + m1
        up = mid + s.k * sd
        lo = mid - s.k * sd
        out[0] = up
        out[1] = mid
        out[2] = lo
        if up > lo:
            out[3] = (c - lo) / (up - lo)
        if mid != 0.0:
            out[4] = (up - lo) / mid
    if commit:
        s.a[0] = shift
        ring_push(&s.r0, c)
        if full:
            ksum_add(&s.s0, -old)
            ksum_add(&s.s1, -old * old)
        ksum_add(&s.s0, d)
        ksum_add(&s.s1, d * d)
        s.count += 1
        if full and s.count % n == 0:
            s.a[0] = c
            ring_moments(&s.r0, c, &s.s0, &s.s1)


cdef inline void atr_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # a[0]: previous close; a[1]: seed sum of true ranges, then the ATR
    cdef int n = s.p0
    cdef int64_t i = s.count
    cdef double tr, v, x
    out[0] = NAN
    if i == 0:
        if commit:
            s.a[0] = b.close
            s.count += 1
        return
    tr = b.high - b.low
    x = fabs(s.a[0] - b.high)
    if x > tr:
        tr = x
    x = fabs(b.low - s.a[0])
    if x > tr:
        tr = x
    if i < n:
        v = s.a[1] + tr
    elif i == n:
        v = (s.a[1] + tr) / n
        out[0] = v
    else:
        v = ((s.a[1] * (n - 1)) + tr) / n
        out[0] = v
    if commit:
        s.a[0] = b.close
        s.a[1] = v
        s.count += 1


cdef inline void extremes_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # highest(n), lowest(n), donchian(n): over the n closed bars BEFORE this one,
    # so a breakout can cross them. dq[0]: max of highs, dq[1]: min of lows.
    # outputs: highest -> [hi]; lowest -> [lo]; donchian -> [upper, middle, lower]
    cdef int n = s.p0
    cdef double hi = NAN, lo = NAN
    if s.count >= n:
        hi = deque_extreme(&s.dq[0], s.count - n)
        lo = deque_extreme(&s.dq[1], s.count - n)
    if s.n_out == 3:
        out[0] = hi
        out[1] = (hi + lo) / 2.0
        out[2] = lo
    elif s.kind == K_LOWEST:
        out[0] = lo
    else:
        out[0] = hi
    if commit:
        deque_push(&s.dq[0], b.high)
        deque_push(&s.dq[1], b.low)
        s.count += 1
