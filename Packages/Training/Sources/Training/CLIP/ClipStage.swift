import Datasets
import Dispatch
import Foundation
import Layers
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

/// One micro-batch of the `clip` stage: image-caption pairs, pair i matching pair i.
public struct CaptionBatch {
    /// `[B, 3, S, S]`, CLIP-normalised.
    public var pixels: Tensor
    /// `[B, T]` caption ids (`<s>` words `</s>`, padded).
    public var ids: IndexTensor

    public init(pixels: Tensor, ids: IndexTensor) {
        self.pixels = pixels
        self.ids = ids
    }
}

/// The two-tower CLIP model on image-caption pairs, for the training loop. The loss of a global batch
/// is CLIP's symmetric InfoNCE over ALL its pairs (every other pair of the global batch is a
/// negative), whatever the micro-batching: with several micro-batches the towers first embed every
/// micro-batch without a graph, the loss is differentiated in the embeddings (and `logit_scale`), and
/// each micro-batch then backpropagates its share `dL/d(embeddings)` through the towers (the towers
/// have no dropout, so the recomputed embeddings are the same). The gradients are those of one batch
/// of the global size; the counted items are the pairs.
public final class ContrastiveTask: TrainingTask {
    public let model: ContrastiveCLIP

    public init(model: ContrastiveCLIP) { self.model = model }

    public var module: Module { model }
    /// The text tower's parameter count (the contrastive model has no decoder).
    public var learningRateLawParameters: Int { max(1, model.textModel.parameterCount()) }

    /// - Throws: `TrainingError` under data parallelism (the whole-batch InfoNCE would need every rank's
    ///   embeddings; the `clip` stage runs in one process).
    public func accumulateGradients(
        microBatches: Int, zLoss _: Float, dataParallel: DataParallel, phases: inout StepPhases,
        next: () throws -> CaptionBatch
    ) throws -> BatchGradients {
        guard !dataParallel.isDistributed else {
            throw TrainingError(
                "the clip stage runs in one process (its InfoNCE is over the whole global batch); launched with \(dataParallel.worldSize) data-parallel ranks"
            )
        }
        // The embedding passes and the backward passes interleave: the whole time counts as backward.
        let start = DispatchTime.now().uptimeNanoseconds
        defer { phases.backward += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        let parameters = model.trainableParameters()
        let batches = try (0..<microBatches).map { _ in try next() }
        var out = BatchGradients()
        for b in batches {
            out.images += b.pixels.shape[0]
            out.tokens += b.ids.shape[0] * b.ids.shape[1]
        }
        out.supervisedTokens = out.images
        if batches.count == 1 {
            let b = batches[0]
            let (loss, grads) = try valueAndGradient(at: parameters) { try model.loss(pixels: b.pixels, ids: b.ids) }
            out.gradients = grads
            out.lossSum = Double(try loss.item()) * Double(out.images)
            return out
        }
        let embedded = try noGrad {
            try batches.map { (try model.imageEmbeddings($0.pixels), try model.textEmbeddings($0.ids)) }
        }
        let (loss, d) = try valueAndGradient(
            of: { x in
                try clipContrastiveLoss(
                    imageEmbeddings: x[0], textEmbeddings: x[1], logitScale: x[2], maxScale: model.logitScaleMax)
            },
            at: [
                try Tensor.concatenate(embedded.map(\.0), axis: 0), try Tensor.concatenate(embedded.map(\.1), axis: 0),
                model.logitScale.value,
            ])
        var gradients = Gradients()
        var offset = 0
        for (k, b) in batches.enumerated() {
            let rows = b.pixels.shape[0]
            let dImage = try d[0].narrow(axis: 0, start: offset, length: rows)
            let dText = try d[1].narrow(axis: 0, start: offset, length: rows)
            let (_, g) = try valueAndGradient(at: parameters) {
                let share = try (model.imageEmbeddings(b.pixels) * dImage).sum()
                    + (model.textEmbeddings(b.ids) * dText).sum()
                // logit_scale enters the loss directly: its gradient is added once.
                return k == 0 ? try share + (model.logitScale.value * d[2]).sum() : share
            }
            try gradients.accumulate(g)
            offset += rows
        }
        out.gradients = gradients
        out.lossSum = Double(try loss.item()) * Double(out.images)
        return out
    }

    public func evaluationLoss(_ batch: CaptionBatch) throws -> (sum: Double, count: Int) {
        let n = batch.pixels.shape[0]
        return (Double(try model.loss(pixels: batch.pixels, ids: batch.ids).item()) * Double(n), n)
    }

    public func didApplyUpdate() throws { model.clampLogitScale() }

    public func stepScalars() throws -> [String: Double] {
        ["logit_scale": Double(try model.logitScale.data.item())]
    }
}

/// The `clip` stage: contrastive image-text pre-training of the vision tower on the synthetic world's
/// image-caption pairs (MM1's encoder objective; how a run with no downloadable CLIP gets a tower that
/// has learned its images), on the common training loop: gradient accumulation (`micro_batch` pairs
/// per pass, the InfoNCE over the whole `global_batch`), checkpoints under `clip/checkpoints`,
/// `resume: auto`, stop requests (SIGINT/SIGTERM), metrics and the non-finite guard.
///
/// Writes `<output>/clip/`: `vision/` (HF `CLIPVisionModel` directory the `pretrain` stage starts
/// from), `clip_model.safetensors` (both towers, projections and `logit_scale`, HF `CLIPModel` names),
/// both once the last step is done, `config.yaml` (the resolved run configuration) and `checkpoints/`.
public enum ClipStage {
    /// What a run did.
    public struct Result {
        /// Training loss per step run in this process (a resumed run starts after the checkpoint).
        public var losses: [Double]
        /// Held-out loss of the starting weights (a fresh initialisation, also on a resumed run) and
        /// after the last step.
        public var evalLossBefore: Double
        public var evalLossAfter: Double
        /// The stage folder.
        public var directory: String
        /// The trained model.
        public var model: ContrastiveCLIP
        /// The loop's summary (steps, resume point, stop signal, checkpoints).
        public var summary: TrainingLoop<ContrastiveTask>.Summary
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

    /// The position of a caption feed: the index of the next pair of the split.
    struct Cursor: Codable { var position: Int }

    /// Micro-batches of `microBatch` consecutive pairs of `split`, from the start or a saved cursor.
    public static func feed(
        world: SyntheticWorld, split: SyntheticWorld.Split, imageSize: Int, vocabulary: SyntheticVocabulary,
        maxLength: Int, microBatch: Int
    ) -> BatchFeed<CaptionBatch> {
        BatchFeed { json in
            var position = try json.map { try JSONDecoder().decode(Cursor.self, from: Data($0.utf8)).position } ?? 0
            return .init(
                next: {
                    let b = try batch(
                        world: world, indices: Array(position..<(position + microBatch)), split: split,
                        imageSize: imageSize, vocabulary: vocabulary, maxLength: maxLength)
                    position += microBatch
                    return CaptionBatch(pixels: b.pixels, ids: b.ids)
                },
                cursorJSON: { String(decoding: try JSONEncoder().encode(Cursor(position: position)), as: UTF8.self) })
        }
    }

    /// Runs (or, with `run.resume: auto` and a checkpoint in `clip/checkpoints`, resumes) the stage.
    /// - Parameters:
    ///   - output: the run folder (the stage writes `<output>/clip/`).
    ///   - metrics: receives the loop's scalars (`loss`, `learning_rate`, `grad_norm`,
    ///     `images_per_second`, ...), `logit_scale` and `eval_loss`.
    ///   - sinks: further metrics sinks.
    ///   - stop: a stop request the caller owns (and routes signals to); nil: the stage routes
    ///     SIGINT/SIGTERM to its own while it runs. A stopped run saves a checkpoint and returns.
    /// - Throws: `ConfigError` for a configuration the stage cannot use; errors of the model and files.
    @discardableResult
    public static func run(
        config: TrainingConfig, output: String, metrics: RunMetrics? = nil, sinks: [any MetricsSink] = [],
        stop: StopRequest? = nil, logger: Logger = Logger(label: "sightline.clip")
    ) throws -> Result {
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
        let cadence = config.clip.cadence
        func feed(_ split: SyntheticWorld.Split) -> BatchFeed<CaptionBatch> {
            ClipStage.feed(
                world: world, split: split, imageSize: config.model.vision.imageSize, vocabulary: vocabulary,
                maxLength: config.clip.text.maxPositionEmbeddings, microBatch: o.microBatch)
        }
        let heldOut = feed(.heldOut)
        let loop = try TrainingLoop(
            stage: Stage.clip.rawValue, task: ContrastiveTask(model: model), optimization: o.loop,
            checkpointing: cadence.checkpointing(resume: config.run.resume), evaluation: cadence.evaluation,
            checkpointDirectory: directory + "/checkpoints", data: feed(.train), heldOut: heldOut,
            sinks: (metrics.map { [$0] } ?? []) + sinks, stop: stop ?? StopRequest(), logger: logger,
            seed: UInt64(config.run.seed))
        loop.handlesSignals = stop == nil
        metrics?.begin(stage: Stage.clip.rawValue, totalSteps: o.steps)
        let before = try loop.evaluate(heldOut).loss
        try metrics?.record(stage: Stage.clip.rawValue, step: 0, scalars: [TrainingMetric.evalLoss: before])
        let summary = try loop.run()
        var after = before
        if let e = summary.evaluations.last, e.step == summary.finalStep {
            after = e.loss
        } else if !summary.steps.isEmpty {
            after = try loop.evaluate(heldOut).loss
            try metrics?.record(
                stage: Stage.clip.rawValue, step: summary.finalStep, scalars: [TrainingMetric.evalLoss: after])
        }
        if summary.finalStep >= o.steps {
            try model.vision.save(to: directory + "/vision")
            try SafetensorsFile.write(
                NamedTensors(model.stateDict()), to: directory + "/clip_model.safetensors", metadata: ["format": "pt"])
        }
        try metrics?.finish(stage: Stage.clip.rawValue)
        return Result(
            losses: summary.steps.map(\.loss), evalLossBefore: before, evalLossAfter: after, directory: directory,
            model: model, summary: summary)
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
