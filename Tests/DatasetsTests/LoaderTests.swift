import Datasets
import Foundation
import SightlineTestSupport
import Testing

/// Writes three small sources (interleaved, image-caption, text-only) to a temporary directory.
func writeMixtureSources(_ tag: String) throws -> [(SourceFormat, URL)] {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
        "datasets-loader-\(tag)-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let img = fixtures.appendingPathComponent("images/red.png").path
    var rng = SplitMix64(seed: 5)
    func words() -> String {
        (0..<(3 + rng.next(below: 40))).map { _ in
            ["red", "blue", "circle", "square", "left", "of"][rng.next(below: 6)]
        }.joined(separator: " ")
    }
    func jsonl(_ name: String, _ rows: [[String: Any]]) throws -> URL {
        let u = dir.appendingPathComponent(name)
        try rows.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
            .joined(separator: "\n").write(to: u, atomically: false, encoding: .utf8)
        return u
    }
    let inter = try jsonl(
        "inter.jsonl",
        (0..<60).map { _ in ["texts": [words(), NSNull(), words()], "images": [NSNull(), img, NSNull()]] })
    let caps = try jsonl("caps.jsonl", (0..<60).map { _ in ["image": img, "caption": words()] })
    let text = try jsonl("text.jsonl", (0..<30).map { _ in ["text": words()] })
    return [(.interleavedJSONL, inter), (.imageCaptionJSONL, caps), (.textJSONL, text)]
}

func makeLoader(
    _ files: [(SourceFormat, URL)], workers: Int, rank: Int = 0, world: Int = 1, cursor: LoaderCursor? = nil
) throws -> Loader {
    let sources = try files.enumerated().map { i, f in
        try DataSource(name: "s\(i)", format: f.0, files: [f.1], rank: rank, worldSize: world)
    }
    let builder = DocumentBuilder(
        encode: { $0.split(separator: " ").map { 10 + $0.count } }, bos: 1, eos: 2,
        preprocessor: PipelineImages.clip(size: 4))
    let packing = PackingConfig(sequenceLength: 96, maxImages: 3, imageTokenId: 3, padTokenId: 0) { img in
        9 * img.cropCount
    }
    return try Loader(
        sources: sources, mixture: try Mixture(MixtureWeights(), seed: 17), builder: builder,
        packing: packing,
        batchSize: 2, workers: workers, prefetch: 8, cursor: cursor)
}

func same(_ a: PackedBatch, _ b: PackedBatch) -> Bool {
    a.tokens == b.tokens && a.labels == b.labels && a.documentIds == b.documentIds
        && a.positionIds == b.positionIds
        && a.placeholders == b.placeholders && a.documents == b.documents
}

@Test func loaderOrderIsTheSameForAnyWorkerCount() throws {
    let files = try writeMixtureSources("workers")
    var streams: [[PackedBatch]] = []
    for w in [0, 1, 2] {
        let l = try makeLoader(files, workers: w)
        streams.append(try (0..<25).map { _ in try l.next() })
        l.stop()
    }
    for s in streams.dropFirst() { #expect(zip(s, streams[0]).allSatisfy(same)) }
    #expect(streams[0].contains { $0.images != nil })
}

@Test func resumedLoaderContinuesTheUninterruptedStream() throws {
    let files = try writeMixtureSources("resume")
    let full = try makeLoader(files, workers: 2)
    let reference = try (0..<60).map { _ in try full.next() }
    full.stop()
    var carried = 0
    for stopAt in [3, 10, 17, 41] {
        let first = try makeLoader(files, workers: 1)
        for _ in 0..<stopAt { _ = try first.next() }
        let data = try JSONEncoder().encode(first.cursor)
        first.stop()
        let cursor = try JSONDecoder().decode(LoaderCursor.self, from: data)
        if cursor.carry != nil { carried += 1 }
        let resumed = try makeLoader(files, workers: 2, cursor: cursor)
        #expect(resumed.restoreReads <= 1)
        for k in stopAt..<min(stopAt + 8, 60) {
            #expect(same(try resumed.next(), reference[k]), "batch \(k) after resuming at \(stopAt)")
        }
        resumed.stop()
    }
    #expect(carried > 0, "no stop point had a carried-over document")
}

@Test func twoRanksSeeDisjointHalvesOfTheSingleRankData() throws {
    let files = try writeMixtureSources("ranks")
    func documents(_ rank: Int, _ world: Int) throws -> Set<String> {
        let sources = try files.enumerated().map { i, f in
            try DataSource(name: "s\(i)", format: f.0, files: [f.1], rank: rank, worldSize: world)
        }
        var names = Set<String>()
        for s in sources { while let x = try s.next() { names.insert(x.name) } }
        return names
    }
    let (all, r0, r1) = (try documents(0, 1), try documents(0, 2), try documents(1, 2))
    #expect(r0.isDisjoint(with: r1) && r0.union(r1) == all && all.count == 150)
}

/// Restoring reads the same (constant) number of records at batch 10 and at batch 10,000 (many epochs
/// of the small sources later), and the resumed loader continues exactly where the first one was.
@Test func restoreCostDoesNotGrowWithTheBatchNumber() throws {
    let files = try writeMixtureSources("restore-cost")
    var reads: [Int] = []
    for stopAt in [10, 10_000] {
        let first = try makeLoader(files, workers: 2)
        for _ in 0..<stopAt { _ = try first.next() }
        let cursor = try JSONDecoder().decode(LoaderCursor.self, from: try JSONEncoder().encode(first.cursor))
        let continued = try (0..<3).map { _ in try first.next() }
        first.stop()
        let resumed = try makeLoader(files, workers: 1, cursor: cursor)
        reads.append(resumed.restoreReads)
        for (k, b) in continued.enumerated() {
            #expect(same(try resumed.next(), b), "batch \(stopAt + k) after resuming at \(stopAt)")
        }
        resumed.stop()
    }
    #expect(reads[0] == reads[1] && reads[1] <= 1, "records read while restoring: \(reads)")
}
