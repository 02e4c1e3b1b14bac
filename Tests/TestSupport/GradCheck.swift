import Tensor

/// Result of a finite-difference gradient check.
public struct GradCheckResult: CustomStringConvertible {
    /// Largest |analytic - numeric| / (atol + rtol * max(|analytic|, |numeric|)); <= 1 passes.
    public var worstRatio: Double
    /// Where the worst element is: (input index, element index, analytic, numeric).
    public var worst: (input: Int, element: Int, analytic: Double, numeric: Double)
    public var passed: Bool { worstRatio <= 1 }
    public var description: String {
        "worst input \(worst.input) element \(worst.element): analytic \(worst.analytic) vs numeric \(worst.numeric) (ratio \(worstRatio))"
    }
}

/// Checks the gradient of `f` (any output shape) at `inputs` against central differences.
///
/// The scalar checked is `L(x) = sum_i f(x)_i * r_i` with fixed random weights `r` (so every output
/// element matters), accumulated in Double. Each input element is perturbed by `eps` both ways:
/// numeric = (L(x + eps) - L(x - eps)) / (2 eps). An element passes when
/// |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|).
///
/// Float32 central differences with eps = 1e-2 have truncation error O(eps^2) and rounding error
/// about 1e-7 * |L| / eps, so the defaults are atol = 2e-3, rtol = 2e-2.
/// - Parameter only: check just these inputs (others are held fixed).
public func gradCheck(
    eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 2e-2, seed: UInt64 = 7, only: Set<Int>? = nil,
    _ inputs: [Tensor], _ f: ([Tensor]) throws -> Tensor
) throws -> GradCheckResult {
    let y0 = try noGrad { try f(inputs) }
    var gen = RandomGenerator(seed: seed)
    let r = Tensor.uniform(y0.shape, low: -1, high: 1, generator: &gen)
    let rs = r.scalars.map(Double.init)
    func L(_ xs: [Tensor]) throws -> Double {
        let y = try noGrad { try f(xs) }
        precondition(y.shape == y0.shape, "output shape changed under perturbation")
        var s = 0.0
        for (a, b) in zip(y.scalars, rs) { s += Double(a) * b }
        return s
    }
    let grads = try gradient(of: { xs in try (f(xs) * r).sum() }, at: inputs)
    var result = GradCheckResult(worstRatio: 0, worst: (0, 0, 0, 0))
    for (k, x) in inputs.enumerated() where only?.contains(k) ?? true {
        let analytic = grads[k].scalars
        let base = x.scalars
        for i in 0..<base.count {
            var plus = base, minus = base
            plus[i] += eps
            minus[i] -= eps
            var xp = inputs, xm = inputs
            xp[k] = try Tensor(shape: x.shape, scalars: plus)
            xm[k] = try Tensor(shape: x.shape, scalars: minus)
            let numeric = (try L(xp) - L(xm)) / (2 * Double(eps))
            let a = Double(analytic[i])
            let ratio = abs(a - numeric) / (atol + rtol * max(abs(a), abs(numeric)))
            if ratio > result.worstRatio || !ratio.isFinite {
                result.worstRatio = ratio.isFinite ? ratio : .infinity
                result.worst = (k, i, a, numeric)
            }
        }
    }
    return result
}

/// Runs `f` on the CPU backend and on the reference backend and returns the worst relative error
/// (max|cpu - ref| / max|ref|) over the outputs and over the gradients of `inputs` (through
/// `sum(output * r)`).
public func backendDisagreement(
    _ inputs: [Tensor], seed: UInt64 = 11, _ f: ([Tensor]) throws -> Tensor
) throws -> (output: Double, gradient: Double) {
    func run(_ backend: any Backend) throws -> (Tensor, [Tensor]) {
        try withBackend(backend) {
            let y = try noGrad { try f(inputs) }
            var gen = RandomGenerator(seed: seed)
            let r = Tensor.uniform(y.shape, low: -1, high: 1, generator: &gen)
            let g = try gradient(of: { xs in try (f(xs) * r).sum() }, at: inputs)
            return (y, g)
        }
    }
    let (yc, gc) = try run(CPUBackend.shared)
    let (yr, gr) = try run(ReferenceBackend.shared)
    var gErr = 0.0
    for (a, b) in zip(gc, gr) { gErr = max(gErr, relativeError(a.scalars, b.scalars)) }
    return (relativeError(yc.scalars, yr.scalars), gErr)
}

/// Deterministic test input: uniform in [low, high).
public func randomTensor(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> Tensor {
    var g = RandomGenerator(seed: seed)
    return Tensor.uniform(shape, low: low, high: high, generator: &g)
}
