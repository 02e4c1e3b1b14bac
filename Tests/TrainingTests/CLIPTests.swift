import Foundation
import SightlineTestSupport
import Tensor
import Testing
import Training

@Suite struct CLIPTests {
    @Test func infoNCEGradientMatchesFiniteDifferences() throws {
        let image = randomTensor([5, 4], seed: 1)
        let text = randomTensor([5, 4], seed: 2)
        let scale = Tensor(Float(2.0))
        let r = try gradCheck([image, text, scale]) { xs in
            try clipContrastiveLoss(imageEmbeddings: xs[0], textEmbeddings: xs[1], logitScale: xs[2])
        }
        #expect(r.passed, "\(r)")
    }

    @Test func infoNCEValueAndClamp() throws {
        // Identical unit embeddings that are mutually orthogonal: logits s*I, loss = log(1 + (B-1)e^-s).
        let e = Tensor.eye(3)
        let s: Float = 1.5
        let loss = try clipContrastiveLoss(imageEmbeddings: e, textEmbeddings: e, logitScale: Tensor(log(s)))
        let expected = Foundation.log(1 + 2 * Foundation.exp(-Double(s)))
        #expect(abs(Double(try loss.item()) - expected) < 1e-6)
        // Above ln(100) the scale is clamped: the loss uses 100 and the scale gets no gradient.
        let (v, g) = try valueAndGradient(
            of: { try clipContrastiveLoss(imageEmbeddings: e, textEmbeddings: e, logitScale: $0[0]) },
            at: [Tensor(Float(5))])
        #expect(abs(Double(try v.item()) - Foundation.log(1 + 2 * Foundation.exp(-100.0))) < 1e-6)
        #expect(try g[0].item() == 0)
        // Wrong shapes are named.
        #expect(throws: TensorError.self) {
            try clipContrastiveLoss(imageEmbeddings: Tensor.eye(3), textEmbeddings: Tensor.eye(2), logitScale: Tensor(1))
        }
    }

    @Test func textTowerPoolsAtEndOfTextAndHasHFNames() throws {
        let config = CLIPTextConfig(
            vocabSize: 20, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 2, numAttentionHeads: 2,
            maxPositionEmbeddings: 8, eosTokenId: 3)
        let model = try CLIPTextModel(config: config, seed: 3)
        let names = model.namedParameters().map(\.0)
        #expect(names.first == "text_model.embeddings.token_embedding.weight")
        #expect(names.contains("text_model.encoder.layers.1.self_attn.out_proj.weight"))
        #expect(names.last == "text_model.final_layer_norm.bias")
        // Row 0 ends at position 3, row 1 at position 5; padding after the end changes nothing.
        let ids = try IndexTensor(shape: [2, 6], values: [2, 7, 8, 3, 0, 0, 2, 9, 10, 11, 12, 3])
        let out = try model(ids)
        #expect(out.pooled.shape == [2, 16])
        let last = out.lastHiddenState.scalars
        #expect(Array(out.pooled.scalars[0..<16]) == Array(last[(3 * 16)..<(4 * 16)]))
        #expect(Array(out.pooled.scalars[16..<32]) == Array(last[((6 + 5) * 16)..<((6 + 6) * 16)]))
        let repadded = try IndexTensor(shape: [2, 6], values: [2, 7, 8, 3, 5, 6, 2, 9, 10, 11, 12, 3])
        #expect(try model(repadded).pooled.scalars == out.pooled.scalars)
        #expect(throws: TensorError.self) { try model(IndexTensor(shape: [1, 3], values: [2, 7, 8])) }
    }

    @Test func clipStageLossFallsOnTheSyntheticWorld() throws {
        let dir = try scratchDirectory("clip")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // 48-pixel images (a 12 x 12 grid) keep the stage to a few seconds.
        let config = try tinyConfig(output: dir).applying(overrides: [
            "data.synthetic.image_size=48", "model.vision.image_size=48", "clip.optimization.steps=30",
            "clip.optimization.lr=0.005", "clip.cadence.eval_every=30",
        ])
        let metrics = try RunMetrics(directory: dir, settings: config.metrics)
        let result = try ClipStage.run(config: config, output: dir, metrics: metrics)
        #expect(result.losses.count == 30)
        // ln(16) = 2.77 is chance for a batch of 16 pairs.
        let first = result.losses.prefix(5).reduce(0, +) / 5
        let last = result.losses.suffix(5).reduce(0, +) / 5
        #expect(last < first - 0.15, "train loss \(first) -> \(last)")
        #expect(result.evalLossAfter < result.evalLossBefore, "held-out \(result.evalLossBefore) -> \(result.evalLossAfter)")
        // The tower the next stage starts from, the two-tower weights, the resolved config, metrics.
        let fm = FileManager.default
        for f in ["clip/vision/model.safetensors", "clip/vision/config.json", "clip/clip_model.safetensors",
            "clip/config.yaml", "metrics.jsonl", "loss.svg", "lr.svg"]
        {
            #expect(fm.fileExists(atPath: dir + "/" + f), "missing \(f)")
        }
        #expect(try TrainingConfig.load(path: dir + "/clip/config.yaml") == config)
    }
}
