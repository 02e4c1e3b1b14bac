#pragma once
// Loads OpenBLAS at first use, with the CPU kernel chosen before the library initialises.
//
// Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) reads OPENBLAS_CORETYPE once, in its load-time
// constructor, and does not recognise recent Intel CPUs (it falls back to the SSE3 "Prescott"
// kernel, about 5x slower). Sightline therefore does not link OpenBLAS at build time: the first
// BLAS call picks a core type from cpuid (unless the user set OPENBLAS_CORETYPE), sets it in the
// environment, then dlopen()s the library and resolves the few entry points it needs.
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Row-major/column-major and transpose codes, with the values of cblas.h.
enum { SL_ROW_MAJOR = 101, SL_COL_MAJOR = 102 };
enum { SL_NO_TRANS = 111, SL_TRANS = 112 };

/// What `sl_blas_load` did. Strings are NUL-terminated and owned by the loader.
typedef struct {
    int loaded;              // 1 when the library and cblas_sgemm were found
    char library[256];       // the file name that was opened
    char corename[64];       // openblas_get_corename() after loading
    char config[256];        // openblas_get_config()
    char chosen[64];         // the core type we asked for ("" when the user's value was kept)
    char reason[512];        // why that kernel: user setting, cpuid features, or fallback
    char error[512];         // when loaded == 0: what failed
} sl_blas_report;

/// Loads OpenBLAS once (thread-safe); later calls return the same report.
const sl_blas_report *sl_blas_load(void);

/// Picks the OpenBLAS core type for this CPU from cpuid (and the OS's XSAVE state):
/// AVX512-BF16 -> "Cooperlake", AVX-512F -> "SkylakeX", AVX2+FMA -> "Haswell", AVX -> "Sandybridge",
/// otherwise "Prescott". Writes a human-readable explanation to `why` (may be NULL).
const char *sl_cpu_coretype(char *why, size_t why_len);

/// cblas_sgemm through the loaded library. Returns 0, or -1 when OpenBLAS could not be loaded.
int sl_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha,
             const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/// cblas_sgemv through the loaded library.
int sl_sgemv(int order, int trans, int m, int n, float alpha, const float *a, int lda,
             const float *x, int incx, float beta, float *y, int incy);

/// Sets OpenBLAS's thread count (no-op when not loaded).
void sl_blas_set_threads(int n);

/// OpenBLAS's current thread count, or 0 when not loaded.
int sl_blas_get_threads(void);

/// Number of CPUs this process may run on (sched_getaffinity), at least 1.
int sl_available_cpus(void);

#ifdef __cplusplus
}
#endif
