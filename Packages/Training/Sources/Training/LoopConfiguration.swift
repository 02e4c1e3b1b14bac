import Bridges
import Foundation
import Language
import Optim
import Vision

// The training loop's configuration: plain `Codable` structs with snake_case keys and every default
// written out in the memberwise initialisers. A missing key takes its default (so a YAML section names
// only what it changes); `TrainingConfig` (the stages' YAML) composes these sections.

/// Decodes `key` when present, else keeps `fallback`.
@inline(__always)
func field<K: CodingKey, T: Decodable>(_ c: KeyedDecodingContainer<K>, _ key: K, _ fallback: T) throws -> T {
    try c.decodeIfPresent(T.self, forKey: key) ?? fallback
}

/// Which vision-tower parameters train.
public enum VisionTraining: String, Codable, Equatable, Sendable {
    /// Every tower parameter is frozen and the tower records no graph (MM1 pre-training default).
    case frozen
    /// Every tower parameter trains.
    case trainable
    /// Only the last `vision_trainable_layers` encoder layers (and `post_layernorm`) train.
    case lastLayers = "last_layers"
}

/// Per-part multipliers of the learning rate (the optimizer multiplies the scheduled rate by them).
public struct PartMultipliers: Codable, Equatable, Sendable {
    /// Parameters under `vision_tower.`.
    public var vision: Double
    /// Parameters under `multi_modal_projector.`.
    public var connector: Double
    /// Parameters under `language_model.`.
    public var languageModel: Double

    enum CodingKeys: String, CodingKey {
        case vision, connector
        case languageModel = "language_model"
    }

    public init(vision: Double = 1, connector: Double = 1, languageModel: Double = 1) {
        self.vision = vision
        self.connector = connector
        self.languageModel = languageModel
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PartMultipliers()
        vision = try field(c, .vision, d.vision)
        connector = try field(c, .connector, d.connector)
        languageModel = try field(c, .languageModel, d.languageModel)
    }

    /// As `ParameterGroups.learningRateMultipliers` (name prefix -> multiplier).
    public var byPrefix: [String: Double] {
        [
            MultimodalModel.visionPrefix: vision, MultimodalModel.connectorPrefix: connector,
            MultimodalModel.languagePrefix: languageModel,
        ]
    }
}

/// Per-layer activation checkpointing (recompute each layer in backward instead of keeping its
/// activations).
public struct ActivationCheckpointing: Codable, Equatable, Sendable {
    /// Recompute each trainable vision encoder layer.
    public var vision: Bool
    /// Recompute each decoder layer.
    public var languageModel: Bool

    enum CodingKeys: String, CodingKey {
        case vision
        case languageModel = "language_model"
    }

    public init(vision: Bool = false, languageModel: Bool = false) {
        self.vision = vision
        self.languageModel = languageModel
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vision = try field(c, .vision, false)
        languageModel = try field(c, .languageModel, false)
    }
}

/// The multimodal model: tower, connector and decoder configs, freezing and checkpointing.
public struct ModelConfig: Codable, Equatable, Sendable {
    /// HF `CLIPVisionConfig` fields (HF's own keys).
    public var vision: CLIPVisionConfig
    /// Any connector (`type` plus the connector's fields, Bridges' keys).
    public var connector: ConnectorConfiguration
    /// HF `LlamaConfig` fields (HF's own keys).
    public var languageModel: LlamaConfig
    /// The token id standing at image placeholders (its embedding is never used or trained).
    public var imageTokenId: Int
    /// Which tower parameters train (default `frozen`).
    public var visionTraining: VisionTraining
    /// With `last_layers`: how many final encoder layers train.
    public var visionTrainableLayers: Int
    /// Freeze the connector (default false).
    public var freezeConnector: Bool
    /// Freeze the decoder (default false; LoRA fine-tuning freezes it and trains adapters).
    public var freezeLanguageModel: Bool
    /// Per-layer recomputation in backward (default off).
    public var activationCheckpointing: ActivationCheckpointing
    /// Seed of the random initialisation (before any weights are loaded).
    public var seed: UInt64

    enum CodingKeys: String, CodingKey {
        case vision, connector, seed
        case languageModel = "language_model"
        case imageTokenId = "image_token_id"
        case visionTraining = "vision_training"
        case visionTrainableLayers = "vision_trainable_layers"
        case freezeConnector = "freeze_connector"
        case freezeLanguageModel = "freeze_language_model"
        case activationCheckpointing = "activation_checkpointing"
    }

    public init(
        vision: CLIPVisionConfig, connector: ConnectorConfiguration, languageModel: LlamaConfig,
        imageTokenId: Int, visionTraining: VisionTraining = .frozen, visionTrainableLayers: Int = 0,
        freezeConnector: Bool = false, freezeLanguageModel: Bool = false,
        activationCheckpointing: ActivationCheckpointing = ActivationCheckpointing(), seed: UInt64 = 0
    ) {
        self.vision = vision
        self.connector = connector
        self.languageModel = languageModel
        self.imageTokenId = imageTokenId
        self.visionTraining = visionTraining
        self.visionTrainableLayers = visionTrainableLayers
        self.freezeConnector = freezeConnector
        self.freezeLanguageModel = freezeLanguageModel
        self.activationCheckpointing = activationCheckpointing
        self.seed = seed
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vision = try c.decode(CLIPVisionConfig.self, forKey: .vision)
        connector = try c.decode(ConnectorConfiguration.self, forKey: .connector)
        languageModel = try c.decode(LlamaConfig.self, forKey: .languageModel)
        imageTokenId = try c.decode(Int.self, forKey: .imageTokenId)
        visionTraining = try field(c, .visionTraining, .frozen)
        visionTrainableLayers = try field(c, .visionTrainableLayers, 0)
        freezeConnector = try field(c, .freezeConnector, false)
        freezeLanguageModel = try field(c, .freezeLanguageModel, false)
        activationCheckpointing = try field(c, .activationCheckpointing, ActivationCheckpointing())
        seed = try field(c, .seed, 0)
    }
}

/// Optimizer, schedule, batch and loss settings of a run (MM1's recipe by default).
public struct OptimizationConfig: Codable, Equatable, Sendable {
    /// Peak learning rate, or `auto`: MM1's law `exp(-0.4214 ln N - 0.5535)` with N the decoder's
    /// parameter count.
    public var learningRate: PeakLearningRate
    /// Linear warm-up steps (MM1: 2000).
    public var warmupSteps: Int
    /// Optimizer steps of the run, warm-up included (MM1: 200,000); the cosine ends here.
    public var totalSteps: Int
    /// The cosine's floor as a fraction of the peak (MM1: 0.1).
    public var minLearningRateRatio: Double
    /// Weight decay of weight matrices (biases, norms, embeddings of positions and learned queries are
    /// exempt). With `pytorch` semantics the decay per step is `lr_t * weight_decay`, so 0.1 gives
    /// MM1's decoupled `lambda = 0.1 * peak`.
    public var weightDecay: Double
    /// `pytorch` (`p -= lr_t * wd * p`) or `decoupled` (`p -= s_t * wd * p`).
    public var decaySemantics: AdamW.DecaySemantics
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    /// Global gradient-norm clipping (MM1: 1).
    public var clipNorm: Double
    /// z-loss coefficient (MM1: 1e-4; 0 disables).
    public var zLoss: Double
    /// Sequences per optimizer step.
    public var globalBatch: Int
    /// Sequences per forward/backward pass; `global_batch` must be a multiple.
    public var microBatch: Int
    /// Learning-rate multipliers per model part.
    public var learningRateMultipliers: PartMultipliers
    /// Steps in a row with a non-finite loss or gradient after which the run stops with an error.
    public var maxNonFiniteInARow: Int

    enum CodingKeys: String, CodingKey {
        case learningRate = "learning_rate", warmupSteps = "warmup_steps", totalSteps = "total_steps"
        case minLearningRateRatio = "min_learning_rate_ratio", weightDecay = "weight_decay"
        case decaySemantics = "decay_semantics", beta1 = "beta1", beta2 = "beta2", eps
        case clipNorm = "clip_norm", zLoss = "z_loss", globalBatch = "global_batch", microBatch = "micro_batch"
        case learningRateMultipliers = "learning_rate_multipliers"
        case maxNonFiniteInARow = "max_non_finite_in_a_row"
    }

    public init(
        learningRate: PeakLearningRate = .auto, warmupSteps: Int = 2000, totalSteps: Int = 200_000,
        minLearningRateRatio: Double = 0.1, weightDecay: Double = 0.1,
        decaySemantics: AdamW.DecaySemantics = .pytorch, beta1: Double = 0.9, beta2: Double = 0.95,
        eps: Double = 1e-8, clipNorm: Double = 1, zLoss: Double = 1e-4, globalBatch: Int = 512,
        microBatch: Int = 16, learningRateMultipliers: PartMultipliers = PartMultipliers(),
        maxNonFiniteInARow: Int = 10
    ) {
        self.learningRate = learningRate
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minLearningRateRatio = minLearningRateRatio
        self.weightDecay = weightDecay
        self.decaySemantics = decaySemantics
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.clipNorm = clipNorm
        self.zLoss = zLoss
        self.globalBatch = globalBatch
        self.microBatch = microBatch
        self.learningRateMultipliers = learningRateMultipliers
        self.maxNonFiniteInARow = maxNonFiniteInARow
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = OptimizationConfig()
        learningRate = try field(c, .learningRate, d.learningRate)
        warmupSteps = try field(c, .warmupSteps, d.warmupSteps)
        totalSteps = try field(c, .totalSteps, d.totalSteps)
        minLearningRateRatio = try field(c, .minLearningRateRatio, d.minLearningRateRatio)
        weightDecay = try field(c, .weightDecay, d.weightDecay)
        decaySemantics = try field(c, .decaySemantics, d.decaySemantics)
        beta1 = try field(c, .beta1, d.beta1)
        beta2 = try field(c, .beta2, d.beta2)
        eps = try field(c, .eps, d.eps)
        clipNorm = try field(c, .clipNorm, d.clipNorm)
        zLoss = try field(c, .zLoss, d.zLoss)
        globalBatch = try field(c, .globalBatch, d.globalBatch)
        microBatch = try field(c, .microBatch, d.microBatch)
        learningRateMultipliers = try field(c, .learningRateMultipliers, d.learningRateMultipliers)
        maxNonFiniteInARow = try field(c, .maxNonFiniteInARow, d.maxNonFiniteInARow)
    }

    /// Micro-batches per optimizer step.
    public var accumulationSteps: Int { globalBatch / microBatch }

    /// The schedule: linear warm-up, then cosine to `min_learning_rate_ratio` x peak at `total_steps`.
    public var schedule: LearningRateSchedule {
        .cosine(warmup: warmupSteps, total: totalSteps, floor: minLearningRateRatio)
    }

    /// Checks the numbers.
    /// - Throws: `TrainingError` naming the key and its value.
    public func validate() throws {
        if let (key, message) = firstProblem() { throw TrainingError("optimization.\(key): \(message)") }
    }

    /// The first key whose value the loop cannot use, and why (nil when every value is usable).
    public func firstProblem() -> (key: String, message: String)? {
        guard microBatch > 0 else { return ("micro_batch", "must be positive, got \(microBatch)") }
        guard globalBatch >= microBatch, globalBatch % microBatch == 0 else {
            return ("global_batch", "\(globalBatch) must be a positive multiple of micro_batch \(microBatch)")
        }
        guard totalSteps > 0 else { return ("total_steps", "must be positive, got \(totalSteps)") }
        guard warmupSteps >= 0 else { return ("warmup_steps", "must be >= 0, got \(warmupSteps)") }
        guard (0...1).contains(minLearningRateRatio) else {
            return ("min_learning_rate_ratio", "must lie in [0, 1], got \(minLearningRateRatio)")
        }
        guard clipNorm > 0 else { return ("clip_norm", "must be positive, got \(clipNorm)") }
        guard zLoss >= 0 else { return ("z_loss", "must be >= 0, got \(zLoss)") }
        guard maxNonFiniteInARow > 0 else {
            return ("max_non_finite_in_a_row", "must be positive, got \(maxNonFiniteInARow)")
        }
        if case .fixed(let lr) = learningRate, !(lr > 0) {
            return ("learning_rate", "must be positive or \"auto\", got \(lr)")
        }
        return nil
    }
}

/// Checkpoint cadence and resumption.
public struct CheckpointConfig: Codable, Equatable, Sendable {
    /// Save every this many optimizer steps (0: only at the end and on a stop signal).
    public var every: Int
    /// Keep the newest this many checkpoints.
    public var keepLast: Int
    /// `auto` (continue from the directory's `latest` when there is one), `never` (start fresh), or the
    /// path of a checkpoint file to continue from.
    public var resume: String

    enum CodingKeys: String, CodingKey {
        case every
        case keepLast = "keep_last"
        case resume
    }

    public init(every: Int = 1000, keepLast: Int = 3, resume: String = "auto") {
        self.every = every
        self.keepLast = keepLast
        self.resume = resume
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CheckpointConfig()
        every = try field(c, .every, d.every)
        keepLast = try field(c, .keepLast, d.keepLast)
        resume = try field(c, .resume, d.resume)
    }
}

/// Periodic evaluation on held-out data.
public struct EvalConfig: Codable, Equatable, Sendable {
    /// Evaluate every this many optimizer steps (0: never).
    public var every: Int
    /// Held-out micro-batches per evaluation.
    public var batches: Int

    public init(every: Int = 500, batches: Int = 10) {
        self.every = every
        self.batches = batches
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        every = try field(c, .every, 500)
        batches = try field(c, .batches, 10)
    }
}

/// An error of the training package: a bad configuration, a batch that does not fit the model, a run
/// stopped by too many non-finite steps.
public struct TrainingError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
