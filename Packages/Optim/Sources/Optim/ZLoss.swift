import Tensor

/// z-loss, `coefficient * mean(logsumexp(logits)^2)` over the tokens that carry loss (PaLM's form;
/// MM1 uses 1e-4). It pushes the softmax normaliser towards 1 for stability.
///
/// Computed by Tensor's fused cross-entropy kernel, so logits are read once; Language's next-token
/// loss gets the same term from the same kernel (`crossEntropyParts(...).zLossSum`).
public struct ZLoss: Codable, Equatable, Sendable {
    public var coefficient: Float

    public init(coefficient: Float = 1e-4) { self.coefficient = coefficient }

    /// - Parameters:
    ///   - logits: `[N, V]` (or `[B, T, V]` with targets `[B, T]`)
    ///   - targets: token ids; rows equal to `ignoreIndex` carry no loss
    /// - Returns: a scalar: coefficient x mean over supervised rows of lse^2 (0 when there are none).
    public func callAsFunction(logits: Tensor, targets: IndexTensor, ignoreIndex: Int = -100) throws -> Tensor
    {
        let parts = try crossEntropyParts(
            logits: logits, targets: targets, ignoreIndex: ignoreIndex, zLossCoefficient: coefficient)
        return parts.count > 0 ? parts.zLossSum / Float(parts.count) : parts.zLossSum * 0
    }
}
