import Foundation
import Layers
import SightlineTestSupport
import Tensor
import Testing
import Vision

// LoRA on the CLIP tower through Layers' one `Linear`: the adapters attach by PEFT's name rule to the
// attention projections, training moves only them, and merging is the same function.

@Suite struct VisionLoRATests {
    let config = CLIPVisionConfig(
        imageSize: 16, patchSize: 8, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
        intermediateSize: 32)

    func meanSquare(_ y: Tensor, _ target: Tensor) throws -> Tensor {
        let d = try y - target
        return try (d * d).sum() / Float(d.count)
    }

    @Test func adaptersOnQueryAndValueTrainAloneAndMergeExactly() throws {
        let tower = try CLIPVisionModel(config: config, seed: 3)
        var g = RandomGenerator(seed: 11)
        let pixels = Tensor.normal([2, 3, 16, 16], generator: &g)
        let target = Tensor.normal([2, 5, 16], generator: &g)
        tower.eval()
        let plain = try tower(pixels).hiddenStates[2]!

        let lora = LoRAConfig(r: 2, loraAlpha: 4, loraDropout: 0.1, targetModules: ["q_proj", "v_proj"])
        let adapted = try tower.attachLoRA(lora, seed: 5)
        #expect(adapted.count == 4, "\(adapted)")
        #expect(adapted.allSatisfy { $0.hasSuffix(".self_attn.q_proj") || $0.hasSuffix(".self_attn.v_proj") })
        let trainable = tower.trainableParameters().map(\.0)
        #expect(trainable.count == 8 && trainable.allSatisfy(isAdapterParameter), "\(trainable)")
        // A fresh adapter (B = 0) changes nothing.
        #expect(try tower(pixels).hiddenStates[2]!.scalars == plain.scalars)

        tower.train()  // adapter dropout active
        let run = try trainAdaptersOnly(tower, steps: 6, learningRate: 0.5) {
            try meanSquare(tower(pixels).hiddenStates[2]!, target)
        }
        print("ViT LoRA losses: \(run.losses)")
        #expect(run.losses.last! < run.losses.first!, "loss did not fall: \(run.losses)")
        #expect(run.changed == Set(trainable), "changed: \(run.changed.sorted())")
        #expect(run.unchanged.allSatisfy { !isAdapterParameter($0) })

        // Merged output equals unmerged; unmerging restores the base weights.
        tower.eval()
        let unmerged = try tower(pixels).hiddenStates[2]!
        #expect(relativeError(unmerged.scalars, plain.scalars) > 1e-3, "training had no effect")
        let base = Dictionary(
            uniqueKeysWithValues: tower.loraModules.map { ($0.0, $0.1.weight.data.scalars) })
        try tower.mergeLoRA()
        #expect(tower.loraModules.allSatisfy { $0.1.isMerged })
        let merged = try tower(pixels).hiddenStates[2]!
        let e = relativeError(merged.scalars, unmerged.scalars)
        #expect(e < 1e-5, "merged vs unmerged: \(e)")
        try tower.unmergeLoRA()
        for (name, l) in tower.loraModules {
            let back = relativeError(l.weight.data.scalars, base[name]!)
            #expect(back < 1e-6, "\(name): unmerge left rel err \(back)")
        }
        // The merged state dict is the plain tower's key set, with the adapters' product folded in.
        let mergedDict = try tower.mergedStateDict()
        #expect(Set(mergedDict.map(\.0)) == Set(try CLIPVisionModel(config: config).stateDict().map(\.0)))
    }

    @Test func presetTargetsEveryAttentionProjection() throws {
        let tower = try CLIPVisionModel(config: config, seed: 3)
        let adapted = try tower.attachLoRA(LoRAConfig(r: 2, targetModules: LoRAConfig.clipAttentionTargets))
        #expect(adapted.count == 8)
        #expect(!adapted.contains { $0.contains("mlp") })
    }
}
