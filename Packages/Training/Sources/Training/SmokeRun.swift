import Dispatch
import Tensor

/// The smoke run: square single-precision GEMMs through Tensor, timed, best of several.
public enum SmokeRun {
    /// What one smoke run measured.
    public struct Report: CustomStringConvertible, Sendable {
        /// Matrix side n of the n x n x n GEMM.
        public var size: Int
        /// Best GFLOP/s over the repetitions (2 n^3 flops per GEMM).
        public var bestGFLOPS: Double
        /// Median GFLOP/s over the repetitions.
        public var medianGFLOPS: Double
        /// The BLAS library, kernel and thread count in use.
        public var blas: ComputeRuntime.BLASReport

        public var description: String {
            let best = (bestGFLOPS * 10).rounded() / 10
            let median = (medianGFLOPS * 10).rounded() / 10
            return "sgemm \(size)x\(size)x\(size): best \(best) GFLOP/s, median \(median) GFLOP/s"
                + " | kernel \(blas.kernel), \(blas.threads) thread(s)"
        }
    }

    /// Multiplies two random `size x size` matrices `repeats` times (after one warm-up).
    public static func gemm(size n: Int, repeats: Int) throws -> Report {
        let blas = ComputeRuntime.blas()
        let a = [Float](repeating: 0.5, count: n * n)
        let b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var rates: [Double] = []
        for rep in 0...repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            BLAS.sgemm(transA: false, transB: false, m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: &c, ldc: n)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            if rep > 0 { rates.append(2 * Double(n) * Double(n) * Double(n) / dt * 1e-9) }
        }
        rates.sort()
        return Report(size: n, bestGFLOPS: rates.last!, medianGFLOPS: rates[rates.count / 2], blas: blas)
    }
}
