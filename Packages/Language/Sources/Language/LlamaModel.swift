import Foundation
import Layers

extension MultiHeadAttention.Names {
    /// HF Llama's attention projections: `q_proj`, `k_proj`, `v_proj`, `o_proj`.
    public static let llama = Self(query: "q_proj", key: "k_proj", value: "v_proj", output: "o_proj")
}

extension LoRAConfig {
    /// HF Llama's attention projections (PEFT's default targets for Llama).
    public static let llamaAttentionTargets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    /// Every projection of a Llama decoder layer: attention and the SwiGLU MLP.
    public static let llamaAllTargets = llamaAttentionTargets + ["gate_proj", "up_proj", "down_proj"]
}

/// Grouped-query self-attention with rotary positions (HF `LlamaAttention`), on Layers'
/// `MultiHeadAttention` with `.llama` names: children `q_proj`, `k_proj`, `v_proj`, `o_proj`.
///
/// - Parameters:
///   - attention: the block's `self_attn`.
///   - x: `[B, T, hidden]`
///   - rope: cos/sin tables `[B, T, 1, D/2]`
///   - mask: the attention mask over the keys (cache included).
///   - cache: keys/values of earlier steps for this layer, extended in place.
/// - Returns: `[B, T, hidden]`
func llamaSelfAttention(
    _ attention: MultiHeadAttention, _ x: Tensor, rope: (cos: Tensor, sin: Tensor), mask: AttentionMask,
    cache: KVCache?, layer: Int
) throws -> Tensor {
    let (b, t) = (x.shape[0], x.shape[1])
    let (hq, hkv, d) = (attention.numHeads, attention.numKeyValueHeads, attention.headDim)
    var q = try attention.query(x).reshaped([b, t, hq, d])
    var k = try attention.key!(x).reshaped([b, t, hkv, d])
    let vNew = try attention.value!(x).reshaped([b, t, hkv, d]).permuted([0, 2, 1, 3])
    q = try RotaryEmbedding.apply(q, cos: rope.cos, sin: rope.sin).permuted([0, 2, 1, 3])
    k = try RotaryEmbedding.apply(k, cos: rope.cos, sin: rope.sin).permuted([0, 2, 1, 3])
    var v = vNew
    if let cache { (k, v) = try cache.append(layer: layer, keys: k, values: vNew) }
    return try attention.merge(scaledDotProductAttention(q: q, k: k, v: v, mask: mask))
}

/// SwiGLU feed-forward (HF `LlamaMLP`): `down_proj(silu(gate_proj(x)) * up_proj(x))`.
public final class LlamaMLP: Module, UnaryLayer {
    public let gateProj: Linear, upProj: Linear, downProj: Linear

    /// Zero weights; `LlamaForCausalLM` initialises the whole tree.
    public init(config: LlamaConfig) {
        gateProj = Linear(config.hiddenSize, config.intermediateSize, bias: config.mlpBias, seed: nil)
        upProj = Linear(config.hiddenSize, config.intermediateSize, bias: config.mlpBias, seed: nil)
        downProj = Linear(config.intermediateSize, config.hiddenSize, bias: config.mlpBias, seed: nil)
    }

    public override var localChildren: [(String, Module)] {
        [("gate_proj", gateProj), ("up_proj", upProj), ("down_proj", downProj)]
    }

    /// - Parameter x: `[..., hidden]`
    /// - Returns: `[..., hidden]`
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try downProj(silu(gateProj(x)) * upProj(x))
    }
}

/// One pre-norm decoder block (HF `LlamaDecoderLayer`): children `self_attn`, `mlp`, `input_layernorm`,
/// `post_attention_layernorm`.
public final class LlamaDecoderLayer: Module {
    /// `self_attn`: Layers' attention with `.llama` names (RoPE and the cache are applied by the layer).
    public let selfAttn: MultiHeadAttention
    public let mlp: LlamaMLP
    public let inputLayernorm: RMSNorm
    public let postAttentionLayernorm: RMSNorm

    /// Zero projections; `LlamaForCausalLM` initialises the whole tree.
    /// - Throws: `TensorError` when the config's head arithmetic is inconsistent.
    public init(config: LlamaConfig) throws {
        selfAttn = try MultiHeadAttention(
            embedDim: config.hiddenSize, numHeads: config.numAttentionHeads,
            numKeyValueHeads: config.numKeyValueHeads, headDim: config.headDim, bias: config.attentionBias,
            names: .llama, seed: nil)
        mlp = LlamaMLP(config: config)
        inputLayernorm = RMSNorm(config.hiddenSize, eps: Float(config.rmsNormEps))
        postAttentionLayernorm = RMSNorm(config.hiddenSize, eps: Float(config.rmsNormEps))
    }

    public override var localChildren: [(String, Module)] {
        [
            ("self_attn", selfAttn), ("mlp", mlp), ("input_layernorm", inputLayernorm),
            ("post_attention_layernorm", postAttentionLayernorm),
        ]
    }

    func callAsFunction(
        _ x: Tensor, rope: (cos: Tensor, sin: Tensor), mask: AttentionMask, cache: KVCache?, layer: Int
    ) throws -> Tensor {
        let h = try x
            + llamaSelfAttention(selfAttn, inputLayernorm(x), rope: rope, mask: mask, cache: cache, layer: layer)
        return try h + mlp(postAttentionLayernorm(h))
    }
}

/// The decoder stack without the vocabulary head (HF `LlamaModel`): `embed_tokens`, `layers`, `norm`.
public final class LlamaModel: Module {
    public let config: LlamaConfig
    public let embedTokens: Embedding
    public let layers: ModuleList<LlamaDecoderLayer>
    public let norm: RMSNorm
    public let rotary: RotaryEmbedding

    /// Zero weights; `LlamaForCausalLM` initialises the whole tree.
    /// - Throws: `TensorError` when the config's head arithmetic is inconsistent.
    public init(config: LlamaConfig) throws {
        self.config = config
        embedTokens = Embedding(config.vocabSize, config.hiddenSize, seed: nil)
        layers = ModuleList(try (0..<config.numHiddenLayers).map { _ in try LlamaDecoderLayer(config: config) })
        norm = RMSNorm(config.hiddenSize, eps: Float(config.rmsNormEps))
        rotary = RotaryEmbedding(config: config)
    }

    public override var localChildren: [(String, Module)] {
        [("embed_tokens", embedTokens), ("layers", layers), ("norm", norm)]
    }
}

/// What the decoder reads: tokens or embeddings, and optionally positions, packed-document ids and
/// key padding.
public struct DecoderInput {
    /// `[B, T]` token ids (or nil when `embeddings` are given).
    public var tokens: IndexTensor?
    /// `[B, T, hidden]` input embeddings (text embeddings with connector tokens placed among them).
    public var embeddings: Tensor?
    /// `[B, T]` position ids; default: restarting per document when `documentIds` are given, else
    /// counting the real (unpadded) tokens of each row, continuing after the cache.
    public var positionIds: IndexTensor?
    /// `[B, T]` document ids of a packed row: attention is causal within each document and never
    /// crosses into another.
    public var documentIds: IndexTensor?
    /// `[B, T]` 1 for real tokens, 0 for padding (hidden as keys).
    public var keyPadding: IndexTensor?

    public init(
        tokens: IndexTensor? = nil, embeddings: Tensor? = nil, positionIds: IndexTensor? = nil,
        documentIds: IndexTensor? = nil, keyPadding: IndexTensor? = nil
    ) {
        self.tokens = tokens
        self.embeddings = embeddings
        self.positionIds = positionIds
        self.documentIds = documentIds
        self.keyPadding = keyPadding
    }
}

/// A Llama-style decoder with its vocabulary head, mirroring HF `LlamaForCausalLM`: parameters
/// `model.embed_tokens.weight`, `model.layers.N.self_attn.{q,k,v,o}_proj.weight`,
/// `model.layers.N.mlp.{gate,up,down}_proj.weight`, `model.layers.N.{input,post_attention}_layernorm.weight`,
/// `model.norm.weight`, `lm_head.weight` (absent with tied embeddings, where the head reads
/// `model.embed_tokens.weight`).
///
/// ```swift
/// let lm = try LlamaForCausalLM(config: config, seed: 0)
/// let logits = try lm(tokens)                                   // [B, T, V]
/// let h = try lm.hiddenStates(DecoderInput(tokens: ids, documentIds: docs))
/// let loss = try lm.nextTokenLoss(hidden: h, labels: ids, documentIds: docs)
/// ```
public final class LlamaForCausalLM: Module {
    public private(set) var config: LlamaConfig
    public let model: LlamaModel
    /// The vocabulary head; nil when tied to the embedding.
    public let lmHead: Linear?
    /// Recompute each decoder layer during backward instead of keeping its activations (HF
    /// `gradient_checkpointing_enable`): activation memory drops to one layer's, for about one more
    /// forward pass. Needs deterministic layers: LoRA dropout must be 0 while training with it.
    public var gradientCheckpointing = false

    /// Standard deviation of HF Llama's `_init_weights` for projections and embeddings.
    public static let initStd: Float = 0.02

    /// A model with HF's initialisation (N(0, 0.02) weights, zero biases, unit norms), drawn from `seed`
    /// module by module in registration order.
    /// - Throws: `TensorError` when the config's head arithmetic is inconsistent.
    public init(config: LlamaConfig, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        model = try LlamaModel(config: config)
        lmHead = config.tieWordEmbeddings ? nil : Linear(config.hiddenSize, config.vocabSize, bias: false, seed: nil)
        super.init()
        for (_, m) in namedModules() {
            if let l = m as? Linear {
                l.weightInitializer = .normal(std: Self.initStd)
                l.biasInitializer = .zeros
            } else if let e = m as? Embedding {
                e.initializer = .normal(std: Self.initStd)
            }
        }
        resetParameters(seed: seed)
    }

    public override var localChildren: [(String, Module)] {
        [("model", model)] + (lmHead.map { [("lm_head", $0)] } ?? [])
    }

    /// The weight the vocabulary head multiplies by, `[V, hidden]`.
    public var outputWeight: Parameter { lmHead?.weight ?? model.embedTokens.weight }

    // MARK: Forward

    /// Runs the decoder stack and the final norm.
    /// - Parameters:
    ///   - input: tokens or embeddings `[B, T(, hidden)]` with optional positions, documents, padding.
    ///   - cache: when given, the new keys/values are appended to it and attention covers the cache.
    /// - Returns: `[B, T, hidden]`, normalised by `model.norm`.
    /// - Throws: `TensorError` for inconsistent shapes or out-of-range ids.
    public func hiddenStates(_ input: DecoderInput, cache: KVCache? = nil) throws -> Tensor {
        let op = "LlamaForCausalLM"
        var x: Tensor
        switch (input.tokens, input.embeddings) {
        case let (t?, nil):
            guard t.shape.count == 2 else { throw TensorError(op, "tokens must be [B, T], got \(t.shape)") }
            x = try model.embedTokens(t)
        case let (nil, e?):
            guard e.rank == 3, e.shape[2] == config.hiddenSize else {
                throw TensorError(op, "embeddings must be [B, T, \(config.hiddenSize)], got \(e.shape)")
            }
            x = e
        default: throw TensorError(op, "pass exactly one of tokens and embeddings")
        }
        let (b, t) = (x.shape[0], x.shape[1])
        for (name, ids) in [
            ("positionIds", input.positionIds), ("documentIds", input.documentIds),
            ("keyPadding", input.keyPadding),
        ] {
            if let ids, ids.shape != [b, t] {
                throw TensorError(op, "\(name) \(ids.shape) must be [B, T] = [\(b), \(t)]")
            }
        }
        if let cache, cache.layerCount != model.layers.count {
            throw TensorError(
                op, "KV cache has \(cache.layerCount) layers, the model \(model.layers.count)")
        }
        if input.documentIds != nil && cache != nil && cache!.length > 0 {
            throw TensorError(op, "document ids cannot be combined with a non-empty KV cache")
        }
        // Padding over all keys (cache + new), and default positions.
        let padding = try cache?.extendPadding(input.keyPadding, batch: b, length: t) ?? input.keyPadding
        let positions: IndexTensor
        if let p = input.positionIds {
            positions = p
        } else if let d = input.documentIds {
            positions = try positionIds(documentIds: d)
        } else {
            positions = try defaultPositions(batch: b, length: t, padding: padding, cache: cache)
        }
        var mask = AttentionMask.causal
        if let d = input.documentIds { mask = AttentionMask.documents(d, causal: true) }
        if let padding, padding.values.contains(0) { mask = try mask.and(.keyPadding(padding)) }
        let rope = try model.rotary.tables(positions: positions)
        let recompute = gradientCheckpointing && cache == nil && GradMode.isEnabled
        if recompute, isTraining,
            let (name, _) = loraModules.first(where: { ($0.1.lora?.dropout?.p ?? 0) > 0 })
        {
            throw TensorError(
                op, "gradient checkpointing needs deterministic layers, but \(name) has LoRA dropout")
        }
        for (i, layer) in model.layers.enumerated() {
            if recompute {
                x = try checkpoint([x]) { inputs in
                    try layer(inputs[0], rope: rope, mask: mask, cache: nil, layer: i)
                }
            } else {
                x = try layer(x, rope: rope, mask: mask, cache: cache, layer: i)
            }
        }
        cache?.commit(length: t)
        return try model.norm(x)
    }

    private func defaultPositions(batch b: Int, length t: Int, padding: IndexTensor?, cache: KVCache?) throws
        -> IndexTensor
    {
        let past = cache?.length ?? 0
        guard let padding else {
            return try IndexTensor(shape: [b, t], values: (0..<b).flatMap { _ in (0..<t).map { past + $0 } })
        }
        // Count the real tokens before each position (left padding gives positions 0, 1, ... to the prompt).
        let tk = padding.shape[1]
        var out = [Int](repeating: 0, count: b * t)
        for r in 0..<b {
            var seen = 0
            for j in 0..<tk {
                if j >= tk - t { out[r * t + j - (tk - t)] = max(seen, 0) }
                if padding.values[r * tk + j] != 0 { seen += 1 }
            }
        }
        return try IndexTensor(shape: [b, t], values: out)
    }

    /// Logits from final hidden states, at every position or only at `positions`.
    /// - Parameters:
    ///   - hidden: `[B, T, hidden]` from `hiddenStates`.
    ///   - positions: flat indices `b * T + t` of the rows wanted (for example the loss positions), or nil for all.
    /// - Returns: `[B, T, V]`, or `[positions.count, V]`.
    public func logits(hidden: Tensor, at positions: IndexTensor? = nil) throws -> Tensor {
        guard let positions else { return try head(hidden) }
        let flat = try hidden.reshaped([hidden.count / config.hiddenSize, config.hiddenSize])
        return try head(flat.indexSelect(axis: 0, indices: positions))
    }

    func head(_ h: Tensor) throws -> Tensor {
        if let lmHead { return try lmHead(h) }
        return try linear(h, weight: model.embedTokens.weight.value)
    }

    /// Logits at every position for a batch of token rows (plain causal attention).
    /// - Parameter tokens: `[B, T]`
    /// - Returns: `[B, T, V]`
    public func callAsFunction(_ tokens: IndexTensor) throws -> Tensor {
        try logits(hidden: hiddenStates(DecoderInput(tokens: tokens)))
    }

    /// Updates the stored config (vocabulary surgery changes `vocab_size`).
    func setVocabSize(_ v: Int) { config.vocabSize = v }
}

/// Keys and values of earlier positions, per layer, for incremental decoding.
///
/// Each layer's keys and values are `[B, Hkv, T, D]` (after RoPE). A forward pass with a cache
/// appends its keys/values and attends over the whole cache; `length` advances after the pass.
public final class KVCache {
    public private(set) var keys: [Tensor?]
    public private(set) var values: [Tensor?]
    /// Number of positions stored.
    public private(set) var length = 0
    /// `[B, length]` 1 for real keys, 0 for padding (nil while there is no padding).
    public private(set) var padding: IndexTensor?
    private var pendingPadding: IndexTensor?

    /// An empty cache for a model of `layers` decoder layers (`LlamaForCausalLM.hiddenStates` throws
    /// when the counts differ; a negative count is treated as 0).
    public init(layers: Int) {
        keys = Array(repeating: nil, count: max(layers, 0))
        values = Array(repeating: nil, count: max(layers, 0))
    }

    /// Number of decoder layers the cache holds.
    public var layerCount: Int { keys.count }

    func append(layer: Int, keys k: Tensor, values v: Tensor) throws -> (Tensor, Tensor) {
        let nk = try keys[layer].map { try Tensor.concatenate([$0, k], axis: 2) } ?? k
        let nv = try values[layer].map { try Tensor.concatenate([$0, v], axis: 2) } ?? v
        keys[layer] = nk.detached()
        values[layer] = nv.detached()
        return (nk, nv)
    }

    /// The padding over all keys after appending `length` new positions whose padding is `new`.
    func extendPadding(_ new: IndexTensor?, batch: Int, length t: Int) throws -> IndexTensor? {
        guard padding != nil || new != nil else { pendingPadding = nil; return nil }
        let old = padding?.values ?? [Int](repeating: 1, count: batch * length)
        let fresh = new?.values ?? [Int](repeating: 1, count: batch * t)
        var out: [Int] = []
        out.reserveCapacity(batch * (length + t))
        for r in 0..<batch {
            out += old[(r * length)..<((r + 1) * length)]
            out += fresh[(r * t)..<((r + 1) * t)]
        }
        pendingPadding = try IndexTensor(shape: [batch, length + t], values: out)
        return pendingPadding
    }

    func commit(length t: Int) {
        length += t
        padding = pendingPadding
    }
}
