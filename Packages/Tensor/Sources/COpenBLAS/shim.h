#pragma once
// OpenBLAS's own cblas.h (pkg-config `openblas` puts its directory first on the include path);
// it also declares openblas_get_corename, openblas_get_config and openblas_set_num_threads.
#include <cblas.h>
