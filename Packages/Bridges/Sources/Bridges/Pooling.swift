/// Configuration of average pooling (`AveragePoolingConnector`, MM1).
public struct AveragePoolingConfig: Codable, Equatable, Sendable {
    public var visionDim: Int
    public var llmDim: Int
    /// The pooled grid; tokens = outputGrid.count (MM1: 8x8 = 64 or 12x12 = 144).
    public var outputGrid: Grid
    /// HF `hidden_states` index the features come from.
    public var featureLevel: Int

    public init(visionDim: Int, llmDim: Int, outputGrid: Grid, featureLevel: Int = -2) {
        self.visionDim = visionDim
        self.llmDim = llmDim
        self.outputGrid = outputGrid
        self.featureLevel = featureLevel
    }

    /// `outputGrid.count`, whatever the input grid.
    public func tokenCount(grid: Grid) -> Int { outputGrid.count }
}

/// Adaptive average pooling over the patch grid (PyTorch's bins: output cell i averages input rows
/// `[floor(i H / Ho), ceil((i + 1) H / Ho))`, overlapping when the sizes do not divide), then a linear
/// projection `proj` (`weight` `[llmDim, visionDim]`, `bias`). Tokens are row-major over the pooled grid.
public final class AveragePoolingConnector: Module, Connector {
    public let config: AveragePoolingConfig
    public let proj: Linear

    public init(_ config: AveragePoolingConfig, seed: UInt64 = 0) throws {
        guard config.outputGrid.height > 0, config.outputGrid.width > 0, config.visionDim > 0,
            config.llmDim > 0
        else {
            throw TensorError(
                "AveragePoolingConnector", "needs a positive output grid and widths, got \(config)")
        }
        self.config = config
        proj = Linear(config.visionDim, config.llmDim, seed: seed)
    }

    public override var localChildren: [(String, Module)] { [("proj", proj)] }
    public var configuration: ConnectorConfiguration { .averagePooling(config) }

    /// Pools `[B, H*W, C]` on its grid to `[B, Ho*Wo, C]` (no projection).
    public func pool(_ level: FeatureLevel) throws -> Tensor {
        let y = try adaptiveAvgPool2d(
            tokensToMap(level.features, grid: level.grid),
            outputSize: (config.outputGrid.height, config.outputGrid.width))
        return try mapToTokens(y)
    }

    /// - Parameter levels: one level `[B, H*W, visionDim]`.
    /// - Returns: `[B, Ho*Wo, llmDim]`
    public func callAsFunction(_ levels: [FeatureLevel]) throws -> Tensor {
        _ = try checkLevels(
            levels, expected: 1, visionDim: config.visionDim, grid: nil, op: "AveragePoolingConnector")
        return try proj(pool(levels[0]))
    }
}

/// Configuration of attention pooling (`AttentionPoolingConnector`, MM1).
public struct AttentionPoolingConfig: Codable, Equatable, Sendable {
    public var visionDim: Int
    public var llmDim: Int
    /// Learnable queries k = output tokens (MM1: 64 or 144).
    public var queries: Int
    /// Attention heads; nil means visionDim / 64.
    public var heads: Int?
    /// MLP hidden width = mlpRatio * visionDim.
    public var mlpRatio: Int
    /// HF `hidden_states` index the features come from.
    public var featureLevel: Int
    public var layerNormEps: Float

    public init(
        visionDim: Int, llmDim: Int, queries: Int, heads: Int? = nil, mlpRatio: Int = 4,
        featureLevel: Int = -2,
        layerNormEps: Float = 1e-5
    ) {
        self.visionDim = visionDim
        self.llmDim = llmDim
        self.queries = queries
        self.heads = heads
        self.mlpRatio = mlpRatio
        self.featureLevel = featureLevel
        self.layerNormEps = layerNormEps
    }

    /// Heads actually used (`heads`, or visionDim / 64).
    public var resolvedHeads: Int { heads ?? visionDim / 64 }

    /// `queries`, whatever the input grid.
    public func tokenCount(grid: Grid) -> Int { queries }
}

/// Attention pooling: k learnable queries `query` `[1, k, C]`; one pre-LN cross-attention block over
/// all patches (`ln_q` on the queries, `ln_kv` on the features, `attn.{q_proj, k_proj, v_proj,
/// out_proj}` with biases, heads of C / heads channels) with a residual; a pre-LN MLP (`ln_mlp`,
/// `mlp.fc1` C -> mlpRatio C, exact GELU, `mlp.fc2`) with a residual; then `ln_out` and `proj`
/// (C -> llmDim). MM1 does not publish its layer; this is the structure the issue specifies.
public final class AttentionPoolingConnector: Module, Connector {
    public let config: AttentionPoolingConfig
    public let query: Parameter
    public let lnQ: LayerNorm
    public let lnKV: LayerNorm
    public let attn: MultiHeadAttention
    public let lnMLP: LayerNorm
    public let mlp: MLP
    public let lnOut: LayerNorm
    public let proj: Linear

    /// Queries and Linear weights are initialised truncated-normal with std 0.02, biases 0.
    public init(_ config: AttentionPoolingConfig, seed: UInt64 = 0) throws {
        let c = config.visionDim
        let h = config.resolvedHeads
        guard c > 0, config.llmDim > 0, config.queries > 0, config.mlpRatio > 0 else {
            throw TensorError("AttentionPoolingConnector", "needs positive widths and queries, got \(config)")
        }
        guard h > 0, c % h == 0 else {
            throw TensorError("AttentionPoolingConnector", "visionDim \(c) cannot be split into \(h) heads")
        }
        self.config = config
        query = Parameter(Tensor.zeros([1, config.queries, c]))
        lnQ = LayerNorm(c, eps: config.layerNormEps)
        lnKV = LayerNorm(c, eps: config.layerNormEps)
        attn = try MultiHeadAttention(embedDim: c, numHeads: h, bias: true, names: .clip)
        lnMLP = LayerNorm(c, eps: config.layerNormEps)
        mlp = MLP(c, hidden: config.mlpRatio * c, activation: { gelu($0) })
        lnOut = LayerNorm(c, eps: config.layerNormEps)
        proj = Linear(c, config.llmDim)
        super.init()
        var g = RandomGenerator(seed: seed)
        let tn = Initializer.truncatedNormal(std: 0.02)
        for (name, p) in namedParameters() {
            if name == "query" || (name.hasSuffix("weight") && p.shape.count == 2) {
                tn.apply(to: p, generator: &g)
            } else if name.hasSuffix("bias") {
                p.data = Tensor.zeros(p.shape)
            }
        }
    }

    public override var localParameters: [(String, Parameter)] { [("query", query)] }
    public override var localChildren: [(String, Module)] {
        [
            ("ln_q", lnQ), ("ln_kv", lnKV), ("attn", attn), ("ln_mlp", lnMLP), ("mlp", mlp),
            ("ln_out", lnOut), ("proj", proj),
        ]
    }
    public var configuration: ConnectorConfiguration { .attentionPooling(config) }

    /// - Parameter levels: one level `[B, H*W, visionDim]`.
    /// - Returns: `[B, queries, llmDim]`
    public func callAsFunction(_ levels: [FeatureLevel]) throws -> Tensor {
        let b = try checkLevels(
            levels, expected: 1, visionDim: config.visionDim, grid: nil, op: "AttentionPoolingConnector")
        let c = config.visionDim
        var q = try query.value.expand([b, config.queries, c])
        q = try q + attn(lnQ(q), context: lnKV(levels[0].features))
        q = try q + mlp(lnMLP(q))
        return try proj(lnOut(q))
    }
}
