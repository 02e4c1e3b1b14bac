import Bridges
import Checkpoint
import TensorFiles
import Foundation
import SightlineTestSupport
import Testing

/// The Chain-of-Sight authors' `mm_projector.bin` (a PyTorch pickle, keys under
/// `model.mm_projector.`, float16) imports as a Chain-of-Sight connector with the authors' level
/// numbers in its names, and runs as `sightline_torch` runs it (fixture written by
/// scripts/make_cos_projector_fixture.py).
@Suite struct AuthorsProjectorTests {
    static let directory = fixtureDirectory("bridges").appendingPathComponent("cos_mm_projector").path

    @Test func configurationIsReadOffTheNames() throws {
        let file = try TorchStateDict(path: Self.directory + "/mm_projector.bin")
        let config = try ChainOfSightProjectorFile.configuration(file, headDim: 8)
        #expect(config.scales == [WindowScale(windowSize: 8, queries: 4), WindowScale(windowSize: 2, queries: 16)])
        // The authors' l15 / l22 are 0-based block numbers: hidden_states[16] and [23].
        #expect(config.featureLevels == [16, 23])
        #expect(config.grid == .square(8))
        #expect((config.visionDim, config.dim, config.llmDim, config.mlpRatio) == (16, 16, 12, 4))
    }

    @Test func importedProjectorKeepsTheAuthorsNamesAndMatchesTheReference() throws {
        let file = try TorchStateDict(path: Self.directory + "/mm_projector.bin")
        let connector = try ChainOfSightProjectorFile.load(file, headDim: 8)
        let names = connector.stateDict().map(\.0)
        #expect(names.map { ChainOfSightProjectorFile.prefix + $0 } == file.tensorNames)
        #expect(names.contains("attn_0_w8_l15_q4.to_kv.weight") && names.contains("ln_0_w2_l22_q16.bias"))
        for (name, t) in connector.stateDict() {
            #expect(t.scalars == (try file.readTensor(ChainOfSightProjectorFile.prefix + name)).scalars, "\(name)")
        }
        let reference = try TorchStateDict(path: Self.directory + "/reference.bin")
        let grid = Grid.square(8)
        let out = try connector([
            FeatureLevel(reference.readTensor("h16"), grid: grid), FeatureLevel(reference.readTensor("h23"), grid: grid),
        ])
        let expected = try reference.readTensor("out")
        try #require(out.shape == expected.shape)
        let error = relativeError(out.scalars, expected.scalars)
        #expect(error <= 1e-4, "max|ours - torch| / max|torch| = \(error)")
    }

    @Test func aWrongPrefixOrAMissingTensorIsNamed() throws {
        let file = try TorchStateDict(path: Self.directory + "/mm_projector.bin")
        #expect {
            _ = try ChainOfSightProjectorFile.load(file, prefix: "model.projector.", headDim: 8)
        } throws: { error in
            "\(error)".contains("mm_projector.bin") && "\(error)".contains("model.projector.")
        }
        // The same file less one tensor, as safetensors.
        let dir = try temporaryDirectory("cos-projector")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var kept: [(String, Tensor)] = []
        for name in file.tensorNames where name != "model.mm_projector.ln_0_w2_l22_q16.bias" {
            kept.append((name, try file.readTensor(name)))
        }
        let path = dir + "/broken.safetensors"
        try SafetensorsFile.write(NamedTensors(kept), to: path)
        #expect {
            _ = try ChainOfSightProjectorFile.load(try SafetensorsFile(path: path), headDim: 8)
        } throws: { error in
            "\(error)".contains("broken.safetensors") && "\(error)".contains("missing")
                && "\(error)".contains("model.mm_projector.ln_0_w2_l22_q16.bias")
        }
    }
}
