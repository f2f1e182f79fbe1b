# Fixed-capacity ring buffers, monotonic deques and compensated sums: the
# building blocks every indicator state is made of. All O(1) per update
# (deques amortised), no allocation after init.

from libc.math cimport NAN, fabs
from libc.stdint cimport int64_t
from alerts_core.memory cimport mem_alloc, mem_free


ctypedef struct Ring:
    double* buf     # cap slots
    int cap         # capacity (0: unused)
    int head        # index of the next write
    int len         # number of values held (<= cap)


cdef inline int ring_init(Ring* r, int cap) noexcept nogil:
    """Allocate cap slots; returns -1 on allocation failure."""
    r.head = 0
    r.len = 0
    r.cap = cap
    r.buf = NULL
    if cap > 0:
        r.buf = <double*>mem_alloc(cap * sizeof(double))
        if r.buf == NULL:
            r.cap = 0
            return -1
    return 0


cdef inline void ring_free(Ring* r) noexcept nogil:
    mem_free(r.buf)
    r.buf = NULL
    r.cap = 0
    r.len = 0
    r.head = 0


cdef inline void ring_clear(Ring* r) noexcept nogil:
    r.len = 0
    r.head = 0


cdef inline double ring_push(Ring* r, double x) noexcept nogil:
    """Append x; returns the value pushed out (NAN when the ring was not full)."""
    cdef double old = NAN
    if r.cap == 0:
        return NAN
    if r.len == r.cap:
        old = r.buf[r.head]
    else:
        r.len += 1
    r.buf[r.head] = x
    r.head += 1
    if r.head == r.cap:
        r.head = 0
    return old


cdef inline double ring_back(const Ring* r, int k) noexcept nogil:
    """The k-th most recent value (0 = newest); NAN when not held."""
    if k < 0 or k >= r.len:
        return NAN
    cdef int i = r.head - 1 - k
    if i < 0:
        i += r.cap
    return r.buf[i]


cdef inline double ring_oldest(const Ring* r) noexcept nogil:
    return ring_back(r, r.len - 1)


# --- Neumaier-compensated running sum (add and remove stay exact to ~1 ulp) ---

ctypedef struct KSum:
    double s
    double c


cdef inline void ksum_add(KSum* k, double x) noexcept nogil:
    cdef double t = k.s + x
    if fabs(k.s) >= fabs(x):
        k.c += (k.s - t) + x
    else:
        k.c += (x - t) + k.s
    k.s = t


cdef inline double ksum_value(const KSum* k) noexcept nogil:
    return k.s + k.c


cdef inline void ksum_clear(KSum* k) noexcept nogil:
    k.s = 0.0
    k.c = 0.0


# --- Monotonic deque: max (or min) of the last `window` pushed values ---------

ctypedef struct MonoDeque:
    int64_t* idx    # push index of each held value
    double* val
    int cap         # = window
    int front       # position of the front element
    int size
    int64_t pushed  # values pushed so far
    bint is_max     # max deque (else min)


cdef inline int deque_init(MonoDeque* d, int window, bint is_max) noexcept nogil:
    d.cap = window
    d.front = 0
    d.size = 0
    d.pushed = 0
    d.is_max = is_max
    d.idx = <int64_t*>mem_alloc(window * sizeof(int64_t))
    d.val = <double*>mem_alloc(window * sizeof(double))
    if d.idx == NULL or d.val == NULL:
        return -1
    return 0


cdef inline void deque_free(MonoDeque* d) noexcept nogil:
    mem_free(d.idx)
    mem_free(d.val)
    d.idx = NULL
    d.val = NULL
    d.cap = 0
    d.size = 0


cdef inline void deque_clear(MonoDeque* d) noexcept nogil:
    d.front = 0
    d.size = 0
    d.pushed = 0


cdef inline bint _dominates(const MonoDeque* d, double a, double b) noexcept nogil:
    # a makes an older b useless
    if d.is_max:
        return a >= b
    return a <= b


cdef inline void deque_push(MonoDeque* d, double x) noexcept nogil:
    cdef int back
    cdef int64_t i = d.pushed
    # drop the back while x dominates it
    while d.size > 0:
        back = d.front + d.size - 1
        if back >= d.cap:
            back -= d.cap
        if _dominates(d, x, d.val[back]):
            d.size -= 1
        else:
            break
    # drop the front when it leaves the window
    if d.size > 0 and d.idx[d.front] <= i - d.cap:
        d.front += 1
        if d.front == d.cap:
            d.front = 0
        d.size -= 1
    back = d.front + d.size
    if back >= d.cap:
        back -= d.cap
    d.idx[back] = i
    d.val[back] = x
    d.size += 1
    d.pushed += 1


cdef inline double deque_extreme(const MonoDeque* d, int64_t since) noexcept nogil:
    """Extreme of the held values pushed at index >= since (NAN when none).

    Only the front can be older than `since` when `since` is at most one past the
    window's start, which is how the indicators call it.
    """
    cdef int pos = d.front
    cdef int n = d.size
    while n > 0 and d.idx[pos] < since:
        pos += 1
        if pos == d.cap:
            pos = 0
        n -= 1
    if n == 0:
        return NAN
    return d.val[pos]


cdef inline void ring_moments(const Ring* r, double shift, KSum* s1, KSum* s2) noexcept nogil:
    """Recompute the sums of (x - shift) and (x - shift)^2 over the ring exactly.

    Windowed variances keep running sums of shifted values; calling this every
    `cap` updates with a fresh shift (amortised O(1)) keeps the shift near the
    data and clears the residue that adding and removing leaves behind.
    """
    cdef int j
    cdef double d
    ksum_clear(s1)
    ksum_clear(s2)
    for j in range(r.len):
        d = ring_back(r, j) - shift
        ksum_add(s1, d)
        ksum_add(s2, d * d)
