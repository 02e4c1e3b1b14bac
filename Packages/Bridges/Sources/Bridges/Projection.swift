/// Configuration of the full-token projection (`ProjectionConnector`), LLaVA's `mm_projector`.
public struct ProjectionConfig: Codable, Equatable, Sendable {
    /// Width of the vision features.
    public var visionDim: Int
    /// Width of the output tokens.
    public var llmDim: Int
    /// Linear layers: 1 is LLaVA's `linear`, 2 its `mlp2x_gelu` (the LLaVA-1.5 baseline), n `mlp{n}x_gelu`.
    public var depth: Int
    /// HF `hidden_states` index the features come from (LLaVA: -2, the penultimate layer).
    public var featureLevel: Int

    public init(visionDim: Int, llmDim: Int, depth: Int = 2, featureLevel: Int = -2) {
        self.visionDim = visionDim
        self.llmDim = llmDim
        self.depth = depth
        self.featureLevel = featureLevel
    }

    /// Every patch becomes one token.
    public func tokenCount(grid: Grid) -> Int { grid.count }
}

/// Projects every patch token to the LLM width: one Linear (`weight`, `bias`) for depth 1, or
/// Linear, then (GELU, Linear) repeated, named as the `nn.Sequential` indices `0`, `2`, `4`, ... (so
/// LLaVA-1.5's `mm_projector.0.weight`, `mm_projector.2.weight` load by name).
public final class ProjectionConnector: Module, Connector {
    public let config: ProjectionConfig
    public let layers: [Linear]

    /// - Throws: `TensorError` for a depth below 1 or non-positive widths.
    public init(_ config: ProjectionConfig, seed: UInt64 = 0) throws {
        guard config.depth >= 1, config.visionDim > 0, config.llmDim > 0 else {
            throw TensorError("ProjectionConnector", "needs depth >= 1 and positive widths, got \(config)")
        }
        self.config = config
        layers = (0..<config.depth).map { i in
            Linear(i == 0 ? config.visionDim : config.llmDim, config.llmDim, seed: seed &+ UInt64(i))
        }
    }

    public override var localParameters: [(String, Parameter)] {
        layers.count == 1 ? layers[0].localParameters : []
    }

    public override var localChildren: [(String, Module)] {
        layers.count == 1 ? [] : layers.enumerated().map { (String(2 * $0.offset), $0.element) }
    }

    public var configuration: ConnectorConfiguration { .projection(config) }

    /// - Parameter levels: one level `[B, H*W, visionDim]`.
    /// - Returns: `[B, H*W, llmDim]`
    public func callAsFunction(_ levels: [FeatureLevel]) throws -> Tensor {
        _ = try checkLevels(
            levels, expected: 1, visionDim: config.visionDim, grid: nil, op: "ProjectionConnector")
        var x = try layers[0](levels[0].features)
        for layer in layers.dropFirst() { x = try layer(gelu(x)) }
        return x
    }
}
