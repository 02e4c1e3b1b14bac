// The runtime (`ComputeRuntime`: threads, BLAS report), raw `BLAS.sgemm` and the kernel op enums
// are part of Tensor's public API.
@_exported import TensorKernels
