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

extension CLIPVisionConfig {
    /// Reads a `config.json`: either a vision config (`model_type` `clip_vision_model`) or a full CLIP
    /// config, whose `vision_config` object is used.
    /// - Throws: `VisionError` naming the file when it cannot be read or decoded, or holds invalid sizes.
    public static func load(contentsOf path: String) throws -> CLIPVisionConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw VisionError(path, "cannot read the config: \(error.localizedDescription)")
        }
        let config: CLIPVisionConfig
        var fields: [String: Any] = [:]
        do {
            let object = try JSONSerialization.jsonObject(with: data)
            fields = (object as? [String: Any]).map { ($0["vision_config"] as? [String: Any]) ?? $0 } ?? [:]
            if let top = object as? [String: Any], let vision = top["vision_config"] as? [String: Any] {
                config = try JSONDecoder().decode(
                    CLIPVisionConfig.self, from: JSONSerialization.data(withJSONObject: vision))
            } else {
                config = try JSONDecoder().decode(CLIPVisionConfig.self, from: data)
            }
        } catch let e as VisionError {
            throw e
        } catch {
            throw VisionError(path, "not a CLIP vision config: \(error)")
        }
        try config.validate(source: path)
        // A config file must say what it describes: no default-sized tower from `{}`.
        let required = [
            "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "image_size", "patch_size",
        ]
        if let missing = required.first(where: { fields[$0] == nil }) {
            throw VisionError(path, "not a CLIP vision config: no \(missing)")
        }
        return config
    }

    /// Checks that the sizes describe a buildable tower.
    /// - Throws: `VisionError` naming `source` and the offending field.
    public func validate(source: String = "CLIPVisionConfig") throws {
        func fail(_ m: String) -> VisionError { VisionError(source, m) }
        guard patchSize > 0, imageSize >= patchSize else {
            throw fail(
                "image_size \(imageSize) and patch_size \(patchSize) must be positive, image_size >= patch_size"
            )
        }
        guard hiddenSize > 0, numAttentionHeads > 0, hiddenSize % numAttentionHeads == 0 else {
            throw fail(
                "hidden_size \(hiddenSize) must be a positive multiple of num_attention_heads \(numAttentionHeads)"
            )
        }
        guard numHiddenLayers >= 0, intermediateSize > 0, numChannels > 0 else {
            throw fail("num_hidden_layers, intermediate_size and num_channels must be positive")
        }
        for (name, v, limit) in [
            ("image_size", imageSize, 1 << 14), ("hidden_size", hiddenSize, 1 << 16),
            ("num_hidden_layers", numHiddenLayers, 1 << 10), ("num_attention_heads", numAttentionHeads, 1 << 10),
            ("intermediate_size", intermediateSize, 1 << 18), ("num_channels", numChannels, 64),
        ] where v > limit {
            throw fail("\(name) \(v) is over the limit of \(limit)")
        }
        guard let n = checkedParameterCount, n <= 1 << 40 else {
            throw fail("the sizes describe more than 2^40 parameters (or overflow)")
        }
        guard layerNormEps > 0 else { throw fail("layer_norm_eps must be positive, got \(layerNormEps)") }
        _ = try CLIPActivation(hfName: hiddenAct, source: source)
    }

    /// Parameters of the tower (HF `CLIPVisionModel.num_parameters()`), computed with overflow
    /// checks: nil when the count overflows.
    public var checkedParameterCount: Int? {
        let c = hiddenSize, i = intermediateSize, g = imageSize / max(patchSize, 1)
        var total = 0
        func add(_ factors: Int...) -> Bool {
            var p = 1
            for f in factors {
                let (r, o) = p.multipliedReportingOverflow(by: f)
                if o { return false }
                p = r
            }
            let (r, o) = total.addingReportingOverflow(p)
            total = r
            return !o
        }
        guard add(c), add(c, numChannels, patchSize, patchSize), add(g, g, c), add(c), add(4, c),
            add(numHiddenLayers, 4, c, c), add(numHiddenLayers, 4, c), add(numHiddenLayers, 4, c),
            add(numHiddenLayers, 2, c, i), add(numHiddenLayers, i), add(numHiddenLayers, c)
        else { return nil }
        return total
    }

    /// Patch grid positions plus the class position (`num_positions` in HF).
    public var numPositions: Int { gridSize * gridSize + 1 }
}
