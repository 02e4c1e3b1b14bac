import _CSightlineBLAS

/// Single-precision GEMM through OpenBLAS: `C = alpha * op(A) * op(B) + beta * C`, row-major.
public enum BLAS {
    /// Errors from the BLAS layer.
    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String
    }

    /// `C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C`, all row-major with the given leading
    /// dimensions. `transA`/`transB` read A or B transposed without copying.
    @inlinable
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        ComputeRuntime.ensureBLASThreads()
        let rc = sl_sgemm(
            Int32(SL_ROW_MAJOR), Int32(transA ? SL_TRANS : SL_NO_TRANS),
            Int32(transB ? SL_TRANS : SL_NO_TRANS), Int32(m), Int32(n), Int32(k), alpha, a,
            Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        precondition(rc == 0, "OpenBLAS is not available: \(ComputeRuntime.blas().error)")
    }
}

extension BLAS {
    /// Runs `body` with OpenBLAS on one thread (for many small GEMMs spread over our own threads),
    /// then restores the shared thread setting.
    public static func withSingleThread<R>(_ body: () throws -> R) rethrows -> R {
        sl_blas_set_threads(1)
        defer { sl_blas_set_threads(Int32(ComputeRuntime.threads)) }
        return try body()
    }
}
