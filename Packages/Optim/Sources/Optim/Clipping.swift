import Foundation
import Tensor

/// Global L2 norm of all gradients (the norm of the per-tensor norms, as `clip_grad_norm_`).
public func globalGradientNorm(_ gradients: Gradients) -> Float {
    var total: Double = 0
    for (_, g) in gradients {
        // Double accumulation: within float rounding of PyTorch's float32 norms.
        total += g.withUnsafeBufferPointer { p -> Double in
            var s = 0.0
            for v in p { s += Double(v) * Double(v) }
            return s
        }
    }
    return Float(total.squareRoot())
}

/// Scales gradients so their global L2 norm is at most `maxNorm`, as `torch.nn.utils.clip_grad_norm_`
/// (coefficient `maxNorm / (norm + 1e-6)` clamped to 1). MM1 clips at 1.0.
/// - Returns: the norm before clipping (for logging). A non-finite norm leaves the gradients
///   unchanged: the optimizer then skips the step and counts it.
@discardableResult
public func clipGradientNorm(_ gradients: inout Gradients, maxNorm: Float = 1) -> Float {
    let norm = globalGradientNorm(gradients)
    guard norm.isFinite else { return norm }
    let coefficient = min(maxNorm / (norm + 1e-6), 1)
    if coefficient < 1 { gradients.scale(by: coefficient) }
    return norm
}

/// Sums micro-batch gradients whose losses are sums over supervised tokens, then divides by the total
/// number of supervised tokens: the update equals that of one batch holding all micro-batches (a mean
/// over all tokens, not a mean of per-micro-batch means).
public struct GradientAccumulator {
    public private(set) var gradients = Gradients()
    public private(set) var tokenCount = 0
    public private(set) var microBatches = 0

    public init() {}

    /// Adds the gradients of one micro-batch whose loss was the SUM over its `tokens` supervised tokens.
    public mutating func add(_ g: Gradients, tokens: Int) throws {
        try gradients.accumulate(g)
        tokenCount += tokens
        microBatches += 1
    }

    /// The mean gradient over all supervised tokens (zero tokens: the gradients unscaled, all zero
    /// when every micro-batch had no supervised token). Resets the accumulator.
    public mutating func finalize() -> Gradients {
        var out = gradients
        if tokenCount > 0 { out.scale(by: 1 / Float(tokenCount)) }
        self = GradientAccumulator()
        return out
    }
}
