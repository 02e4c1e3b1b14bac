import Bridges
import Checkpoint
import Datasets
import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing
import Training
import Vision

/// The four stages of a run, end to end, through the real stage functions on a tiny config of the
/// synthetic world: `clip` -> `pretrain` (Chain-of-Sight at 32 tokens, tower frozen) -> `scale-tokens`
/// (`demo32to144`: 32 -> 144 tokens at the same 64 px, windows split and queries inflated) ->
/// `finetune` (LoRA on the decoder, the connector trained fully, the tower frozen).
func pipelineConfig(output: String) throws -> TrainingConfig {
    try tinyConfig(output: output).applying(overrides: [
        "run.resume=never",
        "metrics.tensorboard=false", "metrics.plots=false",
        "model.language.hidden_size=32", "model.language.intermediate_size=64",
        "model.language.num_hidden_layers=2", "model.language.num_attention_heads=4",
        "model.language.num_key_value_heads=2", "model.language.max_position_embeddings=1024",
        "model.connector.head_dim=16",
        "data.sequence_length=256", "data.max_images=4",
        "clip.optimization.steps=40", "clip.cadence.eval_every=40",
        "pretrain.optimization.steps=30", "pretrain.optimization.global_batch=2",
        "pretrain.optimization.micro_batch=2", "pretrain.optimization.warmup_steps=3",
        "pretrain.optimization.lr=0.003", "pretrain.cadence.eval_every=1000",
        "pretrain.cadence.checkpoint_every=1000",
        "scale-tokens.extension=demo32to144", "scale-tokens.image_size=64",
        "finetune.optimization.steps=40", "finetune.optimization.global_batch=2",
        "finetune.optimization.micro_batch=2", "finetune.optimization.warmup_steps=3",
        "finetune.optimization.lr=0.01", "finetune.cadence.eval_every=1000",
        "finetune.cadence.checkpoint_every=1000",
    ])
}

/// Mean of the first and of the last `k` values, and the standard error of their difference (from
/// the spread inside each window): a fall counts only when it is many standard errors wide.
func earlyLate(_ xs: [Double], _ k: Int) -> (early: Double, late: Double, standardError: Double) {
    func stats(_ w: ArraySlice<Double>) -> (Double, Double) {
        let m = w.reduce(0, +) / Double(w.count)
        let v = w.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(max(1, w.count - 1))
        return (m, v / Double(w.count))
    }
    let (e, ve) = stats(xs.prefix(k))
    let (l, vl) = stats(xs.suffix(k))
    return (e, l, (ve + vl).squareRoot())
}

@Suite(.serialized) struct StagePipelineTests {
    @Test func clipPretrainScaleTokensFinetuneEndToEnd() throws {
        try ComputeRuntime.$threadsOverride.withValue(ComputeRuntime.threads) { try runPipeline() }
    }

    private func runPipeline() throws {
        let dir = try scratchDirectory("pipeline")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try pipelineConfig(output: dir)

        // 1. clip: the contrastive loss falls (chance for a batch of 16 pairs is ln 16 = 2.77).
        let clip = try ClipStage.run(config: config, output: dir)
        #expect(clip.losses.count == 40)
        let c = earlyLate(clip.losses, 10)
        #expect(c.early - c.late > max(0.1, 3 * c.standardError), "clip loss \(c.early) -> \(c.late) (se \(c.standardError))")
        // The held-out loss (the same pairs before and after) falls as well: the tower learned its images.
        #expect(clip.evalLossBefore - clip.evalLossAfter > 0.2, "clip eval loss \(clip.evalLossBefore) -> \(clip.evalLossAfter)")

        // 2. pretrain from clip's tower: the next-token loss falls; the frozen tower is clip's, bit for bit.
        let pre = try PretrainStage.run(config: config, output: dir)
        #expect(pre.visualTokens == 32 && pre.steps == 30 && pre.losses.count == 30)
        let p = earlyLate(pre.losses.map { $0[1] }, 10)
        #expect(p.early - p.late > max(0.5, 3 * p.standardError), "pretrain loss \(p.early) -> \(p.late) (se \(p.standardError))")
        let clipTower = try CLIPVisionModel.fromPretrained(directory: dir + "/clip/vision").model
        let trained = try StageModels.load(directory: dir + "/pretrain")
        expectBitIdentical(clipTower.stateDict(), trained.visionTower.stateDict(), "pretrain tower vs clip tower")
        #expect(clipTower.stateDict().count > 10)

        // 3. scale-tokens: 144 tokens; where inflation preserves a token, the scaled connector on the
        //    trained tower's features (nearest-upsampled to the new grid; here the same grid) gives the
        //    trained token.
        let scaled = try ScaleTokensStage.run(config: config, output: dir)
        #expect(scaled.tokens == 144 && scaled.tower.config.imageSize == 64)
        let trainedConnector = try #require(trained.connector as? ChainOfSight)
        let onDisk = try #require(
            try connectorFromPretrained(directory: dir + "/scale-tokens/connector").connector as? ChainOfSight)
        let spec = try ScaleTokens.extensionPreset(named: config.scaleTokens.extension)
        let pairs = try ScaleTokens.preservedTokens(
            trained: trainedConnector.config, spec: spec, newGrid: onDisk.config.grid)
        #expect(pairs.count == 16, "the global scale (r = grid ratio, m = 1)")
        let s = config.data.synthetic
        let world = try SyntheticWorld(
            seed: UInt64(s.seed), imageSize: s.imageSize, patchSize: s.patchSize, heldOutEvery: s.heldOutEvery)
        let pixels = try ClipStage.batch(
            world: world, indices: [0, 1, 2], split: .heldOut, imageSize: 64, vocabulary: SyntheticVocabulary(),
            maxLength: 64
        ).pixels
        let (old, new) = try noGrad { () throws -> (Tensor, Tensor) in
            let f = try trained.visionTower.features(pixels, layers: trained.connector.featureLevels)
            let grid = Grid(height: f.grid.height, width: f.grid.width)
            let old = try trainedConnector(f.levels.map { FeatureLevel($0, grid: grid) })
            let factor = onDisk.config.grid.height / grid.height
            let up = try f.levels.map { try ScaleTokens.nearestUpsample($0, grid: grid, factor: factor) }
            return (old, try onDisk(up.map { FeatureLevel($0, grid: onDisk.config.grid) }))
        }
        #expect(old.shape == [3, 32, 32] && new.shape == [3, 144, 32])
        let d = old.shape[2]
        var worst = 0.0
        var splitDiffers = 0
        let preservedNew = Set(pairs.map(\.new))
        for b in 0..<3 {
            for (i, j) in pairs {
                worst = max(worst, relativeError(row(new, b, i, d), row(old, b, j, d)))
            }
            // Tokens of split windows (m = 4) see a quarter of their parent's window: they differ.
            for i in 0..<new.shape[1] where !preservedNew.contains(i) {
                if relativeError(row(new, b, i, d), row(old, b, i % 16, d)) > 1e-3 { splitDiffers += 1 }
            }
        }
        #expect(worst < 1e-5, "preserved tokens: worst relative error \(worst)")
        #expect(splitDiffers > 0)

        // 4. finetune from scale-tokens: its loss falls; only LoRA adapters and the connector change;
        //    the frozen tower and the decoder's base weights are bit-identical to the scaled checkpoint.
        let fine = try FinetuneStage.run(config: config, output: dir)
        #expect(fine.visualTokens == 144 && fine.steps == 40)
        let f = earlyLate(fine.losses.map { $0[1] }, 10)
        #expect(f.early - f.late > max(0.2, 3 * f.standardError), "finetune loss \(f.early) -> \(f.late) (se \(f.standardError))")
        let start = try StageModels.load(directory: dir + "/scale-tokens")
        let last = try #require(try CheckpointDirectory(dir + "/finetune/adapter/checkpoints").latest())
        let adapted = try TrainingCheckpoint.read(from: last.path).model
        let initial = Dictionary(uniqueKeysWithValues: start.stateDict())
        var loraB = 0, connectorChanged = 0, connectorTensors = 0, frozen = 0
        for name in adapted.names {
            let t = try #require(adapted[name])
            if name.contains(".lora_") {
                #expect(name.hasPrefix(MultimodalModel.languagePrefix), "\(name): adapters are on the decoder only")
                if name.contains(".lora_B.") {
                    loraB += 1
                    #expect(t.scalars.contains { $0 != 0 }, "\(name) is still zero: the adapter did not train")
                }
                continue
            }
            let before = try #require(initial[name], "\(name) is not in the scaled checkpoint")
            if name.hasPrefix(MultimodalModel.connectorPrefix) {
                connectorTensors += 1
                if t.scalars != before.scalars { connectorChanged += 1 }
            } else {
                frozen += 1
                #expect(t.scalars == before.scalars, "\(name) changed during fine-tuning")
            }
        }
        #expect(loraB == 2 * 7, "7 target modules in each of 2 decoder layers")
        #expect(frozen == initial.count - connectorTensors && frozen > 20)
        #expect(connectorChanged == connectorTensors && connectorTensors > 10, "\(connectorChanged)/\(connectorTensors)")
        // The saved tower of the fine-tuned model is the scaled one, bit for bit.
        let fineTower = try CLIPVisionModel.fromPretrained(directory: dir + "/finetune/vision").model
        expectBitIdentical(scaled.tower.stateDict(), fineTower.stateDict(), "finetune tower vs scaled tower")
    }

    private func row(_ t: Tensor, _ b: Int, _ i: Int, _ d: Int) -> [Float] {
        let n = t.shape[1]
        return Array(t.scalars[((b * n + i) * d)..<((b * n + i + 1) * d)])
    }

    private func expectBitIdentical(_ a: [(String, Tensor)], _ b: [(String, Tensor)], _ what: String) {
        #expect(a.map(\.0) == b.map(\.0), "\(what): names")
        for ((name, x), (_, y)) in zip(a, b) { #expect(x.scalars == y.scalars, "\(what): \(name)") }
    }
}
