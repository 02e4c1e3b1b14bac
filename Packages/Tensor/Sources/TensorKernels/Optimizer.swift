// CPU kernels for the optimizer phase of a training step: the sum of squares behind the global
// gradient norm, and the fused AdamW and SGD element updates. Each splits its tensor across
// `ComputeRuntime.threads` like every other kernel, and gives bit-identical results for any thread
// count: the updates are elementwise, and the sum of squares is taken over fixed blocks whose
// boundaries do not depend on the chunking.

/// The coefficients of one fused AdamW element update (see `OptimizerKernels.adamW`).
public struct AdamWCoefficients: Equatable, Sendable {
    /// Multiplies the parameter before the update: `1 - lr * wd` (PyTorch) or `1 - s_t * wd`.
    public var decay: Float
    public var beta1: Float
    public var beta2: Float
    /// `lr / (1 - beta1^t)`.
    public var stepSize: Float
    /// `sqrt(1 - beta2^t)`.
    public var bc2Sqrt: Float
    public var eps: Float
    /// Multiplies the gradient as it is read (the clipping coefficient; 1 leaves it exact).
    public var gradientScale: Float

    public init(
        decay: Float, beta1: Float, beta2: Float, stepSize: Float, bc2Sqrt: Float, eps: Float,
        gradientScale: Float = 1
    ) {
        self.decay = decay
        self.beta1 = beta1
        self.beta2 = beta2
        self.stepSize = stepSize
        self.bc2Sqrt = bc2Sqrt
        self.eps = eps
        self.gradientScale = gradientScale
    }
}

/// The coefficients of one fused SGD element update (see `OptimizerKernels.sgd`).
public struct SGDCoefficients: Equatable, Sendable {
    public var learningRate: Float
    public var weightDecay: Float
    public var momentum: Float
    /// `1 - dampening` (rounded once from the configured value, as PyTorch passes it).
    public var gradientWeight: Float
    public var nesterov: Bool
    /// Multiplies the gradient as it is read (the clipping coefficient).
    public var gradientScale: Float

    public init(
        learningRate: Float, weightDecay: Float = 0, momentum: Float = 0, gradientWeight: Float = 1,
        nesterov: Bool = false, gradientScale: Float = 1
    ) {
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.momentum = momentum
        self.gradientWeight = gradientWeight
        self.nesterov = nesterov
        self.gradientScale = gradientScale
    }
}

/// The optimizer kernels of the CPU backend.
public enum OptimizerKernels {
    /// Elements per block of the sum of squares (16 KiB of floats). Fixed, so that the summation
    /// order, and therefore the result, is the same for any thread count.
    public static let sumBlock = 4096

    /// Sum of `x[i]^2` for `i < n` in Double, in this order: `n` is cut into blocks of `sumBlock`
    /// elements; within a block, lane `j` of 8 accumulates the squares of elements `j, j + 8, ...`
    /// (each converted to Double, then squared), the 8 lanes are added in lane order, then the
    /// block's tail (fewer than 8 elements) in index order; the block partials are added in block
    /// order. Blocks run on `ComputeRuntime.threads` threads; the result does not depend on it.
    public static func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        if n == 0 { return 0 }
        let blocks = (n + sumBlock - 1) / sumBlock
        if blocks == 1 { return blockSumOfSquares(x, n) }
        let partials = UnsafeMutablePointer<Double>.allocate(capacity: blocks)
        defer { partials.deallocate() }
        ComputeRuntime.parallelFor(blocks, grain: 8) { r in
            for b in r {
                let lo = b * sumBlock
                partials[b] = blockSumOfSquares(x + lo, min(sumBlock, n - lo))
            }
        }
        var total = 0.0
        for b in 0..<blocks { total += partials[b] }
        return total
    }

    @inline(__always)
    static func blockSumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        var lanes = SIMD8<Double>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let f = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            let d = SIMD8<Double>(
                Double(f[0]), Double(f[1]), Double(f[2]), Double(f[3]), Double(f[4]), Double(f[5]),
                Double(f[6]), Double(f[7]))
            lanes += d * d
            i += 8
        }
        var s = 0.0
        for j in 0..<8 { s += lanes[j] }
        while i < n {
            let d = Double(x[i])
            s += d * d
            i += 1
        }
        return s
    }

    /// The fused AdamW update of `n` elements, in `torch.optim.AdamW`'s order of float operations
    /// (with `g = gradient[i] * gradientScale`):
    /// `p *= decay; m += (1 - b1) (g - m); v = b2 v + (1 - b2) g g; p += (-stepSize m) / (sqrt(v) / bc2Sqrt + eps)`.
    /// Reads p, g, m, v once and writes p, m, v once; elementwise, so any chunking gives the same bits.
    public static func adamW(
        _ P: UnsafeMutablePointer<Float>, gradient G: UnsafePointer<Float>, expAvg M: UnsafeMutablePointer<Float>,
        expAvgSq V: UnsafeMutablePointer<Float>, _ n: Int, _ c: AdamWCoefficients
    ) {
        // Constants in locals and chunk-relative pointers, so the loop vectorises.
        let w1 = 1 - c.beta1, w2 = 1 - c.beta2, b2 = c.beta2, decay = c.decay
        let negStep = -c.stepSize, bc2 = c.bc2Sqrt, eps = c.eps, scale = c.gradientScale
        ComputeRuntime.parallelFor(n, grain: 1 << 15) { r in
            let g = G + r.lowerBound, m = M + r.lowerBound, v = V + r.lowerBound, p = P + r.lowerBound
            let count = r.count
            var i = 0
            // 8 lanes at a time (explicit SIMD: four aliasing pointers defeat the auto-vectoriser);
            // each lane does exactly the scalar tail's operations.
            while i + 8 <= count {
                let gi = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self) * scale
                let m0 = UnsafeRawPointer(m + i).loadUnaligned(as: SIMD8<Float>.self)
                let v0 = UnsafeRawPointer(v + i).loadUnaligned(as: SIMD8<Float>.self)
                let pi = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) * decay
                let mi = m0 + w1 * (gi - m0)
                let vi = v0 * b2 + w2 * gi * gi
                let denom = vi.squareRoot() / bc2 + eps
                UnsafeMutableRawPointer(m + i).storeBytes(of: mi, as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(v + i).storeBytes(of: vi, as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(p + i).storeBytes(of: pi + negStep * mi / denom, as: SIMD8<Float>.self)
                i += 8
            }
            while i < count {
                let gi = g[i] * scale
                let pi = p[i] * decay
                // lerp as m + w (g - m); addcmul as (s * g) * g; addcdiv as (s * m) / denom.
                let mi = m[i] + w1 * (gi - m[i])
                let vi = v[i] * b2 + w2 * gi * gi
                m[i] = mi
                v[i] = vi
                let denom = vi.squareRoot() / bc2 + eps
                p[i] = pi + negStep * mi / denom
                i += 1
            }
        }
    }

    /// The fused SGD update of `n` elements, in `torch.optim.SGD`'s order of float operations (with
    /// `g = gradient[i] * gradientScale`): `d = g + wd p`; with momentum (a buffer given and
    /// `momentum != 0`), `buf = d` when `firstStep`, else `buf = gradientWeight d + momentum buf`, and `d = nesterov ? d + momentum buf : buf`;
    /// `p = -lr d + p`.
    public static func sgd(
        _ P: UnsafeMutablePointer<Float>, gradient G: UnsafePointer<Float>,
        momentumBuffer B: UnsafeMutablePointer<Float>?, firstStep: Bool, _ n: Int, _ c: SGDCoefficients
    ) {
        let scale = c.gradientScale, wd = c.weightDecay, mu = c.momentum, w = c.gradientWeight
        let negLR = -c.learningRate, nesterov = c.nesterov
        ComputeRuntime.parallelFor(n) { r in
            for i in r {
                var d = G[i] * scale
                if wd != 0 { d = wd * P[i] + d }
                if let B, mu != 0 {
                    let buf = firstStep ? d : w * d + mu * B[i]
                    B[i] = buf
                    d = nesterov ? mu * buf + d : buf
                }
                P[i] = negLR * d + P[i]
            }
        }
    }
}
