import Foundation
import Tensor

/// GEMM GFLOP/s: raw `cblas_sgemm` (the baseline) at square sizes.
func gemmSuite(_ report: Report, sizes: [Int], repeats: Int) {
    for n in sizes {
        let a = [Float](repeating: 0.5, count: n * n)
        let b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        let flops = 2 * Double(n) * Double(n) * Double(n)
        let raw = measure(repeats: repeats, work: flops * 1e-9) {
            BLAS.sgemm(transA: false, transB: false, m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: &c, ldc: n)
        }
        _ = report.add("gemm", "cblas_sgemm \(n)^3", unit: "GFLOP/s", raw)
    }
}
