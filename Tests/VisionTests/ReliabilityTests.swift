import Foundation
import ImagePipeline
import SightlineTestSupport
import Testing
import Vision

@Suite struct VisionReliabilityTests {
    /// A PNG whose ancillary chunk claims 2 GB is refused before libpng takes the buffer (a 140-byte
    /// file once made it allocate 2 GB); the limit is an option.
    @Test func pngChunkSizesAreBoundedBeforeAllocating() throws {
        let small = try ImageCodec.encodePNG(try Image(width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 9, count: 12)))
        // Insert, after IHDR, a zTXt chunk header claiming 0x7FFFFF00 bytes, followed by a few bytes.
        let ihdrEnd = 8 + 12 + 13
        var bytes = Array(small[..<ihdrEnd])
        bytes += [0x7F, 0xFF, 0xFF, 0x00] + Array("zTXt".utf8) + [UInt8](repeating: 0x41, count: 64)
        bytes += Array(small[ihdrEnd...])
        do {
            _ = try ImageCodec.decode(bytes, name: "bomb.png", limits: ImageLimits())
            Issue.record("decoded")
        } catch let e as VisionError {
            // Refused by the chunk walk that runs before libpng (which would allocate the claim first).
            #expect(e.source == "bomb.png", "\(e)")
            #expect(e.message.contains("chunk 'zTXt' at byte 33 claims \(0x7FFF_FF00) bytes"), "\(e)")
        }
        // A real ancillary chunk over a lowered limit is refused too; under the default it decodes.
        var text = Array(small[..<ihdrEnd])
        let body = Array("Comment".utf8) + [0] + [UInt8](repeating: 0x42, count: 4000)
        text += be32(body.count) + Array("tEXt".utf8) + body + be32(Int(crc32(Array("tEXt".utf8) + body)))
        text += Array(small[ihdrEnd...])
        #expect(try ImageCodec.decode(text, name: "text.png").width == 2)
        #expect(throws: VisionError.self) {
            _ = try ImageCodec.decode(text, name: "text.png", limits: ImageLimits(maxChunkBytes: 1000))
        }
    }

    /// A FIFO named like an image is refused instead of blocking.
    @Test func fifoImagesAreRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fifo-\(getpid()).png").path
        unlink(path)
        #expect(mkfifo(path, 0o600) == 0)
        defer { unlink(path) }
        #expect(throws: VisionError.self) { _ = try ImageCodec.decode(contentsOf: path) }
    }

    /// `{}` and absurd sizes are refused before a tower is built, naming config.json; a config whose
    /// tower needs more values than the weights hold is refused before the tower is allocated.
    @Test func clipConfigsAreValidatedBeforeBuilding() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-rel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tiny = CLIPVisionConfig(
            imageSize: 8, patchSize: 4, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 16)
        try CLIPVisionModel(config: tiny).savePretrained(directory: dir.path)
        _ = try CLIPVisionModel.fromPretrained(directory: dir.path)
        let configPath = dir.path + "/config.json"
        for (json, expected) in [
            ("{}", "no hidden_size"),
            (#"{"hidden_size": 1000000000, "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 4, "image_size": 8, "patch_size": 4}"#, "over the limit"),
            (#"{"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096, "image_size": 336, "patch_size": 14}"#, "hold"),
        ] {
            try Data(json.utf8).write(to: URL(fileURLWithPath: configPath))
            do {
                _ = try CLIPVisionModel.fromPretrained(directory: dir.path)
                Issue.record("\(json) loaded")
            } catch let e as VisionError {
                #expect(e.source == configPath && e.message.contains(expected), "\(e)")
            }
        }
    }
}

private func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }

private func crc32(_ b: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for x in b {
        c ^= UInt32(x)
        for _ in 0..<8 { c = c & 1 == 1 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
    }
    return ~c
}
