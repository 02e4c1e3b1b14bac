// Chain-of-Sight (Huang et al., 2024): a multi-scale windowed resampler. Structure and parameter
// names follow the released projector (`cos.py`, class `CosResampler`) as documented in
// shared/reference/chain-of-sight(-verified).md; parity with our PyTorch re-implementation of that
// structure (scripts/make_bridges_fixtures.py) is within 1e-4 relative for outputs.

/// Pre-LN cross-attention of a Chain-of-Sight block (`attn_0_w{ws}_l{L}_q{nq}`): LayerNorm on the
/// queries (`query_norm`) and on the window features (`cont_norm`), `to_q` `[dim, dim]` and fused
/// `to_kv` `[2 dim, visionDim]` without bias (rows `[0, dim)` give keys, `[dim, 2 dim)` values),
/// heads as contiguous `headDim` slices, softmax(q k^T / sqrt(headDim)) v, then `proj` with bias.
/// No self-attention among the queries; keys are the window's features only.
public final class ChainOfSightAttention: Module {
    public let attention: MultiHeadAttention
    public let queryNorm: LayerNorm
    public let contextNorm: LayerNorm

    init(dim: Int, visionDim: Int, heads: Int, eps: Float) throws {
        attention = try MultiHeadAttention(
            embedDim: dim, numHeads: heads, contextDim: visionDim, bias: false, outputBias: true,
            names: .chainOfSight)
        queryNorm = LayerNorm(dim, eps: eps)
        contextNorm = LayerNorm(visionDim, eps: eps)
    }

    /// `to_q`, `to_kv`, `proj`, `query_norm`, `cont_norm` (the released registration order).
    public override var localChildren: [(String, Module)] {
        attention.localChildren + [("query_norm", queryNorm), ("cont_norm", contextNorm)]
    }

    /// - Parameters:
    ///   - queries: `[N, Tq, dim]` (N = batch * windows), not normalised
    ///   - context: `[N, Tk, visionDim]` window features, not normalised
    /// - Returns: `[N, Tq, dim]` (the residual is added by the caller)
    public func callAsFunction(_ queries: Tensor, context: Tensor) throws -> Tensor {
        try attention(queryNorm(queries), context: contextNorm(context))
    }
}

/// One (feature level, scale) block: `q = q + attn(q, window)`, then `q = q + mlp(ln(q))`
/// (`mlp.fc1` dim -> mlpRatio dim, exact GELU, `mlp.fc2` back).
public struct ChainOfSightBlock {
    public let attn: ChainOfSightAttention
    public let mlp: MLP
    public let ln: LayerNorm
    /// `0_w{ws}_l{L-1}_q{nq}`: the name suffix after `attn_`, `mlp_`, `ln_`.
    public let suffix: String

    /// - Parameters:
    ///   - queries: `[N, npw, dim]`
    ///   - window: `[N, ws*ws, visionDim]`
    /// - Returns: `[N, npw, dim]`
    public func callAsFunction(_ queries: Tensor, window: Tensor) throws -> Tensor {
        let q = try queries + attn(queries, context: window)
        return try q + mlp(ln(q))
    }
}

/// Splits `[B, H*W, C]` patch tokens into non-overlapping `ws x ws` windows:
/// `[B * windows, ws*ws, C]`, batch-major (row b * windows + w), windows row-major over the window
/// grid, patches row-major inside each window.
/// - Throws: `TensorError` when the window does not tile the grid or the tokens do not fill it.
public func windowPartition(_ x: Tensor, grid: Grid, windowSize ws: Int) throws -> Tensor {
    guard x.rank == 3, x.shape[1] == grid.count else {
        throw TensorError(
            "window_partition", "expects [B, \(grid.count), C] for a \(grid) grid, got \(x.shape)")
    }
    guard ws > 0, grid.height % ws == 0, grid.width % ws == 0 else {
        throw TensorError("window_partition", "window size \(ws) does not tile the \(grid) grid")
    }
    let (b, c) = (x.shape[0], x.shape[2])
    let (gh, gw) = (grid.height / ws, grid.width / ws)
    if gh == 1 && gw == 1 { return x }
    return try x.reshaped([b, gh, ws, gw, ws, c]).permuted([0, 1, 3, 2, 4, 5]).reshaped([
        b * gh * gw, ws * ws, c,
    ])
}

/// The Chain-of-Sight connector: per scale, learnable queries owned window by window, refined through
/// the feature levels in order by one block per (level, scale), batched over all windows of the
/// scale; scales concatenated in config order (global first); then `ln_out` and `out_proj`.
///
/// Parameter names (the released `state_dict`, in its order):
/// - `cls_token_w{ws}_q{nq}` `[1, nq, dim]`, one per scale;
/// - for each level L (HF index), for each scale: `attn_0_w{ws}_l{L-1}_q{nq}.{to_q, to_kv, proj,
///   query_norm, cont_norm}`, `mlp_0_w{ws}_l{L-1}_q{nq}.{fc1, fc2}`, `ln_0_w{ws}_l{L-1}_q{nq}`;
/// - `ln_out`, `out_proj` `[llmDim, dim]`.
///
/// Output token order: scale-major (config order), then window row-major, then query within window.
public final class ChainOfSight: Module, Connector {
    public let config: ChainOfSightConfig
    /// Window layout of each scale on `config.grid`.
    public let layouts: [WindowScale.Layout]
    /// Queries of each scale, `[1, nq, dim]`.
    public let queries: [Parameter]
    /// Blocks indexed [level][scale].
    public let blocks: [[ChainOfSightBlock]]
    public let lnOut: LayerNorm
    public let outProj: Linear

    /// Builds a resampler initialised as the released code does (truncated normal with std 0.02,
    /// bounds +-2 absolute, for queries and Linear weights; zero biases; LayerNorm 1 and 0), drawing
    /// from `seed` in parameter order.
    /// - Throws: `TensorError` for a configuration that fails `ChainOfSightConfig.validate()`.
    public init(_ config: ChainOfSightConfig, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        layouts = try config.layouts()
        queries = config.scales.map { Parameter(Tensor.zeros([1, $0.queries, config.dim])) }
        blocks = try config.featureLevels.map { level in
            try config.scales.map { s in
                ChainOfSightBlock(
                    attn: try ChainOfSightAttention(
                        dim: config.dim, visionDim: config.visionDim, heads: config.heads,
                        eps: config.layerNormEps),
                    mlp: MLP(config.dim, hidden: config.mlpRatio * config.dim, activation: { gelu($0) }),
                    ln: LayerNorm(config.dim, eps: config.layerNormEps),
                    suffix: ChainOfSight.blockSuffix(s, level: level))
            }
        }
        lnOut = LayerNorm(config.dim, eps: config.layerNormEps)
        outProj = Linear(config.dim, config.llmDim)
        super.init()
        var g = RandomGenerator(seed: seed)
        initialize(generator: &g)
    }

    /// The released initialisation, in parameter order.
    public func initialize(generator g: inout RandomGenerator) {
        let tn = Initializer.truncatedNormal(std: 0.02)
        for (name, p) in namedParameters() {
            if name.hasPrefix("cls_token_") || name.hasSuffix("weight") && p.shape.count == 2 {
                tn.apply(to: p, generator: &g)
            } else if name.hasSuffix("bias") {
                p.data = Tensor.zeros(p.shape)
            } else {
                p.data = Tensor.ones(p.shape)  // LayerNorm weights
            }
        }
    }

    /// `cls_token_w{ws}_q{nq}`.
    public static func queryName(_ s: WindowScale) -> String { "cls_token_w\(s.windowSize)_q\(s.queries)" }

    /// `0_w{ws}_l{level-1}_q{nq}`.
    public static func blockSuffix(_ s: WindowScale, level: Int) -> String {
        "0_w\(s.windowSize)_l\(level - 1)_q\(s.queries)"
    }

    public override var localParameters: [(String, Parameter)] {
        zip(config.scales, queries).map { (ChainOfSight.queryName($0.0), $0.1) }
    }

    public override var localChildren: [(String, Module)] {
        var out: [(String, Module)] = []
        for row in blocks {
            for b in row {
                out += [("attn_" + b.suffix, b.attn), ("mlp_" + b.suffix, b.mlp), ("ln_" + b.suffix, b.ln)]
            }
        }
        return out + [("ln_out", lnOut), ("out_proj", outProj)]
    }

    /// Every parameter name and shape a resampler of `config` has, in `state_dict` order, without
    /// building it.
    public static func parameterShapes(_ config: ChainOfSightConfig) throws -> [(String, [Int])] {
        try config.validate()
        let (d, c, h) = (config.dim, config.visionDim, config.mlpRatio * config.dim)
        var out = config.scales.map { (queryName($0), [1, $0.queries, d]) }
        for level in config.featureLevels {
            for s in config.scales {
                let x = blockSuffix(s, level: level)
                out += [
                    ("attn_\(x).to_q.weight", [d, d]), ("attn_\(x).to_kv.weight", [2 * d, c]),
                    ("attn_\(x).proj.weight", [d, d]), ("attn_\(x).proj.bias", [d]),
                    ("attn_\(x).query_norm.weight", [d]), ("attn_\(x).query_norm.bias", [d]),
                    ("attn_\(x).cont_norm.weight", [c]), ("attn_\(x).cont_norm.bias", [c]),
                    ("mlp_\(x).fc1.weight", [h, d]), ("mlp_\(x).fc1.bias", [h]),
                    ("mlp_\(x).fc2.weight", [d, h]), ("mlp_\(x).fc2.bias", [d]),
                    ("ln_\(x).weight", [d]), ("ln_\(x).bias", [d]),
                ]
            }
        }
        return out + [
            ("ln_out.weight", [d]), ("ln_out.bias", [d]), ("out_proj.weight", [config.llmDim, d]),
            ("out_proj.bias", [config.llmDim]),
        ]
    }

    public var configuration: ConnectorConfiguration { .chainOfSight(config) }

    /// Each scale's tokens before `ln_out`: `[B, nq_s, dim]` per scale, in config order.
    /// - Parameter levels: one level per `config.featureLevels`, each `[B, H*W, visionDim]` on `config.grid`.
    public func scaleTokens(_ levels: [FeatureLevel]) throws -> [Tensor] {
        let b = try checkLevels(
            levels, expected: config.featureLevels.count, visionDim: config.visionDim, grid: config.grid,
            op: "ChainOfSight")
        let d = config.dim
        return try config.scales.indices.map { s in
            let layout = layouts[s]
            let ws = config.scales[s].windowSize
            let (nw, npw) = (layout.windows, layout.queriesPerWindow)
            // Window w of image b owns query slice [w * npw, (w + 1) * npw): [B * nw, npw, dim].
            var q = try queries[s].value.reshaped([1, nw, npw, d]).expand([b, nw, npw, d]).reshaped([
                b * nw, npw, d,
            ])
            for (l, level) in levels.enumerated() {
                let window = try windowPartition(level.features, grid: config.grid, windowSize: ws)
                q = try blocks[l][s](q, window: window)
            }
            return try q.reshaped([b, config.scales[s].queries, d])
        }
    }

    /// - Parameter levels: one level per `config.featureLevels`, each `[B, H*W, visionDim]` on `config.grid`.
    /// - Returns: `[B, totalQueries, llmDim]`
    public func callAsFunction(_ levels: [FeatureLevel]) throws -> Tensor {
        let tokens = try Tensor.concatenate(scaleTokens(levels), axis: 1)
        return try outProj(lnOut(tokens))
    }
}

extension MultiHeadAttention.Names {
    /// Chain-of-Sight's released projection names: `to_q`, fused `to_kv` (keys then values), `proj`.
    public static let chainOfSight = Self(query: "to_q", key: "", value: "", output: "proj", fusedKeyValue: "to_kv")
}

extension LoRAConfig {
    /// The projections of every Chain-of-Sight cross-attention: `to_q`, `to_kv`, `proj` (the
    /// connector's naming preset for `targetModules`).
    public static let chainOfSightAttentionTargets = ["to_q", "to_kv", "proj"]
}
