import Layers

// HF `CLIPVisionModel`, module for module: the same children under the same names, so that
// `namedParameters()` lists exactly the keys of HF's state dict.
//
//   vision_model.embeddings.{class_embedding, patch_embedding.weight, position_embedding.weight}
//   vision_model.pre_layrnorm.{weight, bias}                       (HF's spelling)
//   vision_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.{fc1, fc2}, layer_norm2}
//   vision_model.post_layernorm.{weight, bias}

/// The MLP activation named by `hidden_act`.
public enum CLIPActivation: String, Sendable {
    case quickGelu = "quick_gelu"
    case gelu = "gelu"
    case geluTanh = "gelu_pytorch_tanh"
    case relu = "relu"
    case silu = "silu"

    /// Maps HF's `hidden_act` names (`gelu_new`, `gelu_fast` and `gelu_pytorch_tanh` are the tanh form).
    /// - Throws: `VisionError` for a name this package does not implement.
    public init(hfName: String, source: String = "CLIPVisionConfig") throws {
        switch hfName {
        case "quick_gelu": self = .quickGelu
        case "gelu": self = .gelu
        case "gelu_new", "gelu_fast", "gelu_pytorch_tanh": self = .geluTanh
        case "relu": self = .relu
        case "silu", "swish": self = .silu
        default:
            throw VisionError(
                source, "hidden_act \"\(hfName)\" is not supported (quick_gelu, gelu, gelu_new, relu, silu)")
        }
    }

    /// Applies the activation.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .quickGelu: return activationQuickGelu(x)
        case .gelu: return activationGelu(x, approximate: false)
        case .geluTanh: return activationGelu(x, approximate: true)
        case .relu: return activationRelu(x)
        case .silu: return activationSilu(x)
        }
    }
}

private func activationQuickGelu(_ x: Tensor) -> Tensor { quickGelu(x) }
private func activationGelu(_ x: Tensor, approximate: Bool) -> Tensor { gelu(x, approximate: approximate) }
private func activationRelu(_ x: Tensor) -> Tensor { relu(x) }
private func activationSilu(_ x: Tensor) -> Tensor { silu(x) }

/// Patch embedding (a stride-`patch` convolution without bias), the class token and learned positions
/// (HF `CLIPVisionEmbeddings`): `class_embedding` `[C]`, `patch_embedding.weight` `[C, 3, p, p]`,
/// `position_embedding.weight` `[1 + g*g, C]`.
public final class CLIPVisionEmbeddings: Module {
    public let patchSize: Int
    public let classEmbedding: Parameter
    public let patchEmbedding: Conv2d
    public let positionEmbedding: Embedding

    /// - Throws: `TensorError` when the config's sizes are not positive.
    public init(config: CLIPVisionConfig, seed: UInt64 = 0) throws {
        patchSize = config.patchSize
        classEmbedding = Parameter(Tensor.zeros([config.hiddenSize]))
        patchEmbedding = try Conv2d(
            config.numChannels, config.hiddenSize, kernelSize: (config.patchSize, config.patchSize),
            stride: (config.patchSize, config.patchSize), bias: false, seed: seed)
        positionEmbedding = Embedding(config.numPositions, config.hiddenSize, seed: seed &+ 1)
        super.init()
        var g = RandomGenerator(seed: seed &+ 2)
        resetLocalParameters(generator: &g)
    }

    public override var localParameters: [(String, Parameter)] { [("class_embedding", classEmbedding)] }
    public override var localChildren: [(String, Module)] {
        [("patch_embedding", patchEmbedding), ("position_embedding", positionEmbedding)]
    }

    public override func resetLocalParameters(generator: inout RandomGenerator) {
        Initializer.normal(std: 1).apply(to: classEmbedding, generator: &generator)
    }

    /// The stored patch grid side `g` (the table has `1 + g*g` rows).
    public var storedGrid: Int { Int(Double(positionEmbedding.weight.shape[0] - 1).squareRoot().rounded()) }

    /// The position table for a patch grid: the stored one when the grid is the stored grid, else
    /// resampled by `method`.
    /// - Returns: `[1 + h*w, C]`
    public func positions(grid: (height: Int, width: Int), method: PositionInterpolation) throws -> Tensor {
        try interpolatePositionEmbedding(positionEmbedding.weight.value, grid: grid, method: method)
    }

    /// - Parameter pixels: `[B, 3, H, W]`; the grid is `(H / p, W / p)` rounded down, as the convolution.
    /// - Returns: `[B, 1 + h*w, C]` (class token first) and the grid.
    public func callAsFunction(_ pixels: Tensor, method: PositionInterpolation) throws -> (
        Tensor, (height: Int, width: Int)
    ) {
        let op = "CLIPVisionEmbeddings"
        let channels = patchEmbedding.weight.shape[1]
        guard pixels.rank == 4, pixels.shape[1] == channels else {
            throw VisionError(op, "expects pixels [B, \(channels), H, W], got \(pixels.shape)")
        }
        guard pixels.shape[2] >= patchSize, pixels.shape[3] >= patchSize else {
            throw VisionError(
                op,
                "image \(pixels.shape[2]) x \(pixels.shape[3]) is smaller than one \(patchSize)-pixel patch")
        }
        let b = pixels.shape[0]
        let patches = try patchEmbedding(pixels)  // [B, C, h, w]
        let (c, h, w) = (patches.shape[1], patches.shape[2], patches.shape[3])
        let tokens = try patches.reshaped([b, c, h * w]).transposed(1, 2)
        let cls = try classEmbedding.value.reshaped([1, 1, c]).broadcast(to: [b, 1, c])
        let table = try positions(grid: (h, w), method: method)
        let x = try Tensor.concatenate([cls, tokens], axis: 1) + table.reshaped([1, 1 + h * w, c])
        return (x, (h, w))
    }
}

/// Self-attention (HF `CLIPAttention`): `q_proj`, `k_proj`, `v_proj`, `out_proj`, scale `head_dim^-0.5`.
public typealias CLIPAttention = MultiHeadAttention

/// One pre-norm encoder layer (HF `CLIPEncoderLayer`): `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
public final class CLIPEncoderLayer: Module {
    public let selfAttention: CLIPAttention
    public let layerNorm1: LayerNorm
    public let mlp: MLP
    public let layerNorm2: LayerNorm

    public init(config: CLIPVisionConfig, seed: UInt64 = 0) throws {
        let act = try CLIPActivation(hfName: config.hiddenAct)
        let eps = Float(config.layerNormEps)
        selfAttention = try MultiHeadAttention(
            embedDim: config.hiddenSize, numHeads: config.numAttentionHeads, names: .clip, seed: seed)
        layerNorm1 = LayerNorm([config.hiddenSize], eps: eps)
        mlp = MLP(
            config.hiddenSize, hidden: config.intermediateSize, activation: { act($0) }, seed: seed &+ 10)
        layerNorm2 = LayerNorm([config.hiddenSize], eps: eps)
    }

    public override var localChildren: [(String, Module)] {
        [
            ("self_attn", selfAttention), ("layer_norm1", layerNorm1), ("mlp", mlp),
            ("layer_norm2", layerNorm2),
        ]
    }

    /// - Parameter x: `[B, T, C]`
    /// - Returns: `[B, T, C]`
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = try x + selfAttention(layerNorm1(x))
        return try h + mlp(layerNorm2(h))
    }
}

/// The stack of encoder layers (HF `CLIPEncoder`): child `layers`.
public final class CLIPEncoder: Module {
    public let layers: ModuleList<CLIPEncoderLayer>

    public init(config: CLIPVisionConfig, seed: UInt64 = 0) throws {
        layers = ModuleList(
            try (0..<config.numHiddenLayers).map {
                try CLIPEncoderLayer(config: config, seed: seed &+ UInt64($0) &* 100)
            })
    }

    public override var localChildren: [(String, Module)] { [("layers", layers)] }
}

/// The hidden states a forward pass was asked for.
public struct CLIPVisionOutput {
    /// HF `hidden_states` by index: 0 is the encoder input (embeddings after `pre_layrnorm`), `i` the
    /// output of encoder layer `i` (1-based). Only the requested indices are present. `[B, 1 + h*w, C]`.
    public var hiddenStates: [Int: Tensor]
    /// `post_layernorm` of the last layer's class token (HF `pooler_output`) `[B, C]`, when requested.
    public var pooled: Tensor?
    /// The patch grid (height, width).
    public var grid: (height: Int, width: Int)
    /// How many encoder layers ran.
    public var layersRun: Int
}

/// Patch features of one or more layers, class token dropped (or kept on request).
public struct VisionFeatures {
    /// One tensor per requested layer, in request order: `[B, h*w, C]` (`[B, 1 + h*w, C]` when the
    /// class token is kept, the class token first).
    public var levels: [Tensor]
    /// The patch grid (height, width): `levels[i]` holds `height * width` patch tokens, row-major.
    public var grid: (height: Int, width: Int)
    /// The HF `hidden_states` index of each level.
    public var layers: [Int]
}

/// The transformer under HF's `vision_model.` prefix (HF `CLIPVisionTransformer`): `embeddings`,
/// `pre_layrnorm`, `encoder`, `post_layernorm`. Its parameter names carry no prefix; `CLIPVisionModel`
/// adds `vision_model.`.
public final class CLIPVisionTransformer: Module {
    public private(set) var config: CLIPVisionConfig
    public let embeddings: CLIPVisionEmbeddings
    public let preLayerNorm: LayerNorm
    public let encoder: CLIPEncoder
    public let postLayerNorm: LayerNorm

    /// A randomly initialised tower (weights are normally loaded afterwards).
    /// - Throws: `VisionError` for an invalid config.
    public init(config: CLIPVisionConfig, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        embeddings = try CLIPVisionEmbeddings(config: config, seed: seed)
        preLayerNorm = LayerNorm([config.hiddenSize], eps: Float(config.layerNormEps))
        encoder = try CLIPEncoder(config: config, seed: seed &+ 1000)
        postLayerNorm = LayerNorm([config.hiddenSize], eps: Float(config.layerNormEps))
    }

    public override var localChildren: [(String, Module)] {
        [
            ("embeddings", embeddings), ("pre_layrnorm", preLayerNorm), ("encoder", encoder),
            ("post_layernorm", postLayerNorm),
        ]
    }

    /// Records the resized position table's image size in the config (used by `resizePositionEmbeddings`).
    func setImageSize(_ size: Int) { config.imageSize = size }
}

extension LoRAConfig {
    /// HF CLIP's attention projections (`q_proj`, `k_proj`, `v_proj`, `out_proj`), the vision tower's
    /// naming preset for `targetModules`.
    public static let clipAttentionTargets = ["q_proj", "k_proj", "v_proj", "out_proj"]
}
