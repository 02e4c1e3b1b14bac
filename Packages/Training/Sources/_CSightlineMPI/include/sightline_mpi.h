#pragma once
// Open MPI, loaded at run time. Sightline does not link MPI: a process that was started by a launcher
// (mpirun, srun: their variables are in the environment) opens libmpi with dlopen and resolves the
// few entry points it uses. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are the
// addresses of global objects (ompi_mpi_comm_world, ...), so they are resolved with dlsym as well;
// no MPI header is needed at build time. A single process never touches any of this.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The element types and reductions the collectives use.
typedef enum { SL_MPI_FLOAT = 0, SL_MPI_DOUBLE = 1, SL_MPI_BYTE = 2, SL_MPI_INT64 = 3 } sl_mpi_type;
typedef enum { SL_MPI_SUM = 0, SL_MPI_MAX = 1, SL_MPI_MIN = 2 } sl_mpi_op;

/// What `sl_mpi_load` found. Strings are NUL-terminated and owned by the loader.
typedef struct {
    int loaded;            // 1 when the library and every entry point were found
    char library[256];     // the file that was opened
    char error[512];       // when loaded == 0: what failed
} sl_mpi_report;

/// Whether the environment says this process was started by an MPI launcher (Open MPI's mpirun,
/// PMIx, Slurm's srun with PMI): OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK or PMI_SIZE is set.
int sl_mpi_launched(void);

/// Opens libmpi once (thread-safe); later calls return the same report. SIGHTLINE_LIBMPI names the one
/// file to open instead of the default names.
const sl_mpi_report *sl_mpi_load(void);

/// MPI_Init_thread(required). Writes the provided level (0 single ... 3 multiple) to `provided`.
/// Returns an MPI error code (0 = success) or -1 when MPI is not loaded.
int sl_mpi_init(int required, int *provided);
/// MPI_Initialized / MPI_Finalized flags (0 when not loaded).
int sl_mpi_is_initialized(void);
int sl_mpi_is_finalized(void);
int sl_mpi_finalize(void);
/// Rank and size of MPI_COMM_WORLD.
int sl_mpi_rank(int *rank);
int sl_mpi_size(int *size);
/// Collectives on MPI_COMM_WORLD. `count` elements of `type`; `send == NULL` means in place.
int sl_mpi_bcast(void *buffer, int64_t count, sl_mpi_type type, int root);
int sl_mpi_allreduce(const void *send, void *recv, int64_t count, sl_mpi_type type, sl_mpi_op op);
/// recv (count) <- the sum over ranks of send[rank * count ..< (rank + 1) * count].
int sl_mpi_reduce_scatter_block(const void *send, void *recv, int64_t count, sl_mpi_type type, sl_mpi_op op);
/// recv (count * size) <- every rank's send (count); send == NULL: in place (this rank's block of recv).
int sl_mpi_allgather(const void *send, void *recv, int64_t count, sl_mpi_type type);
int sl_mpi_barrier(void);
/// MPI_Abort(MPI_COMM_WORLD, code): ends every rank of the job.
int sl_mpi_abort(int code);
/// MPI_Error_string of `code` into `buffer`.
void sl_mpi_error_string(int code, char *buffer, size_t length);

#ifdef __cplusplus
}
#endif
