import Datasets
import Foundation
import SightlineTestSupport
import Testing

/// `trainer data check` on good and bad files of every format Datasets reads.
@Suite struct TrainerDataCheckTests {
    /// The Datasets fixtures: each file holds good records and known bad ones.
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures/datasets")

    /// Good files of every format, written by the synthetic world's writer plus plain text, LLaVA
    /// JSONL and a JPEG manifest: every one passes, exit status 0.
    @Test func goodFilesOfEveryFormatPass() throws {
        let s = ScratchDirectory()
        let world = try SyntheticWorld(seed: 5, imageSize: 84, patchSize: 7)
        let files = try world.write(to: s.url, count: 3)
        try s.write("plain.txt", "first paragraph\nstill first\n\nsecond paragraph\n")
        try s.write(
            "chat.jsonl",
            #"{"image": "images/a.jpg", "conversations": [{"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "red"}]}"#
        )
        let jpeg = try PipelineImages.encodeJPEG(world.render(world.scene(0)))
        try jpeg.write(to: s.url.appendingPathComponent("images/a.jpg"))
        try s.write("jpeg-captions.jsonl", #"{"image": "images/a.jpg", "caption": "a picture"}"#)
        let all = [
            files.captions, files.interleaved, files.text, files.llava, files.shard,
            s.url.appendingPathComponent("plain.txt"), s.url.appendingPathComponent("chat.jsonl"),
            s.url.appendingPathComponent("jpeg-captions.jsonl"),
        ]
        let r = try trainer(["data", "check"] + all.map(\.path))
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        for (file, format) in [
            ("captions.jsonl", "imageCaptionJSONL"), ("interleaved.jsonl", "interleavedJSONL"),
            ("text.jsonl", "textJSONL"),
            ("llava.json", "llava"), ("shard-0000.tar", "webDataset"), ("plain.txt", "plainText"),
            ("chat.jsonl", "llava"),
            ("jpeg-captions.jsonl", "imageCaptionJSONL"),
        ] {
            #expect(
                r.stdout.contains("\(file) (\(format)): "), "\(file) not reported as \(format):\n\(r.stdout)")
        }
        #expect(r.stdout.contains(" 0 bad") && !r.stdout.contains("  "), "\(r.stdout)")
        #expect(
            r.stdout.contains("jpeg-captions.jsonl (imageCaptionJSONL): 1 records, 1 good, 1 images, 0 bad"))
    }

    /// Bad records of every format (a plain-text file has none: any text is a document), each reported
    /// with its file and line (element for LLaVA JSON, member for tar), exit status 1.
    @Test func badRecordsOfEveryFormatAreReportedWithFileAndLine() throws {
        let s = ScratchDirectory()
        let llavaJSONL = try s.write(
            "chat.jsonl",
            #"{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}"#
                + "\n{oops\n"
                + #"{"conversations": [{"from": "robot", "value": "hi"}]}"#)
        let f = Self.fixtures
        let r = try trainer(
            ["data", "check"]
                + [
                    "captions.jsonl", "interleaved.jsonl", "text.jsonl", "llava.json", "shard-000.tar",
                    "shard-001-corrupt.tar",
                ]
                .map { f.appendingPathComponent($0).path } + [llavaJSONL.path])
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        let expected = [
            "captions.jsonl (imageCaptionJSONL): 7 records, 3 good, 3 images, 4 bad",
            "  captions.jsonl:3: malformed JSON",
            "  captions.jsonl:4: missing.png: ", "  captions.jsonl:5: corrupt.png: invalid PNG data",
            "  captions.jsonl:6: needs string fields",
            "interleaved.jsonl (interleavedJSONL): 3 records, 2 good, 2 images, 1 bad",
            "  interleaved.jsonl:2: \"texts\" has 2 entries, \"images\" 1",
            "text.jsonl (textJSONL): 3 records, 2 good, 0 images, 1 bad", "  text.jsonl:2: malformed JSON",
            "llava.json (llava): 4 records, 3 good, 1 images, 1 bad",
            "  llava.json[1]: 1 images but 0 <image> placeholders",
            "shard-000.tar (webDataset): 5 records, 3 good, 3 images, 2 bad",
            "  shard-000.tar:c: no image member",
            "  shard-000.tar:e: shard-000.tar:e.png: invalid PNG data",
            "shard-001-corrupt.tar (webDataset): 1 records, 0 good, 0 images, 1 bad",
            "  shard-001-corrupt.tar:f.png: shard-001-corrupt.tar@1024: bad header checksum",
            "chat.jsonl (llava): 3 records, 1 good, 0 images, 2 bad", "  chat.jsonl:2: malformed JSON",
            "  chat.jsonl:3: unknown speaker \"robot\"",
        ]
        for e in expected { #expect(r.stdout.contains(e), "missing \"\(e)\" in:\n\(r.stdout)") }
        #expect(r.stderr == "data check: 12 bad records\n", "\(r.stderr)")
    }

    /// `--format` overrides inference (a JSON caption manifest read as text JSONL has no "text" field).
    @Test func formatOptionOverridesInference() throws {
        let r = try trainer([
            "data", "check", "--format", "textJSONL",
            Self.fixtures.appendingPathComponent("captions.jsonl").path,
        ])
        #expect(r.status == 1)
        #expect(
            r.stdout.contains("captions.jsonl (textJSONL): ")
                && r.stdout.contains("needs a string field \"text\""), "\(r.stdout)")
    }
}
