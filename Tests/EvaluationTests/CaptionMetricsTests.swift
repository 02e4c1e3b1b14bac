import Evaluation
import Foundation
import Testing

/// The fixture written by scripts/make_eval_fixtures.py (COCO caption evaluation scorers).
struct CaptionFixture: Decodable {
    struct Example: Decodable {
        var id: String
        var candidate: String
        var references: [String]
        var candidate_words: [String]
        var reference_words: [[String]]
    }
    struct CaseSet: Decodable {
        var examples: [Example]
        var bleu: [Double]
        var cider_d: Double
        var cider_d_per_image: [Double]
    }
    var sets: [String: CaseSet]

    static func load() throws -> CaptionFixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/evaluation/captions.json")
        return try JSONDecoder().decode(CaptionFixture.self, from: Data(contentsOf: url))
    }
}

@Suite struct CaptionMetricsTests {
    @Test(arguments: ["handwritten", "random"])
    func matchesTheReferenceScorers(_ name: String) throws {
        let set = try #require(try CaptionFixture.load().sets[name])
        for e in set.examples {
            #expect(CaptionTokenizer.words(e.candidate) == e.candidate_words, "\(e.id)")
            #expect(e.references.map(CaptionTokenizer.words) == e.reference_words, "\(e.id)")
        }
        let examples = set.examples.map {
            CaptionExample(id: $0.id, candidate: $0.candidate, references: $0.references)
        }
        let bleu = try CaptionScoring.bleu(examples)
        for (k, (ours, ref)) in zip(bleu.scores, set.bleu).enumerated() {
            #expect(abs(ours - ref) <= 1e-6, "BLEU-\(k + 1): \(ours) vs \(ref)")
        }
        let cider = try CaptionScoring.ciderD(examples)
        #expect(abs(cider.score - set.cider_d) <= 1e-6, "CIDEr-D \(cider.score) vs \(set.cider_d)")
        for (i, (ours, ref)) in zip(cider.perImage, set.cider_d_per_image).enumerated() {
            #expect(abs(ours - ref) <= 1e-6, "CIDEr-D of \(set.examples[i].id): \(ours) vs \(ref)")
        }
        let scores = try CaptionScores(examples)
        #expect(scores.bleu4 == bleu.bleu4 && scores.ciderD == cider.score && scores.images == examples.count)
    }

    @Test func perfectCandidatesScoreOneBLEU() throws {
        let ex = [
            CaptionExample(
                id: "a", candidate: "a red square on the left", references: ["a red square on the left"]),
            CaptionExample(
                id: "b", candidate: "two blue circles at the top",
                references: ["two blue circles at the top", "x"]),
        ]
        let b = try CaptionScoring.bleu(ex)
        for s in b.scores { #expect(abs(s - 1) < 1e-9) }
        #expect(b.candidateLength == 12 && b.referenceLength == 12)
    }

    @Test func shortCandidatesPayTheBrevityPenalty() throws {
        // 3 candidate words against a closest reference of 6: every n-gram matches, BP = exp(1 - 6/3).
        let ex = [
            CaptionExample(id: "a", candidate: "a red square", references: ["a red square on the left"])
        ]
        let b = try CaptionScoring.bleu(ex)
        #expect(b.referenceLength == 6)
        #expect(abs(b.scores[0] - exp(1 - 2.0)) < 1e-9)
    }

    @Test func ciderPenalisesLengthAndClipsRepeats() throws {
        let refs = ["a red square in the top left", "the red square is top left"]
        let others = [
            CaptionExample(
                id: "x", candidate: "blue circle bottom", references: ["a blue circle at the bottom"]),
            CaptionExample(id: "y", candidate: "green cross", references: ["one green cross in the middle"]),
        ]
        let good = try CaptionScoring.ciderD(
            [CaptionExample(id: "q", candidate: "a red square in the top left", references: refs)] + others)
        let repeated = try CaptionScoring.ciderD(
            [CaptionExample(id: "q", candidate: "red red red red red square square square", references: refs)]
                + others)
        #expect(good.perImage[0] > repeated.perImage[0])
        #expect(good.perImage[0] > 0)
    }

    @Test func emptyInputIsAnError() {
        #expect(throws: EvaluationError.self) { try CaptionScoring.bleu([]) }
        #expect(throws: EvaluationError.self) {
            try CaptionScoring.ciderD([CaptionExample(id: "a", candidate: "x", references: [String]())])
        }
    }
}
