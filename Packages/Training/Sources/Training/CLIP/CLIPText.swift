import Foundation
import Layers
import Vision

// A small CLIP text tower mirroring HF `CLIPTextModel` module for module, and the two-tower
// contrastive model mirroring HF `CLIPModel`'s names:
//
//   text_model.embeddings.{token_embedding, position_embedding}.weight
//   text_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.{fc1, fc2}, layer_norm2}
//   text_model.final_layer_norm.{weight, bias}
//   vision_model.*                      (the CLIPVisionModel's own keys)
//   visual_projection.weight [P, Cv], text_projection.weight [P, Ct], logit_scale []

/// The fields of HF `CLIPTextConfig` that shape the text tower.
public struct CLIPTextConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var maxPositionEmbeddings: Int
    public var hiddenAct: String
    public var layerNormEps: Double
    /// The end-of-text token: the tower's output is read at its (first) position.
    public var eosTokenId: Int
    public var padTokenId: Int

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings", hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps", eosTokenId = "eos_token_id", padTokenId = "pad_token_id"
    }

    public init(
        vocabSize: Int, hiddenSize: Int = 512, intermediateSize: Int = 2048, numHiddenLayers: Int = 12,
        numAttentionHeads: Int = 8, maxPositionEmbeddings: Int = 77, hiddenAct: String = "quick_gelu",
        layerNormEps: Double = 1e-5, eosTokenId: Int, padTokenId: Int = 0
    ) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
        self.eosTokenId = eosTokenId
        self.padTokenId = padTokenId
    }

    /// The same encoder-layer shape as a vision config (the layers are the same module).
    var encoderShape: CLIPVisionConfig {
        CLIPVisionConfig(
            imageSize: 1, patchSize: 1, hiddenSize: hiddenSize, numHiddenLayers: numHiddenLayers,
            numAttentionHeads: numAttentionHeads, intermediateSize: intermediateSize, hiddenAct: hiddenAct,
            layerNormEps: layerNormEps)
    }
}

/// Token and learned position embeddings (HF `CLIPTextEmbeddings`).
public final class CLIPTextEmbeddings: Module {
    public let tokenEmbedding: Embedding
    public let positionEmbedding: Embedding

    public init(config: CLIPTextConfig, seed: UInt64) {
        tokenEmbedding = Embedding(config.vocabSize, config.hiddenSize, seed: seed)
        positionEmbedding = Embedding(config.maxPositionEmbeddings, config.hiddenSize, seed: seed &+ 1)
        super.init()
        // HF initialises both with N(0, 0.02).
        var g = RandomGenerator(seed: seed &+ 2)
        Initializer.normal(std: 0.02).apply(to: tokenEmbedding.weight, generator: &g)
        Initializer.normal(std: 0.01).apply(to: positionEmbedding.weight, generator: &g)
    }

    public override var localChildren: [(String, Module)] {
        [("token_embedding", tokenEmbedding), ("position_embedding", positionEmbedding)]
    }
}

/// The text transformer under HF's `text_model.` prefix (HF `CLIPTextTransformer`): a causal
/// pre-norm encoder whose pooled output is the final-layer-norm state at each row's end-of-text token.
public final class CLIPTextTransformer: Module {
    public let config: CLIPTextConfig
    public let embeddings: CLIPTextEmbeddings
    public let encoder: CLIPEncoder
    public let finalLayerNorm: LayerNorm

    /// - Throws: `VisionError` for an invalid layer shape (width not divisible by heads, ...).
    public init(config: CLIPTextConfig, seed: UInt64 = 0) throws {
        try config.encoderShape.validate(source: "CLIPTextConfig")
        self.config = config
        embeddings = CLIPTextEmbeddings(config: config, seed: seed)
        encoder = try CLIPEncoder(config: config.encoderShape, seed: seed &+ 1000)
        finalLayerNorm = LayerNorm([config.hiddenSize], eps: Float(config.layerNormEps))
    }

    public override var localChildren: [(String, Module)] {
        [("embeddings", embeddings), ("encoder", encoder), ("final_layer_norm", finalLayerNorm)]
    }

    /// Runs the tower.
    /// - Parameter ids: `[B, T]` token ids, each row holding `eos_token_id` (padding after it is ignored:
    ///   attention is causal, so no earlier position sees it).
    /// - Returns: `lastHiddenState` `[B, T, C]` (after the final layer norm) and `pooled` `[B, C]`
    ///   (the state at each row's first end-of-text token).
    /// - Throws: `TensorError` naming the row without an end-of-text token, or a row longer than
    ///   `max_position_embeddings`.
    public func callAsFunction(_ ids: IndexTensor) throws -> (lastHiddenState: Tensor, pooled: Tensor) {
        let op = "CLIPTextTransformer"
        guard ids.shape.count == 2 else { throw TensorError(op, "ids must be [B, T], got \(ids.shape)") }
        let (b, t) = (ids.shape[0], ids.shape[1])
        guard t <= config.maxPositionEmbeddings else {
            throw TensorError(op, "rows of \(t) tokens exceed max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        var eos: [Int] = []
        for r in 0..<b {
            guard let i = (0..<t).first(where: { ids.values[r * t + $0] == config.eosTokenId }) else {
                throw TensorError(op, "row \(r) has no end-of-text token \(config.eosTokenId)")
            }
            eos.append(r * t + i)
        }
        let positions = try IndexTensor(shape: [t], values: Array(0..<t))
        var x = try embeddings.tokenEmbedding(ids) + embeddings.positionEmbedding(positions).unsqueezed(0)
        for layer in encoder.layers {
            let h = try x + layer.selfAttention(layer.layerNorm1(x), mask: .causal)
            x = try h + layer.mlp(layer.layerNorm2(h))
        }
        let last = try finalLayerNorm(x)
        let pooled = try last.reshaped([b * t, config.hiddenSize]).indexSelect(
            axis: 0, indices: IndexTensor(eos))
        return (last, pooled)
    }
}

/// HF `CLIPTextModel`: the transformer as child `text_model`.
public final class CLIPTextModel: Module {
    public let textModel: CLIPTextTransformer
    public init(config: CLIPTextConfig, seed: UInt64 = 0) throws {
        textModel = try CLIPTextTransformer(config: config, seed: seed)
    }
    public override var localChildren: [(String, Module)] { [("text_model", textModel)] }
    /// See `CLIPTextTransformer.callAsFunction`.
    public func callAsFunction(_ ids: IndexTensor) throws -> (lastHiddenState: Tensor, pooled: Tensor) {
        try textModel(ids)
    }
}

/// The two-tower contrastive model of the `clip` stage (HF `CLIPModel` names): image and text
/// embeddings projected to a shared space, compared by cosine similarity times a learnable
/// temperature `exp(logit_scale)` (clamped at `logitScaleMax`).
public final class ContrastiveCLIP: Module {
    public let textModel: CLIPTextTransformer
    public let vision: CLIPVisionModel
    public let visualProjection: Linear
    public let textProjection: Linear
    public let logitScale: Parameter
    /// `exp(logit_scale)` never exceeds this (CLIP: 100).
    public var logitScaleMax: Float

    /// - Parameters:
    ///   - logitScaleInit: initial `logit_scale` (CLIP: ln(1/0.07)).
    public init(
        vision: CLIPVisionModel, text: CLIPTextConfig, projectionDim: Int, logitScaleInit: Float = 2.6592600369,
        logitScaleMax: Float = 100, seed: UInt64 = 0
    ) throws {
        self.vision = vision
        textModel = try CLIPTextTransformer(config: text, seed: seed)
        visualProjection = Linear(vision.config.hiddenSize, projectionDim, bias: false, seed: seed &+ 1)
        textProjection = Linear(text.hiddenSize, projectionDim, bias: false, seed: seed &+ 2)
        logitScale = Parameter(Tensor(logitScaleInit))
        self.logitScaleMax = logitScaleMax
    }

    public override var localChildren: [(String, Module)] {
        [
            ("text_model", textModel), ("vision_model", vision.visionModel),
            ("visual_projection", visualProjection), ("text_projection", textProjection),
        ]
    }
    public override var localParameters: [(String, Parameter)] { [("logit_scale", logitScale)] }

    /// Projected image embeddings (not normalised).
    /// - Parameter pixels: `[B, 3, H, W]`, normalised.
    /// - Returns: `[B, projectionDim]`
    public func imageEmbeddings(_ pixels: Tensor) throws -> Tensor {
        try visualProjection(vision(pixels).pooled!)
    }

    /// Projected text embeddings (not normalised).
    /// - Parameter ids: `[B, T]`
    /// - Returns: `[B, projectionDim]`
    public func textEmbeddings(_ ids: IndexTensor) throws -> Tensor {
        try textProjection(textModel(ids).pooled)
    }

    /// The symmetric InfoNCE loss of a batch of matching (image, caption) pairs.
    /// - Returns: a scalar.
    public func loss(pixels: Tensor, ids: IndexTensor) throws -> Tensor {
        try clipContrastiveLoss(
            imageEmbeddings: imageEmbeddings(pixels), textEmbeddings: textEmbeddings(ids),
            logitScale: logitScale.value, maxScale: logitScaleMax)
    }

    /// Keeps `exp(logit_scale)` within [1, logitScaleMax] after an update (as CLIP's training clamps the
    /// parameter).
    public func clampLogitScale() {
        let hi = Float(Foundation.log(Double(logitScaleMax)))
        logitScale.update { t in
            t.withUnsafeMutableBufferPointer { p in p[0] = min(max(p[0], 0), hi) }
        }
    }
}

/// CLIP's symmetric InfoNCE: with unit-normalised embeddings `I`, `T` and `s = min(exp(logitScale), maxScale)`,
/// logits `L = s I T^T` `[B, B]`, and the loss is `(CE(L, arange) + CE(L^T, arange)) / 2` (pair i
/// matches pair i; the other captions and images of the batch are the negatives).
/// - Parameters:
///   - imageEmbeddings: `[B, P]`
///   - textEmbeddings: `[B, P]`
///   - logitScale: a scalar (the log of the inverse temperature).
/// - Returns: a scalar, differentiable in all three inputs (the scale's gradient is 0 while clamped).
/// - Throws: `TensorError` when the shapes differ or the batch is empty.
public func clipContrastiveLoss(
    imageEmbeddings: Tensor, textEmbeddings: Tensor, logitScale: Tensor, maxScale: Float = 100
) throws -> Tensor {
    let op = "clip_contrastive_loss"
    guard imageEmbeddings.rank == 2, imageEmbeddings.shape == textEmbeddings.shape, imageEmbeddings.shape[0] > 0
    else {
        throw TensorError(
            op, "image embeddings \(imageEmbeddings.shape) and text embeddings \(textEmbeddings.shape) must both be [B, P], B > 0")
    }
    guard logitScale.count == 1 else { throw TensorError(op, "logit scale must be a scalar, got \(logitScale.shape)") }
    let b = imageEmbeddings.shape[0]
    let i = try imageEmbeddings / imageEmbeddings.norm(axes: [1], keepDim: true)
    let t = try textEmbeddings / textEmbeddings.norm(axes: [1], keepDim: true)
    let scale = try logitScale.exp().clamp(max: maxScale).reshaped([1, 1])
    let logits = try Tensor.matmul(i, t, transposeB: true) * scale
    let targets = IndexTensor(Array(0..<b))
    let imageToText = try crossEntropy(logits: logits, targets: targets)
    let textToImage = try crossEntropy(logits: logits.transposed(0, 1), targets: targets)
    return try (imageToText + textToImage) * 0.5
}
