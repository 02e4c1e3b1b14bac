import Foundation
import Tensor

/// Global L2 norm of all gradients, as `clip_grad_norm_` reports it: the square root of the sum of
/// every gradient's sum of squares, accumulated in Double through the backend
/// (`Gradients.globalNorm`; the same bits for any thread count).
public func globalGradientNorm(_ gradients: Gradients) -> Float { gradients.globalNorm() }

/// Scales gradients in place so their global L2 norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_` (coefficient `maxNorm / (norm + 1e-6)` clamped to 1). MM1 clips at 1.0.
///
/// A training step does not need this: `Optimizer.update(..., maxGradientNorm:)` computes the norm,
/// skips a non-finite step and fuses the coefficient into the update without a pass over the gradients.
/// Use this when the clipped gradients themselves are needed; pass the returned norm to `update` as
/// `gradientNorm` (and no `maxGradientNorm`) so it is not computed twice.
/// - Returns: the norm before clipping (for logging). A non-finite norm leaves the gradients
///   unchanged: the optimizer then skips the step and counts it.
@discardableResult
public func clipGradientNorm(_ gradients: inout Gradients, maxNorm: Float = 1) -> Float {
    let norm = gradients.globalNorm()
    guard norm.isFinite else { return norm }
    let coefficient = clipCoefficient(norm: norm, maxNorm: maxNorm)
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
        finalize { _, _ in }
    }

    /// Data parallelism: `combine` first replaces the summed gradients and the token count by their
    /// sums over all replicas (an all-reduce), then the one division by the global token count
    /// happens here, so the step is the mean over the supervised tokens of the global batch whatever
    /// the number of processes. Resets the accumulator.
    public mutating func finalize(combining combine: (inout Gradients, inout Int) throws -> Void) rethrows
        -> Gradients
    {
        var out = gradients
        var tokens = tokenCount
        self = GradientAccumulator()
        try combine(&out, &tokens)
        if tokens > 0 { out.scale(by: 1 / Float(tokens)) }
        return out
    }
}
