import Foundation
import ImagePipeline
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing
import Vision

// Decoding against Pillow, preprocessing against HF CLIPImageProcessorPil (shortest edge 24, crop 24),
// encoding round trips, and bad input. References: preprocess.safetensors (scripts/make_vision_fixtures.py).

@Suite struct ImagePipelineTests {
    static let names = [
        "cmyk.jpg", "exif6.jpg", "gray.png", "gray16.png", "palette.png", "rgb.jpg", "rgb.png", "rgba.png",
    ]

    func path(_ name: String) -> String {
        VisionFixtures.directory.appendingPathComponent("images/\(name)").path
    }

    /// Max |a - b| over the samples of an RGB image and a [H, W, 3] reference.
    func maxDiff(_ image: Image, _ ref: Tensor) -> Float {
        zip(image.pixels, ref.scalars).reduce(0) { max($0, abs(Float($1.0) - $1.1)) }
    }

    @Test func decodesEveryFormatLikePillow() throws {
        let ref = try VisionFixtures.safetensors("preprocess.safetensors")
        for name in Self.names {
            let expected = try ref.readTensor("decoded.\(name)")
            let image = try ImageCodec.decode(contentsOf: path(name)).rgb()
            #expect(
                [image.height, image.width, 3] == expected.shape, "\(name): \(image.width) x \(image.height)")
            guard [image.height, image.width, 3] == expected.shape else { continue }
            let d = maxDiff(image, expected)
            // PNG decoding is exact; JPEG allows one level (IDCT rounding between libjpeg-turbo builds).
            #expect(d <= (name.hasSuffix(".png") ? 0 : 1), "\(name): max difference \(d)")
        }
        // The EXIF-rotated file is stored 31 wide x 18 high and comes out upright 18 x 31.
        let raw = try ImageCodec.decode(contentsOf: path("exif6.jpg"), applyOrientation: false)
        #expect(raw.width == 31 && raw.height == 18)
        // Channel counts before RGB conversion.
        #expect(try ImageCodec.decode(contentsOf: path("gray.png")).channels == 1)
        #expect(try ImageCodec.decode(contentsOf: path("palette.png")).channels == 4)  // tRNS -> alpha
        #expect(try ImageCodec.decode(contentsOf: path("rgba.png")).channels == 4)
        #expect(try ImageCodec.decode(contentsOf: path("cmyk.jpg")).channels == 3)
    }

    @Test func orientationsMatchTheirDefinitions() throws {
        // A 3 x 2 image with distinct values: rows [0 1 2], [3 4 5].
        let im = try Image(width: 3, height: 2, channels: 1, pixels: [0, 1, 2, 3, 4, 5])
        #expect(im.oriented(exif: 1).pixels == [0, 1, 2, 3, 4, 5])
        #expect(im.oriented(exif: 2).pixels == [2, 1, 0, 5, 4, 3])
        #expect(im.oriented(exif: 3).pixels == [5, 4, 3, 2, 1, 0])
        #expect(im.oriented(exif: 4).pixels == [3, 4, 5, 0, 1, 2])
        #expect(im.oriented(exif: 5).pixels == [0, 3, 1, 4, 2, 5])  // transpose
        #expect(im.oriented(exif: 6).pixels == [3, 0, 4, 1, 5, 2])  // 90 degrees clockwise
        #expect(im.oriented(exif: 7).pixels == [5, 2, 4, 1, 3, 0])  // transverse
        #expect(im.oriented(exif: 8).pixels == [2, 5, 1, 4, 0, 3])  // 90 degrees counter-clockwise
        #expect(im.oriented(exif: 6).width == 2 && im.oriented(exif: 6).height == 3)
    }

    @Test func preprocessingMatchesHFCLIPImageProcessor() throws {
        let ref = try VisionFixtures.safetensors("preprocess.safetensors")
        var processor = CLIPImageProcessor(size: 24)
        processor.normalization = .clip
        var worst: Float = 0
        for name in Self.names {
            let expected = try ref.readTensor("clip.\(name)")  // [3, 24, 24] in [0, 1]
            // From our own decode (the whole pipeline)...
            let prepared = try processor.prepare(try ImageCodec.decode(contentsOf: path(name)))
            let got = try prepared.tensor()
            let d = Float(try (got - expected).abs().max().item()) * 255
            worst = max(worst, d)
            #expect(d <= 2, "\(name): max difference \(d)/255 before normalisation")
            // ...and from Pillow's decode (resize and crop alone): bit-exact.
            let decoded = try ref.readTensor("decoded.\(name)")
            let pil = try Image(
                width: decoded.shape[1], height: decoded.shape[0], channels: 3,
                pixels: decoded.scalars.map { UInt8($0) })
            let exact = try processor.prepare(pil).tensor()
            #expect(
                try (exact - expected).abs().max().item() * 255 <= 1e-3,
                "\(name): resize/crop differs from Pillow")
        }
        #expect(worst <= 1)
        // Normalisation is CLIP's (x - mean) / std per channel.
        let image = try ImageCodec.decode(contentsOf: path("rgb.png"))
        let normalised = try processor(image)
        let plain = try processor.prepare(image).tensor()
        let mean = try Tensor(shape: [3, 1, 1], [0.48145466, 0.4578275, 0.40821073])
        let std = try Tensor(shape: [3, 1, 1], [0.26862954, 0.26130258, 0.27577711])
        #expect(relError(normalised, try (plain - mean) / std) <= 1e-6)
        let batch = try processor.batch(paths: [path("rgb.png"), path("gray16.png"), path("cmyk.jpg")])
        #expect(batch.shape == [3, 3, 24, 24])
    }

    @Test func resizeAndCropRules() throws {
        let im = try Image(width: 40, height: 30, color: [10, 200, 30])
        // Shortest edge 24: 30 -> 24, 40 -> int(24 * 40 / 30) = 32.
        let r = try im.resized(shortestEdge: 24)
        #expect(r.width == 32 && r.height == 24)
        #expect(Set(r.pixels) == [10, 200, 30])  // a solid colour stays solid (weights sum to 1)
        // Center crop offsets round down; a crop larger than the image pads with the fill.
        let ramp = try Image(width: 5, height: 1, channels: 1, pixels: [0, 1, 2, 3, 4])
        #expect(try ramp.centerCropped(width: 2, height: 1).pixels == [1, 2])
        #expect(try ramp.centerCropped(width: 8, height: 1, fill: [9]).pixels == [9, 9, 0, 1, 2, 3, 4, 9])
        let sq = try ramp.paddedToSquare(fill: [7])
        #expect(sq.width == 5 && sq.height == 5)
        #expect(Array(sq.pixels[10..<15]) == [0, 1, 2, 3, 4] && sq.pixels[0] == 7)
        // Alpha composites over the background with Pillow's rounding.
        let rgba = try Image(width: 1, height: 1, channels: 4, pixels: [200, 100, 0, 128])
        #expect(try rgba.rgb().pixels == [227, 177, 127])
    }

    @Test func encodingRoundTrips() throws {
        var g = RandomGenerator(seed: 5)
        let noise = Tensor.uniform([12 * 9 * 4], low: 0, high: 255, generator: &g).scalars.map { UInt8($0) }
        for channels in 1...4 {
            let im = try Image(
                width: 12, height: 9, channels: channels, pixels: Array(noise.prefix(12 * 9 * channels)))
            let back = try ImageCodec.decode(try ImageCodec.encodePNG(im), name: "memory.png")
            #expect(back == im, "PNG with \(channels) channels")
        }
        // A smooth image survives JPEG (q95, 4:2:0) closely; gray stays one channel.
        var smooth: [UInt8] = []
        for y in 0..<24 { for x in 0..<32 { smooth += [UInt8(x * 7), UInt8(y * 9), UInt8(100 + x + y)] } }
        let photo = try Image(width: 32, height: 24, channels: 3, pixels: smooth)
        let jpeg = try ImageCodec.decode(try ImageCodec.encodeJPEG(photo, quality: 95), name: "memory.jpg")
        #expect(jpeg.width == photo.width && jpeg.height == photo.height && jpeg.channels == 3)
        let meanAbs =
            zip(jpeg.pixels, photo.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) }
            / Double(photo.pixels.count)
        #expect(meanAbs < 2, "JPEG q95 mean absolute error \(meanAbs)")
        let gray = try Image(width: 8, height: 8, color: [77])
        let grayBack = try ImageCodec.decode(try ImageCodec.encodeJPEG(gray), name: "gray.jpg")
        #expect(grayBack.channels == 3 && Set(grayBack.pixels) == [77])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vision-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try ImageCodec.write(photo, to: dir.appendingPathComponent("out.png").path)
        #expect(try ImageCodec.decode(contentsOf: dir.appendingPathComponent("out.png").path) == photo)
        #expect(throws: VisionError.self) {
            try ImageCodec.write(photo, to: dir.appendingPathComponent("out.gif").path)
        }
    }

    @Test func badInputErrorsNameTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vision-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func file(_ name: String, _ bytes: [UInt8]) throws -> String {
            let p = dir.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            return p
        }
        let png = Array(try Data(contentsOf: URL(fileURLWithPath: path("rgb.png"))))
        let jpg = Array(try Data(contentsOf: URL(fileURLWithPath: path("rgb.jpg"))))
        var zeroWidth = png
        zeroWidth[16..<20] = [0, 0, 0, 0]  // IHDR width
        let cases: [(String, String)] = [
            (dir.appendingPathComponent("missing.png").path, "cannot read"),
            (try file("empty.png", []), "empty"),
            (try file("text.jpg", Array("hello, world".utf8)), "not a PNG or JPEG"),
            (try file("truncated.png", Array(png.prefix(png.count / 2))), "invalid PNG"),
            (try file("truncated.jpg", Array(jpg.prefix(jpg.count / 2))), "invalid JPEG"),
            (try file("zero.png", zeroWidth), "invalid PNG"),
        ]
        for (p, fragment) in cases {
            do {
                _ = try ImageCodec.decode(contentsOf: p)
                Issue.record("\(p) decoded")
            } catch let e as VisionError {
                #expect(e.source == p && e.description.hasPrefix(p))
                #expect(e.message.contains(fragment), "\(e)")
            }
        }
        // A pixel limit turns a large image into an error before decoding.
        for name in ["rgb.png", "rgb.jpg"] {
            do {
                _ = try ImageCodec.decode(contentsOf: path(name), limits: ImageLimits(maxPixels: 100))
                Issue.record("limit ignored for \(name)")
            } catch let e as VisionError {
                #expect(e.source == path(name) && e.message.contains("over the limit of 100"), "\(e)")
            }
        }
        #expect(throws: VisionError.self) {
            try CLIPImageProcessor(size: 24).batch(paths: [path("rgb.png"), cases[1].0])
        }
    }

    @Test func subImagesThroughThePipeline() throws {
        let image = try ImageCodec.decode(contentsOf: path("rgb.jpg"))  // 33 wide x 40 high
        let processor = CLIPImageProcessor(size: 8)
        // Padded to 40 x 40 (3 columns on the left), which a 2 x 2 grid of 20 cuts without resizing.
        let parts = try processor.subImages(image, decomposition: SubImageDecomposition(cropSize: 20))
        #expect(parts.shape == [5, 3, 20, 20])
        // The padded border is the mean colour, which normalises to 0.
        let crop0 = try parts.narrow(axis: 0, start: 1, length: 1).scalars
        #expect(abs(crop0[0]) < 1e-5)
    }
}
