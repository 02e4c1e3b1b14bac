import Datasets
import Foundation
import Tensor
import Testing

import Training

/// The batches the stages train on pair every image with its own document: the pixels in a
/// placeholder run are the picture of the caption that follows it (read back independently from the
/// written files), across rows and micro-batches.
@Test func everyImageOfAStageBatchIsItsDocumentsImage() throws {
    let config = Demo.config(quick: true)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("feed-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let files = try WorldFiles.ensure(config: config, output: dir, split: .train, count: 24)
    let tokens = 8
    let feed = StageModels.feed(
        config: config, sources: [("captions", .imageCaptionJSONL, files.captions)], weights: [1], tokens: tokens,
        microBatch: 3, seed: 1)
    let stream = try feed.open(nil)
    let records = try String(contentsOf: files.captions, encoding: .utf8).split(separator: "\n").map {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
    }
    let preprocess = PipelineImages.clip(size: config.model.vision.imageSize)
    let vocabulary = SyntheticVocabulary()
    var checked = 0
    for _ in 0..<3 {
        let batch = try stream.next()
        let (_, t) = batch.shape
        let pixels = try #require(batch.images)
        let perImage = pixels.shape.dropFirst().reduce(1, *)
        for (k, p) in batch.placeholders.enumerated() {
            let doc = batch.documentIds.values[p.row * t + p.start]
            let name = batch.documents[p.row][doc]
            guard !name.contains("@") else { continue }  // a continued piece
            let line = try #require(Int(name.split(separator: ":").last!))
            let record = records[line - 1]
            let want = try preprocess(
                PipelineImages.decode(.file(files.captions.deletingLastPathComponent().appendingPathComponent(record["image"] as! String)))
            ).pixels.scalars
            let got = Array(pixels.scalars[(k * perImage)..<((k + 1) * perImage)])
            #expect(got == want, "\(name): placeholder \(k) holds another image")
            // The text after the run is this record's caption.
            let caption = vocabulary.encode(record["caption"] as! String)
            let after = Array(batch.tokens.values[(p.row * t + p.start + p.length)..<(p.row * t + min(t, p.start + p.length + caption.count))])
            #expect(after == Array(caption.prefix(after.count)), "\(name): the text after the image is not its caption")
            checked += 1
        }
    }
    #expect(checked >= 6)
}
