import Datasets
import Foundation
import Logging
import Optim
import TensorFiles
import Tensor
import Vision

/// A word-level vocabulary of the synthetic world (used when `data.tokenizer` is ""): ids 0-4 are
/// `<pad>`, `<image>`, `<s>`, `</s>`, `<unk>`, then the world's words in sorted order.
public struct SyntheticVocabulary: Sendable {
    public static let pad = 0, image = 1, bos = 2, eos = 3, unknown = 4
    public let words: [String]
    private let ids: [String: Int]

    public init() {
        words = ["<pad>", "<image>", "<s>", "</s>", "<unk>"] + SyntheticWorld.vocabulary
        ids = Dictionary(words.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a })
    }

    /// Number of ids.
    public var count: Int { words.count }

    /// The ids of a world text's words and punctuation (`<unk>` for anything else).
    public func encode(_ text: String) -> [Int] { SyntheticWorld.words(text).map { ids[$0] ?? Self.unknown } }
}

/// The `clip` stage: contrastive image-text pre-training of the vision tower on the synthetic world's
/// image-caption pairs (MM1's encoder objective; how a run with no downloadable CLIP gets a tower that
/// has learned its images).
///
/// Writes `<output>/clip/`: `vision/` (HF `CLIPVisionModel` directory the `pretrain` stage starts
/// from), `clip_model.safetensors` (both towers, projections and `logit_scale`, HF `CLIPModel` names)
/// and `config.yaml` (the resolved run configuration).
public enum ClipStage {
    /// What a run did.
    public struct Result {
        /// Training loss per step.
        public var losses: [Double]
        /// Held-out loss before the first and after the last step.
        public var evalLossBefore: Double
        public var evalLossAfter: Double
        /// The stage folder.
        public var directory: String
        /// The trained model.
        public var model: ContrastiveCLIP
    }

    /// Builds the two-tower model of `config` (random weights, or the tower of `model.vision_weights`).
    public static func makeModel(_ config: TrainingConfig, vocabulary: SyntheticVocabulary) throws -> ContrastiveCLIP {
        let seed = UInt64(config.run.seed)
        let tower: CLIPVisionModel =
            config.model.visionWeights.isEmpty
            ? try CLIPVisionModel(config: config.model.vision, seed: seed &+ 11)
            : try CLIPVisionModel.fromPretrained(directory: config.model.visionWeights).model
        let t = config.clip.text
        let text = CLIPTextConfig(
            vocabSize: vocabulary.count, hiddenSize: t.hiddenSize, intermediateSize: t.intermediateSize,
            numHiddenLayers: t.numHiddenLayers, numAttentionHeads: t.numAttentionHeads,
            maxPositionEmbeddings: t.maxPositionEmbeddings, eosTokenId: SyntheticVocabulary.eos,
            padTokenId: SyntheticVocabulary.pad)
        return try ContrastiveCLIP(
            vision: tower, text: text, projectionDim: config.clip.projectionDim,
            logitScaleInit: Float(config.clip.logitScaleInit), logitScaleMax: Float(config.clip.logitScaleMax),
            seed: seed &+ 12)
    }

    /// A batch of image-caption pairs `indices` of `split`: pixels `[B, 3, S, S]` (CLIP-normalised at
    /// the tower's size) and caption ids `[B, T]` (`<s>` words `</s>`, padded; cut to `maxLength`
    /// keeping `</s>`).
    public static func batch(
        world: SyntheticWorld, indices: [Int], split: SyntheticWorld.Split, imageSize: Int,
        vocabulary: SyntheticVocabulary, maxLength: Int
    ) throws -> (pixels: Tensor, ids: IndexTensor) {
        let preprocess = PipelineImages.clip(size: imageSize)
        var images: [Tensor] = []
        var rows: [[Int]] = []
        for i in indices {
            let s = world.captionSample(i, split: split)
            for part in s.parts {
                switch part {
                case .image(let ref): images.append(try preprocess(PipelineImages.decode(ref)).pixels)
                case .text(let t, _):
                    var ids = [SyntheticVocabulary.bos] + vocabulary.encode(t)
                    if ids.count > maxLength - 1 { ids = Array(ids.prefix(maxLength - 1)) }
                    rows.append(ids + [SyntheticVocabulary.eos])
                }
            }
        }
        let t = rows.map(\.count).max() ?? 1
        let flat = rows.flatMap { $0 + Array(repeating: SyntheticVocabulary.pad, count: t - $0.count) }
        return (try Tensor.concatenate(images, axis: 0), try IndexTensor(shape: [rows.count, t], values: flat))
    }

    /// Runs the stage.
    /// - Parameters:
    ///   - output: the run folder (the stage writes `<output>/clip/`).
    ///   - metrics: receives `loss`, `lr`, `grad_norm`, `logit_scale`, `images_per_s`, `eval_loss`.
    /// - Throws: `ConfigError` for a configuration the stage cannot use; errors of the model and files.
    @discardableResult
    public static func run(config: TrainingConfig, output: String, metrics: RunMetrics? = nil) throws -> Result {
        guard config.data.source == "synthetic" else {
            throw ConfigError(keyPath: "data.source", source: "clip", "the clip stage reads the synthetic world's captions")
        }
        let directory = output + "/clip"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try config.save(to: directory + "/config.yaml")
        let s = config.data.synthetic
        let world = try SyntheticWorld(
            seed: UInt64(s.seed), imageSize: s.imageSize, patchSize: s.patchSize, heldOutEvery: s.heldOutEvery)
        let vocabulary = SyntheticVocabulary()
        let model = try makeModel(config, vocabulary: vocabulary)
        let o = config.clip.optimization
        let peak = o.lr.resolve(languageModelParameters: max(1, model.textModel.parameterCount()))
        let optimizer = AdamW(
            .init(
                learningRate: peak, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay,
                schedule: o.schedule))
        let parameters = model.namedParameters()
        let imageSize = config.model.vision.imageSize
        let maxLength = config.clip.text.maxPositionEmbeddings
        let batchSize = o.globalBatch

        func evaluate() throws -> Double {
            var total = 0.0
            for k in 0..<config.cadence(for: .clip).evalBatches {
                let idx = (0..<batchSize).map { k * batchSize + $0 }
                let b = try batch(
                    world: world, indices: idx, split: .heldOut, imageSize: imageSize, vocabulary: vocabulary,
                    maxLength: maxLength)
                total += Double(try noGrad { try model.loss(pixels: b.pixels, ids: b.ids) }.item())
            }
            return total / Double(max(1, config.cadence(for: .clip).evalBatches))
        }

        metrics?.begin(stage: "clip", totalSteps: o.steps)
        let before = try evaluate()
        try metrics?.record(stage: "clip", step: 0, scalars: ["eval_loss": before])
        var losses: [Double] = []
        var after = before
        for step in 0..<o.steps {
            let start = Date()
            let idx = (0..<batchSize).map { step * batchSize + $0 }
            let b = try batch(
                world: world, indices: idx, split: .train, imageSize: imageSize, vocabulary: vocabulary,
                maxLength: maxLength)
            let (loss, grads) = try valueAndGradient(at: parameters) { try model.loss(pixels: b.pixels, ids: b.ids) }
            let multiplier = o.schedule.multiplier(at: optimizer.step)
            let outcome = try optimizer.update(
                parameters, gradients: grads, gradientNorm: nil, maxGradientNorm: o.clipNorm > 0 ? Float(o.clipNorm) : nil)
            let norm = outcome.gradientNorm
            model.clampLogitScale()
            let value = Double(try loss.item())
            losses.append(value)
            let seconds = Date().timeIntervalSince(start)
            let cadence = config.cadence(for: .clip)
            if (step + 1) % cadence.logEvery == 0 || step + 1 == o.steps {
                try metrics?.record(
                    stage: "clip", step: step + 1,
                    scalars: [
                        "loss": value, "lr": peak * multiplier, "grad_norm": Double(norm),
                        "logit_scale": Double(try model.logitScale.data.item()),
                        "images_per_s": Double(batchSize) / max(seconds, 1e-9),
                    ])
            }
            if (step + 1) % cadence.evalEvery == 0 || step + 1 == o.steps {
                after = try evaluate()
                try metrics?.record(stage: "clip", step: step + 1, scalars: ["eval_loss": after])
                try metrics?.flush()
            }
        }
        try model.vision.save(to: directory + "/vision")
        try SafetensorsFile.write(
            NamedTensors(model.stateDict()), to: directory + "/clip_model.safetensors", metadata: ["format": "pt"])
        try metrics?.finish(stage: "clip")
        return Result(losses: losses, evalLossBefore: before, evalLossAfter: after, directory: directory, model: model)
    }
}

extension TrainingConfig {
    /// The cadence section of a training stage (`scale-tokens` has none: it does not train).
    public func cadence(for stage: Stage) -> CadenceSection {
        switch stage {
        case .clip: return clip.cadence
        case .pretrain: return pretrain.cadence
        case .finetune: return finetune.cadence
        case .scaleTokens: return CadenceSection()
        }
    }
}
