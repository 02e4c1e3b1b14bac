import Foundation

/// MM1's fitted law for the peak learning rate of a decoder with `N` parameters (embeddings included):
/// `lr = exp(-0.4214 * ln(N) - 0.5535)`.
/// - Parameter parameterCount: N, the language model's parameter count. Must be positive.
public func mm1PeakLearningRate(parameterCount: Int) -> Double {
    precondition(parameterCount > 0, "parameter count must be positive")
    return exp(-0.4214 * log(Double(parameterCount)) - 0.5535)
}
