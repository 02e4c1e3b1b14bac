import Evaluation
import Foundation
import Testing

@Suite struct PerplexityTests {
    @Test func aggregatesSumsAndCountsBeforeTheExponential() throws {
        var p = PerplexityAccumulator()
        // Two documents: 10 tokens with NLL sum 20, 30 tokens with NLL sum 30 -> mean 50/40 nats.
        try p.add(nllSum: 20, tokens: 10)
        try p.add(nllSum: 30, tokens: 30)
        #expect(p.tokens == 40 && p.documents == 2)
        #expect(abs(try p.meanNLL() - 1.25) < 1e-12)
        #expect(abs(try p.perplexity() - exp(1.25)) < 1e-12)
        // Not the mean of per-document perplexities.
        #expect(abs(try p.perplexity() - (exp(2.0) + exp(1.0)) / 2) > 0.1)
        let s = try p.scores()
        let expected = try p.perplexity()
        #expect(s.tokens == 40 && s.nllSum == 50 && s.perplexity == expected)
    }

    @Test func uniformPredictionOverVGivesPerplexityV() throws {
        var p = PerplexityAccumulator()
        for _ in 0..<7 { try p.add(nllSum: 5 * log(97.0), tokens: 5) }
        #expect(abs(try p.perplexity() - 97) < 1e-9)
    }

    @Test func badInputIsAnError() throws {
        var p = PerplexityAccumulator()
        #expect(throws: EvaluationError.self) { try p.perplexity() }
        #expect(throws: EvaluationError.self) { try p.add(nllSum: .nan, tokens: 3) }
        #expect(throws: EvaluationError.self) { try p.add(nllSum: 1, tokens: -1) }
        #expect(throws: EvaluationError.self) { try p.add(nllSum: -1, tokens: 1) }
    }
}
