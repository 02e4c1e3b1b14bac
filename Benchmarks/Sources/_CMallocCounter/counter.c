// A minimal allocator interposer: the executable's own malloc family takes precedence over libc's
// for every library in the process; each wrapper counts, then forwards to glibc's implementation.
#define _GNU_SOURCE
#include "malloc_counter.h"
#include <errno.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static uint64_t calls, bytes;

static inline void count(size_t n) {
    __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&bytes, n, __ATOMIC_RELAXED);
}

void *malloc(size_t n) { count(n); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count(a * b); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count(n); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t al, size_t n) { count(n); return __libc_memalign(al, n); }
void *aligned_alloc(size_t al, size_t n) { count(n); return __libc_memalign(al, n); }
int posix_memalign(void **out, size_t al, size_t n) {
    count(n);
    void *p = __libc_memalign(al, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

uint64_t sl_malloc_calls(void) { return __atomic_load_n(&calls, __ATOMIC_RELAXED); }
uint64_t sl_malloc_bytes(void) { return __atomic_load_n(&bytes, __ATOMIC_RELAXED); }
