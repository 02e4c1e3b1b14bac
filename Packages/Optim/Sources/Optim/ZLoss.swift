/// The z-loss setting of a training run: `coefficient * sum(logsumexp(logits)^2)` over the tokens that
/// carry loss, added to the cross-entropy (PaLM's form; MM1 uses 1e-4). It pushes the softmax
/// normaliser towards 1 for stability.
///
/// Optim owns the value; the kernel is Tensor's fused cross-entropy, which returns the cross-entropy
/// and the z-loss from one pass over the logits (`crossEntropyParts(..., zLossCoefficient:)`), and
/// Language's next-token loss passes the coefficient through and returns both sums:
/// ```swift
/// let loss = try model.nextTokenLoss(hidden: h, labels: labels, zLossCoefficient: config.zLoss.coefficient)
/// let total = try loss.total(over: supervisedTokensInBatch)   // (lossSum + zLossSum) / count
/// ```
/// There is deliberately no separate z-loss function: it would read the logits a second time.
public struct ZLoss: Codable, Equatable, Sendable {
    /// The weight of the term; 0 disables it.
    public var coefficient: Float

    /// - Parameter coefficient: MM1's 1e-4 by default; must be finite and non-negative.
    public init(coefficient: Float = 1e-4) { self.coefficient = coefficient }

    /// No z-loss.
    public static let disabled = ZLoss(coefficient: 0)

    /// Whether the term is on.
    public var isEnabled: Bool { coefficient != 0 }

    /// Checks the coefficient (a config value from a user file).
    /// - Throws: `OptimizerError` naming the value when it is negative or not finite.
    public func validated() throws -> ZLoss {
        guard coefficient.isFinite, coefficient >= 0 else {
            throw OptimizerError("z-loss coefficient must be finite and non-negative, got \(coefficient)")
        }
        return self
    }
}
