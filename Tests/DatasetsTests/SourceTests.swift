import Datasets
import Foundation
import SightlineTestSupport
import Tensor
import Testing

let fixtures = fixtureDirectory("datasets")

/// Reads one epoch of a fixture with a budget that never aborts; returns the samples and the problems.
func readAll(_ format: SourceFormat, _ files: [String], rank: Int = 0, world: Int = 1) throws -> (
    [Sample], ProblemLog
) {
    let log = ProblemLog(maximumFraction: 1.01, minimumRecords: 0, sink: { _ in })
    let src = try DataSource(
        name: "t", format: format, files: files.map { fixtures.appendingPathComponent($0) }, rank: rank,
        worldSize: world, problems: log)
    var out: [Sample] = []
    while let s = try src.next() { out.append(s) }
    return (out, log)
}

/// Texts of a sample, for comparisons.
func texts(_ s: Sample) -> [String] {
    s.parts.compactMap { if case .text(let t, _) = $0 { return t } else { return nil } }
}

@Test func imageCaptionManifestReadsGoodLinesAndReportsBadOnes() throws {
    let (samples, log) = try readAll(.imageCaptionJSONL, ["captions.jsonl"])
    // Line 3 is malformed JSON and line 6 lacks a caption: skipped by the reader; images are checked later.
    #expect(
        samples.map(\.name) == [
            "captions.jsonl:1", "captions.jsonl:2", "captions.jsonl:4", "captions.jsonl:5",
            "captions.jsonl:7",
        ])
    #expect(log.problems.map(\.location) == ["captions.jsonl:3", "captions.jsonl:6"])
    #expect(log.records == 7 && log.skipped == 2)
    // The builder decodes images: the missing (line 4) and corrupt (line 5) images are errors naming the line.
    let b = DocumentBuilder(
        encode: { $0.split(separator: " ").map { _ in 5 } }, eos: 2,
        preprocessor: PipelineImages.clip(size: 4))
    let d = try b.build(samples[0])
    #expect(d.images.count == 1 && d.images[0].pixels.shape == [1, 3, 4, 4] && d.tokens == [-1, 5, 5, 5, 2])
    #expect(d.supervised == [false, true, true, true, true])
    for (s, what) in [(samples[2], "missing"), (samples[3], "truncated")] {
        do { _ = try b.build(s); Issue.record("expected an image error") } catch let e as DatasetError {
            #expect(e.message.hasPrefix(s.name) && e.message.contains(what), "\(e)")
        }
    }
    // The decoded pixels are the files': red and blue PNGs.
    let red = try PipelineImages.decode(.file(fixtures.appendingPathComponent("images/red.png")))
    let blue = try PipelineImages.decode(.file(fixtures.appendingPathComponent("images/blue.png")))
    #expect(red.shape == [3, 3, 4] && red.scalars[0] == 1 && red.scalars[12] == 0)
    #expect(blue.shape == [3, 4, 5] && blue.scalars[0] == 0 && blue.scalars[40] == 1)
}

@Test func interleavedJSONLKeepsOrderAndRejectsUnequalLists() throws {
    let (samples, log) = try readAll(.interleavedJSONL, ["interleaved.jsonl"])
    #expect(samples.count == 2 && log.problems.map(\.location) == ["interleaved.jsonl:2"])
    #expect(samples[0].imageCount == 1 && texts(samples[0]) == ["first text", "after the image"])
    if case .image = samples[1].parts[0] {} else { Issue.record("image first expected") }
}

@Test func textJSONLAndPlainText() throws {
    let (t, log) = try readAll(.textJSONL, ["text.jsonl"])
    #expect(
        t.map(texts) == [["a text only document"], ["another one"]]
            && log.problems.map(\.location) == ["text.jsonl:2"])
    let (p, _) = try readAll(.plainText, ["plain.txt"])
    #expect(p.map(texts) == [["first paragraph\nstill first"], ["second paragraph"], ["third"]])
    #expect(p.map(\.name) == ["plain.txt:1", "plain.txt:5", "plain.txt:7"])
}

@Test func llavaSupervisesOnlyAssistantTurns() throws {
    let (samples, log) = try readAll(.llava, ["llava.json"])
    #expect(log.problems.map(\.location) == ["llava.json[1]"])
    #expect(log.problems[0].message.contains("1 images but 0 <image> placeholders"))
    #expect(samples.count == 3)
    for s in samples {
        for case .text(let t, let sup) in s.parts where sup {
            #expect(!t.hasPrefix("USER") && !t.contains("?"), "\(t)")
        }
    }
    // Sample [3] has no assistant turn: the builder rejects it, naming it.
    let b = DocumentBuilder(
        encode: { Array($0.utf8).map(Int.init) }, eos: 2,
        preprocessor: PipelineImages.clip(size: 2))
    let first = try b.build(samples[0])
    #expect(first.images.count == 1 && first.tokens.filter { $0 == -1 }.count == 1)
    let supervisedText = String(
        decoding: zip(first.tokens, first.supervised).filter { $0.1 && $0.0 > 2 }.map { UInt8($0.0) },
        as: UTF8.self)
    #expect(supervisedText == "Red.\n")
    do { _ = try b.build(samples[2]); Issue.record("expected an error") } catch let e as DatasetError {
        #expect(e.message == "llava.json[3]: no supervised token")
    }
}

@Test func webDatasetTarShards() throws {
    let (samples, log) = try readAll(.webDataset, ["shard-000.tar", "shard-001-corrupt.tar"])
    #expect(
        samples.map(\.name) == ["shard-000.tar:a", "shard-000.tar:b", "shard-000.tar:d", "shard-000.tar:e"])
    #expect(samples.map(texts) == [["caption a"], ["caption b"], ["doc d"], ["corrupt image e"]])
    #expect(samples[2].imageCount == 1)
    // c has no image; the second shard's second header is corrupt (reported with the member before it).
    #expect(
        log.problems.map(\.location) == ["shard-000.tar:c", "shard-001-corrupt.tar:f.png"], "\(log.problems)")
    #expect(log.problems[1].message.contains("bad header checksum"))
    let b = DocumentBuilder(encode: { _ in [7] }, preprocessor: PipelineImages.clip(size: 2))
    #expect(try b.build(samples[0]).images.count == 1)
    do { _ = try b.build(samples[3]); Issue.record("expected an image error") } catch let e as DatasetError {
        #expect(e.message.hasPrefix("shard-000.tar:e") && e.message.contains("e.png"), "\(e)")
    }
    // Our own writer's archives read back.
    var w = TarWriter()
    w.add("k1.txt", Data("hello".utf8))
    w.add("k1.png", try PipelineImages.encodePNG(Tensor(shape: [3, 1, 1], scalars: [1, 0, 0])))
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("datasets-writer-\(getpid()).tar")
    try w.archive.write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    let src = try DataSource(name: "w", format: .webDataset, files: [url])
    let s = try #require(try src.next())
    let after = try src.next()
    #expect(texts(s) == ["hello"] && s.imageCount == 1 && after == nil)
}

@Test func shardsAreDisjointAndCoverTheSource() throws {
    let (all, _) = try readAll(.imageCaptionJSONL, ["captions.jsonl"])
    let (r0, _) = try readAll(.imageCaptionJSONL, ["captions.jsonl"], rank: 0, world: 2)
    let (r1, _) = try readAll(.imageCaptionJSONL, ["captions.jsonl"], rank: 1, world: 2)
    #expect(Set(r0.map(\.name)).isDisjoint(with: r1.map(\.name)))
    #expect(Set(r0.map(\.name)).union(r1.map(\.name)) == Set(all.map(\.name)))
}

@Test func skipBudgetAbortsClearly() throws {
    let log = ProblemLog(maximumFraction: 0.2, minimumRecords: 3, sink: { _ in })
    let src = try DataSource(
        name: "t", format: .textJSONL, files: [fixtures.appendingPathComponent("text.jsonl")], problems: log)
    _ = try src.next()
    // Record 2 of 2 bad: 50% > 20%, but fewer than 3 records seen: no abort yet.
    #expect(throws: Never.self) { _ = try src.next() }
    let strict = ProblemLog(maximumFraction: 0, sink: { _ in })
    let s2 = try DataSource(
        name: "t", format: .textJSONL, files: [fixtures.appendingPathComponent("text.jsonl")],
        problems: strict)
    _ = try s2.next()
    do { _ = try s2.next(); Issue.record("expected an abort") } catch let e as DatasetError {
        #expect(e.message.contains("over the budget") && e.message.contains("text.jsonl:2"))
    }
}

@Test func validateCountsRecordsImagesAndEveryProblem() throws {
    let r = try validate(
        format: .imageCaptionJSONL, files: [fixtures.appendingPathComponent("captions.jsonl")])
    #expect(r.records == 7 && r.goodRecords == 3 && r.images == 3)
    #expect(
        r.problems.map(\.location) == [
            "captions.jsonl:3", "captions.jsonl:4", "captions.jsonl:5", "captions.jsonl:6",
        ], "problems in line order")
}
