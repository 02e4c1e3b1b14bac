import Dispatch
import Tensor

/// The smoke run: square single-precision GEMMs through `Tensor.matmul`, timed, best of several.
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
        var rng = RandomGenerator(seed: 0)
        let a = Tensor.uniform([n, n], low: -1, high: 1, generator: &rng)
        let b = Tensor.uniform([n, n], low: -1, high: 1, generator: &rng)
        var rates: [Double] = []
        for rep in 0...repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try Tensor.matmul(a, b)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            if rep > 0 { rates.append(2 * Double(n) * Double(n) * Double(n) / dt * 1e-9) }
        }
        rates.sort()
        return Report(size: n, bestGFLOPS: rates.last!, medianGFLOPS: rates[rates.count / 2], blas: blas)
    }
}
