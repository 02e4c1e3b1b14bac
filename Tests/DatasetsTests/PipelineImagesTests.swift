import Datasets
import Foundation
import ImagePipeline
import Tensor
import Testing
import Vision

@Test func visionDecoderReadsJPEGAndCompressedPNGThroughTheSources() throws {
    let w = try SyntheticWorld(seed: 4)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let scenes = (0..<3).map { w.scene($0) }
    let images = try scenes.map { try Image(width: 224, height: 224, channels: 3, pixels: w.renderBytes($0)) }
    var manifest = ""
    var tar = TarWriter()
    for (i, im) in images.enumerated() {
        let jpeg = try ImageCodec.encodeJPEG(im, quality: 95)
        let png = try ImageCodec.encodePNG(im)  // zlib-compressed
        try Data(jpeg).write(to: dir.appendingPathComponent("\(i).jpg"))
        try Data(png).write(to: dir.appendingPathComponent("\(i).png"))
        manifest += "{\"image\": \"\(i).png\", \"caption\": \"\(w.caption(scenes[i]))\"}\n"
        manifest += "{\"image\": \"\(i).jpg\", \"caption\": \"\(w.caption(scenes[i]))\"}\n"
        tar.add("k\(i).jpg", Data(jpeg))
        tar.add("k\(i).txt", Data(w.caption(scenes[i]).utf8))
    }
    // A truncated JPEG on line 7.
    try Data(try ImageCodec.encodeJPEG(images[0]).prefix(300)).write(to: dir.appendingPathComponent("bad.jpg"))
    manifest += "{\"image\": \"bad.jpg\", \"caption\": \"a small red square at the top left.\"}\n"
    try Data(manifest.utf8).write(to: dir.appendingPathComponent("m.jsonl"))
    try tar.archive.write(to: dir.appendingPathComponent("s.tar"))

    for (i, s) in scenes.enumerated() {
        let exact = try PipelineImages.decode(.file(dir.appendingPathComponent("\(i).png")))
        #expect(exact.scalars == w.render(s).scalars, "PNG is lossless")
        let lossy = try PipelineImages.decode(.file(dir.appendingPathComponent("\(i).jpg")))
        #expect(lossy.shape == [3, 224, 224])
        let mae = zip(lossy.scalars, w.render(s).scalars).map { abs($0 - $1) }.reduce(0, +) / Float(lossy.count)
        #expect(mae < 0.02, "JPEG q95 mean abs error \(mae)")
    }

    let processor = CLIPImageProcessor(size: 224)
    let builder = DocumentBuilder(
        encode: worldEncoder(), eos: 3, decoder: PipelineImages.decode, preprocessor: PipelineImages.clip(processor))
    let log = ProblemLog(maximumFraction: 0.5, minimumRecords: 0, sink: { _ in })
    let src = try DataSource(name: "m", format: .imageCaptionJSONL, files: [dir.appendingPathComponent("m.jsonl")], problems: log)
    var docs: [TokenizedDocument] = []
    while let s = try src.next() {
        do { docs.append(try builder.build(s)) } catch let e as DatasetError { try log.skip(s.name, e.message) }
    }
    #expect(docs.count == 6)
    #expect(log.problems.count == 1 && log.problems.first?.location == "m.jsonl:7", "\(log.problems)")
    #expect(log.problems.first?.message.contains("bad.jpg") == true)
    // The PNG document's image is exactly HF's CLIP preprocessing of the rendered image.
    let want = try processor(images[0])
    #expect(docs[0].images[0].pixels.shape == [1, 3, 224, 224])
    #expect(docs[0].images[0].pixels.scalars == want.scalars)

    // Tar shards of JPEGs, and MM1 sub-images as crops.
    let sub = DocumentBuilder(
        encode: worldEncoder(), eos: 3, decoder: PipelineImages.decode,
        preprocessor: PipelineImages.subImages(processor))
    let shard = try DataSource(name: "s", format: .webDataset, files: [dir.appendingPathComponent("s.tar")])
    var n = 0
    while let s = try shard.next() {
        let d = try sub.build(s)
        #expect(d.images.count == 1 && d.images[0].cropCount == SubImageDecomposition.mm1.count)
        n += 1
    }
    #expect(n == 3)

    // validate() with Vision's decoder reports the truncated JPEG with its line.
    let report = try validate(format: .imageCaptionJSONL, files: [dir.appendingPathComponent("m.jsonl")], decoder: PipelineImages.decode)
    #expect(report.records == 7 && report.goodRecords == 6 && report.images == 6)
    #expect(report.problems.map(\.location) == ["m.jsonl:7"], "\(report)")
}
