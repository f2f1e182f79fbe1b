# Allocation helpers of the core: PyMem_Raw* (usable without the GIL and seen
# by tracemalloc) with a byte counter, so Engine.stats() can show that freed
# state really is reclaimed.

from libc.stdint cimport int64_t
from libc.string cimport memset
from cpython.mem cimport PyMem_RawMalloc, PyMem_RawFree

cdef extern from *:
    """
    static long long alerts_core_bytes_in_use = 0;
    static inline void alerts_core_count(long long n) {
        __atomic_fetch_add(&alerts_core_bytes_in_use, n, __ATOMIC_RELAXED);
    }
    static inline long long alerts_core_bytes(void) {
        return __atomic_load_n(&alerts_core_bytes_in_use, __ATOMIC_RELAXED);
    }
    """
    void alerts_core_count(long long n) noexcept nogil
    long long alerts_core_bytes() noexcept nogil


cdef inline void* mem_alloc(size_t n) noexcept nogil:
    """Zeroed block of n bytes (NULL on failure); the size is kept in a header."""
    cdef size_t* p = <size_t*>PyMem_RawMalloc(n + 16)
    if p == NULL:
        return NULL
    memset(p, 0, n + 16)
    p[0] = n
    alerts_core_count(<long long>n)
    return <void*>((<char*>p) + 16)


cdef inline void* mem_alloc_raw(size_t n) noexcept nogil:
    """Like mem_alloc, without zeroing (for buffers written before they are read)."""
    cdef size_t* p = <size_t*>PyMem_RawMalloc(n + 16)
    if p == NULL:
        return NULL
    p[0] = n
    alerts_core_count(<long long>n)
    return <void*>((<char*>p) + 16)


cdef inline void mem_free(void* q) noexcept nogil:
    if q == NULL:
        return
    cdef size_t* p = <size_t*>((<char*>q) - 16)
    alerts_core_count(-<long long>p[0])
    PyMem_RawFree(p)
