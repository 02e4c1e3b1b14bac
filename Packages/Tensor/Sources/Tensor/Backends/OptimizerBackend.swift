import TensorKernels

/// The optimizer phase of a training step: the sum of squares behind the global gradient norm and
/// the fused parameter updates. Optim calls these through `Backends.current`, so another device
/// implements them here and Optim is unchanged.
public protocol OptimizerBackend {
    /// The sum of `x[i]^2` for `i < n`, accumulated in Double. Must not depend on the thread count
    /// (the CPU order is documented at `OptimizerKernels.sumOfSquares`).
    func sumOfSquares(_ x: ConstPtr, _ n: Int) -> Double

    /// The fused AdamW update of `n` elements of parameter `p` with its moments `m` and `v`, in place
    /// (`AdamWCoefficients` documents the formula and its order of float operations).
    func adamW(
        parameter p: MutPtr, gradient g: ConstPtr, expAvg m: MutPtr, expAvgSq v: MutPtr, _ n: Int,
        _ c: AdamWCoefficients)

    /// The fused SGD update of `n` elements, in place; `momentumBuffer` nil when momentum is off.
    func sgd(
        parameter p: MutPtr, gradient g: ConstPtr, momentumBuffer: MutPtr?, firstStep: Bool, _ n: Int,
        _ c: SGDCoefficients)
}

extension CPUBackend {
    public func sumOfSquares(_ x: ConstPtr, _ n: Int) -> Double { OptimizerKernels.sumOfSquares(x, n) }

    public func adamW(
        parameter p: MutPtr, gradient g: ConstPtr, expAvg m: MutPtr, expAvgSq v: MutPtr, _ n: Int,
        _ c: AdamWCoefficients
    ) {
        OptimizerKernels.adamW(p, gradient: g, expAvg: m, expAvgSq: v, n, c)
    }

    public func sgd(
        parameter p: MutPtr, gradient g: ConstPtr, momentumBuffer: MutPtr?, firstStep: Bool, _ n: Int,
        _ c: SGDCoefficients
    ) {
        OptimizerKernels.sgd(p, gradient: g, momentumBuffer: momentumBuffer, firstStep: firstStep, n, c)
    }
}

// The reference twins: plain sequential loops. The updates use the same float operations as the CPU
// kernels (they are PyTorch's, and the trajectories are compared bit for bit); the sum of squares is
// a plain sequential Double sum.
extension ReferenceBackend {
    public func sumOfSquares(_ x: ConstPtr, _ n: Int) -> Double {
        var s = 0.0
        for i in 0..<n { s += Double(x[i]) * Double(x[i]) }
        return s
    }

    public func adamW(
        parameter p: MutPtr, gradient g: ConstPtr, expAvg m: MutPtr, expAvgSq v: MutPtr, _ n: Int,
        _ c: AdamWCoefficients
    ) {
        for i in 0..<n {
            let gi = g[i] * c.gradientScale
            let pi = p[i] * c.decay
            let mi = m[i] + (1 - c.beta1) * (gi - m[i])
            let vi = v[i] * c.beta2 + (1 - c.beta2) * gi * gi
            m[i] = mi
            v[i] = vi
            p[i] = pi + (-c.stepSize) * mi / (vi.squareRoot() / c.bc2Sqrt + c.eps)
        }
    }

    public func sgd(
        parameter p: MutPtr, gradient g: ConstPtr, momentumBuffer: MutPtr?, firstStep: Bool, _ n: Int,
        _ c: SGDCoefficients
    ) {
        for i in 0..<n {
            var d = g[i] * c.gradientScale
            if c.weightDecay != 0 { d = c.weightDecay * p[i] + d }
            if let b = momentumBuffer, c.momentum != 0 {
                b[i] = firstStep ? d : c.gradientWeight * d + c.momentum * b[i]
                d = c.nesterov ? c.momentum * b[i] + d : b[i]
            }
            p[i] = -c.learningRate * d + p[i]
        }
    }
}
