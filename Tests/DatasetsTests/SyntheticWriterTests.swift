import Datasets
import Foundation
import Tensor
import Testing

/// Text parts with their supervision, and the decoded images, of a sample.
func contents(_ s: Sample) throws -> (texts: [String], images: [[Float]]) {
    var texts: [String] = []
    var images: [[Float]] = []
    for p in s.parts {
        switch p {
        case .text(let t, let sup): texts.append((sup ? "+" : "-") + t)
        case .image(let r): images.append(try PipelineImages.decode(r).scalars)
        }
    }
    return (texts, images)
}

func readAll(_ format: SourceFormat, _ file: URL) throws -> [Sample] {
    let src = try DataSource(
        name: file.lastPathComponent, format: format, files: [file],
        problems: ProblemLog(maximumFraction: 0, minimumRecords: 0))
    var out: [Sample] = []
    while let s = try src.next() { out.append(s) }
    return out
}

@Test func writtenWorldReadsBackThroughTheRealReaders() throws {
    let w = try SyntheticWorld(seed: 21)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("synthetic-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let n = 4
    let files = try w.write(to: dir, count: n, split: .heldOut)

    let caps = try readAll(.imageCaptionJSONL, files.captions)
    let docs = try readAll(.interleavedJSONL, files.interleaved)
    let texts = try readAll(.textJSONL, files.text)
    let qa = try readAll(.llava, files.llava)
    let shard = try readAll(.webDataset, files.shard)
    #expect(caps.count == n && docs.count == n && texts.count == n && qa.count == n && shard.count == 2 * n)
    for i in 0..<min(n, caps.count, docs.count, texts.count, qa.count) {
        let c = try contents(w.captionSample(i, split: .heldOut))
        let d = try contents(w.interleavedSample(i, split: .heldOut))
        let t = try contents(w.textSample(i, split: .heldOut))
        let q = try contents(w.instructionSample(i, split: .heldOut))
        for (read, want, what) in [
            (try contents(caps[i]), c, "caption"), (try contents(shard[i]), c, "tar caption"),
            (try contents(docs[i]), d, "interleaved"), (try contents(shard[n + i]), d, "tar interleaved"),
            (try contents(texts[i]), t, "text"), (try contents(qa[i]), q, "llava"),
        ] {
            #expect(read.texts == want.texts, "\(what) \(i)")
            #expect(read.images.count == want.images.count, "\(what) \(i)")
            // PNG round trip of the rendered image is exact.
            #expect(read.images == want.images, "\(what) \(i) images")
        }
        #expect(d.images.count >= 2)
        #expect(q.texts.filter { $0.hasPrefix("+") }.count >= 5, "answers supervised")
    }
    // questions.json: each question of each sample on its own, in order, answers supervised.
    let single = try readAll(.llava, files.questions)
    var expected: [Sample] = []
    for i in 0..<n {
        for k in 0..<w.instruction(i, split: .heldOut).questions.count {
            expected.append(w.singleQuestionSample(i, question: k, split: .heldOut))
        }
    }
    #expect(single.count == expected.count && single.count >= 5 * n)
    for (read, want) in zip(single, expected) {
        let (r, e) = (try contents(read), try contents(want))
        #expect(r.texts == e.texts && r.images == e.images, "\(want.name)")
        #expect(r.texts.filter { $0.hasPrefix("+") }.count == 2, "one supervised answer and its newline")
    }

    // The rendered image itself is what is on disk.
    let rendered = w.render(w.scene(0, split: .heldOut, stream: 1)).scalars
    #expect(try contents(caps[0]).images.first == rendered)

    // validate() finds every record good.
    for (format, file, images) in [
        (SourceFormat.imageCaptionJSONL, files.captions, n), (.llava, files.llava, n), (.textJSONL, files.text, 0),
    ] {
        let r = try validate(format: format, files: [file])
        #expect(r.records == n && r.goodRecords == n && r.problems.isEmpty && r.images == images, "\(r)")
    }

    // The loader over the written files: the MM1 mixture, batches of packed rows.
    let sources = try [
        DataSource(name: "interleaved", format: .interleavedJSONL, files: [files.interleaved]),
        DataSource(name: "captions", format: .webDataset, files: [files.shard]),
        DataSource(name: "text", format: .textJSONL, files: [files.text]),
    ]
    let builder = DocumentBuilder(encode: worldEncoder(), eos: 3)
    let loader = try Loader(
        sources: sources, mixture: try Mixture(MixtureWeights(), seed: 1), builder: builder,
        packing: PackingConfig(sequenceLength: 256, maxImages: 4, imageTokenId: 1, padTokenId: 0) { _ in 16 },
        batchSize: 2, workers: 2)
    defer { loader.stop() }
    for _ in 0..<3 {
        let b = try loader.next()
        #expect(b.shape.batch == 2 && b.shape.length == 256)
        #expect(b.placeholders.allSatisfy { $0.length == 16 })
    }
}

/// Writes the tokenizer's training corpus when SIGHTLINE_SYNTHETIC_CORPUS names a file
/// (scripts/make_synthetic_tokenizer.py sets it); otherwise checks the corpus covers the grammar.
@Test func syntheticCorpusForTheTokenizer() throws {
    let w = try SyntheticWorld(seed: 0)
    let lines = w.corpus(count: 100)
    let words = Set(lines.flatMap { SyntheticWorld.words($0) })
    #expect(words.isSubset(of: Set(SyntheticWorld.vocabulary)))
    #expect(words.count >= SyntheticWorld.vocabulary.count - 2, "\(Set(SyntheticWorld.vocabulary).subtracting(words))")
    if let path = ProcessInfo.processInfo.environment["SIGHTLINE_SYNTHETIC_CORPUS"] {
        try Data((w.corpus(count: 3000).joined(separator: "\n") + "\n").utf8).write(
            to: URL(fileURLWithPath: path))
    }
}
