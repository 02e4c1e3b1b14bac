import Foundation
import Tensor

/// GEMM GFLOP/s: raw `cblas_sgemm` (the baseline) next to `Tensor.matmul` (plain and with a transposed
/// operand read through the GEMM flag) at square sizes. Returns the best raw sgemm rate at the
/// largest size (the machine's GEMM peak in this run).
@discardableResult
func gemmSuite(_ report: Report, sizes: [Int], repeats: Int) throws -> Double {
    var peak = 0.0
    for n in sizes {
        let flops = 2 * Double(n) * Double(n) * Double(n) * 1e-9
        var g = RandomGenerator(seed: 1)
        let a = Tensor.uniform([n, n], generator: &g), b = Tensor.uniform([n, n], generator: &g)
        var c = [Float](repeating: 0, count: n * n)
        let raw = a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                measure(repeats: repeats, work: flops) {
                    BLAS.sgemm(
                        transA: false, transB: false, m: n, n: n, k: n, a: pa.baseAddress!, lda: n,
                        b: pb.baseAddress!, ldb: n, c: &c, ldc: n)
                }
            }
        }
        let base = report.add("gemm", "cblas_sgemm \(n)^3", unit: "GFLOP/s", raw)
        peak = raw.best
        _ = report.add(
            "gemm", "Tensor.matmul \(n)^3", unit: "GFLOP/s",
            try measure(repeats: repeats, work: flops) { _ = try Tensor.matmul(a, b) }, baseline: base)
        _ = report.add(
            "gemm", "Tensor.matmul(transposeB) \(n)^3", unit: "GFLOP/s",
            try measure(repeats: repeats, work: flops) { _ = try Tensor.matmul(a, b, transposeB: true) },
            baseline: base)
    }
    return peak
}
