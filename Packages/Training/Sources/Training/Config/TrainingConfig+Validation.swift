import Bridges
import Foundation

extension TrainingConfig {
    /// One-line descriptions of the keys, written as comments by `yaml(comments: true)` and used for
    /// the config reference in the docs.
    public static let keyDescriptions: [String: String] = [
        "run": "Where the run writes and how it starts.",
        "run.output": "The run folder: config.yaml, metrics.jsonl, plots, tensorboard/, one folder per stage.",
        "run.seed": "Seeds every generator (weights, data order, dropout).",
        "run.resume": "auto: continue from the stage's latest checkpoint when there is one; never: start afresh.",
        "model": "CLIP vision tower -> connector -> Llama decoder.",
        "model.vision": "HF CLIPVisionConfig fields.",
        "model.language": "HF LlamaConfig fields; vocab_size 0 takes the tokenizer's size.",
        "model.connector.preset": "Chain-of-Sight window/query layout (its grid must be the tower's).",
        "model.connector.feature_levels": "HF hidden_states indices; [] = (round(2L/3), L-1) of an L-layer tower.",
        "model.connector.dim": "Resampler width; 0 = the tower's width.",
        "model.vision_weights": "HF CLIP directory to start the tower from (skips what clip would learn).",
        "model.language_weights": "HF Llama directory to start the decoder from.",
        "data.source": "synthetic (the built-in world) or files.",
        "data.tokenizer": "A HF tokenizer.json; \"\" = the synthetic world's word vocabulary.",
        "data.sequence_length": "Tokens per packed row.",
        "data.synthetic.directory": "Where the world's files are written once and reused; \"\" = data/ in the run folder.",
        "data.mixture": "Pre-training mixture shares (MM1: 45/45/10).",
        "metrics.progress": "auto (in place on a terminal, plain lines otherwise), terminal, plain or off.",
        "metrics.tensorboard": "Write TensorBoard event files under tensorboard/<stage>.",
        "metrics.plots": "Redraw loss.svg and lr.svg at each evaluation.",
        "pretrain.optimization.learning_rate_multipliers": "Scheduled learning rate x this, per model part.",
        "finetune.optimization.learning_rate_multipliers": "Scheduled learning rate x this, per model part.",
        "clip": "Contrastive image-text pre-training of the tower (symmetric InfoNCE, learnable temperature).",
        "clip.projection_dim": "Width of the shared image-text embedding space.",
        "clip.logit_scale_init": "Initial logit_scale = ln(1/0.07).",
        "clip.logit_scale_max": "exp(logit_scale) is clamped at this value (CLIP: 100).",
        "pretrain": "MLLM pre-training on the interleaved / caption / text mixture, packed.",
        "pretrain.vision": "frozen, trainable, or last:N (the last N encoder layers train).",
        "scale-tokens": "Compound token scaling of the pre-trained checkpoint, without training.",
        "scale-tokens.extension": "A Chain-of-Sight extension preset (windows x queries, inflation).",
        "scale-tokens.image_size": "The new image side; position embeddings are resampled to it.",
        "scale-tokens.interpolation": "chain_of_sight (bicubic, corners aligned), hf or timm.",
        "finetune": "Instruction tuning (LLaVA conversations, loss on assistant turns) with LoRA.",
        "finetune.lora.target_modules": "Decoder module-name suffixes that get adapters.",
        "finetune.lora.tower": "Also put adapters on the vision tower's projections.",
        "finetune.lora.connector": "Adapters on the connector's linear layers instead of training it fully.",
        "finetune.lora.modules_to_save": "Trained fully and saved with the adapters (PEFT modules_to_save).",
        "finetune.vision": "frozen (default) or trainable at the new resolution (MM1 adapts the ViT).",
        "data_parallel": "Data parallelism of pretrain and finetune under mpirun/srun (a single process ignores it).",
        "data_parallel.bucket_mb": "Gradients are all-reduced in buckets of about this many MiB (float32).",
        "data_parallel.overlap": "Start each bucket's all-reduce during the backward pass, as soon as its gradients are final.",
        "data_parallel.zero_stage": "1: ZeRO-1, each rank keeps the AdamW moments of its share of the parameters only; 0: every rank keeps all.",
        "optimization.lr": "Peak learning rate, or auto (MM1: exp(-0.4214 ln N - 0.5535), N = decoder parameters).",
    ]

    /// Checks the values no type can: names of presets and modes, divisibility, ranges.
    /// - Throws: `ConfigError` naming the key path (and `source`, `lines` when known).
    public func validate(source: String = "<config>", lines: ConfigLines = [:]) throws {
        func fail(_ key: String, _ m: String) -> ConfigError {
            ConfigError(keyPath: key, source: source, line: lines[key], m)
        }
        guard ["auto", "never"].contains(run.resume) else { throw fail("run.resume", "must be auto or never, got \(run.resume)") }
        guard ["synthetic", "files"].contains(data.source) else {
            throw fail("data.source", "must be synthetic or files, got \(data.source)")
        }
        guard ["auto", "terminal", "plain", "off"].contains(metrics.progress) else {
            throw fail("metrics.progress", "must be auto, terminal, plain or off, got \(metrics.progress)")
        }
        guard ["chain_of_sight", "projection"].contains(model.connector.type) else {
            throw fail(
                "model.connector.type",
                "must be chain_of_sight or projection (LLaVA's two-layer MLP over every patch token), got \(model.connector.type)")
        }
        guard model.connector.type != "chain_of_sight" || ChainOfSightPreset(rawValue: model.connector.preset) != nil else {
            throw fail(
                "model.connector.preset",
                "unknown preset \(model.connector.preset) (\(ChainOfSightPreset.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard ChainOfSightExtension.presets.contains(where: { $0.name == scaleTokens.extension }) else {
            throw fail(
                "scale-tokens.extension",
                "unknown extension \(scaleTokens.extension) (\(ChainOfSightExtension.presets.map(\.name).joined(separator: ", ")))")
        }
        guard ["chain_of_sight", "hf", "timm"].contains(scaleTokens.interpolation) else {
            throw fail("scale-tokens.interpolation", "must be chain_of_sight, hf or timm, got \(scaleTokens.interpolation)")
        }
        for (key, mode) in [("pretrain.vision", pretrain.vision), ("finetune.vision", finetune.vision)] {
            if (try? TrainingConfig.visionMode(mode)) == nil {
                throw fail(key, "must be frozen, trainable or last:N, got \(mode)")
            }
        }
        let stages: [(String, OptimizationSection)] = [
            ("clip", clip.optimization), ("pretrain", pretrain.optimization), ("finetune", finetune.optimization),
        ]
        for (name, o) in stages {
            guard o.steps > 0 else { throw fail("\(name).optimization.steps", "must be positive, got \(o.steps)") }
            guard o.microBatch > 0, o.globalBatch >= o.microBatch, o.globalBatch % o.microBatch == 0 else {
                throw fail(
                    "\(name).optimization.global_batch",
                    "\(o.globalBatch) must be a positive multiple of micro_batch \(o.microBatch)")
            }
            guard o.minLrRatio >= 0, o.minLrRatio <= 1 else {
                throw fail("\(name).optimization.min_lr_ratio", "must be in [0, 1], got \(o.minLrRatio)")
            }
            let m = o.learningRateMultipliers
            for (part, value) in [("vision", m.vision), ("connector", m.connector), ("language_model", m.languageModel)]
            where !(value >= 0 && value.isFinite) {
                throw fail("\(name).optimization.learning_rate_multipliers.\(part)", "must be finite and >= 0, got \(value)")
            }
        }
        guard finetune.lora.r > 0 else { throw fail("finetune.lora.r", "must be positive, got \(finetune.lora.r)") }
        guard data.sequenceLength > 0 else { throw fail("data.sequence_length", "must be positive") }
        guard dataParallel.bucketMegabytes > 0, dataParallel.bucketMegabytes.isFinite else {
            throw fail("data_parallel.bucket_mb", "must be a positive number of MiB, got \(dataParallel.bucketMegabytes)")
        }
        guard dataParallel.zeroStage == 0 || dataParallel.zeroStage == 1 else {
            throw fail("data_parallel.zero_stage", "must be 0 or 1 (ZeRO stage 1), got \(dataParallel.zeroStage)")
        }
    }
}

extension TrainingConfig {
    /// Parses a stage's `vision` key: `frozen`, `trainable` or `last:N` (the last N encoder layers train).
    /// - Returns: the mode and the number of trainable layers (for `last:N`).
    /// - Throws: `ConfigError` for anything else.
    public static func visionMode(_ text: String) throws -> (VisionTraining, layers: Int) {
        switch text {
        case "frozen": return (.frozen, 0)
        case "trainable": return (.trainable, 0)
        default:
            guard text.hasPrefix("last:"), let n = Int(text.dropFirst(5)), n >= 0 else {
                throw ConfigError(keyPath: "vision", source: "", "must be frozen, trainable or last:N, got \(text)")
            }
            return (.lastLayers, n)
        }
    }
}
