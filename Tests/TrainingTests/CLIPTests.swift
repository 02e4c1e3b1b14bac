import Datasets
import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import TrainingTestSupport
import Vision
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

/// Stops a run (through its `StopRequest`) once step `step` is recorded.
final class StopAtStep: MetricsSink {
    let stop: StopRequest
    let step: Int
    init(_ stop: StopRequest, at step: Int) {
        self.stop = stop
        self.step = step
    }
    func record(stage: String, step: Int, scalars: [String: Double]) throws {
        if step == self.step && scalars["loss"] != nil { stop.request() }
    }
    func flush() throws {}
}

@Suite(.serialized) struct ClipLoopTests {
    /// A tiny 48-pixel world (the synthetic world's smallest: 4 x 4 cells of 3 patches of 4 px); 8 pairs
    /// per step in 2 micro-batches of 4.
    func config(_ dir: String, steps: Int = 6) throws -> TrainingConfig {
        try tinyConfig(output: dir).applying(overrides: [
            "data.synthetic.image_size=48", "model.vision.image_size=48", "clip.optimization.steps=\(steps)",
            "clip.optimization.global_batch=8", "clip.optimization.micro_batch=4", "clip.optimization.lr=0.005",
            "clip.optimization.warmup_steps=2", "clip.cadence.eval_every=100", "clip.cadence.checkpoint_every=2",
            "clip.cadence.eval_batches=1", "run.resume=auto", "metrics.tensorboard=false",
        ])
    }

    /// The clip stage on the common loop: stopped after step 3 (checkpoint saved), resumed with
    /// `resume: auto`: the losses and final weights equal the uninterrupted run's, bit for bit.
    @Test func clipStageStoppedAndResumedEqualsTheUninterruptedRunBitForBit() throws {
        try ComputeRuntime.$threadsOverride.withValue(ComputeRuntime.threads) {
            let root = try scratchDirectory("clip-resume")
            defer { try? FileManager.default.removeItem(atPath: root) }
            let straight = try ClipStage.run(config: config(root + "/a"), output: root + "/a")
            #expect(straight.losses.count == 6 && straight.summary.finalStep == 6)

            let dir = root + "/b"
            let stop = StopRequest()
            let first = try ClipStage.run(config: config(dir), output: dir, sinks: [StopAtStep(stop, at: 3)], stop: stop)
            #expect(first.summary.stoppedBy == "request" && first.summary.finalStep == 3)
            #expect(!FileManager.default.fileExists(atPath: dir + "/clip/vision/model.safetensors"), "written before the last step")
            let rest = try ClipStage.run(config: config(dir), output: dir)
            #expect(rest.summary.resumedFrom == 3 && rest.summary.finalStep == 6)
            #expect((first.losses + rest.losses).map(\.bitPattern) == straight.losses.map(\.bitPattern))
            for ((name, p), (_, q)) in zip(straight.model.stateDict(), rest.model.stateDict()) {
                #expect(p.scalars == q.scalars, "\(name) differs after resume")
            }
            #expect(FileManager.default.fileExists(atPath: dir + "/clip/vision/model.safetensors"))
            #expect(!straight.losses.contains { !$0.isFinite })
        }
    }

    /// 2 micro-batches of 4 pairs give the loss and gradients of one batch of the same 8 pairs: the
    /// InfoNCE of the whole global batch (every other pair a negative), not a mean of micro-batch losses.
    @Test func twoMicroBatchesOfFourEqualOneBatchOfEight() throws {
        let dir = try scratchDirectory("clip-accumulate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try config(dir)
        let s = c.data.synthetic
        let world = try SyntheticWorld(
            seed: UInt64(s.seed), imageSize: s.imageSize, patchSize: s.patchSize, heldOutEvery: s.heldOutEvery)
        let vocabulary = SyntheticVocabulary()
        let task = ContrastiveTask(model: try ClipStage.makeModel(c, vocabulary: vocabulary))
        func stream(_ micro: Int) throws -> BatchFeed<CaptionBatch>.Stream {
            try ClipStage.feed(
                world: world, split: .train, imageSize: 48, vocabulary: vocabulary, maxLength: 64, microBatch: micro
            ).open(nil)
        }
        let small = try stream(4), large = try stream(8)
        let a = try task.accumulateGradients(microBatches: 2, zLoss: 0) { try small.next() }
        let b = try task.accumulateGradients(microBatches: 1, zLoss: 0) { try large.next() }
        #expect(a.supervisedTokens == 8 && b.supervisedTokens == 8 && a.images == 8)
        #expect(abs(a.loss - b.loss) / b.loss <= 1e-6, "\(a.loss) vs \(b.loss)")
        #expect(a.gradients.names == b.gradients.names && a.gradients.count > 20)
        var allA: [Float] = [], allB: [Float] = []
        var worst = (name: "", error: 0.0)
        for (name, g) in b.gradients {
            let e = relativeError(a.gradients[name]!.scalars, g.scalars)
            if e > worst.error && !name.hasSuffix("self_attn.k_proj.bias") { worst = (name, e) }
            allA += a.gradients[name]!.scalars
            allB += g.scalars
        }
        #expect(relativeError(allA, allB) <= 1e-6, "whole gradient: \(relativeError(allA, allB))")
        #expect(worst.error <= 1e-5, "worst tensor \(worst.name): \(worst.error)")
        // A mean of the two micro-batches' own InfoNCE losses is another number (fewer negatives).
        let halves = try stream(4)
        var meanOfMeans = 0.0
        for _ in 0..<2 {
            let m = try halves.next()
            meanOfMeans += Double(try noGrad { try task.model.loss(pixels: m.pixels, ids: m.ids) }.item()) / 2
        }
        #expect(abs(meanOfMeans - b.loss) > 1e-2, "\(meanOfMeans) vs \(b.loss)")
    }
}

/// The clip stage's two-tower model (`ContrastiveCLIP`: `CLIPTextTransformer` + the CLIP vision tower,
/// projections, `logit_scale`) and its InfoNCE loss against HF `CLIPModel(return_loss=True)` (float64
/// reference, scripts/make_clip_fixtures.py): projected embeddings, the loss and every gradient within
/// 1e-4 relative per tensor.
@Test func contrastiveCLIPMatchesHFCLIPModel() throws {
    let dir = TinyRun.fixtures("training")
    let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("clip.json")))
        as! [String: Any]
    let file = try SafetensorsFile(path: dir.appendingPathComponent("clip.safetensors").path)
    let t = meta["text"] as! [String: Any]
    let v = meta["vision"] as! [String: Any]
    let text = CLIPTextConfig(
        vocabSize: t["vocab_size"] as! Int, hiddenSize: t["hidden_size"] as! Int,
        intermediateSize: t["intermediate_size"] as! Int, numHiddenLayers: t["num_hidden_layers"] as! Int,
        numAttentionHeads: t["num_attention_heads"] as! Int, maxPositionEmbeddings: t["max_position_embeddings"] as! Int,
        eosTokenId: t["eos_token_id"] as! Int, padTokenId: t["pad_token_id"] as! Int)
    let tower = try CLIPVisionModel(
        config: CLIPVisionConfig(
            imageSize: v["image_size"] as! Int, patchSize: v["patch_size"] as! Int, hiddenSize: v["hidden_size"] as! Int,
            numHiddenLayers: v["num_hidden_layers"] as! Int, numAttentionHeads: v["num_attention_heads"] as! Int,
            intermediateSize: v["intermediate_size"] as! Int))
    let model = try ContrastiveCLIP(vision: tower, text: text, projectionDim: meta["projection_dim"] as! Int)
    let names = meta["parameters"] as! [String]
    #expect(Set(model.namedParameters().map(\.0)) == Set(names), "HF CLIPModel's parameter names")
    for (name, p) in model.namedParameters() {
        let w = try file.readTensor("param/" + name)
        #expect(w.shape == p.shape, "\(name): \(w.shape) vs \(p.shape)")
        p.data = w
    }
    let rows = meta["ids"] as! [[Int]]
    let ids = try IndexTensor(shape: [rows.count, rows[0].count], values: rows.flatMap { $0 })
    let pixels = try file.readTensor("pixels")
    let embeds = try noGrad { (try model.textEmbeddings(ids), try model.imageEmbeddings(pixels)) }
    #expect(relativeError(embeds.0.scalars, try file.readTensor("text_embeds").scalars) <= 1e-4)
    #expect(relativeError(embeds.1.scalars, try file.readTensor("image_embeds").scalars) <= 1e-4)
    let (value, grads) = try valueAndGradient(at: model.namedParameters()) { try model.loss(pixels: pixels, ids: ids) }
    let want = meta["loss"] as! Double
    let loss = Double(try value.item())
    #expect(abs(loss - want) / want <= 1e-4, "loss \(loss) vs \(want)")
    var compared = 0
    for (name, _) in model.namedParameters() {
        guard file.tensorInfos.contains(where: { $0.name == "grad/" + name }) else {
            #expect(grads[name] == nil, "\(name) gets a gradient HF's does not")
            continue
        }
        let g = try #require(grads[name], "no gradient for \(name)")
        let ref = try file.readTensor("grad/" + name)
        if name.hasSuffix("self_attn.k_proj.bias") {
            // Zero in exact arithmetic (softmax cancels a key bias): both sides are rounding noise.
            #expect(g.scalars.allSatisfy { abs($0) < 1e-5 }, "\(name)")
            continue
        }
        let e = relativeError(g.scalars, ref.scalars)
        #expect(e <= 1e-4, "\(name): \(e)")
        compared += 1
    }
    #expect(compared > 60)
}
