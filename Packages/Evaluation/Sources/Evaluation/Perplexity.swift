import Foundation

/// Held-out perplexity: token negative log-likelihoods summed over documents, then `exp(sum / count)`.
///
/// The model side supplies, per batch or document, the summed NLL (natural log) of the predicted tokens
/// and how many tokens were predicted (Language's next-token loss returns exactly these sums and counts),
/// so that padding and document lengths weigh correctly.
public struct PerplexityAccumulator: Codable, Equatable, Sendable {
    /// Summed negative log-likelihood, in nats.
    public private(set) var nllSum: Double = 0
    /// Predicted tokens.
    public private(set) var tokens: Int = 0
    /// Batches or documents added.
    public private(set) var documents: Int = 0

    public init() {}

    /// Adds one batch's or document's summed NLL and token count.
    /// - Throws: `EvaluationError` for a negative count, a non-finite or negative sum.
    public mutating func add(nllSum: Double, tokens: Int) throws {
        guard tokens >= 0 else { throw EvaluationError("perplexity", "negative token count \(tokens)") }
        guard nllSum.isFinite, nllSum >= 0 else {
            throw EvaluationError("perplexity", "NLL sum \(nllSum) is not a finite non-negative number")
        }
        self.nllSum += nllSum
        self.tokens += tokens
        documents += 1
    }

    /// Mean NLL per token, in nats.
    /// - Throws: `EvaluationError` when no token was added.
    public func meanNLL() throws -> Double {
        guard tokens > 0 else { throw EvaluationError("perplexity", "no tokens were scored") }
        return nllSum / Double(tokens)
    }

    /// `exp(mean NLL)`.
    public func perplexity() throws -> Double { exp(try meanNLL()) }

    /// The `eval.json` section.
    public func scores() throws -> PerplexityScores {
        PerplexityScores(
            documents: documents, tokens: tokens, nllSum: nllSum, meanNLL: try meanNLL(),
            perplexity: try perplexity())
    }
}

/// The perplexity section of `eval.json`.
public struct PerplexityScores: Codable, Equatable, Sendable {
    public var documents: Int
    public var tokens: Int
    public var nllSum: Double
    public var meanNLL: Double
    public var perplexity: Double

    enum CodingKeys: String, CodingKey {
        case documents, tokens, perplexity
        case nllSum = "nll_sum"
        case meanNLL = "mean_nll"
    }
}
