import Foundation

/// MM1's fitted law for the peak learning rate of a decoder with `N` parameters (embeddings included):
/// `lr = exp(-0.4214 * ln(N) - 0.5535)`. 3B gives 6e-5, 7B 4e-5, 30B 2e-5.
/// - Parameter parameterCount: N, the language model's parameter count. Must be positive.
public func mm1PeakLearningRate(parameterCount: Int) -> Double {
    precondition(parameterCount > 0, "parameter count must be positive")
    return exp(-0.4214 * log(Double(parameterCount)) - 0.5535)
}

/// A peak learning rate in a config: a number, or `"auto"` for MM1's law applied to the language
/// model's parameter count.
public enum PeakLearningRate: Codable, Equatable, Sendable {
    case fixed(Double)
    case auto

    /// The rate to use for a language model of `parameterCount` parameters.
    public func resolve(languageModelParameters parameterCount: Int) -> Double {
        switch self {
        case .fixed(let lr): return lr
        case .auto: return mm1PeakLearningRate(parameterCount: parameterCount)
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            guard s == "auto" else {
                throw DecodingError.dataCorruptedError(
                    in: c, debugDescription: "learning rate must be a number or \"auto\", got \"\(s)\"")
            }
            self = .auto
        } else {
            self = .fixed(try c.decode(Double.self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .fixed(let lr): try c.encode(lr)
        case .auto: try c.encode("auto")
        }
    }
}
