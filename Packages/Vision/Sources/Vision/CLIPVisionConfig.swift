import Foundation

/// The fields of HF `CLIPVisionConfig` (`config.json`) that shape a CLIP vision tower.
///
/// Coding keys are HF's own, so a `config.json` written by transformers decodes directly (either the
/// vision config itself or the `vision_config` object of a full CLIP config).
public struct CLIPVisionConfig: Codable, Equatable, Sendable {
    public var imageSize: Int
    public var patchSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var hiddenAct: String
    public var layerNormEps: Double
    public var numChannels: Int

    enum CodingKeys: String, CodingKey {
        case imageSize = "image_size", patchSize = "patch_size", hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size", hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps", numChannels = "num_channels"
    }

    /// ViT-L/14 at 336 pixels (`openai/clip-vit-large-patch14-336`) unless overridden.
    public init(
        imageSize: Int = 336, patchSize: Int = 14, hiddenSize: Int = 1024, numHiddenLayers: Int = 24,
        numAttentionHeads: Int = 16, intermediateSize: Int = 4096, hiddenAct: String = "quick_gelu",
        layerNormEps: Double = 1e-5, numChannels: Int = 3
    ) {
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
        self.numChannels = numChannels
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPVisionConfig()
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? d.imageSize
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads =
            try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
        layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? d.layerNormEps
        numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? d.numChannels
    }

    /// Patches per side at the configured image size (`image_size / patch_size`).
    public var gridSize: Int { imageSize / patchSize }
}
