import Foundation
import Tensor

/// The rotary-embedding frequency scaling of a Llama config (`rope_scaling`, or the non-default part of
/// transformers 5's `rope_parameters`).
public enum RopeScaling: Equatable, Sendable {
    /// Llama 3.1's smooth rescaling of the low and medium frequencies (`rope_type: "llama3"`).
    case llama3(
        factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositionEmbeddings: Int)
    /// Position interpolation (`rope_type: "linear"`): positions divided by `factor`.
    case linear(factor: Double)
}

/// The fields of HF `LlamaConfig` (`config.json`) that shape a Llama-style decoder.
///
/// Reads both config dialects: transformers 4 (`rope_theta`, `rope_scaling`) and transformers 5
/// (`rope_parameters: {rope_type, rope_theta, factor, ...}`); writes the transformers 4 form, which
/// both versions read.
public struct LlamaConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var tieWordEmbeddings: Bool
    public var maxPositionEmbeddings: Int
    /// `rope_scaling`; nil for plain RoPE.
    public var ropeScaling: RopeScaling?
    /// Width of one head when it is not `hidden_size / num_attention_heads` (`head_dim`).
    public var explicitHeadDim: Int?
    /// Biases on q/k/v/o (`attention_bias`).
    public var attentionBias: Bool
    /// Biases on gate/up/down (`mlp_bias`).
    public var mlpBias: Bool
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    public var padTokenId: Int?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads", rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta", tieWordEmbeddings = "tie_word_embeddings"
        case maxPositionEmbeddings = "max_position_embeddings"
        case ropeScaling = "rope_scaling", ropeParameters = "rope_parameters", headDim = "head_dim"
        case attentionBias = "attention_bias", mlpBias = "mlp_bias"
        case bosTokenId = "bos_token_id", eosTokenId = "eos_token_id", padTokenId = "pad_token_id"
        case architectures, modelType = "model_type", hiddenAct = "hidden_act"
    }

    public init(
        vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
        numAttentionHeads: Int, numKeyValueHeads: Int? = nil, rmsNormEps: Double = 1e-6,
        ropeTheta: Double = 10000, tieWordEmbeddings: Bool = false, maxPositionEmbeddings: Int = 2048,
        ropeScaling: RopeScaling? = nil, headDim: Int? = nil, attentionBias: Bool = false,
        mlpBias: Bool = false,
        bosTokenId: Int? = 1, eosTokenId: Int? = 2, padTokenId: Int? = nil
    ) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.tieWordEmbeddings = tieWordEmbeddings
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.ropeScaling = ropeScaling
        self.explicitHeadDim = headDim
        self.attentionBias = attentionBias
        self.mlpBias = mlpBias
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.padTokenId = padTokenId
    }

    /// A string-keyed JSON object with numbers and strings (the rope dictionaries).
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private static func decodeRope(_ c: KeyedDecodingContainer<AnyKey>, fallbackMax: Int) throws -> (
        theta: Double?, scaling: RopeScaling?
    ) {
        func num(_ k: String) -> Double? {
            let key = AnyKey(stringValue: k)
            if let d = try? c.decodeIfPresent(Double.self, forKey: key) { return d }
            if let i = try? c.decodeIfPresent(Int.self, forKey: key) { return Double(i) }
            return nil
        }
        let type =
            (try? c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "rope_type")))
            ?? (try? c.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "type"))) ?? "default"
        let theta = num("rope_theta")
        switch type {
        case "default": return (theta, nil)
        case "linear": return (theta, .linear(factor: num("factor") ?? 1))
        case "llama3":
            return (
                theta,
                .llama3(
                    factor: num("factor") ?? 8, lowFreqFactor: num("low_freq_factor") ?? 1,
                    highFreqFactor: num("high_freq_factor") ?? 4,
                    originalMaxPositionEmbeddings: Int(
                        num("original_max_position_embeddings") ?? Double(fallbackMax)))
            )
        default:
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: c.codingPath,
                    debugDescription: "unsupported rope_type \"\(type)\" (supported: default, linear, llama3)"
                ))
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // The MLP is SwiGLU with SiLU; a config naming another activation describes another model.
        if let act = try c.decodeIfPresent(String.self, forKey: .hiddenAct), act != "silu", act != "swish" {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: [CodingKeys.hiddenAct],
                    debugDescription: "unsupported hidden_act \"\(act)\" (Llama uses silu)"))
        }
        let heads = try c.decode(Int.self, forKey: .numAttentionHeads)
        let maxPos = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048
        var theta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
        var scaling: RopeScaling? = nil
        if c.contains(.ropeParameters), try !c.decodeNil(forKey: .ropeParameters) {
            let r = try Self.decodeRope(
                try c.nestedContainer(keyedBy: AnyKey.self, forKey: .ropeParameters), fallbackMax: maxPos)
            theta = r.theta ?? theta
            scaling = r.scaling
        }
        if c.contains(.ropeScaling), try !c.decodeNil(forKey: .ropeScaling) {
            scaling = try Self.decodeRope(
                try c.nestedContainer(keyedBy: AnyKey.self, forKey: .ropeScaling), fallbackMax: maxPos
            ).scaling
        }
        // eos_token_id may be a list (Llama 3 instruct); keep the first.
        var eos: Int? = nil
        if let e = try? c.decodeIfPresent(Int.self, forKey: .eosTokenId) {
            eos = e
        } else if let e = try? c.decodeIfPresent([Int].self, forKey: .eosTokenId) {
            eos = e.first
        }
        self.init(
            vocabSize: try c.decode(Int.self, forKey: .vocabSize),
            hiddenSize: try c.decode(Int.self, forKey: .hiddenSize),
            intermediateSize: try c.decode(Int.self, forKey: .intermediateSize),
            numHiddenLayers: try c.decode(Int.self, forKey: .numHiddenLayers),
            numAttentionHeads: heads,
            numKeyValueHeads: try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads),
            rmsNormEps: try c.decodeIfPresent(Double.self, forKey: .rmsNormEps) ?? 1e-6,
            ropeTheta: theta ?? 10000,
            tieWordEmbeddings: try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false,
            maxPositionEmbeddings: maxPos, ropeScaling: scaling,
            headDim: try c.decodeIfPresent(Int.self, forKey: .headDim),
            attentionBias: try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false,
            mlpBias: try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false,
            bosTokenId: try c.decodeIfPresent(Int.self, forKey: .bosTokenId),
            eosTokenId: eos,
            padTokenId: try c.decodeIfPresent(Int.self, forKey: .padTokenId))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(["LlamaForCausalLM"], forKey: .architectures)
        try c.encode("llama", forKey: .modelType)
        try c.encode("silu", forKey: .hiddenAct)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(attentionBias, forKey: .attentionBias)
        try c.encode(mlpBias, forKey: .mlpBias)
        try c.encodeIfPresent(bosTokenId, forKey: .bosTokenId)
        try c.encodeIfPresent(eosTokenId, forKey: .eosTokenId)
        try c.encodeIfPresent(padTokenId, forKey: .padTokenId)
        var r = c.nestedContainer(keyedBy: AnyKey.self, forKey: .ropeScaling)
        switch ropeScaling {
        case nil: try c.encodeNil(forKey: .ropeScaling)
        case .linear(let f)?:
            try r.encode("linear", forKey: AnyKey(stringValue: "rope_type"))
            try r.encode(f, forKey: AnyKey(stringValue: "factor"))
        case .llama3(let f, let lo, let hi, let orig)?:
            try r.encode("llama3", forKey: AnyKey(stringValue: "rope_type"))
            try r.encode(f, forKey: AnyKey(stringValue: "factor"))
            try r.encode(lo, forKey: AnyKey(stringValue: "low_freq_factor"))
            try r.encode(hi, forKey: AnyKey(stringValue: "high_freq_factor"))
            try r.encode(orig, forKey: AnyKey(stringValue: "original_max_position_embeddings"))
        }
    }

    /// Reads a `config.json`.
    public static func load(contentsOf url: URL) throws -> LlamaConfig {
        try JSONDecoder().decode(LlamaConfig.self, from: Data(contentsOf: url))
    }

    /// The config as `config.json` text (sorted keys).
    public func jsonData() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    /// Width of one attention head (`head_dim`, default `hidden_size / num_attention_heads`).
    public var headDim: Int { explicitHeadDim ?? hiddenSize / numAttentionHeads }

    /// Largest sizes accepted from a config (far beyond any released Llama; a corrupt or hostile
    /// config.json is refused before any memory is taken).
    public static let limits = (
        vocab: 1 << 22, hidden: 1 << 16, intermediate: 1 << 18, layers: 1 << 10, heads: 1 << 10,
        positions: 1 << 24, parameters: 1 << 40
    )

    /// Parameters the model has (HF `num_parameters()`; `lm_head` counted unless tied), computed with
    /// overflow checks: nil when the count overflows.
    public var checkedParameterCount: Int? {
        let h = hiddenSize, kv = numKeyValueHeads * headDim, q = numAttentionHeads * headDim
        func mul(_ a: Int, _ b: Int) -> Int? {
            let (r, o) = a.multipliedReportingOverflow(by: b)
            return o ? nil : r
        }
        func add(_ xs: Int?...) -> Int? {
            var total = 0
            for x in xs {
                guard let x else { return nil }
                let (r, o) = total.addingReportingOverflow(x)
                if o { return nil }
                total = r
            }
            return total
        }
        guard let embed = mul(vocabSize, h), let qo = mul(h, q), let kvp = mul(h, kv),
            let mlp = mul(h, intermediateSize)
        else { return nil }
        let bias = attentionBias ? add(q, kv, kv, h) : 0
        let mlpBias = self.mlpBias ? add(intermediateSize, intermediateSize, h) : 0
        guard let layer = add(mul(qo, 2), mul(kvp, 2), mul(mlp, 3), mul(h, 2), bias, mlpBias),
            let layers = mul(layer, numHiddenLayers)
        else { return nil }
        return add(embed, layers, h, tieWordEmbeddings ? 0 : embed)
    }

    /// Checks the head arithmetic, the ranges (`limits`), `rope_theta` and the parameter count.
    /// - Throws: `TensorError("LlamaConfig", ...)` naming the offending sizes.
    public func validate() throws {
        let l = Self.limits
        for (name, v, limit) in [
            ("vocab_size", vocabSize, l.vocab), ("hidden_size", hiddenSize, l.hidden),
            ("intermediate_size", intermediateSize, l.intermediate), ("num_hidden_layers", numHiddenLayers, l.layers),
            ("num_attention_heads", numAttentionHeads, l.heads), ("num_key_value_heads", numKeyValueHeads, l.heads),
            ("head_dim", headDim, l.hidden), ("max_position_embeddings", maxPositionEmbeddings, l.positions),
        ] where v > limit {
            throw TensorError("LlamaConfig", "\(name) \(v) is over the limit of \(limit)")
        }
        guard ropeTheta.isFinite, ropeTheta > 0 else {
            throw TensorError("LlamaConfig", "rope_theta must be a positive number, got \(ropeTheta)")
        }
        guard rmsNormEps.isFinite, rmsNormEps > 0 else {
            throw TensorError("LlamaConfig", "rms_norm_eps must be a positive number, got \(rmsNormEps)")
        }
        guard maxPositionEmbeddings > 0 else {
            throw TensorError("LlamaConfig", "max_position_embeddings must be positive, got \(maxPositionEmbeddings)")
        }
        guard vocabSize > 0, hiddenSize > 0, intermediateSize > 0, numHiddenLayers >= 0, numAttentionHeads > 0
        else {
            throw TensorError(
                "LlamaConfig",
                "sizes must be positive: vocab \(vocabSize), hidden \(hiddenSize), intermediate \(intermediateSize), layers \(numHiddenLayers), heads \(numAttentionHeads)"
            )
        }
        guard numKeyValueHeads > 0, numAttentionHeads % numKeyValueHeads == 0 else {
            throw TensorError(
                "LlamaConfig",
                "num_attention_heads \(numAttentionHeads) must be a multiple of num_key_value_heads \(numKeyValueHeads)"
            )
        }
        guard explicitHeadDim != nil || hiddenSize % numAttentionHeads == 0 else {
            throw TensorError(
                "LlamaConfig",
                "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
        guard headDim > 0, headDim % 2 == 0 else {
            throw TensorError("LlamaConfig", "head_dim \(headDim) must be positive and even for RoPE")
        }
        guard let n = checkedParameterCount, n <= l.parameters else {
            throw TensorError(
                "LlamaConfig", "the sizes describe more than \(l.parameters) parameters (or overflow)")
        }
    }
}
