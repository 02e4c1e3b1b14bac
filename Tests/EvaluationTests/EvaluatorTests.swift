import Evaluation
import Foundation
import Testing

@Suite struct EvaluatorTests {
    @Test func scoresQuestionsWithBlindBaselineAndWritesEvalJSON() throws {
        let s = Scratch()
        let data = try s.write(
            "qa.jsonl",
            """
            {"id": "1", "answer": "red", "type": "colour", "tags": ["small_object"]}
            {"id": "2", "answer": "blue", "type": "colour"}
            {"id": "3", "answer": "two", "type": "count"}
            {"id": "4", "answer": "three", "type": "count", "tags": ["small_object"]}
            """)
        let preds = try s.write(
            "p.jsonl",
            (1...4).map { #"{"id": "\#($0)", "answer": "\#(["Red", "blue", "2", "2"][$0 - 1])"}"# }.joined(
                separator: "\n"))
        let blind = try s.write(
            "b.json",
            #"[{"id": "1", "answer": "red"}, {"id": "2", "answer": "red"}, {"id": "3", "answer": "2"}, {"id": "4", "answer": "2"}]"#
        )
        let report = try Evaluator.score(data: data, predictions: preds, blindPredictions: blind)
        #expect(
            report.dataFormat == "qa-jsonl" && report.data == "qa.jsonl" && report.predictions == "p.jsonl")
        let a = try #require(report.answers)
        #expect(
            a.overall.correct == 3 && a.perType["colour"]?.accuracy == 1
                && a.perType["count"]?.accuracy == 0.5)
        #expect(a.perTag["small_object"]?.accuracy == 0.5)
        #expect(report.blind?.gainOverall == 0.75 - 0.5)
        #expect(report.captions == nil && report.perplexity == nil)

        let written = try report.write(into: s.url.appendingPathComponent("out"))
        #expect(written.lastPathComponent == "eval.json")
        #expect(try EvalReport.read(written) == report)
        // The documented key names.
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: written)) as? [String: Any])
        #expect(json["format"] as? String == "sightline-eval" && json["version"] as? Int == 1)
        let answers = try #require(json["answers"] as? [String: Any])
        #expect(Set(answers.keys) == ["overall", "per_type", "per_answer_type", "per_tag", "candidates"])
        let overall = try #require(answers["overall"] as? [String: Any])
        #expect(Set(overall.keys) == ["questions", "correct", "accuracy", "chance", "majority"])
        let b = try #require(json["blind"] as? [String: Any])
        #expect(Set(b.keys) == ["blind", "gain_overall", "gain_per_type", "gain_per_tag"])
        #expect(report.summary.contains("type colour") && report.summary.contains("tag small_object"))
    }

    @Test func scoresCaptionsFromCOCOFiles() throws {
        let s = Scratch()
        let data = try s.write(
            "refs.json",
            #"{"annotations": [{"image_id": 1, "caption": "a red square"}, {"image_id": 2, "caption": "two blue circles"}, {"image_id": 2, "caption": "blue circles, two"}, {"image_id": 3, "caption": "a green cross"}]}"#
        )
        let preds = try s.write(
            "caps.json",
            #"[{"image_id": 1, "caption": "a red square"}, {"image_id": 2, "caption": "two circles"}, {"image_id": 3, "caption": "a cross"}]"#
        )
        let report = try Evaluator.score(data: data, predictions: preds)
        let c = try #require(report.captions)
        let direct = try CaptionScoring.ciderD([
            CaptionExample(id: "1", candidate: "a red square", references: ["a red square"]),
            CaptionExample(
                id: "2", candidate: "two circles", references: ["two blue circles", "blue circles, two"]),
            CaptionExample(id: "3", candidate: "a cross", references: ["a green cross"]),
        ])
        #expect(c.images == 3 && c.ciderD == direct.score && c.bleu.scores.count == 4)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any]
        let caps = try #require(json?["captions"] as? [String: Any])
        #expect(Set(caps.keys) == ["images", "cider_d", "bleu_4", "bleu"])

        let missing = try s.write("few.json", #"[{"image_id": 1, "caption": "a red square"}]"#)
        expectError("few.json: 2 of 3 images have no caption (first: 2, 3)") {
            _ = try Evaluator.score(data: data, predictions: missing)
        }
        expectError("few.json: blind predictions apply to question data only") {
            _ = try Evaluator.score(data: data, predictions: preds, blindPredictions: missing)
        }
    }
}
