import Bridges
import Foundation
import Language
import Optim
import Vision
import Yams

/// One training run's configuration: shared sections (run output, model, data, metrics) and one section
/// per stage (`clip`, `pretrain`, `scale-tokens`, `finetune`). Read from one YAML file; every field
/// has a default, written out by `TrainingConfig.defaults.yaml()`; any key can be overridden with
/// `key.path=value`.
///
/// ```swift
/// let config = try TrainingConfig.load(path: "run.yaml", overrides: ["pretrain.optimization.steps=200"])
/// ```
public struct TrainingConfig: Codable, Equatable, Sendable {
    public var run: RunSection
    public var model: ModelSection
    public var data: DataSection
    public var metrics: MetricsSection
    public var clip: ClipStageConfig
    public var pretrain: PretrainStageConfig
    public var scaleTokens: ScaleTokensStageConfig
    public var finetune: FinetuneStageConfig
    /// Data-parallel settings of the `pretrain` and `finetune` stages, used when the process was
    /// started by an MPI launcher (`mpirun`, `srun`); ignored by a single process.
    public var dataParallel: DataParallelConfig

    enum CodingKeys: String, CodingKey {
        case run, model, data, metrics, clip, pretrain, scaleTokens = "scale-tokens", finetune,
            dataParallel = "data_parallel"
    }

    public init(
        run: RunSection = .init(), model: ModelSection = .init(), data: DataSection = .init(),
        metrics: MetricsSection = .init(), clip: ClipStageConfig = .init(), pretrain: PretrainStageConfig = .init(),
        scaleTokens: ScaleTokensStageConfig = .init(), finetune: FinetuneStageConfig = .init(),
        dataParallel: DataParallelConfig = .init()
    ) {
        self.run = run
        self.model = model
        self.data = data
        self.metrics = metrics
        self.clip = clip
        self.pretrain = pretrain
        self.scaleTokens = scaleTokens
        self.finetune = finetune
        self.dataParallel = dataParallel
    }

    /// Every default.
    public static var defaults: TrainingConfig { TrainingConfig() }
}

/// Where a run writes and how it starts.
public struct RunSection: Codable, Equatable, Sendable {
    /// The run folder (the resolved config, metrics, plots, one folder per stage with its checkpoints).
    public var output: String = "runs/sightline"
    /// Seeds every generator of the run (weights, data order, dropout).
    public var seed: Int = 0
    /// `auto`: continue from the stage's latest checkpoint when there is one; `never`: start afresh.
    public var resume: String = "auto"

    enum CodingKeys: String, CodingKey { case output, seed, resume }
    public init() {}
}

/// The multimodal model: CLIP vision tower -> connector -> Llama decoder.
public struct ModelSection: Codable, Equatable, Sendable {
    /// HF `CLIPVisionConfig` fields (ignored when `vision_weights` names a directory).
    public var vision: CLIPVisionConfig = CLIPVisionConfig(
        imageSize: 224, patchSize: 14, hiddenSize: 128, numHiddenLayers: 4, numAttentionHeads: 4,
        intermediateSize: 512)
    /// HF `LlamaConfig` fields; `vocab_size` 0 takes the tokenizer's size.
    public var language: LlamaConfig = LlamaConfig(
        vocabSize: 0, hiddenSize: 256, intermediateSize: 688, numHiddenLayers: 4, numAttentionHeads: 4,
        numKeyValueHeads: 2, maxPositionEmbeddings: 2048)
    public var connector: ConnectorSection = .init()
    /// An HF CLIP (vision) directory to start from instead of the `clip` stage's tower ("" for none).
    public var visionWeights: String = ""
    /// An HF Llama directory to start the decoder from ("" for a random initialisation).
    public var languageWeights: String = ""

    enum CodingKeys: String, CodingKey {
        case vision, language, connector, visionWeights = "vision_weights", languageWeights = "language_weights"
    }
    public init() {}
}

/// The connector of the pre-training stage (Chain-of-Sight by default).
public struct ConnectorSection: Codable, Equatable, Sendable {
    /// `chain_of_sight` (the others are built from their own `ConnectorConfiguration`).
    public var type: String = "chain_of_sight"
    /// A `ChainOfSightPreset` name (window/query layout, its grid must be the tower's).
    public var preset: String = ChainOfSightPreset.pt32.rawValue
    /// HF `hidden_states` indices read; empty: (round(2/3 L), L - 1) of an L-layer tower.
    public var featureLevels: [Int] = []
    /// Width of the resampler blocks; 0: the tower's width.
    public var dim: Int = 0
    /// Channels per attention head.
    public var headDim: Int = 32
    /// MLP hidden width = `mlp_ratio * dim`.
    public var mlpRatio: Int = 4

    enum CodingKeys: String, CodingKey {
        case type, preset, featureLevels = "feature_levels", dim, headDim = "head_dim", mlpRatio = "mlp_ratio"
    }
    public init() {}
}

/// Where the data comes from and how it is packed.
public struct DataSection: Codable, Equatable, Sendable {
    /// `synthetic` (the built-in world) or `files` (the manifests below).
    public var source: String = "synthetic"
    /// The built-in world's seed and held-out rate.
    public var synthetic: SyntheticSection = .init()
    /// A HF `tokenizer.json`; "" for the synthetic world's word-level vocabulary.
    public var tokenizer: String = ""
    /// Tokens per packed row.
    public var sequenceLength: Int = 512
    /// At most this many images per packed row.
    public var maxImages: Int = 16
    /// Pre-training mixture (MM1: 45 / 45 / 10).
    public var mixture: MixtureSection = .init()
    /// Background workers that decode and tokenize.
    public var workers: Int = 1

    enum CodingKeys: String, CodingKey {
        case source, synthetic, tokenizer, sequenceLength = "sequence_length", maxImages = "max_images",
            mixture, workers
    }
    public init() {}
}

/// The built-in synthetic world.
public struct SyntheticSection: Codable, Equatable, Sendable {
    public var seed: Int = 0
    /// Rendered image side (a multiple of 4 cells of whole patches).
    public var imageSize: Int = 224
    /// The world's patch (object sizes are whole patches).
    public var patchSize: Int = 14
    /// One scene in this many is held out for evaluation.
    public var heldOutEvery: Int = 10
    /// Where the world's files are written once and reused; "" = `data/` in the stage's run folder.
    public var directory: String = ""

    enum CodingKeys: String, CodingKey {
        case seed, imageSize = "image_size", patchSize = "patch_size", heldOutEvery = "held_out_every", directory
    }
    public init() {}
}

/// Shares of the pre-training mixture.
public struct MixtureSection: Codable, Equatable, Sendable {
    public var interleaved: Double = 0.45
    public var imageCaption: Double = 0.45
    public var textOnly: Double = 0.10

    enum CodingKeys: String, CodingKey {
        case interleaved, imageCaption = "image_caption", textOnly = "text_only"
    }
    public init() {}
}

/// What a run reports.
public struct MetricsSection: Codable, Equatable, Sendable {
    /// `auto` (redrawn in place on a terminal, plain lines otherwise), `terminal`, `plain` or `off`.
    public var progress: String = "auto"
    /// TensorBoard event files under `<run>/tensorboard/<stage>`.
    public var tensorboard: Bool = true
    /// SVG plots of loss and learning rate in the run folder, redrawn at each evaluation.
    public var plots: Bool = true

    enum CodingKeys: String, CodingKey { case progress, tensorboard, plots }
    public init() {}
}

/// The optimizer and schedule of one stage: AdamW, linear warm-up then cosine decay to
/// `min_lr_ratio` x peak, clipping, z-loss.
public struct OptimizationSection: Codable, Equatable, Sendable {
    /// Optimizer steps.
    public var steps: Int = 1000
    /// Sequences (or image-text pairs for `clip`) per optimizer step.
    public var globalBatch: Int = 8
    /// Sequences per forward/backward; `global_batch` must be a multiple.
    public var microBatch: Int = 8
    /// Peak learning rate: a number, or `auto` (MM1's law on the decoder's parameter count).
    public var lr: PeakLearningRate = .fixed(1e-4)
    public var warmupSteps: Int = 100
    /// The cosine decays to this fraction of the peak.
    public var minLrRatio: Double = 0.1
    public var weightDecay: Double = 0.1
    public var beta1: Double = 0.9
    public var beta2: Double = 0.95
    public var eps: Double = 1e-8
    /// Gradient clipping at this global norm (0 disables).
    public var clipNorm: Double = 1.0
    /// z-loss coefficient (0 disables).
    public var zLoss: Double = 1e-4
    /// Multipliers of the scheduled learning rate per model part (`vision`, `connector`,
    /// `language_model`; 1 each by default).
    public var learningRateMultipliers: PartMultipliers = .init()

    enum CodingKeys: String, CodingKey {
        case steps, globalBatch = "global_batch", microBatch = "micro_batch", lr, warmupSteps = "warmup_steps",
            minLrRatio = "min_lr_ratio", weightDecay = "weight_decay", beta1, beta2, eps, clipNorm = "clip_norm",
            zLoss = "z_loss", learningRateMultipliers = "learning_rate_multipliers"
    }
    public init() {}

    /// The stage's schedule.
    public var schedule: LearningRateSchedule {
        .cosine(warmup: warmupSteps, total: steps, floor: minLrRatio)
    }
}

/// How often a stage logs, evaluates and saves.
public struct CadenceSection: Codable, Equatable, Sendable {
    public var logEvery: Int = 10
    public var evalEvery: Int = 100
    /// Held-out batches per evaluation.
    public var evalBatches: Int = 4
    public var checkpointEvery: Int = 200
    /// Checkpoints kept (the oldest are removed).
    public var keepLast: Int = 3

    enum CodingKeys: String, CodingKey {
        case logEvery = "log_every", evalEvery = "eval_every", evalBatches = "eval_batches",
            checkpointEvery = "checkpoint_every", keepLast = "keep_last"
    }
    public init() {}
}

/// The `clip` stage: contrastive image-text pre-training of the vision tower with a small text tower.
public struct ClipStageConfig: Codable, Equatable, Sendable {
    public var optimization: OptimizationSection = {
        var o = OptimizationSection()
        o.steps = 500
        o.globalBatch = 32
        o.microBatch = 32
        o.lr = .fixed(5e-4)
        o.weightDecay = 0.2
        o.beta2 = 0.98
        o.eps = 1e-6
        o.zLoss = 0
        return o
    }()
    public var cadence: CadenceSection = .init()
    /// The text tower (HF `CLIPTextConfig` fields; `vocab_size` comes from the tokenizer).
    public var text: ClipTextSection = .init()
    /// Width of the shared embedding space (`projection_dim`).
    public var projectionDim: Int = 128
    /// Initial `logit_scale` (ln(1/0.07), CLIP's).
    public var logitScaleInit: Double = 2.65926003693
    /// `exp(logit_scale)` is clamped at this value (CLIP: 100).
    public var logitScaleMax: Double = 100

    enum CodingKeys: String, CodingKey {
        case optimization, cadence, text, projectionDim = "projection_dim", logitScaleInit = "logit_scale_init",
            logitScaleMax = "logit_scale_max"
    }
    public init() {}
}

/// The clip stage's text tower.
public struct ClipTextSection: Codable, Equatable, Sendable {
    public var hiddenSize: Int = 128
    public var numHiddenLayers: Int = 2
    public var numAttentionHeads: Int = 4
    public var intermediateSize: Int = 512
    /// Longest caption in tokens (longer ones are cut, keeping the end-of-text token).
    public var maxPositionEmbeddings: Int = 64

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers",
            numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size",
            maxPositionEmbeddings = "max_position_embeddings"
    }
    public init() {}
}

/// The `pretrain` stage: MLLM pre-training on the interleaved / caption / text mixture, packed.
public struct PretrainStageConfig: Codable, Equatable, Sendable {
    public var optimization: OptimizationSection = .init()
    public var cadence: CadenceSection = .init()
    /// `frozen` (default), `trainable`, or `last:N` (the last N encoder layers train).
    public var vision: String = "frozen"

    enum CodingKeys: String, CodingKey { case optimization, cadence, vision }
    public init() {}
}

/// The `scale-tokens` stage: compound token scaling of the pre-trained checkpoint, no training.
public struct ScaleTokensStageConfig: Codable, Equatable, Sendable {
    /// A `ChainOfSightExtension` preset name.
    public var `extension`: String = ChainOfSightExtension.res224to448_32to528.name
    /// The new image side; the tower's position embeddings are resampled to `image_size / patch_size`.
    public var imageSize: Int = 448
    /// Position-embedding resampling: `chain_of_sight` (bicubic, corners aligned), `hf` or `timm`.
    public var interpolation: String = "chain_of_sight"

    enum CodingKeys: String, CodingKey { case `extension`, imageSize = "image_size", interpolation }
    public init() {}
}

/// The `finetune` stage: instruction tuning with LoRA.
public struct FinetuneStageConfig: Codable, Equatable, Sendable {
    public var optimization: OptimizationSection = {
        var o = OptimizationSection()
        o.lr = .fixed(2e-4)
        o.weightDecay = 0
        return o
    }()
    public var cadence: CadenceSection = .init()
    public var lora: LoRASection = .init()
    /// `frozen` (default: the tower stays as pre-trained, at the new resolution) or `trainable` (MM1
    /// adapts the ViT at the higher resolution; costs a full tower's gradients and optimizer state).
    public var vision: String = "frozen"

    enum CodingKeys: String, CodingKey { case optimization, cadence, lora, vision }
    public init() {}
}

/// LoRA settings (PEFT names).
public struct LoRASection: Codable, Equatable, Sendable {
    public var r: Int = 8
    public var alpha: Double = 16
    public var dropout: Double = 0.05
    /// Module-name suffixes adapted in the decoder.
    public var targetModules: [String] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    /// Also adapt the vision tower's projections (`q_proj`, `k_proj`, `v_proj`, `out_proj`, `fc1`, `fc2`).
    public var tower: Bool = false
    /// Also adapt the connector's linear layers (instead of training it fully).
    public var connector: Bool = false
    /// Trained fully and saved with the adapters (PEFT `modules_to_save`).
    public var modulesToSave: [String] = ["connector"]

    enum CodingKeys: String, CodingKey {
        case r, alpha, dropout, targetModules = "target_modules", tower, connector, modulesToSave = "modules_to_save"
    }
    public init() {}
}
