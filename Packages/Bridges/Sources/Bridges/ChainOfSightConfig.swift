/// Configuration of a Chain-of-Sight resampler (`ChainOfSight`).
///
/// Defaults follow the released projector (`cos.py`): width 1024, heads of 64 channels, MLP ratio 4,
/// LayerNorm eps 1e-5. `featureLevels` are HF `hidden_states` indices of the vision tower (0 = the
/// embeddings); the released runs read `hidden_states[16]` and `[23]` of ViT-L/14, named `l15` and
/// `l22` in the parameter names (the code's 0-based block index, index - 1).
public struct ChainOfSightConfig: Codable, Equatable, Sendable {
    /// Width C of the vision features (the key/value source; 1024 for ViT-L).
    public var visionDim: Int
    /// Width of the queries and of the resampler blocks (`cos_out_dim`, 1024).
    public var dim: Int
    /// Width of the output tokens (the LLM's hidden size).
    public var llmDim: Int
    /// Channels per attention head (64); heads = dim / headDim.
    public var headDim: Int
    /// MLP hidden width = mlpRatio * dim (4).
    public var mlpRatio: Int
    /// The patch grid the windows are laid on (16x16 at 224 px with patch 14).
    public var grid: Grid
    /// Scales in output order: the global window first, the finest last.
    public var scales: [WindowScale]
    /// HF `hidden_states` indices of the feature levels, in the order the queries pass through them.
    public var featureLevels: [Int]
    /// LayerNorm epsilon (PyTorch's default 1e-5).
    public var layerNormEps: Float

    public init(
        visionDim: Int = 1024, dim: Int? = nil, llmDim: Int = 4096, headDim: Int = 64, mlpRatio: Int = 4,
        grid: Grid, scales: [WindowScale], featureLevels: [Int] = [16, 23], layerNormEps: Float = 1e-5
    ) {
        self.visionDim = visionDim
        self.dim = dim ?? visionDim
        self.llmDim = llmDim
        self.headDim = headDim
        self.mlpRatio = mlpRatio
        self.grid = grid
        self.scales = scales
        self.featureLevels = featureLevels
        self.layerNormEps = layerNormEps
    }

    enum CodingKeys: String, CodingKey {
        case visionDim, dim, llmDim, headDim, mlpRatio, grid, scales, featureLevels, layerNormEps
    }

    /// Decodes a configuration; `dim` (default `visionDim`), `headDim` (64), `mlpRatio` (4),
    /// `featureLevels` ([16, 23]) and `layerNormEps` (1e-5) may be omitted.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        visionDim = try c.decode(Int.self, forKey: .visionDim)
        dim = try c.decodeIfPresent(Int.self, forKey: .dim) ?? visionDim
        llmDim = try c.decode(Int.self, forKey: .llmDim)
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim) ?? 64
        mlpRatio = try c.decodeIfPresent(Int.self, forKey: .mlpRatio) ?? 4
        grid = try c.decode(Grid.self, forKey: .grid)
        scales = try c.decode([WindowScale].self, forKey: .scales)
        featureLevels = try c.decodeIfPresent([Int].self, forKey: .featureLevels) ?? [16, 23]
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-5
    }

    /// Output tokens: the sum of every scale's queries.
    public var totalQueries: Int { scales.reduce(0) { $0 + $1.queries } }

    /// Attention heads, dim / headDim.
    public var heads: Int { dim / headDim }

    /// Lays every scale on the grid.
    /// - Throws: `TensorError` naming the scale and the numbers when a window does not tile the grid
    ///   or the queries do not divide evenly among the windows.
    public func layouts() throws -> [WindowScale.Layout] {
        try scales.enumerated().map { try $0.element.layout(grid: grid, scaleIndex: $0.offset) }
    }

    /// Checks everything construction needs: positive sizes, heads, tiling, divisibility, level
    /// indices and unique parameter names.
    public func validate() throws {
        let op = "ChainOfSight"
        guard visionDim > 0, dim > 0, llmDim > 0, mlpRatio > 0 else {
            throw TensorError(
                op,
                "widths must be positive: visionDim \(visionDim), dim \(dim), llmDim \(llmDim), mlpRatio \(mlpRatio)"
            )
        }
        guard headDim > 0, dim % headDim == 0 else {
            throw TensorError(op, "dim \(dim) is not a multiple of headDim \(headDim)")
        }
        guard !scales.isEmpty else { throw TensorError(op, "needs at least one scale") }
        guard !featureLevels.isEmpty else { throw TensorError(op, "needs at least one feature level") }
        for l in featureLevels where l < 1 {
            throw TensorError(
                op,
                "feature level \(l): levels are hidden_states indices >= 1 (parameter names carry index - 1)")
        }
        guard Set(featureLevels).count == featureLevels.count else {
            throw TensorError(
                op, "feature levels \(featureLevels) repeat an index; parameter names would collide")
        }
        _ = try layouts()
        var seen: [String: Int] = [:]
        for (i, s) in scales.enumerated() {
            let key = "w\(s.windowSize)_q\(s.queries)"
            if let j = seen[key] {
                throw TensorError(
                    op,
                    "scales \(j) and \(i) both have window \(s.windowSize) and \(s.queries) queries; parameter names would collide"
                )
            }
            seen[key] = i
        }
    }

    /// Output tokens for features on `grid`.
    /// - Throws: `TensorError` with both sizes when `grid` is not the configured grid.
    public func tokenCount(grid: Grid) throws -> Int {
        guard grid == self.grid else {
            throw TensorError(
                "ChainOfSight",
                "features on a \(grid) grid (\(grid.count) patches) do not match the configured \(self.grid) grid (\(self.grid.count) patches)"
            )
        }
        return totalQueries
    }

    /// The default feature levels for an `depth`-layer tower: (L-8, L-1) of a 24-layer ViT-L
    /// (`hidden_states[16]`, `[23]`), scaled to the depth: (round(16 * depth / 24), depth - 1).
    public static func defaultFeatureLevels(towerDepth depth: Int) -> [Int] {
        let first = max(1, Int((Double(16 * depth) / 24).rounded()))
        let last = max(1, depth - 1)
        return first == last ? [last] : [first, last]
    }

    /// A preset of the paper's (or our demo's) window and query layout, at the released widths by
    /// default.
    /// - Parameters:
    ///   - featureLevels: defaults to [16, 23] ([23] for the single-level `v1_baseline`).
    public static func preset(
        _ preset: ChainOfSightPreset, visionDim: Int = 1024, dim: Int? = nil, llmDim: Int = 4096,
        headDim: Int = 64,
        featureLevels: [Int]? = nil
    ) -> ChainOfSightConfig {
        ChainOfSightConfig(
            visionDim: visionDim, dim: dim, llmDim: llmDim, headDim: headDim, grid: preset.grid,
            scales: preset.scales,
            featureLevels: featureLevels ?? (preset == .v1Baseline ? [23] : [16, 23]))
    }
}

/// The window/query layouts of the released configurations (`cos_configs.py`, names kept) plus the
/// 32-token pre-training layout, its 16x extension, and our demo's extension target.
public enum ChainOfSightPreset: String, CaseIterable, Codable, Sendable {
    /// 224 px (16x16): windows [16, 4], queries [16, 64]: 80 tokens (pre-training).
    case v1 = "v1"
    /// 224 px: one global window with 80 queries; one feature level (the resampler baseline).
    case v1Baseline = "v1_baseline"
    /// 336 px (24x24): windows [24, 6], queries [16, 64]: 80 tokens.
    case v1_336 = "v1_336"
    /// 448 px (32x32): windows [32, 8], queries [16, 64]: 80 tokens (resolution scaling only).
    case v1_448_q16_64 = "v1_448_q16+64"
    /// 448 px: windows [32, 16, 4], queries [16, 64, 256]: 336 tokens.
    case v1_448_q16_64_256 = "v1_448_q16+64+256"
    /// 448 px: windows [32, 8, 2], queries [16, 256, 1024]: 1296 tokens.
    case v1_448_q16_256_1024 = "v1_448_q16+256+1024"
    /// 448 px: windows [32, 4, 2], queries [16, 256, 1024]: 1296 tokens (target of `80to1296_v2`).
    case v2_448_q16_256_1024 = "v2_448_q16+256+1024"
    /// 448 px: windows [32, 8, 2], queries [16, 64, 1024]: 1104 tokens.
    case v1_448_q16_64_1024 = "v1_448_q16+64+1024"
    /// 224 px: windows [16, 4], queries [16, 16]: 32 tokens (the paper's 32-token pre-training; the
    /// layout is derived, not in the released code).
    case pt32 = "pt32"
    /// 448 px: windows [32, 8, 2], queries [16, 256, 256]: 528 tokens (the 16x extension of `pt32`).
    case pt32_448_q16_256_256 = "pt32_448_q16+256+256"
    /// 16x16 grid, windows [16, 8, 2], queries [16, 64, 64]: 144 tokens (our demo's window scaling of
    /// `pt32` at the same resolution).
    case demo_q16_64_64 = "demo_q16+64+64"
    /// 16x16 grid, windows [16, 8, 1], queries [16, 64, 256]: 336 tokens (our demo's 10.5x compound
    /// scaling of `pt32` at the same resolution: the paper's 32 against 336).
    case demo_q16_64_256 = "demo_q16+64+256"

    /// The patch grid.
    public var grid: Grid {
        switch self {
        case .v1, .v1Baseline, .pt32, .demo_q16_64_64, .demo_q16_64_256: return .square(16)
        case .v1_336: return .square(24)
        default: return .square(32)
        }
    }

    /// (window, queries) per scale, global first.
    public var scales: [WindowScale] {
        let pairs: [(Int, Int)]
        switch self {
        case .v1: pairs = [(16, 16), (4, 64)]
        case .v1Baseline: pairs = [(16, 80)]
        case .v1_336: pairs = [(24, 16), (6, 64)]
        case .v1_448_q16_64: pairs = [(32, 16), (8, 64)]
        case .v1_448_q16_64_256: pairs = [(32, 16), (16, 64), (4, 256)]
        case .v1_448_q16_256_1024: pairs = [(32, 16), (8, 256), (2, 1024)]
        case .v2_448_q16_256_1024: pairs = [(32, 16), (4, 256), (2, 1024)]
        case .v1_448_q16_64_1024: pairs = [(32, 16), (8, 64), (2, 1024)]
        case .pt32: pairs = [(16, 16), (4, 16)]
        case .pt32_448_q16_256_256: pairs = [(32, 16), (8, 256), (2, 256)]
        case .demo_q16_64_64: pairs = [(16, 16), (8, 64), (2, 64)]
        case .demo_q16_64_256: pairs = [(16, 16), (8, 64), (1, 256)]
        }
        return pairs.map { WindowScale(windowSize: $0.0, queries: $0.1) }
    }

    /// Output tokens.
    public var tokenCount: Int { scales.reduce(0) { $0 + $1.queries } }
}
