import Bridges
import Collectives
import Datasets
import Foundation
import Language
import Layers
import Logging
import Optim
import Tensor
import TensorFiles
import Vision

// The `pretrain` and `finetune` stages on the training loop (`Trainer`), over the synthetic world's
// files written once into the run folder. Each stage folder holds `vision/` (HF CLIP vision), `connector/`
// and `language/` (HF Llama, LoRA merged), `config.yaml`, `checkpoints/` and `stage.json` (losses, steps,
// wall-clock seconds, visual tokens per image).

/// What a training stage did.
public struct StageReport: Codable, Equatable, Sendable {
    /// `pretrain` or `finetune`.
    public var stage: String
    /// The stage folder.
    public var directory: String
    /// Optimizer steps taken (including resumed ones).
    public var steps: Int
    /// (step, loss) of every step run in this process.
    public var losses: [[Double]]
    /// The last logged loss (NaN when no step ran).
    public var finalLoss: Double
    /// Wall-clock of the stage in this process.
    public var seconds: Double
    /// Visual tokens per image of the connector.
    public var visualTokens: Int

    enum CodingKeys: String, CodingKey {
        case stage, directory, steps, losses, seconds
        case finalLoss = "final_loss"
        case visualTokens = "visual_tokens"
    }
}

/// The synthetic world's data files of a run (written once under `<output>/data/<split>`).
public enum WorldFiles {
    /// Writes `count` documents of each kind for `split` under `data.synthetic.directory` (default
    /// `<output>/data`), or reuses the ones a finished earlier call wrote there.
    /// - Returns: the files.
    public static func ensure(config: TrainingConfig, output: String, split: SyntheticWorld.Split, count: Int)
        throws -> SyntheticFiles
    {
        guard config.data.source == "synthetic" else {
            throw ConfigError(keyPath: "data.source", source: output, "the stages read the synthetic world (\"synthetic\")")
        }
        let s = config.data.synthetic
        let world = try SyntheticWorld(
            seed: UInt64(s.seed), imageSize: s.imageSize, patchSize: s.patchSize, heldOutEvery: s.heldOutEvery)
        let root = s.directory.isEmpty ? URL(fileURLWithPath: output).appendingPathComponent("data") : URL(fileURLWithPath: s.directory)
        let dir = root.appendingPathComponent(
            "\(split.rawValue)-\(s.seed)-\(s.imageSize)-\(count)")
        let marker = dir.appendingPathComponent("done")
        // Written once: the marker is made after every file is complete, so a run stopped while writing
        // rewrites them and a later stage (or `--compare`'s arms) reuses them.
        if FileManager.default.fileExists(atPath: marker.path) { return SyntheticFiles(directory: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let files = try world.write(to: dir, count: count, split: split)
        try DurableFile.write([UInt8](), to: marker.path)
        return files
    }
}

/// Model assembly shared by the stages.
public enum StageModels {
    /// The decoder's config with the synthetic vocabulary's size and special ids.
    public static func languageConfig(_ config: TrainingConfig) -> LlamaConfig {
        var l = config.model.language
        if l.vocabSize == 0 { l.vocabSize = SyntheticVocabulary().count }
        l.bosTokenId = SyntheticVocabulary.bos
        l.eosTokenId = SyntheticVocabulary.eos
        l.padTokenId = SyntheticVocabulary.pad
        return l
    }

    /// The connector the config names for `tower`: Chain-of-Sight with `model.connector.preset`, or
    /// `projection` (LLaVA's two-layer MLP over every patch token).
    public static func connectorConfiguration(_ config: TrainingConfig, tower: CLIPVisionConfig, llmDim: Int) throws
        -> ConnectorConfiguration
    {
        let c = config.model.connector
        let levels = c.featureLevels.isEmpty
            ? ChainOfSightConfig.defaultFeatureLevels(towerDepth: tower.numHiddenLayers) : c.featureLevels
        switch c.type {
        case "chain_of_sight":
            guard let preset = ChainOfSightPreset(rawValue: c.preset) else {
                throw ConfigError(
                    keyPath: "model.connector.preset", source: "config",
                    "unknown preset \"\(c.preset)\" (known: \(ChainOfSightPreset.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return .chainOfSight(
                ChainOfSightConfig.preset(
                    preset, visionDim: tower.hiddenSize, dim: c.dim == 0 ? tower.hiddenSize : c.dim, llmDim: llmDim,
                    headDim: c.headDim, featureLevels: levels))
        case "projection":
            return .projection(
                ProjectionConfig(visionDim: tower.hiddenSize, llmDim: llmDim, depth: 2, featureLevel: levels.last!))
        default:
            throw ConfigError(
                keyPath: "model.connector.type", source: "config",
                "unknown connector \"\(c.type)\" (known: chain_of_sight, projection)")
        }
    }

    /// Loads a stage folder's `vision/`, `connector/` and `language/` into a model.
    public static func load(directory: String, visionTraining: VisionTraining = .frozen) throws -> MultimodalModel {
        let tower = try CLIPVisionModel.fromPretrained(directory: directory + "/vision").model
        let connector = try connectorFromPretrained(directory: directory + "/connector").connector
        let language = try LlamaForCausalLM.fromPretrained(directory: directory + "/language").model
        let mc = ModelConfig(
            vision: tower.config, connector: connector.configuration, languageModel: language.config,
            imageTokenId: SyntheticVocabulary.image, visionTraining: visionTraining)
        return try MultimodalModel(config: mc, visionTower: tower, connector: connector, languageModel: language)
    }

    /// Visual tokens per (one-crop) image of a model.
    public static func visualTokens(_ model: MultimodalModel) throws -> Int {
        let s = model.visionTower.config.imageSize
        return try noGrad { try model.imageTokens(Tensor.zeros([1, 3, s, s])).tokens.shape.dropLast().reduce(1, *) }
    }

    /// Saves a model's parts into `directory` (`vision/`, `connector/`, `language/`).
    public static func save(_ model: MultimodalModel, to directory: String) throws {
        try model.visionTower.save(to: directory + "/vision")
        try model.connector.save(to: directory + "/connector")
        try model.languageModel.save(to: directory + "/language")
    }

    /// The held-out feed of a stage's periodic evaluation (loss and perplexity every
    /// `cadence.eval_every` steps on `cadence.eval_batches` batches), over the world's held-out split;
    /// nil when the stage never evaluates (`eval_every` beyond its steps).
    static func heldOutFeed(
        config: TrainingConfig, output: String, section: OptimizationSection, cadence: CadenceSection,
        sources: (SyntheticFiles) -> [(String, SourceFormat, URL)], weights: [Double], tokens: Int, imageSize: Int
    ) throws -> DataFeed? {
        guard cadence.evalEvery > 0, cadence.evalEvery <= section.steps else { return nil }
        let files = try DataParallel.rankZeroFirst {
            try WorldFiles.ensure(
                config: config, output: output, split: .heldOut,
                count: max(32, cadence.evalBatches * section.microBatch * 4))
        }
        return feed(
            config: config, sources: sources(files), weights: weights, tokens: tokens, microBatch: section.microBatch,
            seed: UInt64(config.run.seed) &+ 11, imageSize: imageSize)
    }

    /// The loop's optimization config of a stage section (the section's owner).
    public static func optimization(_ o: OptimizationSection) -> OptimizationConfig { o.loop }

    /// The packed-batch feed over `sources` (one weight each) with the synthetic vocabulary; images are
    /// preprocessed to `imageSize` (the tower's; default `model.vision.image_size`).
    public static func feed(
        config: TrainingConfig, sources: [(String, SourceFormat, URL)], weights: [Double], tokens: Int,
        microBatch: Int, seed: UInt64, imageSize: Int? = nil
    ) -> DataFeed {
        let vocabulary = SyntheticVocabulary()
        let builder = DocumentBuilder(
            encode: vocabulary.encode, bos: SyntheticVocabulary.bos, eos: SyntheticVocabulary.eos, imageMarker: -1,
            preprocessor: PipelineImages.clip(size: imageSize ?? config.model.vision.imageSize))
        let packing = PackingConfig(
            sequenceLength: config.data.sequenceLength, maxImages: config.data.maxImages,
            imageTokenId: SyntheticVocabulary.image, padTokenId: SyntheticVocabulary.pad
        ) { img in tokens * img.cropCount }
        return DataFeed.loader { cursor in
            // Data parallel (under mpirun/srun): each rank reads its own records of every source.
            let world = try Communicator.world()
            let s = try sources.map {
                try DataSource(
                    name: $0.0, format: $0.1, files: [$0.2], rank: world?.rank ?? 0, worldSize: world?.size ?? 1)
            }
            return try Loader(
                sources: s, mixture: Mixture(weights: weights, seed: seed), builder: builder, packing: packing,
                batchSize: microBatch, workers: 0, cursor: cursor)
        }
    }

    static func run(
        stage: String, model: MultimodalModel, section: OptimizationSection, cadence: CadenceSection,
        config: TrainingConfig, runFolder: String, directory: String, feed: DataFeed, heldOut: DataFeed? = nil,
        resume: String, logger: Logger
    ) throws -> StageReport {
        let start = Date()
        let tokens = try visualTokens(model)
        // The run folder's metrics.jsonl, TensorBoard events, progress line and plots (rank 0 writes).
        let metrics = DataParallel.isRankZero
            ? try RunMetrics(directory: runFolder, settings: config.metrics, logger: logger) : nil
        metrics?.begin(stage: stage, totalSteps: section.steps)
        let trainer = try Trainer(
            stage: stage, model: model, optimization: optimization(section),
            checkpointing: cadence.checkpointing(resume: resume),
            evaluation: EvalConfig(
                every: heldOut == nil ? section.steps + 1 : cadence.evalEvery, batches: cadence.evalBatches),
            checkpointDirectory: directory + "/checkpoints", data: feed, heldOut: heldOut, sinks: metrics.map { [$0] } ?? [], logger: logger,
            seed: UInt64(config.run.seed), dataParallel: try DataParallel.automatic(config.dataParallel))
        trainer.handlesSignals = false
        let summary = try trainer.run()
        try metrics?.finish(stage: stage)
        // Data parallel: every rank holds the same model; rank 0 writes the stage's files.
        guard trainer.dataParallel.isWriter else {
            return StageReport(
                stage: stage, directory: directory, steps: summary.finalStep, losses: [], finalLoss: .nan,
                seconds: Date().timeIntervalSince(start), visualTokens: tokens)
        }
        try save(model, to: directory)
        let losses = summary.steps.filter { !$0.skipped }.map { [Double($0.step), $0.loss] }
        let report = StageReport(
            stage: stage, directory: directory, steps: summary.finalStep, losses: losses,
            finalLoss: losses.last?[1] ?? .nan, seconds: Date().timeIntervalSince(start), visualTokens: tokens)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try DurableFile.write(enc.encode(report), to: directory + "/stage.json")
        return report
    }
}

/// The `pretrain` stage: the tower (from `model.vision_weights`, else `<output>/clip/vision`, else
/// random), a fresh connector and the decoder (from `model.language_weights`, else fresh), trained on the world's 45/45/10 mixture (interleaved,
/// captions, text), packed. Writes `<output>/pretrain/`.
public enum PretrainStage {
    @discardableResult
    public static func run(config: TrainingConfig, output: String, logger: Logger = Logger(label: "sightline.pretrain"))
        throws -> StageReport
    {
        try config.validate()
        let directory = output + "/pretrain"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if DataParallel.isRankZero { try config.save(to: directory + "/config.yaml") }
        let o = config.pretrain.optimization
        let files = try DataParallel.rankZeroFirst {
            try WorldFiles.ensure(config: config, output: output, split: .train, count: max(32, o.steps * o.globalBatch))
        }
        let towerPath = !config.model.visionWeights.isEmpty ? config.model.visionWeights : output + "/clip/vision"
        let tower = FileManager.default.fileExists(atPath: towerPath)
            ? try CLIPVisionModel.fromPretrained(directory: towerPath).model
            : try CLIPVisionModel(config: config.model.vision, seed: UInt64(config.run.seed))
        // The decoder: from `model.language_weights` (an HF Llama directory, e.g. a decoder trained on
        // text first) when given, else fresh.
        var decoder: LlamaForCausalLM? = nil
        if !config.model.languageWeights.isEmpty {
            decoder = try LlamaForCausalLM.fromPretrained(directory: config.model.languageWeights).model
            let want = StageModels.languageConfig(config).vocabSize
            guard decoder!.config.vocabSize == want else {
                throw ConfigError(
                    keyPath: "model.language_weights", source: config.model.languageWeights,
                    "the decoder's vocab_size is \(decoder!.config.vocabSize), the tokenizer has \(want) tokens")
            }
        }
        let language = decoder?.config ?? StageModels.languageConfig(config)
        let connectorConfig = try StageModels.connectorConfiguration(
            config, tower: tower.config, llmDim: language.hiddenSize)
        let (mode, layers) = try TrainingConfig.visionMode(config.pretrain.vision)
        let mc = ModelConfig(
            vision: tower.config, connector: connectorConfig, languageModel: language,
            imageTokenId: SyntheticVocabulary.image, visionTraining: mode, visionTrainableLayers: layers,
            seed: UInt64(config.run.seed))
        let model = try MultimodalModel(
            config: mc, visionTower: tower, connector: makeConnector(connectorConfig, seed: mc.seed &+ 1),
            languageModel: decoder ?? LlamaForCausalLM(config: language, seed: mc.seed &+ 2))
        let m = config.data.mixture
        let feed = StageModels.feed(
            config: config,
            sources: [
                ("interleaved", .interleavedJSONL, files.interleaved), ("captions", .imageCaptionJSONL, files.captions),
                ("text", .textJSONL, files.text),
            ], weights: [m.interleaved, m.imageCaption, m.textOnly], tokens: try StageModels.visualTokens(model),
            microBatch: o.microBatch, seed: UInt64(config.run.seed) &+ 5)
        let heldOut = try StageModels.heldOutFeed(
            config: config, output: output, section: o, cadence: config.pretrain.cadence,
            sources: {
                [("interleaved", .interleavedJSONL, $0.interleaved), ("captions", .imageCaptionJSONL, $0.captions),
                 ("text", .textJSONL, $0.text)]
            }, weights: [m.interleaved, m.imageCaption, m.textOnly], tokens: try StageModels.visualTokens(model),
            imageSize: model.visionTower.config.imageSize)
        return try StageModels.run(
            stage: "pretrain", model: model, section: o, cadence: config.pretrain.cadence, config: config,
            runFolder: output, directory: directory, feed: feed, heldOut: heldOut, resume: config.run.resume,
            logger: logger)
    }
}

/// The `finetune` stage: the model of `input` (default `<output>/scale-tokens` when it exists, else
/// `<output>/pretrain`) with LoRA on the decoder (the connector trains fully, the tower stays frozen
/// unless `finetune.vision` says otherwise), trained on the world's questions, one per conversation (`questions.json`). Writes
/// `<output>/finetune/` with the adapters merged into `language/`.
public enum FinetuneStage {
    @discardableResult
    public static func run(
        config: TrainingConfig, output: String, input: String? = nil,
        logger: Logger = Logger(label: "sightline.finetune")
    ) throws -> StageReport {
        try config.validate()
        let fm = FileManager.default
        let from = input ?? (fm.fileExists(atPath: output + "/scale-tokens/connector") ? output + "/scale-tokens" : output + "/pretrain")
        let directory = output + "/finetune"
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if DataParallel.isRankZero { try config.save(to: directory + "/config.yaml") }
        let (mode, _) = try TrainingConfig.visionMode(config.finetune.vision)
        let model = try StageModels.load(directory: from, visionTraining: mode)
        let l = config.finetune.lora
        try model.languageModel.attachLoRA(
            LoRAConfig(r: l.r, loraAlpha: l.alpha, loraDropout: l.dropout, targetModules: l.targetModules),
            seed: UInt64(config.run.seed) &+ 7)
        let o = config.finetune.optimization
        let files = try DataParallel.rankZeroFirst {
            try WorldFiles.ensure(
                config: config, output: output, split: .train,
                count: max(32, config.pretrain.optimization.steps * config.pretrain.optimization.globalBatch))
        }
        let feed = StageModels.feed(
            config: config, sources: [("questions", .llava, files.questions)], weights: [1],
            tokens: try StageModels.visualTokens(model), microBatch: o.microBatch, seed: UInt64(config.run.seed) &+ 6,
            imageSize: model.visionTower.config.imageSize)
        let heldOut = try StageModels.heldOutFeed(
            config: config, output: output, section: o, cadence: config.finetune.cadence,
            sources: { [("questions", .llava, $0.questions)] }, weights: [1], tokens: try StageModels.visualTokens(model),
            imageSize: model.visionTower.config.imageSize)
        let report = try StageModels.run(
            stage: "finetune", model: model, section: o, cadence: config.finetune.cadence, config: config,
            runFolder: output, directory: directory + "/adapter", feed: feed, heldOut: heldOut,
            resume: config.run.resume, logger: logger)
        try model.languageModel.mergeAndUnloadLoRA()
        if DataParallel.isRankZero { try StageModels.save(model, to: directory) }
        var r = report
        r.directory = directory
        return r
    }
}
