import Datasets
import Foundation
import SightlineTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh directory under the system temporary directory.
private func scratch(_ tag: String = #function) throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent(
        "datasets-rel-\(tag.filter(\.isLetter))-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

/// Every record of `files`, with the problems reported; a budget that never aborts.
private func readRecords(_ format: SourceFormat, _ files: [URL], maxRecordBytes: Int? = nil) throws -> (
    [Sample], [Problem]
) {
    let log = ProblemLog(maximumFraction: 1.01, minimumRecords: 0, sink: { _ in })
    let src = try DataSource(name: "t", format: format, files: files, problems: log)
    if let maxRecordBytes { src.maxRecordBytes = maxRecordBytes }
    var out: [Sample] = []
    while let s = try src.next() { out.append(s) }
    return (out, log.problems)
}

@Suite struct DatasetReliabilityTests {
    /// A JSONL line over the record limit is reported with file and line and skipped; the lines
    /// around it are read, and under a raised limit the long line reads whole. (That the read is
    /// linear in the line's length is a benchmark: `sightline-bench jsonl`, not a unit test.)
    @Test func longJSONLLinesAreLinearAndBounded() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("text.jsonl")
        let big = String(repeating: "x", count: 24 << 20)
        let lines = [#"{"text": "first"}"#, #"{"text": "\#(big)"}"#, #"{"text": "last"}"#]
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        let (samples, problems) = try readRecords(.textJSONL, [url])
        #expect(samples.map(\.name) == ["text.jsonl:1", "text.jsonl:3"])
        #expect(problems.count == 1)
        #expect(problems.first?.description.contains("text.jsonl:2") == true, "\(problems)")
        #expect(problems.first?.description.contains("maxRecordBytes") == true, "\(problems)")
        // Raising the limit reads it.
        let (all, none) = try readRecords(.textJSONL, [url], maxRecordBytes: 32 << 20)
        #expect(all.count == 3 && none.isEmpty)
        #expect(all[1].parts.count == 1)
    }

    /// A FIFO as a manifest, LLaVA file or shard is refused at once, naming it.
    @Test func fifosAreRefused() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, format) in [
            ("m.jsonl", SourceFormat.imageCaptionJSONL), ("l.json", .llava), ("s.tar", .webDataset),
            ("p.txt", .plainText),
        ] {
            let url = dir.appendingPathComponent(name)
            #expect(mkfifo(url.path, 0o600) == 0)
            do {
                _ = try readRecords(format, [url])
                Issue.record("\(name) was read")
            } catch let e as DatasetError {
                #expect(e.message.contains(name) && e.message.contains("not a regular file"), "\(e)")
            }
        }
    }

    /// WebDataset shards cut at a member boundary, cut inside a header, with a bogus header or with a
    /// member name that climbs out of the archive all report the problem with the shard named.
    @Test func damagedTarShardsReportTheProblem() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = try Data(contentsOf: fixtureDirectory("datasets").appendingPathComponent("images/red.png"))
        var w = TarWriter()
        w.add("a.txt", Data("caption a".utf8))
        w.add("a.png", png)
        w.add("b.txt", Data("caption b".utf8))
        w.add("b.png", png)
        let whole = w.archive
        let body = w.data
        func read(_ name: String, _ bytes: Data) throws -> ([Sample], [Problem]) {
            let url = dir.appendingPathComponent(name)
            try bytes.write(to: url)
            return try readRecords(.webDataset, [url])
        }
        let (good, none) = try read("good.tar", whole)
        #expect(good.count == 2 && none.isEmpty)
        // Cut after member a.png: the missing end blocks are reported.
        let aEnd = 1024 + 512 + (png.count + 511) / 512 * 512
        let (cut, cutProblems) = try read("cut.tar", body.prefix(aEnd))
        #expect(cut.isEmpty)  // the last sample of a cut shard cannot be known complete
        #expect(cutProblems.contains { $0.description.contains("cut.tar") && $0.description.contains("end-of-archive") },
            "\(cutProblems)")
        // Cut inside the third header.
        let (_, midProblems) = try read("mid.tar", body.prefix(aEnd + 100))
        #expect(midProblems.contains { $0.description.contains("truncated header") }, "\(midProblems)")
        // A bogus header (its checksum no longer matches).
        var bogus = whole
        bogus[aEnd + 10] ^= 0x5A
        let (_, bogusProblems) = try read("bogus.tar", bogus)
        #expect(bogusProblems.contains { $0.description.contains("bogus.tar") && $0.description.contains("checksum") },
            "\(bogusProblems)")
        // A member claiming more bytes than the archive has.
        var big = TarWriter()
        big.add("c.txt", Data(count: 10))
        var huge = big.archive
        let size = Array(String(format: "%011o", 0o7777_7777_777).utf8)
        for (i, b) in size.enumerated() { huge[124 + i] = b }
        var sum = 0
        for i in 0..<512 { sum += (148..<156).contains(i) ? 32 : Int(huge[i]) }
        for (i, b) in Array(String(format: "%06o", sum).utf8).enumerated() { huge[148 + i] = b }
        huge[154] = 0
        let (_, hugeProblems) = try read("huge.tar", huge)
        #expect(hugeProblems.contains { $0.description.contains("runs past the end") }, "\(hugeProblems)")
        // Names that leave the archive.
        for bad in ["../x.txt", "/etc/x.txt", "a/../../x.txt"] {
            var e = TarWriter()
            e.add(bad, Data("x".utf8))
            let (_, p) = try read("escape.tar", e.archive)
            #expect(p.contains { $0.description.contains("escape.tar") && $0.description.contains("'..'") }, "\(bad): \(p)")
        }
    }
}
