#define _GNU_SOURCE
#include "sightline_mpi.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Open MPI's C ABI: every handle is a pointer, MPI_IN_PLACE is (void *)1.
typedef void *handle;
#define SL_IN_PLACE ((void *)1)

typedef int (*init_thread_fn)(int *, char ***, int, int *);
typedef int (*flag_fn)(int *);
typedef int (*void_fn)(void);
typedef int (*comm_int_fn)(handle, int *);
typedef int (*bcast_fn)(void *, int, handle, int, handle);
typedef int (*allreduce_fn)(const void *, void *, int, handle, handle, handle);
typedef int (*reduce_scatter_block_fn)(const void *, void *, int, handle, handle, handle);
typedef int (*allgather_fn)(const void *, int, handle, void *, int, handle, handle);
typedef int (*barrier_fn)(handle);
typedef int (*abort_fn)(handle, int);
typedef int (*error_string_fn)(int, char *, int *);
typedef int (*set_errhandler_fn)(handle, handle);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sl_mpi_report report;
static init_thread_fn p_init_thread;
static flag_fn p_initialized, p_finalized;
static void_fn p_finalize;
static comm_int_fn p_comm_rank, p_comm_size;
static bcast_fn p_bcast;
static allreduce_fn p_allreduce;
static reduce_scatter_block_fn p_reduce_scatter_block;
static allgather_fn p_allgather;
static barrier_fn p_barrier;
static abort_fn p_abort;
static error_string_fn p_error_string;
static set_errhandler_fn p_set_errhandler;
static handle h_comm_world, h_errors_return;
static handle h_types[4];
static handle h_ops[3];
static const size_t type_sizes[4] = {4, 8, 1, 8};

int sl_mpi_launched(void) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", NULL};
    for (int i = 0; names[i]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return 1;
    }
    return 0;
}

static void *need(void *h, const char *name) {
    void *p = dlsym(h, name);
    if (!p && !report.error[0])
        snprintf(report.error, sizeof(report.error), "%s has no symbol %s (not Open MPI?)", report.library, name);
    return p;
}

static void load_once(void) {
    memset(&report, 0, sizeof(report));
    const char *override = getenv("SIGHTLINE_LIBMPI");
    const char *names[] = {"libmpi.so.40", "libmpi.so", NULL};
    const char *only[] = {override, NULL};
    const char **list = (override && *override) ? only : names;
    void *h = NULL;
    for (int i = 0; list[i] && !h; i++) {
        // RTLD_GLOBAL: Open MPI's components (opened by libmpi itself) resolve libmpi's symbols.
        h = dlopen(list[i], RTLD_NOW | RTLD_GLOBAL);
        if (h) snprintf(report.library, sizeof(report.library), "%s", list[i]);
    }
    if (!h) {
        const char *err = dlerror();
        snprintf(report.error, sizeof(report.error),
                 "could not dlopen %s (%s); install Open MPI (apt: openmpi-bin libopenmpi-dev)", list[0],
                 err ? err : "unknown error");
        return;
    }
    p_init_thread = (init_thread_fn)need(h, "MPI_Init_thread");
    p_initialized = (flag_fn)need(h, "MPI_Initialized");
    p_finalized = (flag_fn)need(h, "MPI_Finalized");
    p_finalize = (void_fn)need(h, "MPI_Finalize");
    p_comm_rank = (comm_int_fn)need(h, "MPI_Comm_rank");
    p_comm_size = (comm_int_fn)need(h, "MPI_Comm_size");
    p_bcast = (bcast_fn)need(h, "MPI_Bcast");
    p_allreduce = (allreduce_fn)need(h, "MPI_Allreduce");
    p_reduce_scatter_block = (reduce_scatter_block_fn)need(h, "MPI_Reduce_scatter_block");
    p_allgather = (allgather_fn)need(h, "MPI_Allgather");
    p_barrier = (barrier_fn)need(h, "MPI_Barrier");
    p_abort = (abort_fn)need(h, "MPI_Abort");
    p_error_string = (error_string_fn)need(h, "MPI_Error_string");
    p_set_errhandler = (set_errhandler_fn)need(h, "MPI_Comm_set_errhandler");
    h_comm_world = need(h, "ompi_mpi_comm_world");
    h_errors_return = need(h, "ompi_mpi_errors_return");
    h_types[SL_MPI_FLOAT] = need(h, "ompi_mpi_float");
    h_types[SL_MPI_DOUBLE] = need(h, "ompi_mpi_double");
    h_types[SL_MPI_BYTE] = need(h, "ompi_mpi_byte");
    h_types[SL_MPI_INT64] = need(h, "ompi_mpi_int64_t");
    h_ops[SL_MPI_SUM] = need(h, "ompi_mpi_op_sum");
    h_ops[SL_MPI_MAX] = need(h, "ompi_mpi_op_max");
    h_ops[SL_MPI_MIN] = need(h, "ompi_mpi_op_min");
    if (report.error[0]) return;
    report.loaded = 1;
}

const sl_mpi_report *sl_mpi_load(void) {
    pthread_once(&once, load_once);
    return &report;
}

#define REQUIRE_LOADED() \
    if (!sl_mpi_load()->loaded) return -1

int sl_mpi_init(int required, int *provided) {
    REQUIRE_LOADED();
    int rc = p_init_thread(NULL, NULL, required, provided);
    // Errors on the world communicator come back as codes (the default handler aborts the job).
    if (rc == 0) rc = p_set_errhandler(h_comm_world, h_errors_return);
    return rc;
}

int sl_mpi_is_initialized(void) {
    if (!sl_mpi_load()->loaded) return 0;
    int flag = 0;
    p_initialized(&flag);
    return flag;
}

int sl_mpi_is_finalized(void) {
    if (!sl_mpi_load()->loaded) return 0;
    int flag = 0;
    p_finalized(&flag);
    return flag;
}

int sl_mpi_finalize(void) {
    REQUIRE_LOADED();
    return p_finalize();
}

int sl_mpi_rank(int *rank) {
    REQUIRE_LOADED();
    return p_comm_rank(h_comm_world, rank);
}

int sl_mpi_size(int *size) {
    REQUIRE_LOADED();
    return p_comm_size(h_comm_world, size);
}

// MPI counts are int: larger buffers go in chunks.
static const int64_t chunk = INT_MAX / 2;

int sl_mpi_bcast(void *buffer, int64_t count, sl_mpi_type type, int root) {
    REQUIRE_LOADED();
    char *p = buffer;
    for (int64_t done = 0; done < count; done += chunk) {
        int n = (int)(count - done < chunk ? count - done : chunk);
        int rc = p_bcast(p + done * type_sizes[type], n, h_types[type], root, h_comm_world);
        if (rc) return rc;
    }
    return 0;
}

int sl_mpi_allreduce(const void *send, void *recv, int64_t count, sl_mpi_type type, sl_mpi_op op) {
    REQUIRE_LOADED();
    char *r = recv;
    const char *s = send;
    for (int64_t done = 0; done < count; done += chunk) {
        int n = (int)(count - done < chunk ? count - done : chunk);
        size_t off = (size_t)done * type_sizes[type];
        int rc = p_allreduce(s ? (const void *)(s + off) : SL_IN_PLACE, r + off, n, h_types[type], h_ops[op],
                             h_comm_world);
        if (rc) return rc;
    }
    return 0;
}

int sl_mpi_reduce_scatter_block(const void *send, void *recv, int64_t count, sl_mpi_type type, sl_mpi_op op) {
    REQUIRE_LOADED();
    if (count > INT_MAX) return -2;
    return p_reduce_scatter_block(send ? send : SL_IN_PLACE, recv, (int)count, h_types[type], h_ops[op],
                                  h_comm_world);
}

int sl_mpi_allgather(const void *send, void *recv, int64_t count, sl_mpi_type type) {
    REQUIRE_LOADED();
    if (count > INT_MAX) return -2;
    if (!send) return p_allgather(SL_IN_PLACE, 0, h_types[type], recv, (int)count, h_types[type], h_comm_world);
    return p_allgather(send, (int)count, h_types[type], recv, (int)count, h_types[type], h_comm_world);
}

int sl_mpi_barrier(void) {
    REQUIRE_LOADED();
    return p_barrier(h_comm_world);
}

int sl_mpi_abort(int code) {
    REQUIRE_LOADED();
    return p_abort(h_comm_world, code);
}

void sl_mpi_error_string(int code, char *buffer, size_t length) {
    if (!length) return;
    buffer[0] = 0;
    if (code == -1) {
        snprintf(buffer, length, "MPI is not loaded: %s", sl_mpi_load()->error);
        return;
    }
    if (code == -2) {
        snprintf(buffer, length, "count over INT_MAX elements");
        return;
    }
    if (!sl_mpi_load()->loaded) return;
    char text[512] = {0};  // MPI_MAX_ERROR_STRING is 256 in Open MPI
    int n = 0;
    if (p_error_string(code, text, &n) == 0) snprintf(buffer, length, "%s (MPI error %d)", text, code);
    else snprintf(buffer, length, "MPI error %d", code);
}
