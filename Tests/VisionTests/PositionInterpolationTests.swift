import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing
import Vision

// Position-embedding resampling against PyTorch/HF references (pos_interp.safetensors): HF's own
// `interpolate_pos_encoding`, Chain-of-Sight's align_corners=True and timm's antialias, to the grids
// 10 x 6 (upsampling, non-square) and 5 x 7 (down in one direction, up in the other).

@Suite struct PositionInterpolationTests {
    let methods: [(String, PositionInterpolation)] = [
        ("hf", .huggingFace), ("cos", .chainOfSight), ("timm", .timm),
    ]

    @Test func matchesPyTorchForEachRule() throws {
        let ref = try VisionFixtures.safetensors("pos_interp.safetensors")
        let table = try ref.readTensor("table")
        #expect(table.shape == [65, 32])
        for (tag, method) in methods {
            for (h, w) in [(10, 6), (5, 7)] {
                let expected = try ref.readTensor("\(tag).\(h)x\(w)")
                let got = try interpolatePositionEmbedding(table, grid: (h, w), method: method)
                #expect(got.shape == [1 + h * w, 32])
                let err = relError(got, expected)
                #expect(err <= 1e-5, "\(tag) \(h)x\(w): relative error \(err)")
                // The class row is passed through untouched.
                #expect(
                    try got.narrow(axis: 0, start: 0, length: 1).scalars
                        == table.narrow(axis: 0, start: 0, length: 1).scalars)
            }
        }
        // The three rules really differ (so each comparison above tests its own rule).
        let hf = try ref.readTensor("hf.10x6"), cos = try ref.readTensor("cos.10x6"),
            timm = try ref.readTensor("timm.10x6")
        #expect(relError(hf, cos) > 1e-3 && relError(hf, timm) > 1e-3)
    }

    @Test func identityAtTheStoredGridAndErrors() throws {
        let table = try Tensor(shape: [10, 3], scalars: (0..<30).map { Float($0) * 0.25 - 3 })
        for (_, method) in methods {
            #expect(
                try interpolatePositionEmbedding(table, grid: (3, 3), method: method).scalars == table.scalars
            )
        }
        #expect(throws: VisionError.self) {
            try interpolatePositionEmbedding(Tensor.zeros([11, 3]), grid: (3, 3))
        }
        #expect(throws: VisionError.self) { try interpolatePositionEmbedding(table, grid: (0, 3)) }
    }

    @Test func alignCornersKeepsALinearRampLinear() throws {
        // One channel whose value is 2*row - col on a 4 x 4 grid; align_corners=True bicubic reproduces a
        // linear function exactly where all four taps fall inside the grid (source 1...2, i.e. new
        // indices 2...4 of 7, since corners map to corners: source = new / 2).
        var values: [Float] = [0]
        for r in 0..<4 { for c in 0..<4 { values.append(Float(2 * r - c)) } }
        let table = try Tensor(shape: [17, 1], scalars: values)
        let out = try interpolatePositionEmbedding(table, grid: (7, 7), method: .chainOfSight).scalars
        for r in 2...4 {
            for c in 2...4 {
                let expected = 2 * Float(r) * 0.5 - Float(c) * 0.5
                #expect(abs(out[1 + r * 7 + c] - expected) < 1e-5)
            }
        }
    }

    @Test func gradientFlowsToTheStoredTable() throws {
        var gen = RandomGenerator(seed: 7)
        let table = Tensor.uniform([17, 2], low: -1, high: 1, generator: &gen)
        let result = try gradCheck([table]) { x in try interpolatePositionEmbedding(x[0], grid: (3, 5)) }
        #expect(result.passed, "\(result)")
    }

    @Test func resizingTheModelRewritesTheTableOnce() throws {
        let model = try VisionFixtures.clipModel()
        let ref = try VisionFixtures.safetensors("clip_tiny_reference.safetensors")
        let pixels = try ref.readTensor("native.pixel_values")
        // Upsample the images to 40 x 40 (grid 10 x 10): interpolated on the fly...
        let big = try interpolate(pixels, size: (40, 40), mode: .bilinear)
        let onTheFly = try model.features(big, layers: [-1])
        // ...equals running once resized to 40, and the stored table then has 1 + 10*10 rows.
        try model.resizePositionEmbeddings(imageSize: 40)
        #expect(model.config.imageSize == 40)
        #expect(model.visionModel.embeddings.positionEmbedding.weight.shape == [101, 32])
        let resized = try model.features(big, layers: [-1])
        #expect(relError(resized.levels[0], onTheFly.levels[0]) <= 1e-6)
        // A resized model's state dict still has HF's names, with the new table shape.
        let sd = Dictionary(uniqueKeysWithValues: model.stateDict())
        #expect(sd["vision_model.embeddings.position_embedding.weight"]?.shape == [101, 32])
        #expect(throws: VisionError.self) { try model.resizePositionEmbeddings(imageSize: 3) }
    }
}
