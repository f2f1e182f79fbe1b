# Volume: OBV (as TA-Lib, starting from the first bar's volume) and the
# volume z-score over the n closed bars before the current one.

from libc.math cimport NAN, sqrt
from alerts_core.ring cimport Ring, KSum, ring_push, ring_oldest, ksum_add, ksum_value, ring_moments
from alerts_core.series cimport Series, Bar


cdef inline void obv_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # a[0]: OBV, a[1]: previous close
    cdef double v
    if s.count == 0:
        v = b.volume
    elif b.close > s.a[1]:
        v = s.a[0] + b.volume
    elif b.close < s.a[1]:
        v = s.a[0] - b.volume
    else:
        v = s.a[0]
    out[0] = v
    if commit:
        s.a[0] = v
        s.a[1] = b.close
        s.count += 1


cdef inline void volume_z_step(Series* s, const Bar* b, double* out, bint commit) noexcept nogil:
    # r0: last n volumes; s0/s1: sums of (v - a[0]) and its square, a[0] the
    # recent volume (renewed every n bars). z = (v - mean) / population sigma;
    # sigma 0 is undefined.
    cdef int n = s.p0
    cdef double shift = s.a[0] if s.count > 0 else b.volume
    cdef double m1, m2, var, d, old
    out[0] = NAN
    if s.r0.len == n:
        m1 = ksum_value(&s.s0) / n
        m2 = ksum_value(&s.s1) / n
        var = m2 - m1 * m1
        if var > 4e-15 * m2:
            out[0] = (b.volume - (shift + m1)) / sqrt(var)
    if commit:
        s.a[0] = shift
        d = b.volume - shift
        if s.r0.len == n:
            old = ring_oldest(&s.r0) - shift
            ksum_add(&s.s0, -old)
            ksum_add(&s.s1, -old * old)
        ring_push(&s.r0, b.volume)
        ksum_add(&s.s0, d)
        ksum_add(&s.s1, d * d)
        s.count += 1
        if s.r0.len == n and s.count % n == 0:
            s.a[0] = b.volume
            ring_moments(&s.r0, b.volume, &s.s0, &s.s1)
