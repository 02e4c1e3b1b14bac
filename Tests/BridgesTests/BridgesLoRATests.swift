import Bridges
import Foundation
import Layers
import SightlineTestSupport
import Tensor
import Testing

// LoRA on a Chain-of-Sight block through Layers' one `Linear`: a regular expression picks one block's
// `to_q`/`to_kv`/`proj`, training moves only those adapters, and merging is exact.

@Suite struct BridgesLoRATests {
    @Test func adaptersOnOneChainOfSightBlockTrainAloneAndMergeExactly() throws {
        let m = try smallChainOfSight(seed: 2)
        let levels = [
            FeatureLevel(features(2, .square(8), 12, seed: 3), grid: .square(8)),
            FeatureLevel(features(2, .square(8), 12, seed: 4), grid: .square(8)),
        ]
        let before = try m(levels)
        let target = randomTensor(before.shape, seed: 5)
        let block = try #require(m.namedModules().map(\.0).first { $0.hasPrefix("attn_") })
        let pattern = NSRegularExpression.escapedPattern(for: block) + #"\.(to_q|to_kv|proj)"#
        let adapted = try m.attachLoRA(LoRAConfig(r: 2, loraAlpha: 2, loraDropout: 0, targetPattern: pattern))
        #expect(adapted == [block + ".to_q", block + ".to_kv", block + ".proj"], "\(adapted)")
        let trainable = m.trainableParameters().map(\.0)
        #expect(trainable.count == 6 && trainable.allSatisfy(isAdapterParameter))
        #expect(try m(levels).scalars == before.scalars)  // fresh adapters change nothing

        let run = try trainAdaptersOnly(m, steps: 8, learningRate: 0.1) {
            let d = try m(levels) - target
            return try (d * d).sum() / Float(d.count)
        }
        print("Chain-of-Sight block LoRA losses: \(run.losses)")
        #expect(run.losses.last! < run.losses.first!, "loss did not fall: \(run.losses)")
        #expect(run.changed == Set(trainable), "changed: \(run.changed.sorted())")

        let unmerged = try m(levels)
        let base = Dictionary(uniqueKeysWithValues: m.loraModules.map { ($0.0, $0.1.weight.data.scalars) })
        try m.mergeLoRA()
        let e = relativeError(try m(levels).scalars, unmerged.scalars)
        #expect(e < 1e-5, "merged vs unmerged: \(e)")
        try m.unmergeLoRA()
        for (name, l) in m.loraModules {
            #expect(relativeError(l.weight.data.scalars, base[name]!) < 1e-6, "\(name) not restored")
        }
    }

    @Test func presetTargetsEveryCrossAttentionButNotTheOutputProjection() throws {
        let m = try smallChainOfSight()
        let adapted = try m.attachLoRA(LoRAConfig(r: 2, targetModules: LoRAConfig.chainOfSightAttentionTargets))
        // 2 levels x 3 scales blocks, 3 projections each; the connector's `out_proj` is not `proj`.
        #expect(adapted.count == 18 && !adapted.contains("out_proj"), "\(adapted)")
    }

    @Test func invalidAdapterSettingsThrowNamingTheValue() throws {
        let m = try smallChainOfSight()
        #expect(throws: TensorError.self) { try m.attachLoRA(LoRAConfig(r: 0, targetModules: ["to_q"])) }
        #expect(throws: TensorError.self) { try m.attachLoRA(LoRAConfig(targetModules: ["nothing_here"])) }
        #expect(throws: TensorError.self) { try m.attachLoRA(LoRAConfig(targetPattern: "(unclosed")) }
        do {
            try m.attachLoRA(LoRAConfig(loraDropout: 1, targetModules: ["to_q"]))
            Issue.record("dropout 1 was accepted")
        } catch let e as TensorError {
            #expect(e.description.contains("1.0"), "\(e)")
        }
    }
}
