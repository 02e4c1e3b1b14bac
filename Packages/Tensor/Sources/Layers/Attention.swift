/// Multi-head attention (self- or cross-), with grouped-query heads and the projection names of the
/// architecture it mirrors.
///
/// Parameters (with `names = .clip`): `q_proj`, `k_proj`, `v_proj`, `out_proj` (each `weight [out, in]`,
/// `bias [out]`). With `fusedKeyValue` set (Bridges' Chain-of-Sight names: `to_q`, `to_kv`, `proj`) the
/// key and value projections are one fused `[2C, Cctx]` whose rows `[0, C)` produce keys and `[C, 2C)`
/// values. The presets of other formats live with the package that owns the format (Language's
/// `.llama`, Bridges' `.chainOfSight`).
public final class MultiHeadAttention: Module {
    /// The children's names.
    public struct Names: Sendable {
        public var query: String
        public var key: String
        public var value: String
        public var output: String
        /// When set, one projection of this name produces keys and values (`[2 * kvDim, contextDim]`).
        public var fusedKeyValue: String?

        public init(query: String, key: String, value: String, output: String, fusedKeyValue: String? = nil) {
            self.query = query
            self.key = key
            self.value = value
            self.output = output
            self.fusedKeyValue = fusedKeyValue
        }

        /// HF CLIP (and the default): `q_proj`, `k_proj`, `v_proj`, `out_proj`.
        public static let clip = Names(query: "q_proj", key: "k_proj", value: "v_proj", output: "out_proj")
    }

    public let embedDim: Int
    public let numHeads: Int
    public let numKeyValueHeads: Int
    public let headDim: Int
    public let names: Names
    public var query: Linear
    public var key: Linear?
    public var value: Linear?
    public var keyValue: Linear?
    public var output: Linear

    /// - Parameters:
    ///   - embedDim: width of the queries and of the output.
    ///   - numHeads: query heads; `embedDim` must be divisible by it unless `headDim` is given.
    ///   - numKeyValueHeads: key/value heads (grouped-query attention); defaults to `numHeads`.
    ///   - headDim: width of one head; defaults to `embedDim / numHeads` (HF Llama's `head_dim` may differ).
    ///   - contextDim: width of the keys' source for cross-attention (defaults to `embedDim`).
    ///   - bias: biases on the input projections; `outputBias` on the output projection.
    ///   - seed: draws the projections (PyTorch's default initialisation); nil leaves them zero for an
    ///     owner that re-initialises the tree or loads weights.
    /// - Throws: `TensorError` naming the values when a size is not positive, `embedDim` is not
    ///   divisible by `numHeads`, or `numHeads` is not a multiple of `numKeyValueHeads`.
    public init(
        embedDim: Int, numHeads: Int, numKeyValueHeads: Int? = nil, headDim: Int? = nil, contextDim: Int? = nil,
        bias: Bool = true, outputBias: Bool? = nil, names: Names = .clip, seed: UInt64? = 0
    ) throws {
        let op = "MultiHeadAttention"
        let kvHeads = numKeyValueHeads ?? numHeads
        let ctx = contextDim ?? embedDim
        for (name, value) in [
            ("embedDim", embedDim), ("numHeads", numHeads), ("numKeyValueHeads", kvHeads), ("contextDim", ctx),
            ("headDim", headDim ?? 1),
        ] where value <= 0 {
            throw TensorError(op, "\(name) must be positive, got \(value)")
        }
        guard headDim != nil || embedDim % numHeads == 0 else {
            throw TensorError(op, "embedDim \(embedDim) is not divisible by numHeads \(numHeads)")
        }
        guard numHeads % kvHeads == 0 else {
            throw TensorError(
                op, "numHeads \(numHeads) is not a multiple of numKeyValueHeads \(kvHeads)")
        }
        self.embedDim = embedDim
        self.numHeads = numHeads
        self.numKeyValueHeads = kvHeads
        self.headDim = headDim ?? embedDim / numHeads
        self.names = names
        let qDim = numHeads * self.headDim
        let kvDim = kvHeads * self.headDim
        query = Linear(embedDim, qDim, bias: bias, seed: seed)
        if names.fusedKeyValue != nil {
            keyValue = Linear(ctx, 2 * kvDim, bias: bias, seed: seed.map { $0 &+ 1 })
        } else {
            key = Linear(ctx, kvDim, bias: bias, seed: seed.map { $0 &+ 1 })
            value = Linear(ctx, kvDim, bias: bias, seed: seed.map { $0 &+ 2 })
        }
        output = Linear(qDim, embedDim, bias: outputBias ?? bias, seed: seed.map { $0 &+ 3 })
    }

    public override var localChildren: [(String, Module)] {
        if let keyValue, let fused = names.fusedKeyValue {
            return [(names.query, query), (fused, keyValue), (names.output, output)]
        }
        return [(names.query, query), (names.key, key!), (names.value, value!), (names.output, output)]
    }

    /// `[B, T, heads * headDim]` -> `[B, heads, T, headDim]`.
    public func splitHeads(_ x: Tensor, heads: Int) throws -> Tensor {
        let (b, t) = (x.shape[0], x.shape[1])
        return try x.reshaped([b, t, heads, headDim]).permuted([0, 2, 1, 3])
    }

    /// Projects queries, keys and values.
    /// - Returns: q `[B, H, T, Dh]`, k and v `[B, Hkv, S, Dh]`.
    public func project(_ x: Tensor, context: Tensor? = nil) throws -> (q: Tensor, k: Tensor, v: Tensor) {
        guard x.rank == 3, x.shape[2] == embedDim else {
            throw TensorError("MultiHeadAttention", "expects [B, T, \(embedDim)], got \(x.shape)")
        }
        let src = context ?? x
        guard src.rank == 3, src.shape[0] == x.shape[0] else {
            throw TensorError("MultiHeadAttention", "context \(src.shape) does not match queries \(x.shape)")
        }
        let q = try splitHeads(query(x), heads: numHeads)
        let k: Tensor, v: Tensor
        if let keyValue {
            let kv = try keyValue(src)
            let parts = try kv.split(
                sizes: [numKeyValueHeads * headDim, numKeyValueHeads * headDim], axis: 2)
            (k, v) = (parts[0], parts[1])
        } else {
            (k, v) = (try key!(src), try value!(src))
        }
        return (q, try splitHeads(k, heads: numKeyValueHeads), try splitHeads(v, heads: numKeyValueHeads))
    }

    /// Merges heads and applies the output projection: `[B, H, T, Dh]` -> `[B, T, embedDim]`.
    public func merge(_ attended: Tensor) throws -> Tensor {
        let (b, t) = (attended.shape[0], attended.shape[2])
        return try output(attended.permuted([0, 2, 1, 3]).reshaped([b, t, numHeads * headDim]))
    }

    /// - Parameters:
    ///   - x: queries' source `[B, T, embedDim]`
    ///   - context: keys' and values' source `[B, S, contextDim]` (cross-attention), or nil for self-attention
    ///   - mask: which keys each query may see
    /// - Returns: `[B, T, embedDim]`
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil, mask: AttentionMask = .none) throws
        -> Tensor
    {
        let (q, k, v) = try project(x, context: context)
        return try merge(scaledDotProductAttention(q: q, k: k, v: v, mask: mask))
    }
}
