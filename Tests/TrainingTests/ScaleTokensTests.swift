import Bridges
import Foundation
import SightlineTestSupport
import Tensor
import Testing
import Training
import Vision

/// A trained-looking tiny `pt32` connector (random weights, widths 32) on a 16 x 16 grid.
func tinyConnector(seed: UInt64 = 5) throws -> ChainOfSight {
    try ChainOfSight(
        ChainOfSightConfig.preset(.pt32, visionDim: 32, dim: 32, llmDim: 24, headDim: 16, featureLevels: [1, 2]),
        seed: seed)
}

func tinyTower() throws -> CLIPVisionModel {
    let t = try CLIPVisionModel(
        config: CLIPVisionConfig(
            imageSize: 64, patchSize: 4, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64),
        seed: 9)
    t.featureLayers = [1, 2]
    return t
}

@Suite struct ScaleTokensTests {
    /// Every extension preset of the 32-token layout up to 16x, and of the 80-token one.
    @Test(arguments: [
        ("res224to448_32to528", 128, 528), ("demo32to144", 64, 144),
    ])
    func scalesConnectorAndTower(name: String, imageSize: Int, tokens: Int) throws {
        let connector = try tinyConnector()
        let tower = try tinyTower()
        let before = connector.stateDict().map { $0.1.scalars }
        let spec = try ScaleTokens.extensionPreset(named: name)
        let out = try ScaleTokens.scale(
            connector: connector, tower: tower, with: spec, imageSize: imageSize, interpolation: .chainOfSight)
        #expect(out.tokens == tokens)
        #expect(out.tokens <= 16 * connector.config.totalQueries + connector.config.totalQueries)
        #expect(out.tower.config.imageSize == imageSize)
        #expect(
            out.tower.visionModel.embeddings.positionEmbedding.weight.shape
                == [1 + (imageSize / 4) * (imageSize / 4), 32])
        // Pure: the inputs are untouched.
        #expect(connector.stateDict().map { $0.1.scalars } == before)
        #expect(tower.config.imageSize == 64)
        // The new pair runs at the new resolution and gives the recorded token count.
        var g = RandomGenerator(seed: 3)
        let pixels = Tensor.uniform([1, 3, imageSize, imageSize], low: -1, high: 1, generator: &g)
        let f = try out.tower.features(pixels)
        let levels = f.levels.map { FeatureLevel($0, grid: Grid(height: f.grid.height, width: f.grid.width)) }
        #expect(try out.connector(levels).shape == [1, tokens, 24])
    }

    @Test func the80TokenPresetsReach1296() throws {
        let c = try ChainOfSight(
            ChainOfSightConfig.preset(.v1, visionDim: 16, dim: 16, llmDim: 16, headDim: 16, featureLevels: [1]))
        for (name, tokens) in [
            ("res224to448_80to80", 80), ("res224to448_80to336", 336), ("res224to448_80to1296", 1296),
            ("res224to448_80to1296_v2", 1296), ("res224to448_80to1104", 1104),
        ] {
            let scaled = try ChainOfSight.inflate(c, with: try ScaleTokens.extensionPreset(named: name), grid: .square(32))
            #expect(try scaled.tokenCount(grid: .square(32)) == tokens, "\(name)")
        }
    }

    /// Where inflation says the outputs must be kept, they are: on the trained features upsampled to
    /// the new grid, every preserved token of the new connector equals its source token.
    @Test(arguments: ["res224to448_32to528", "demo32to144"])
    func preservedTokensEqualTheTrainedOnes(name: String) throws {
        let connector = try tinyConnector()
        let spec = try ScaleTokens.extensionPreset(named: name)
        let newGrid = spec.newGrid!
        let scaled = try ChainOfSight.inflate(connector, with: spec, grid: newGrid)
        let pairs = try ScaleTokens.preservedTokens(trained: connector.config, spec: spec, newGrid: newGrid)
        #expect(pairs.count == 16)  // the global scale (r = grid ratio, m = 1) in both presets
        var g = RandomGenerator(seed: 11)
        let features = (0..<2).map { _ in Tensor.uniform([2, 256, 32], low: -2, high: 2, generator: &g) }
        let old = try connector(features.map { FeatureLevel($0, grid: .square(16)) })
        let factor = newGrid.height / 16
        let up = try features.map { try ScaleTokens.nearestUpsample($0, grid: .square(16), factor: factor) }
        let new = try scaled(up.map { FeatureLevel($0, grid: newGrid) })
        let (tOld, tNew, d) = (old.shape[1], new.shape[1], old.shape[2])
        let (o, n) = (old.scalars, new.scalars)
        var worst = 0.0
        for b in 0..<2 {
            for (i, j) in pairs {
                let a = Array(n[((b * tNew + i) * d)..<((b * tNew + i + 1) * d)])
                let r = Array(o[((b * tOld + j) * d)..<((b * tOld + j + 1) * d)])
                worst = max(worst, relativeError(a, r))
            }
        }
        #expect(worst < 1e-5, "worst relative error \(worst)")
        // A split window (m = 16) sees a sixteenth of its parent's window: its outputs differ.
        let split = (16..<32).map { i in Array(n[(i * d)..<((i + 1) * d)]) }
        #expect(split.contains { relativeError($0, Array(o[0..<d])) > 1e-3 })
    }

    @Test func stageReadsThePretrainedCheckpointAndRecordsTokens() throws {
        let dir = try scratchDirectory("scale")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try tinyTower().save(to: dir + "/pretrain/vision")
        try tinyConnector().save(to: dir + "/pretrain/connector")
        let config = try tinyConfig(output: dir)
        let r = try ScaleTokensStage.run(config: config, output: dir)
        #expect(r.tokens == 528)
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: r.directory + "/tokens.json")))
            as! [String: Any]
        #expect(info["visual_tokens"] as? Int == 528)
        #expect(info["trained_visual_tokens"] as? Int == 32)
        let tower = try CLIPVisionModel.fromPretrained(directory: r.directory + "/vision").model
        #expect(tower.config.imageSize == 128)
        let c = try connectorFromPretrained(directory: r.directory + "/connector").connector
        #expect(try c.tokenCount(grid: .square(32)) == 528)
        #expect(try TrainingConfig.load(path: r.directory + "/config.yaml") == config)
        // A bad extension name is a config error naming the key.
        do {
            _ = try ScaleTokensStage.run(config: config.applying(overrides: ["scale-tokens.extension=demo32to144"])
                .applying(overrides: ["scale-tokens.image_size=64"]), output: dir)
        }
        #expect(throws: ConfigError.self) { try TrainingConfig.defaults.applying(overrides: ["scale-tokens.extension=x"]) }
    }
}
