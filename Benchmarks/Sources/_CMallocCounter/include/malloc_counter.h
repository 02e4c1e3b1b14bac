#pragma once
#include <stdint.h>
/// Allocation calls (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign) since start.
uint64_t sl_malloc_calls(void);
/// Bytes requested by those calls.
uint64_t sl_malloc_bytes(void);
