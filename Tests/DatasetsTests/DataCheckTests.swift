import Datasets
import Foundation
import SightlineTestSupport
import Testing

@Suite struct DataCheckTests {
    @Test func infersEveryFixtureFormat() throws {
        let expected: [(String, SourceFormat)] = [
            ("captions.jsonl", .imageCaptionJSONL), ("interleaved.jsonl", .interleavedJSONL),
            ("text.jsonl", .textJSONL), ("plain.txt", .plainText), ("llava.json", .llava),
            ("shard-000.tar", .webDataset),
        ]
        for (name, format) in expected {
            #expect(try SourceFormat.infer(fixtures.appendingPathComponent(name)) == format, "\(name)")
        }
    }

    @Test func inferenceSkipsMalformedLinesAndNamesUnknownKeys() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "check-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let chat = dir.appendingPathComponent("chat.jsonl")
        try Data("{oops\n\n{\"conversations\": []}\n".utf8).write(to: chat)
        #expect(try SourceFormat.infer(chat) == .llava)
        let odd = dir.appendingPathComponent("odd.jsonl")
        try Data("{\"url\": 1}\n".utf8).write(to: odd)
        #expect(
            throws: DatasetError(
                "data", "odd.jsonl:1: cannot tell the format from the keys [\"url\"]; pass --format")
        ) {
            try SourceFormat.infer(odd)
        }
        #expect(
            throws: DatasetError(
                "data", "data.csv: cannot tell the format from the extension .csv; pass --format")
        ) {
            try SourceFormat.infer(dir.appendingPathComponent("data.csv"))
        }
    }

    @Test func checkReportsEachFileSeparatelyAndRejectsMissingFiles() throws {
        let results = try checkData(
            files: ["text.jsonl", "plain.txt"].map { fixtures.appendingPathComponent($0) })
        #expect(results.map(\.format) == [.textJSONL, .plainText])
        #expect(results[0].report.problems.map(\.location) == ["text.jsonl:2"])
        #expect(results[1].report.problems.isEmpty && results[1].report.goodRecords == 3)
        #expect(
            results[0].description.hasPrefix(
                "text.jsonl (textJSONL): 3 records, 2 good, 0 images, 1 bad\n  text.jsonl:2: "))
        let missing = fixtures.appendingPathComponent("nope.jsonl")
        #expect(throws: DatasetError("data", "\(missing.path): no such file")) {
            try checkData(files: [missing])
        }
        #expect(throws: DatasetError("data", "no files to check")) { try checkData(files: []) }
    }
}
