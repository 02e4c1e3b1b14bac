/// How a parameter is optimised: its weight decay and a multiplier on the learning rate.
public struct GroupSettings: Codable, Equatable, Sendable {
    public var weightDecay: Double
    public var learningRateMultiplier: Double

    public init(weightDecay: Double, learningRateMultiplier: Double = 1) {
        self.weightDecay = weightDecay
        self.learningRateMultiplier = learningRateMultiplier
    }
}

/// Assigns parameters to groups by name.
///
/// The default (`standard(weightDecay:)`) exempts from weight decay what is not a weight matrix:
/// biases, normalisation weights, class and position embeddings and learned queries (1-D tensors
/// and names that say so), as common practice and the papers' recipes do. Multipliers by prefix give,
/// e.g., an unfrozen vision tower a smaller rate and the connector a larger one.
public struct ParameterGroups: Codable, Equatable, Sendable {
    /// Weight decay of ordinary weights.
    public var weightDecay: Double
    /// Substrings of names that are never decayed (in addition to 1-D tensors).
    public var noDecayPatterns: [String]
    /// (name prefix, learning-rate multiplier); the longest matching prefix wins.
    public var learningRateMultipliers: [String: Double]

    public init(
        weightDecay: Double,
        noDecayPatterns: [String] = ParameterGroups.defaultNoDecayPatterns,
        learningRateMultipliers: [String: Double] = [:]
    ) {
        self.weightDecay = weightDecay
        self.noDecayPatterns = noDecayPatterns
        self.learningRateMultipliers = learningRateMultipliers
    }

    /// Biases, norms, embeddings of positions and classes, and learned queries.
    public static let defaultNoDecayPatterns = [
        ".bias", "norm", "class_embedding", "position_embedding", "pos_emb", "cls_token", "query", "queries",
        "ln_",
    ]

    /// The settings for parameter `name` of `shape`.
    public func settings(for name: String, shape: [Int]) -> GroupSettings {
        let exempt = shape.count < 2 || noDecayPatterns.contains { name.contains($0) }
        let multiplier =
            learningRateMultipliers
            .filter { name.hasPrefix($0.key) }
            .max { $0.key.count < $1.key.count }?.value ?? 1
        return GroupSettings(weightDecay: exempt ? 0 : weightDecay, learningRateMultiplier: multiplier)
    }
}
