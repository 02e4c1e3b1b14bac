// The curated part of TensorKernels that is Tensor's public API, re-exported declaration by
// declaration: the runtime (threads, the BLAS report), raw `sgemm`, the op enums and the
// geometry/coefficient structs that the `Backend` protocols take. A user of `Tensor` names these
// without importing TensorKernels. The kernels themselves (`AttentionKernels`, `ConvKernels`,
// `FastMath`, `Scalar`, ...) are not re-exported: a target that needs them (a backend built on the CPU
// kernels, the kernel tests) imports TensorKernels and declares the `TensorKernels` product in its
// manifest. The list is documented in docs/tensor.md ("Public surface").

// Runtime: kernel threads (`threads`, `setThreads`, the task-local `$threadsOverride`), the BLAS
// report (`blas()`, `requireBLAS()`), `parallelFor`; raw row-major `BLAS.sgemm`,
// `BLAS.withSingleThread` and the `BLAS.Unavailable` error.
@_exported import enum TensorKernels.ComputeRuntime
@_exported import enum TensorKernels.BLAS

// Op enums (ElementwiseBackend, ReductionBackend, `Tensor.resize`).
@_exported import enum TensorKernels.UnaryOp
@_exported import enum TensorKernels.BinaryOp
@_exported import enum TensorKernels.ReduceOp
@_exported import enum TensorKernels.InterpolationMode

// Geometry and per-step coefficients (AttentionBackend, ConvBackend, OptimizerBackend).
@_exported import struct TensorKernels.AttentionDims
@_exported import struct TensorKernels.AttentionMaskSpec
@_exported import struct TensorKernels.Conv2dGeometry
@_exported import struct TensorKernels.Pool2dGeometry
@_exported import struct TensorKernels.Resize2dGeometry
@_exported import struct TensorKernels.ResampleTable
@_exported import struct TensorKernels.AdamWCoefficients
@_exported import struct TensorKernels.SGDCoefficients
