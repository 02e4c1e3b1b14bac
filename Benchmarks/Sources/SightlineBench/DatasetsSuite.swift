import Datasets
import Foundation
import Tensor

/// Data pipeline throughput on the synthetic world: 224x224 JPEG decode + CLIP preprocessing (Vision's
/// codecs, Pillow-exact resize) per image, and the loader (read, decode, tokenize, pack into 1024-token
/// rows) with 1 and 2 workers, for image-caption JPEGs and for the MM1 45/45/10 mixture.
func datasetsSuite(_ report: Report, repeats: Int) throws {
    let w = try SyntheticWorld(seed: 0)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sightline-bench-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let n = 64
    var manifest = ""
    var jpegs: [URL] = []
    for i in 0..<n {
        let s = w.scene(i)
        let url = dir.appendingPathComponent("c\(i).jpg")
        try PipelineImages.encodeJPEG(w.render(s)).write(to: url)
        jpegs.append(url)
        let line = try JSONSerialization.data(withJSONObject: ["image": url.lastPathComponent, "caption": w.caption(s)])
        manifest += String(decoding: line, as: UTF8.self) + "\n"
    }
    let captions = dir.appendingPathComponent("jpeg.jsonl")
    try Data(manifest.utf8).write(to: captions)
    let files = try w.write(to: dir.appendingPathComponent("world"), count: n)

    let clip = PipelineImages.clip(size: 224)
    _ = report.add(
        "datasets", "decode + CLIP preprocess 224 JPEG (1 thread)", unit: "img/s",
        try measure(repeats: repeats, work: Double(n)) {
            for u in jpegs { _ = try clip(try PipelineImages.decode(.file(u))) }
        })

    // Word-level ids: tokenization cost is not what is measured here.
    var vocab: [String: Int] = [:]
    for (i, t) in SyntheticWorld.vocabulary.enumerated() { vocab[t] = i + 4 }
    let builder = DocumentBuilder(
        encode: { SyntheticWorld.words($0).map { vocab[$0] ?? 2 } }, eos: 3, decoder: PipelineImages.decode,
        preprocessor: clip)
    let packing = PackingConfig(sequenceLength: 1024, maxImages: 16, imageTokenId: 1, padTokenId: 0) { _ in 64 }
    let batches = 8, batchSize = 4
    for workers in [1, 2] {
        var images = 0
        let r = try measure(repeats: repeats, warmup: 1, work: 1) {
            let src = try DataSource(name: "jpeg", format: .imageCaptionJSONL, files: [captions])
            let loader = try Loader(
                sources: [src], mixture: try Mixture(weights: [1], seed: 0), builder: builder, packing: packing,
                batchSize: batchSize, workers: workers)
            defer { loader.stop() }
            images = 0
            for _ in 0..<batches { images += try loader.next().placeholders.count }
        }
        // measure() gave runs per second; scale by the images of one run.
        _ = report.add(
            "datasets", "loader, 224 JPEG captions, \(workers) worker\(workers > 1 ? "s" : "")", unit: "img/s",
            (r.best * Double(images), r.median * Double(images)))
    }
    for workers in [1, 2] {
        let r = try measure(repeats: repeats, warmup: 1, work: Double(batches * batchSize)) {
            let sources = try [
                DataSource(name: "interleaved", format: .interleavedJSONL, files: [files.interleaved]),
                DataSource(name: "captions", format: .imageCaptionJSONL, files: [files.captions]),
                DataSource(name: "text", format: .textJSONL, files: [files.text]),
            ]
            let loader = try Loader(
                sources: sources, mixture: try Mixture(MixtureWeights(), seed: 0), builder: builder,
                packing: packing, batchSize: batchSize, workers: workers)
            defer { loader.stop() }
            for _ in 0..<batches { _ = try loader.next() }
        }
        _ = report.add(
            "datasets", "loader, MM1 mixture 1024-token rows, \(workers) worker\(workers > 1 ? "s" : "")",
            unit: "seq/s", r)
    }
    try longLineSuite(report, repeats: repeats)
}
