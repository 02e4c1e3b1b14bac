import Bridges
import Datasets
import Foundation
import Language
import Layers
import Vision

/// The multimodal model: a CLIP vision tower, a connector and a Llama decoder under one `Module`.
///
/// Parameter names are those of HF's Llava checkpoint files, so a state dict lists
///
///     vision_tower.vision_model.embeddings.patch_embedding.weight      [C, 3, p, p]
///     vision_tower.vision_model.encoder.layers.N.self_attn.q_proj.weight ...
///     multi_modal_projector.<the connector's own names>                  (projection depth 2: `0.weight`,
///                                                                         `2.weight`; Chain-of-Sight, ...)
///     language_model.model.embed_tokens.weight                           [V, hidden]
///     language_model.model.layers.N.self_attn.q_proj.weight ...
///     language_model.lm_head.weight                                      [V, hidden] (absent when tied)
///
/// The forward consumes a `PackedBatch`: every image's sub-images (all crops of the batch at once)
/// run through the tower up to the deepest feature level the connector reads (`featureLevels`), the
/// connector turns each crop into `tokenCount(grid:)` tokens, and image `k`'s tokens (its crops in
/// order) replace the `k`-th placeholder run; the decoder then runs on the mixed embeddings with the
/// batch's document ids (attention never crosses documents), positions and key padding. The
/// placeholder token's own embedding is never read and receives no gradient (HF Llava's
/// `masked_scatter`).
///
/// ```swift
/// let model = try MultimodalModel(config: modelConfig)
/// let loss = try model.loss(batch, zLossCoefficient: 1e-4)     // sums and the supervised count
/// ```
public final class MultimodalModel: Module {
    /// Name prefixes of the three parts.
    public static let visionPrefix = "vision_tower."
    public static let connectorPrefix = "multi_modal_projector."
    public static let languagePrefix = "language_model."

    public private(set) var config: ModelConfig
    /// HF `CLIPVisionModel` (child `vision_tower`).
    public let visionTower: CLIPVisionModel
    /// The connector (child `multi_modal_projector`).
    public let connector: any Connector
    /// HF `LlamaForCausalLM` (child `language_model`).
    public let languageModel: LlamaForCausalLM

    /// A randomly initialised model (the tower from `seed`, the connector from `seed + 1`, the decoder
    /// from `seed + 2`), with the config's freezing and checkpointing applied.
    /// - Throws: `TrainingError` or the parts' errors for inconsistent widths or invalid configs.
    public convenience init(config: ModelConfig) throws {
        try self.init(
            config: config, visionTower: CLIPVisionModel(config: config.vision, seed: config.seed),
            connector: makeConnector(config.connector, seed: config.seed &+ 1),
            languageModel: LlamaForCausalLM(config: config.languageModel, seed: config.seed &+ 2))
    }

    /// A model from existing parts (pretrained towers); `config` must describe them.
    /// - Throws: `TrainingError` naming both widths when the parts do not fit together.
    public init(
        config: ModelConfig, visionTower: CLIPVisionModel, connector: any Connector,
        languageModel: LlamaForCausalLM
    ) throws {
        guard connector.visionDim == visionTower.config.hiddenSize else {
            throw TrainingError(
                "MultimodalModel: the connector reads \(connector.visionDim)-wide features, the vision tower's hidden_size is \(visionTower.config.hiddenSize)"
            )
        }
        guard connector.llmDim == languageModel.config.hiddenSize else {
            throw TrainingError(
                "MultimodalModel: the connector emits \(connector.llmDim)-wide tokens, the language model's hidden_size is \(languageModel.config.hiddenSize)"
            )
        }
        guard (0..<languageModel.config.vocabSize).contains(config.imageTokenId) else {
            throw TrainingError(
                "MultimodalModel: image_token_id \(config.imageTokenId) outside the vocabulary of \(languageModel.config.vocabSize)"
            )
        }
        for level in connector.featureLevels { _ = try visionTower.resolveLayer(level) }
        self.config = config
        self.visionTower = visionTower
        self.connector = connector
        self.languageModel = languageModel
        super.init()
        try applyTrainingSettings()
    }

    public override var localChildren: [(String, Module)] {
        [("vision_tower", visionTower), ("multi_modal_projector", connector), ("language_model", languageModel)]
    }

    // MARK: Freezing, multipliers, checkpointing

    /// Applies the config's freezing (tower frozen / trainable / last N layers, connector, decoder) and
    /// activation checkpointing. Called at construction; call again after changing `config` fields
    /// through `update(_:)`.
    /// - Throws: `TrainingError` when `vision_trainable_layers` exceeds the tower's layers.
    public func applyTrainingSettings() throws {
        let n = visionTower.layerCount
        switch config.visionTraining {
        case .frozen: visionTower.freeze(prefix: "")
        case .trainable: visionTower.unfreeze(prefix: "")
        case .lastLayers:
            let k = config.visionTrainableLayers
            guard (0...n).contains(k) else {
                throw TrainingError(
                    "model.vision_trainable_layers: \(k) outside 0...\(n) (the tower's num_hidden_layers)")
            }
            visionTower.freeze(prefix: "")
            for i in (n - k)..<n { visionTower.unfreeze(prefix: "vision_model.encoder.layers.\(i).") }
            if k > 0 { visionTower.unfreeze(prefix: "vision_model.post_layernorm.") }
        }
        connector.freeze(prefix: "", config.freezeConnector)
        if config.freezeLanguageModel { languageModel.freeze(prefix: "") }
        visionTower.gradientCheckpointing = config.activationCheckpointing.vision
        languageModel.gradientCheckpointing = config.activationCheckpointing.languageModel
    }

    /// Replaces the training settings (freezing, checkpointing) and applies them.
    public func update(_ newConfig: ModelConfig) throws {
        guard newConfig.vision == config.vision, newConfig.connector == config.connector,
            newConfig.languageModel == config.languageModel
        else {
            throw TrainingError("MultimodalModel.update: the architecture cannot change in place")
        }
        config = newConfig
        try applyTrainingSettings()
    }

    /// Parameters of the decoder (embeddings included): the N of MM1's learning-rate law.
    public var languageModelParameterCount: Int { languageModel.parameterCount() }

    // MARK: Forward

    /// The connector's tokens for a stack of (sub-)images.
    /// - Parameter pixels: `[crops, 3, S, S]`, normalised.
    /// - Returns: `[crops, tokensPerCrop, llmDim]` and the patch grid.
    public func imageTokens(_ pixels: Tensor) throws -> (tokens: Tensor, grid: Grid) {
        let f = try visionTower.features(pixels, layers: connector.featureLevels)
        let grid = Grid(height: f.grid.height, width: f.grid.width)
        let levels = f.levels.map { FeatureLevel($0, grid: grid) }
        return (try connector(levels), grid)
    }

    /// The decoder's input embeddings: text embeddings with each image's connector tokens in its
    /// placeholder run.
    /// - Returns: `[B, T, hidden]`
    /// - Throws: `TrainingError` naming the placeholder and both counts when a run's length is not the
    ///   image's crops times the connector's token count, or the crops do not add up to the images.
    public func inputEmbeddings(_ batch: PackedBatch) throws -> Tensor {
        let (b, t) = batch.shape
        let h = languageModel.config.hiddenSize
        let text = try languageModel.model.embedTokens(batch.tokens)
        guard !batch.placeholders.isEmpty else {
            guard batch.images == nil else {
                throw TrainingError("batch has images \(batch.images!.shape) but no placeholder runs")
            }
            return text
        }
        guard let pixels = batch.images else {
            throw TrainingError("batch has \(batch.placeholders.count) placeholder runs but no images")
        }
        let crops = batch.placeholders.reduce(0) { $0 + $1.crops }
        guard crops == pixels.shape[0] else {
            throw TrainingError(
                "batch: placeholders claim \(crops) sub-images, the images tensor holds \(pixels.shape[0]) (\(pixels.shape))"
            )
        }
        let (tokens, grid) = try imageTokens(pixels)  // [crops, n, h]
        let perCrop = tokens.shape[1]
        var index = Array(0..<(b * t))
        var next = b * t
        for (k, p) in batch.placeholders.enumerated() {
            guard p.length == p.crops * perCrop else {
                throw TrainingError(
                    "batch: image \(k) (row \(p.row), position \(p.start)) has a run of \(p.length) placeholder tokens, but its \(p.crops) crop(s) on a \(grid) grid give \(p.crops * perCrop) connector tokens"
                )
            }
            guard p.row >= 0, p.row < b, p.start >= 0, p.start + p.length <= t else {
                throw TrainingError(
                    "batch: image \(k)'s run (row \(p.row), \(p.start)..<\(p.start + p.length)) lies outside [\(b), \(t)]")
            }
            for j in 0..<p.length { index[p.row * t + p.start + j] = next + j }
            next += p.length
        }
        let pool = try Tensor.concatenate(
            [text.reshaped([b * t, h]), tokens.reshaped([tokens.shape[0] * perCrop, h])], axis: 0)
        return try pool.indexSelect(axis: 0, indices: IndexTensor(index)).reshaped([b, t, h])
    }

    /// Final hidden states of the decoder for a packed batch.
    /// - Returns: `[B, T, hidden]`
    public func hiddenStates(_ batch: PackedBatch) throws -> Tensor {
        let input = DecoderInput(
            embeddings: try inputEmbeddings(batch), positionIds: batch.positionIds,
            documentIds: batch.documentIds, keyPadding: batch.keyPadding)
        return try languageModel.hiddenStates(input)
    }

    /// The next-token loss of a packed batch, as sums over its supervised tokens and their count (add
    /// these over micro-batches and divide once: the mean over the global batch).
    /// - Parameter zLossCoefficient: weight of the z-loss (0 disables it).
    public func loss(_ batch: PackedBatch, zLossCoefficient: Float = 0) throws -> NextTokenLoss {
        try languageModel.nextTokenLoss(
            hidden: hiddenStates(batch), labels: batch.labels, documentIds: batch.documentIds,
            zLossCoefficient: zLossCoefficient)
    }
}
