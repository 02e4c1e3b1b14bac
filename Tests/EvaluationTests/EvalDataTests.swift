import Evaluation
import Foundation
import Testing

/// A temporary directory removed at the end of the test.
final class Scratch {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "eval-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> URL {
        let u = url.appendingPathComponent(name)
        try text.write(to: u, atomically: false, encoding: .utf8)
        return u
    }
}

/// Expects `body` to throw an `EvaluationError` whose description is `message`.
func expectError(
    _ message: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("no error; expected \(message)", sourceLocation: sourceLocation)
    } catch let e as EvaluationError {
        #expect(e.description == message, sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct EvalDataTests {
    let vqaAnnotations = """
        {"annotations": [
          {"question_id": 11, "image_id": 1, "question_type": "what color is the", "answer_type": "other",
           "multiple_choice_answer": "red",
           "answers": [{"answer": "red"}, {"answer": "red"}, {"answer": "Red"}, {"answer": "dark red"}]},
          {"question_id": 12, "image_id": 1, "question_type": "how many", "answer_type": "number",
           "multiple_choice_answer": "2", "answers": [{"answer": "two"}, {"answer": "2"}, {"answer": "2"}]},
          {"question_id": 13, "image_id": 2, "question_type": "is there a", "answer_type": "yes/no",
           "multiple_choice_answer": "yes", "answers": [{"answer": "yes"}]}
        ]}
        """

    @Test func readsVQAAnnotationsAndQuestions() throws {
        let s = Scratch()
        let ann = try s.write("ann.json", vqaAnnotations)
        let qs = try s.write(
            "q.json",
            #"{"questions": [{"question_id": 12, "question": "How many?"}, {"question_id": 11, "question": "Colour?"}]}"#
        )
        #expect(try EvalDataFormat.infer(ann) == .vqa)
        guard case .questions(let all) = try EvalData.load(ann) else { Issue.record("not questions"); return }
        #expect(all.map(\.id) == ["11", "12", "13"])
        #expect(
            all[0].type == "what color is the" && all[0].answerType == "other"
                && all[0].humanAnswers.count == 4)
        #expect(all[2].humanAnswers.isEmpty)  // one human answer: no consensus accuracy
        guard case .questions(let two) = try EvalData.load(ann, questions: qs) else {
            Issue.record("not questions"); return
        }
        #expect(two.map(\.id) == ["12", "11"] && two[0].question == "How many?")
        let bad = try s.write("q2.json", #"{"questions": [{"question_id": 99, "question": "?"}]}"#)
        expectError("q2.json[0]: question 99 has no annotation in ann.json") {
            _ = try EvalData.load(ann, questions: bad)
        }
        expectError(
            "q.json: a VQA questions file: pass the annotations as the data and this file as the questions"
        ) {
            _ = try EvalDataFormat.infer(qs)
        }
    }

    @Test func readsLLaVAConversationsOneQuestionPerTurnPair() throws {
        let s = Scratch()
        let llava = try s.write(
            "qa.json",
            """
            [{"id": "s-1", "image": "images/s-1.png", "type": "colour", "conversations": [
               {"from": "human", "value": "<image>\\nWhat colour is the square?"}, {"from": "gpt", "value": "red"},
               {"from": "human", "value": "How many circles?"}, {"from": "gpt", "value": "two", "type": "count", "tags": ["small_object"]}]},
             {"id": 7, "conversations": [{"from": "human", "value": "Shape?"}, {"from": "gpt", "value": "cross"}]}]
            """)
        #expect(try EvalDataFormat.infer(llava) == .llava)
        guard case .questions(let q) = try EvalData.load(llava) else { Issue.record("not questions"); return }
        #expect(q.map(\.id) == ["s-1#0", "s-1#1", "7#0"])
        #expect(q.map(\.type) == ["colour", "count", "all"])
        #expect(q[1].tags == ["small_object"] && q[0].tags.isEmpty)
        #expect(q[0].question == "What colour is the square?" && q[1].answer == "two")
        let jsonl = try s.write(
            "qa.jsonl",
            #"{"id": "a", "conversations": [{"from": "human", "value": "Q"}, {"from": "human", "value": "Q2"}]}"#
        )
        expectError("qa.jsonl:1: turn 0 (a question) is not followed by an assistant answer") {
            _ = try EvalData.load(jsonl)
        }
    }

    @Test func readsOurQuestionJSONLWithLineNumbersInErrors() throws {
        let s = Scratch()
        let good = try s.write(
            "qa.jsonl",
            """
            {"id": "q1", "question": "What colour?", "answer": "red", "type": "colour", "tags": ["small_object"]}

            {"id": 2, "question": "How many?", "answers": ["2", "two", "3"], "type": "count"}
            """)
        #expect(try EvalDataFormat.infer(good) == .qaJSONL)
        guard case .questions(let q) = try EvalData.load(good) else { Issue.record("not questions"); return }
        #expect(q.map(\.id) == ["q1", "2"])
        #expect(q[1].answer == "2" && q[1].humanAnswers == ["2", "two", "3"])  // most common after normalising
        let cases: [(String, String)] = [
            (#"{"id": "a", "answer": "x"}"# + "\n{\"id\": ", "bad.jsonl:2: malformed JSON"),
            (
                #"{"id": "a", "answer": "x"}"# + "\n" + #"{"id": "a", "answer": "y"}"#,
                "bad.jsonl:2: duplicate id a"
            ),
            (#"{"id": "a", "answer": "x"}"# + "\n" + #"{"answer": "y"}"#, "bad.jsonl:2: needs an \"id\""),
            (
                #"{"id": "a", "answer": "x"}"# + "\n\n" + #"{"id": "b", "answer": 3}"#,
                "bad.jsonl:3: needs a string \"answer\" or a list \"answers\""
            ),
            (
                #"{"id": "a", "answer": "x", "tags": "small"}"#,
                "bad.jsonl:1: \"tags\" must be a list of strings"
            ),
        ]
        for (text, message) in cases {
            let u = try s.write("bad.jsonl", text)
            expectError(message) { _ = try EvalData.load(u, format: .qaJSONL) }
        }
    }

    @Test func readsCaptionsInBothFormats() throws {
        let s = Scratch()
        let coco = try s.write(
            "caps.json",
            #"{"annotations": [{"image_id": 5, "caption": "a dog"}, {"image_id": 3, "caption": "a cat"}, {"image_id": 5, "caption": "one dog"}]}"#
        )
        #expect(try EvalDataFormat.infer(coco) == .cocoCaptions)
        #expect(
            try EvalData.load(coco)
                == .captions([
                    CaptionReference(id: "5", references: ["a dog", "one dog"]),
                    CaptionReference(id: "3", references: ["a cat"]),
                ]))
        let jsonl = try s.write(
            "caps.jsonl", #"{"id": "x", "captions": ["a", "b"]}"# + "\n" + #"{"id": "y", "caption": "c"}"#)
        #expect(try EvalDataFormat.infer(jsonl) == .captionJSONL)
        #expect(
            try EvalData.load(jsonl)
                == .captions([
                    CaptionReference(id: "x", references: ["a", "b"]),
                    CaptionReference(id: "y", references: ["c"]),
                ]))
        let bad = try s.write("bad.jsonl", #"{"id": "x", "captions": []}"#)
        expectError("bad.jsonl:1: needs a non-empty list of strings \"captions\" (or a string \"caption\")") {
            _ = try EvalData.load(bad, format: .captionJSONL)
        }
    }

    @Test func unknownFormatsAreNamed() throws {
        let s = Scratch()
        let txt = try s.write("data.txt", "hello")
        expectError(
            "data.txt: cannot tell the format from the extension; pass one of [\"vqa\", \"llava\", \"qa-jsonl\", \"coco-captions\", \"caption-jsonl\"]"
        ) { _ = try EvalDataFormat.infer(txt) }
        let json = try s.write("x.json", "{\"a\": 1")
        expectError("x.json: malformed JSON") { _ = try EvalDataFormat.infer(json) }
        do {
            _ = try EvalData.load(s.url.appendingPathComponent("missing.json"), format: .vqa)
            Issue.record("a missing file was read")
        } catch let e as EvaluationError {
            #expect(e.location == s.url.appendingPathComponent("missing.json").path)
            #expect(e.message.hasPrefix("cannot be read"))
        }
    }

    @Test func readsPredictionsInVQAAndJSONLForms() throws {
        let s = Scratch()
        let vqa = try s.write(
            "res.json", #"[{"question_id": 11, "answer": "red"}, {"question_id": 12, "answer": "2"}]"#)
        #expect(try Predictions.load(vqa) == ["11": "red", "12": "2"])
        let coco = try s.write("caps.json", #"[{"image_id": 5, "caption": "a dog"}]"#)
        #expect(try Predictions.load(coco) == ["5": "a dog"])
        let jsonl = try s.write(
            "p.jsonl", #"{"id": "a", "answer": "x"}"# + "\n" + #"{"question_id": "b", "text": "y"}"#)
        #expect(try Predictions.load(jsonl) == ["a": "x", "b": "y"])
        let dup = try s.write(
            "d.jsonl", #"{"id": "a", "answer": "x"}"# + "\n" + #"{"id": "a", "answer": "y"}"#)
        expectError("d.jsonl:2: a second prediction for a") { _ = try Predictions.load(dup) }
        let obj = try s.write("o.json", #"{"answers": []}"#)
        expectError("o.json: predictions must be a JSON array or a .jsonl file") {
            _ = try Predictions.load(obj)
        }
    }
}
