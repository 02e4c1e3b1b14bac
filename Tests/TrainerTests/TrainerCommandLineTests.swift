import Foundation
import SightlineTestSupport
import Testing

/// Runs the built `trainer` (next to the test bundle, or `SIGHTLINE_TRAINER_BIN`), with `environment`
/// added to this process's.
func trainer(
    _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:]
) throws -> ProcessResult {
    guard let exe = builtExecutable("trainer", override: "SIGHTLINE_TRAINER_BIN") else {
        throw TrainerTestFailure(
            "the trainer executable is not next to the test bundle; build everything (swift build) first")
    }
    let r = try runProcess(exe, arguments, in: directory, timeout: 120, environment: environment)
    #expect(!r.timedOut && !r.signaled, "trainer \(arguments) did not exit by itself")
    return r
}

struct TrainerTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A temporary directory removed at the end of the test.
final class ScratchDirectory {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "trainer-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> URL {
        let u = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(
            at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: u, atomically: false, encoding: .utf8)
        return u
    }
}

/// Whether stderr holds one clear message and nothing of a crash.
func isCleanError(_ r: ProcessResult) -> Bool {
    !r.stderr.contains("Stack dump") && !r.stderr.contains("Fatal error") && !r.stderr.contains("Backtrace")
        && !r.stderr.contains("Current stack trace")
}

@Suite struct TrainerArgumentTests {
    /// ArgumentParser's usage errors: one message naming the problem, usage, exit status 64.
    @Test(arguments: [
        (["eval", "--data", "d.jsonl"], "pass exactly one of --predictions FILE and --checkpoint PATH"),
        (
            ["eval", "--data", "d.jsonl", "--predictions", "p.jsonl", "--checkpoint", "run/finetune"],
            "pass exactly one of --predictions FILE and --checkpoint PATH"
        ),
        (["eval", "--predictions", "p.jsonl"], "Missing expected argument '--data <data>'"),
        (
            ["eval", "--predictions", "p.jsonl", "--data", "d.jsonl", "--format", "csv"],
            "The value 'csv' is invalid for '--format <format>'"
        ),
        (["data", "check"], "Missing expected argument '<files> ...'"),
        (
            ["data", "check", "--format", "parquet", "x.jsonl"],
            "The value 'parquet' is invalid for '--format <format>'"
        ),
        (["data", "verify", "x.jsonl"], "2 unexpected arguments: 'verify', 'x.jsonl'"),
        (["evaluate"], "Unexpected argument 'evaluate'"),
    ])
    func usageErrors(_ arguments: [String], _ message: String) throws {
        let r = try trainer(arguments)
        #expect(r.status == 64, "\(arguments): status \(r.status)")
        #expect(r.stderr.contains("Error: \(message)"), "\(arguments): \(r.stderr)")
        #expect(r.stderr.contains("Usage:"))
        #expect(isCleanError(r))
    }

    /// Errors found while running (missing or bad files): one "Error: file: message" line, status 1.
    @Test func inputErrorsAreOneMessage() throws {
        let s = ScratchDirectory()
        let data = try s.write(
            "qa.jsonl", #"{"id": "1", "answer": "red"}"# + "\n" + #"{"id": "2", "answer": "blue"}"#)
        let preds = try s.write("p.jsonl", #"{"id": "1", "answer": "red"}"#)
        let cases: [([String], String)] = [
            (
                [
                    "eval", "--predictions", preds.path, "--data",
                    s.url.appendingPathComponent("none.jsonl").path,
                ],
                "none.jsonl: cannot be read"
            ),
            (
                ["eval", "--predictions", preds.path, "--data", data.path],
                "Error: p.jsonl: 1 of 2 questions have no prediction (first: 2)"
            ),
            (
                ["eval", "--predictions", preds.path, "--data", data.path, "--format", "vqa"],
                "Error: qa.jsonl: malformed JSON"
            ),
            (
                ["data", "check", s.url.appendingPathComponent("missing.jsonl").path],
                "missing.jsonl: no such file"
            ),
            (
                ["data", "check", try s.write("notes.csv", "a,b").path],
                "notes.csv: cannot tell the format from the extension .csv; pass --format"
            ),
        ]
        for (args, message) in cases {
            let r = try trainer(args)
            #expect(r.status == 1, "\(args): status \(r.status), \(r.stderr)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            #expect(isCleanError(r))
        }
    }

    @Test func helpOfEvalNamesBothForms() throws {
        let r = try trainer(["eval", "--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("--predictions") && r.stdout.contains("--blind-predictions"))
        let words = r.stdout.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        #expect(words.contains("With --checkpoint PATH (a stage folder) the model answers the questions"))
    }
}

@Suite struct TrainerEvalTests {
    @Test func evalWritesEvalJSONAndPrintsTheTable() throws {
        let s = ScratchDirectory()
        let data = try s.write(
            "qa.jsonl",
            [
                #"{"id": "1", "answer": "red", "type": "colour"}"#,
                #"{"id": "2", "answer": "Two", "type": "count"}"#,
                #"{"id": "3", "answer": "blue", "type": "colour", "tags": ["small_object"]}"#,
            ].joined(separator: "\n"))
        let preds = try s.write(
            "p.json",
            #"[{"id": "1", "answer": "red."}, {"id": "2", "answer": "2"}, {"id": "3", "answer": "red"}]"#)
        let blind = try s.write(
            "b.jsonl",
            #"{"id": "1", "answer": "red"}"# + "\n" + #"{"id": "2", "answer": "3"}"# + "\n"
                + #"{"id": "3", "answer": "red"}"#)
        let out = s.url.appendingPathComponent("run/eval")
        // eval.json is written atomically: nothing may be left in the temporary directory.
        let tmp = s.url.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: false)
        let r = try trainer(
            [
                "eval", "--predictions", preds.path, "--data", data.path, "--blind-predictions", blind.path,
                "--output", out.path,
            ], environment: ["TMPDIR": tmp.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["eval.json"])
        #expect(r.stdout.contains("type colour") && r.stdout.contains("tag small_object"))
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("eval.json")))
                as? [String: Any])
        let answers = try #require(json["answers"] as? [String: Any])
        let overall = try #require(answers["overall"] as? [String: Any])
        #expect(overall["correct"] as? Int == 2 && overall["questions"] as? Int == 3)
        let blindSection = try #require(json["blind"] as? [String: Any])
        #expect(abs((blindSection["gain_overall"] as? Double ?? 0) - (2.0 / 3 - 1.0 / 3)) < 1e-12)
        #expect(json["data_format"] as? String == "qa-jsonl")
    }
}
