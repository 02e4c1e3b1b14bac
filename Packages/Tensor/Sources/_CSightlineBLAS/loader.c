#define _GNU_SOURCE
#include "sightline_blas.h"

#include <cpuid.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int, float,
                         float *, int);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);
typedef char *(*get_string_fn)(void);
typedef void (*void_fn)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sl_blas_report report;
static sgemm_fn p_sgemm;
static sgemv_fn p_sgemv;
static set_threads_fn p_set_threads;
static get_threads_fn p_get_threads;

static unsigned long long xgetbv0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

const char *sl_cpu_coretype(char *why, size_t why_len) {
    unsigned int a, b, c, d;
    int avx = 0, avx2 = 0, fma = 0, avx512f = 0, avx512bf16 = 0, osavx = 0, osavx512 = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int osxsave = (c >> 27) & 1;
        avx = (c >> 28) & 1;
        fma = (c >> 12) & 1;
        if (osxsave) {
            unsigned long long xcr0 = xgetbv0();
            osavx = (xcr0 & 0x6) == 0x6;          // XMM and YMM state
            osavx512 = (xcr0 & 0xE6) == 0xE6;     // plus opmask, ZMM_Hi256, Hi16_ZMM
        }
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        avx2 = (b >> 5) & 1;
        avx512f = (b >> 16) & 1;
        unsigned int max_sub = a;
        if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) avx512bf16 = (a >> 5) & 1;
    }
    const char *core = "Prescott";
    const char *feature = "no AVX";
    if (osavx512 && avx512f && avx512bf16) { core = "Cooperlake"; feature = "AVX512-BF16"; }
    else if (osavx512 && avx512f) { core = "SkylakeX"; feature = "AVX-512F"; }
    else if (osavx && avx2 && fma) { core = "Haswell"; feature = "AVX2+FMA"; }
    else if (osavx && avx) { core = "Sandybridge"; feature = "AVX"; }
    if (why && why_len) snprintf(why, why_len, "cpuid reports %s", feature);
    return core;
}

int sl_available_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    return 1;
}

static void copy_str(char *dst, size_t cap, const char *src) {
    if (!src) src = "";
    snprintf(dst, cap, "%s", src);
}

static void load_once(void) {
    memset(&report, 0, sizeof(report));
    char why[256] = {0};
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user && *user) {
        snprintf(report.reason, sizeof(report.reason), "OPENBLAS_CORETYPE=%s was set by the user", user);
    } else {
        const char *core = sl_cpu_coretype(why, sizeof(why));
        copy_str(report.chosen, sizeof(report.chosen), core);
        setenv("OPENBLAS_CORETYPE", core, 0);
        snprintf(report.reason, sizeof(report.reason), "%s -> %s (set before loading OpenBLAS)", why, core);
    }
    // Was the library already loaded (linked by the program, or opened by someone else)?
    void *already = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
    const char *names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0", NULL};
    // SIGHTLINE_OPENBLAS names the one library file to open instead (a build elsewhere; the tests
    // point it at a missing file to check the error a machine without OpenBLAS gets).
    const char *override = getenv("SIGHTLINE_OPENBLAS");
    const char *only[] = {override, NULL};
    if (override && *override) {
        names[0] = NULL;
        already = NULL;
    }
    const char **list = (override && *override) ? only : names;
    void *h = NULL;
    for (int i = 0; list[i] && !h; i++) {
        h = dlopen(list[i], RTLD_NOW | RTLD_GLOBAL);
        if (h) copy_str(report.library, sizeof(report.library), list[i]);
    }
    if (!h) {
        const char *err = dlerror();
        snprintf(report.error, sizeof(report.error),
                 "could not dlopen %s (%s); install libopenblas0 (apt: libopenblas-dev)",
                 list[0] ? list[0] : "libopenblas.so.0", err ? err : "unknown error");
        return;
    }
    p_sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
    p_sgemv = (sgemv_fn)dlsym(h, "cblas_sgemv");
    p_set_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
    p_get_threads = (get_threads_fn)dlsym(h, "openblas_get_num_threads");
    get_string_fn corename = (get_string_fn)dlsym(h, "openblas_get_corename");
    get_string_fn config = (get_string_fn)dlsym(h, "openblas_get_config");
    if (!p_sgemm) {
        snprintf(report.error, sizeof(report.error), "%s has no cblas_sgemm", report.library);
        return;
    }
    // If the library had been loaded before us (a program that links OpenBLAS itself), its
    // constructor already chose a kernel. DYNAMIC_ARCH builds export their dispatch reset and
    // init functions; use them to re-select with the core type now in the environment.
    if (already && !(user && *user) && corename) {
        const char *now = corename();
        if (now && strcasecmp(now, report.chosen) != 0) {
            void_fn quit = (void_fn)dlsym(h, "gotoblas_dynamic_quit");
            void_fn init = (void_fn)dlsym(h, "gotoblas_dynamic_init");
            if (quit && init) {
                quit();
                init();
                size_t len = strlen(report.reason);
                snprintf(report.reason + len, sizeof(report.reason) - len,
                         "; library was already loaded with %s, re-initialised", now);
            }
        }
        dlclose(already);
    } else if (already) {
        dlclose(already);
    }
    if (corename) copy_str(report.corename, sizeof(report.corename), corename());
    if (config) copy_str(report.config, sizeof(report.config), config());
    report.loaded = 1;
}

const sl_blas_report *sl_blas_load(void) {
    pthread_once(&once, load_once);
    return &report;
}

int sl_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a,
             int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    if (!sl_blas_load()->loaded) return -1;
    p_sgemm(order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return 0;
}

int sl_sgemv(int order, int trans, int m, int n, float alpha, const float *a, int lda,
             const float *x, int incx, float beta, float *y, int incy) {
    if (!sl_blas_load()->loaded || !p_sgemv) return -1;
    p_sgemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
    return 0;
}

void sl_blas_set_threads(int n) {
    sl_blas_load();
    if (p_set_threads && n > 0) p_set_threads(n);
}

int sl_blas_get_threads(void) {
    sl_blas_load();
    return p_get_threads ? p_get_threads() : 0;
}
