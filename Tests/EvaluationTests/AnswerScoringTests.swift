import Evaluation
import Foundation
import Testing

@Suite struct AnswerScoringTests {
    /// A small question set: colour has 3 candidate answers (red 2x, blue, green), count has 2 (2 and 3).
    let questions: [QuestionRecord] = [
        QuestionRecord(id: "1", type: "colour", answer: "red", tags: ["small_object"]),
        QuestionRecord(id: "2", type: "colour", answer: "Red."),
        QuestionRecord(id: "3", type: "colour", answer: "blue", tags: ["small_object"]),
        QuestionRecord(id: "4", type: "colour", answer: "green"),
        QuestionRecord(id: "5", type: "count", answer: "two"),
        QuestionRecord(id: "6", type: "count", answer: "3"),
    ]

    @Test func perTypeAccuracyChanceAndMajority() throws {
        let preds = ["1": "Red", "2": "blue", "3": "blue", "4": "green", "5": "2", "6": "three."]
        let s = try AnswerScoring.score(questions: questions, predictions: preds)
        #expect(s.candidates == ["colour": 3, "count": 2])
        let colour = try #require(s.perType["colour"])
        #expect(colour.questions == 4 && colour.correct == 3)
        #expect(colour.accuracy == 0.75)
        #expect(abs(colour.chance - 1.0 / 3) < 1e-12)
        #expect(colour.majority == 0.5)  // "red" is 2 of 4
        let count = try #require(s.perType["count"])
        #expect(count.correct == 2 && count.accuracy == 1 && count.chance == 0.5)
        // Majority of "count": tie between "2" and "3", broken by the smaller string ("2"): 1 of 2.
        #expect(count.majority == 0.5)
        #expect(s.overall.correct == 5 && s.overall.questions == 6)
        // Overall chance is the mean of each question's 1/K(type): (4/3 + 2/2) / 6.
        #expect(abs(s.overall.chance - (4.0 / 3 + 1) / 6) < 1e-12)
        let small = try #require(s.perTag["small_object"])
        #expect(small.questions == 2 && small.correct == 2 && abs(small.chance - 1.0 / 3) < 1e-12)
        #expect(s.overall.vqaAccuracy == nil)
        #expect(s.perAnswerType.isEmpty)
    }

    @Test func consensusAccuracyFollowsTheLeaveOneOutRule() {
        // 10 humans, 2 said "yes": each leave-one-out subset has 1 or 2 matches -> 1/3 or 2/3.
        let humans = Array(repeating: "yes", count: 2) + Array(repeating: "no", count: 8)
        let acc = AnswerScoring.consensusAccuracy(prediction: "yes", humanAnswers: humans)
        // Leaving out a "yes" (2 cases): 1 match -> 1/3; leaving out a "no" (8 cases): 2 -> 2/3.
        #expect(abs(acc - (2 * (1.0 / 3) + 8 * (2.0 / 3)) / 10) < 1e-12)
        // 4 or more matches: always 1.
        #expect(AnswerScoring.consensusAccuracy(prediction: "no", humanAnswers: humans) == 1)
        #expect(AnswerScoring.consensusAccuracy(prediction: "maybe", humanAnswers: humans) == 0)
    }

    @Test func vqaAccuracyIsReportedWhenHumansGaveSeveralAnswers() throws {
        let q = [
            QuestionRecord(
                id: "7", type: "what color", answerType: "other", answer: "white",
                humanAnswers: [
                    "white", "White", "white.", "gray", "white", "white", "white", "grey", "white", "white",
                ])
        ]
        let s = try AnswerScoring.score(questions: q, predictions: ["7": "gray"])
        #expect(s.overall.correct == 0)
        // "gray" matches one human: leaving it out gives 0, otherwise 1/3 (9 of 10 subsets).
        #expect(abs(try #require(s.overall.vqaAccuracy) - 0.3) < 1e-12)
        #expect(s.perAnswerType["other"]?.questions == 1)
    }

    @Test func blindComparisonSubtractsPerTypeAndTag() throws {
        let main = try AnswerScoring.score(
            questions: questions,
            predictions: ["1": "red", "2": "red", "3": "blue", "4": "green", "5": "2", "6": "3"])
        let blind = try AnswerScoring.score(
            questions: questions,
            predictions: ["1": "red", "2": "red", "3": "red", "4": "red", "5": "2", "6": "2"])
        let c = BlindComparison(main: main, blind: blind)
        #expect(c.gainOverall == 1 - 3.0 / 6)
        #expect(c.gainPerType["colour"] == 1 - 0.5)
        #expect(c.gainPerType["count"] == 1 - 0.5)
        #expect(c.gainPerTag["small_object"] == 1 - 0.5)
        #expect(c.blind.overall.correct == 3)
    }

    @Test func missingAndUnknownPredictionsAreErrors() {
        var preds = Dictionary(uniqueKeysWithValues: questions.map { ($0.id, "x") })
        preds["6"] = nil
        #expect(throws: EvaluationError.self) {
            try AnswerScoring.score(questions: questions, predictions: preds)
        }
        do {
            _ = try AnswerScoring.score(questions: questions, predictions: preds, source: "p.jsonl")
        } catch let e as EvaluationError {
            #expect(e.description == "p.jsonl: 1 of 6 questions have no prediction (first: 6)")
        } catch { Issue.record("unexpected \(error)") }
        preds["6"] = "y"
        preds["99"] = "z"
        do {
            _ = try AnswerScoring.score(questions: questions, predictions: preds, source: "p.jsonl")
            Issue.record("an unknown id was accepted")
        } catch let e as EvaluationError {
            #expect(e.description == "p.jsonl: 1 predictions name no question in the data (first: 99)")
        } catch { Issue.record("unexpected \(error)") }
        #expect(throws: EvaluationError.self) { try AnswerScoring.score(questions: [], predictions: [:]) }
    }
}
