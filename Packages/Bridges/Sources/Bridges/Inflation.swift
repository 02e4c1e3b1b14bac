import Foundation

// Compound token scaling (Chain-of-Sight): a trained resampler is turned into a larger one for
// fine-tuning, at a higher resolution and/or with smaller windows and more queries, initialised by
// inflation: every new scale copies all parameters of its source scale (duplication, never
// interpolation) and its queries are repeated per the m rule; `ln_out` and `out_proj` are copied.
// This is the released `cos_highres_extention` (llava_arch.py) applied to our modules.

/// How one new scale is made from a trained scale.
public struct ScaleExtension: Codable, Hashable, Sendable {
    /// Index of the trained scale it copies (`correspondence`).
    public var source: Int
    /// New window = source window * r, in patches (`window_expansion_ratio`).
    public var windowRatio: Double
    /// New queries = source queries * m (`length_repeat_ratio`): 1 copies, 2 repeats each query
    /// twice consecutively, k^2 (4, 16) repeats the window grid k times along both axes
    /// (nearest-neighbour), so each child window gets its parent window's queries.
    public var queryRepeat: Int

    public init(source: Int, windowRatio: Double, queryRepeat: Int) {
        self.source = source
        self.windowRatio = windowRatio
        self.queryRepeat = queryRepeat
    }
}

/// An extension spec: the trained layout it expects (optional checks) and the new scales.
public struct ChainOfSightExtension: Codable, Hashable, Sendable {
    /// Name (the released `HIGHRES_EXTENSION_CONFIG` key for the paper's entries).
    public var name: String
    /// The trained grid this spec was written for; nil accepts any.
    public var originalGrid: Grid?
    /// The trained scales this spec was written for; nil accepts any.
    public var originalScales: [WindowScale]?
    /// The new scales, in output order.
    public var newScales: [ScaleExtension]
    /// The grid of the new connector's features.
    public var newGrid: Grid?

    public init(
        name: String, originalGrid: Grid? = nil, originalScales: [WindowScale]? = nil,
        newScales: [ScaleExtension],
        newGrid: Grid? = nil
    ) {
        self.name = name
        self.originalGrid = originalGrid
        self.originalScales = originalScales
        self.newScales = newScales
        self.newGrid = newGrid
    }

    /// The identity extension of a trained layout: every scale copied with r = 1, m = 1.
    public static func identity(scales: Int) -> ChainOfSightExtension {
        ChainOfSightExtension(
            name: "identity",
            newScales: (0..<scales).map { ScaleExtension(source: $0, windowRatio: 1, queryRepeat: 1) })
    }

    private static func spec(
        _ name: String, _ grid: Int, _ scales: [(Int, Int)], _ new: [(Int, Double, Int)], newGrid: Int
    ) -> ChainOfSightExtension {
        ChainOfSightExtension(
            name: name, originalGrid: .square(grid),
            originalScales: scales.map { WindowScale(windowSize: $0.0, queries: $0.1) },
            newScales: new.map { ScaleExtension(source: $0.0, windowRatio: $0.1, queryRepeat: $0.2) },
            newGrid: .square(newGrid))
    }

    /// `v1` (80) -> `v1_448_q16+64` (80): resolution scaling only.
    public static let res224to448_80to80 = spec(
        "res224to448_80to80", 16, [(16, 16), (4, 64)], [(0, 2, 1), (1, 2, 1)], newGrid: 32)
    /// `v1` (80) -> `v1_448_q16+64+256` (336).
    public static let res224to448_80to336 = spec(
        "res224to448_80to336", 16, [(16, 16), (4, 64)], [(0, 2, 1), (0, 1, 4), (1, 1, 4)], newGrid: 32)
    /// `v1` (80) -> `v1_448_q16+256+1024` (1296).
    public static let res224to448_80to1296 = spec(
        "res224to448_80to1296", 16, [(16, 16), (4, 64)], [(0, 2, 1), (0, 0.5, 16), (1, 0.5, 16)], newGrid: 32)
    /// `v1` (80) -> `v2_448_q16+256+1024` (1296).
    public static let res224to448_80to1296_v2 = spec(
        "res224to448_80to1296_v2", 16, [(16, 16), (4, 64)], [(0, 2, 1), (1, 1, 4), (1, 0.5, 16)], newGrid: 32)
    /// `v1` (80) -> `v1_448_q16+64+1024` (1104).
    public static let res224to448_80to1104 = spec(
        "res224to448_80to1104", 16, [(16, 16), (4, 64)], [(0, 2, 1), (1, 2, 1), (1, 0.5, 16)], newGrid: 32)
    /// `pt32` (32) -> `pt32_448_q16+256+256` (528): the 80to1296 rule applied to the 32-token model.
    public static let res224to448_32to528 = spec(
        "res224to448_32to528", 16, [(16, 16), (4, 16)], [(0, 2, 1), (0, 0.5, 16), (1, 0.5, 16)], newGrid: 32)
    /// `pt32` (32) -> `demo_q16+64+64` (144) on the same 16x16 grid: window scaling only (our demo).
    public static let demo32to144 = spec(
        "demo32to144", 16, [(16, 16), (4, 16)], [(0, 1, 1), (0, 0.5, 4), (1, 0.5, 4)], newGrid: 16)
    /// `pt32` (32) -> `demo_q16+64+256` (336) on the same 16x16 grid: the global window copied, four
    /// 8x8 windows of 16 queries from it, and one query per patch from the 4x4 cell windows (10.5x:
    /// the paper's 32 pre-training tokens against 336).
    public static let demo32to336 = spec(
        "demo32to336", 16, [(16, 16), (4, 16)], [(0, 1, 1), (0, 0.5, 4), (1, 0.25, 16)], newGrid: 16)

    /// Every named preset.
    public static let presets: [ChainOfSightExtension] = [
        res224to448_80to80, res224to448_80to336, res224to448_80to1296, res224to448_80to1296_v2,
        res224to448_80to1104,
        res224to448_32to528, demo32to144, demo32to336,
    ]
}

/// Which old query each new query copies, for one new scale (flat indices into the scale's
/// `[nq, C]` queries).
///
/// - m = 1: the identity; m = 2: new query i copies old query i / 2 (consecutive repeats);
/// - m = k^2: new window (y, x) on the `(rows k) x (cols k)` window grid copies old window
///   (y / k, x / k), query j of a window copies query j of its parent.
/// - Parameters:
///   - windowRows, windowColumns: the old scale's window grid; `queriesPerWindow` its queries per window.
/// - Throws: `TensorError` when m is not 1, 2 or a perfect square.
public func inflatedQueryIndices(
    windowRows: Int, windowColumns: Int, queriesPerWindow npw: Int, repeat m: Int
) throws -> [Int] {
    let nq = windowRows * windowColumns * npw
    switch m {
    case 1: return Array(0..<nq)
    case 2: return (0..<(2 * nq)).map { $0 / 2 }
    default:
        let k = Int(Double(m).squareRoot().rounded())
        guard m > 0, k * k == m else {
            throw TensorError("ChainOfSight.inflate", "query repeat \(m) is not 1, 2 or a perfect square")
        }
        var out: [Int] = []
        out.reserveCapacity(nq * m)
        for y in 0..<(windowRows * k) {
            for x in 0..<(windowColumns * k) {
                let parent = (y / k) * windowColumns + x / k
                for j in 0..<npw { out.append(parent * npw + j) }
            }
        }
        return out
    }
}

extension ChainOfSight {
    /// The configuration an extension produces from `trained` on `grid` (no weights).
    /// - Throws: `TensorError` naming the new scale and the numbers when the extension does not match
    ///   the trained connector (layout, source index), a window ratio gives a non-integer window, m is
    ///   not 1, 2 or a square, the new windows do not tile the grid, or the new window count is not
    ///   what the m rule needs (m = 1, 2: as many windows as the source; m = k^2: k times as many per side).
    public static func inflatedConfig(
        _ trained: ChainOfSightConfig, with spec: ChainOfSightExtension, grid: Grid
    ) throws -> ChainOfSightConfig {
        let op = "ChainOfSight.inflate"
        if let g = spec.originalGrid, g != trained.grid {
            throw TensorError(
                op, "extension \(spec.name) expects a trained \(g) grid, the connector has \(trained.grid)")
        }
        if let s = spec.originalScales, s != trained.scales {
            throw TensorError(
                op,
                "extension \(spec.name) expects trained scales \(s.map { "(\($0.windowSize), \($0.queries))" }), the connector has \(trained.scales.map { "(\($0.windowSize), \($0.queries))" })"
            )
        }
        if let g = spec.newGrid, g != grid {
            throw TensorError(op, "extension \(spec.name) is for a \(g) grid, asked for \(grid)")
        }
        guard !spec.newScales.isEmpty else {
            throw TensorError(op, "extension \(spec.name) has no new scales")
        }
        let oldLayouts = try trained.layouts()
        var scales: [WindowScale] = []
        for (i, e) in spec.newScales.enumerated() {
            guard trained.scales.indices.contains(e.source) else {
                throw TensorError(
                    op,
                    "new scale \(i): source scale \(e.source) does not exist (the connector has \(trained.scales.count) scales)"
                )
            }
            let old = trained.scales[e.source], oldLayout = oldLayouts[e.source]
            let w = Double(old.windowSize) * e.windowRatio
            guard w >= 1, w.rounded() == w else {
                throw TensorError(
                    op,
                    "new scale \(i): window \(old.windowSize) x ratio \(e.windowRatio) = \(w) is not a whole number of patches"
                )
            }
            let m = e.queryRepeat
            let k = Int(Double(max(m, 0)).squareRoot().rounded())
            guard m == 1 || m == 2 || (m > 0 && k * k == m) else {
                throw TensorError(op, "new scale \(i): query repeat \(m) is not 1, 2 or a perfect square")
            }
            let scale = WindowScale(windowSize: Int(w), queries: old.queries * m)
            let layout = try scale.layout(grid: grid, scaleIndex: i)
            let factor = (m == 1 || m == 2) ? 1 : k
            let (wantRows, wantCols) = (oldLayout.windowRows * factor, oldLayout.windowColumns * factor)
            guard layout.windowRows == wantRows, layout.windowColumns == wantCols else {
                throw TensorError(
                    op,
                    "new scale \(i) (from scale \(e.source), r \(e.windowRatio), m \(m)): window \(scale.windowSize) on the \(grid) grid gives \(layout.windowRows)x\(layout.windowColumns) windows, but repeating the source's \(oldLayout.windowRows)x\(oldLayout.windowColumns) windows' queries needs \(wantRows)x\(wantCols)"
                )
            }
            scales.append(scale)
        }
        var config = trained
        config.grid = grid
        config.scales = scales
        try config.validate()
        return config
    }

    /// Compound token scaling: a larger resampler for features on `grid`, initialised by inflating
    /// `trained` as `spec` says. A pure function: `trained` is not modified.
    ///
    /// Every parameter of source scale c at every feature level (attention, MLP and LayerNorm) is
    /// copied bit for bit to the new scale; the new queries are the source's, repeated per
    /// `inflatedQueryIndices`; `ln_out` and `out_proj` are copied.
    /// - Throws: `TensorError` from `inflatedConfig(_:with:grid:)`.
    public static func inflate(_ trained: ChainOfSight, with spec: ChainOfSightExtension, grid: Grid) throws
        -> ChainOfSight
    {
        let config = try inflatedConfig(trained.config, with: spec, grid: grid)
        let model = try ChainOfSight(config)
        let d = config.dim
        for (i, e) in spec.newScales.enumerated() {
            let c = e.source
            let old = trained.layouts[c]
            let index = try inflatedQueryIndices(
                windowRows: old.windowRows, windowColumns: old.windowColumns,
                queriesPerWindow: old.queriesPerWindow,
                repeat: e.queryRepeat)
            let src = trained.queries[c].data
            var dst = Tensor.zeros([1, index.count, d])
            src.withUnsafeBufferPointer { s in
                dst.withUnsafeMutableBufferPointer { t in
                    for (n, o) in index.enumerated() {
                        for j in 0..<d { t[n * d + j] = s[o * d + j] }
                    }
                }
            }
            model.queries[i].data = dst
            for l in config.featureLevels.indices {
                let from = trained.blocks[l][c], to = model.blocks[l][i]
                for (a, b) in zip(
                    [from.attn, from.mlp, from.ln] as [Module], [to.attn, to.mlp, to.ln] as [Module])
                {
                    copyParameters(from: a, to: b)
                }
            }
        }
        copyParameters(from: trained.lnOut, to: model.lnOut)
        copyParameters(from: trained.outProj, to: model.outProj)
        return model
    }
}

/// Copies every parameter of `a` into the same-named parameter of `b` (same structure).
func copyParameters(from a: Module, to b: Module) {
    for ((_, p), (_, q)) in zip(a.namedParameters(), b.namedParameters()) { q.data = p.data }
}
