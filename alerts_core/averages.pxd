# Moving averages: SMA, EMA (SMA-seeded, as TA-Lib), WMA. Inputs are closes.

from libc.math cimport NAN
from libc.stdint cimport int64_t
from alerts_core.ring cimport (Ring, KSum, ring_push, ring_back, ring_oldest,
                               ksum_add, ksum_value, ksum_clear)
from alerts_core.series cimport Series, Bar


cdef inline void sma_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    cdef int n = s.p0
    cdef bint full = s.r0.len == n
    cdef double c = b.close
    cdef double old = ring_oldest(&s.r0) if full else 0.0
    if s.r0.len + 1 >= n:
        out[0] = (ksum_value(&s.s0) - old + c) / n
    else:
        out[0] = NAN
    if commit:
        ring_push(&s.r0, c)
        if full:
            ksum_add(&s.s0, -old)
        ksum_add(&s.s0, c)
        s.count += 1


cdef inline void ema_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # a[0]: ema, a[1]: plain sum of the seed values (TA-Lib's seeding)
    cdef int n = s.p0
    cdef double c = b.close
    cdef double k = 2.0 / (n + 1)
    cdef int64_t m = s.count + 1
    cdef double e = NAN
    if m == n:
        e = (s.a[1] + c) / n
    elif m > n:
        e = ((c - s.a[0]) * k) + s.a[0]
    out[0] = e
    if commit:
        if m < n:
            s.a[1] += c
        else:
            s.a[0] = e
        s.count += 1


cdef inline void _wma_recompute(Series* s) noexcept nogil:
    cdef int j
    cdef int n = s.r0.len
    cdef double w = 0.0
    ksum_clear(&s.s0)
    for j in range(n):
        w += (n - j) * ring_back(&s.r0, j)
        ksum_add(&s.s0, ring_back(&s.r0, j))
    s.a[0] = w


cdef inline void wma_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # r0: last n closes; s0: their sum; a[0]: their weighted sum (weights 1..len)
    cdef int n = s.p0
    cdef int len_ = s.r0.len
    cdef bint full = len_ == n
    cdef double c = b.close
    cdef double w
    cdef double old = ring_oldest(&s.r0) if full else 0.0
    if full:
        w = s.a[0] - ksum_value(&s.s0) + n * c
    else:
        w = s.a[0] + (len_ + 1) * c
    if len_ + 1 >= n:
        out[0] = w / (n * (n + 1) / 2.0)
    else:
        out[0] = NAN
    if commit:
        ring_push(&s.r0, c)
        s.a[0] = w
        if full:
            ksum_add(&s.s0, -old)
        ksum_add(&s.s0, c)
        s.count += 1
        if full and s.count % n == 0:
            _wma_recompute(s)
