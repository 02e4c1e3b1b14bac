import Foundation

/// Any connector's configuration, `Codable` as a JSON object with a `type` field
/// (`projection`, `average_pooling`, `attention_pooling`, `c_abstractor`, `chain_of_sight`) next to
/// the connector's own fields:
///
/// ```json
/// {"type": "chain_of_sight", "visionDim": 1024, "llmDim": 4096, "grid": {"height": 16, "width": 16},
///  "scales": [{"windowSize": 16, "queries": 16}, {"windowSize": 4, "queries": 64}]}
/// ```
public enum ConnectorConfiguration: Codable, Equatable, Sendable {
    /// Linear or MLP over every patch (LLaVA-1.5's full-token baseline).
    case projection(ProjectionConfig)
    /// Adaptive average pooling + linear (MM1).
    case averagePooling(AveragePoolingConfig)
    /// k learnable queries, one cross-attention block (MM1).
    case attentionPooling(AttentionPoolingConfig)
    /// Honeybee's C-Abstractor (MM1's final connector).
    case cAbstractor(CAbstractorConfig)
    /// Chain-of-Sight (one scale with a global window is the single-scale resampler baseline).
    case chainOfSight(ChainOfSightConfig)

    /// The single-scale resampler baseline (the paper's "resampler", e.g. 336 tokens throughout): one
    /// global window over `grid` with `queries` queries, Chain-of-Sight's block and names.
    /// - Throws: `TensorError` when the grid is not square (one square window must cover it).
    public static func resampler(
        visionDim: Int, llmDim: Int, grid: Grid, queries: Int, featureLevels: [Int] = [23], headDim: Int = 64
    ) throws -> ConnectorConfiguration {
        guard grid.height == grid.width else {
            throw TensorError("resampler", "one global window needs a square grid, got \(grid)")
        }
        return .chainOfSight(
            ChainOfSightConfig(
                visionDim: visionDim, llmDim: llmDim, headDim: headDim, grid: grid,
                scales: [WindowScale(windowSize: grid.height, queries: queries)], featureLevels: featureLevels
            ))
    }

    /// The `type` tag.
    public var type: String {
        switch self {
        case .projection: return "projection"
        case .averagePooling: return "average_pooling"
        case .attentionPooling: return "attention_pooling"
        case .cAbstractor: return "c_abstractor"
        case .chainOfSight: return "chain_of_sight"
        }
    }

    /// Number of visual tokens the connector emits for features on `grid`: the one number data
    /// packing and the model both use.
    /// - Throws: `TensorError` with both sizes when the connector is tied to another grid
    ///   (Chain-of-Sight windows, a C-Abstractor position embedding).
    public func tokenCount(grid: Grid) throws -> Int {
        switch self {
        case .projection(let c): return c.tokenCount(grid: grid)
        case .averagePooling(let c): return c.tokenCount(grid: grid)
        case .attentionPooling(let c): return c.tokenCount(grid: grid)
        case .cAbstractor(let c): return try c.tokenCount(grid: grid)
        case .chainOfSight(let c): return try c.tokenCount(grid: grid)
        }
    }

    /// Width of the vision features.
    public var visionDim: Int {
        switch self {
        case .projection(let c): return c.visionDim
        case .averagePooling(let c): return c.visionDim
        case .attentionPooling(let c): return c.visionDim
        case .cAbstractor(let c): return c.visionDim
        case .chainOfSight(let c): return c.visionDim
        }
    }

    /// Width of the output tokens.
    public var llmDim: Int {
        switch self {
        case .projection(let c): return c.llmDim
        case .averagePooling(let c): return c.llmDim
        case .attentionPooling(let c): return c.llmDim
        case .cAbstractor(let c): return c.llmDim
        case .chainOfSight(let c): return c.llmDim
        }
    }

    /// HF `hidden_states` indices of the levels the connector reads, in input order.
    public var featureLevels: [Int] {
        switch self {
        case .projection(let c): return [c.featureLevel]
        case .averagePooling(let c): return [c.featureLevel]
        case .attentionPooling(let c): return [c.featureLevel]
        case .cAbstractor(let c): return [c.featureLevel]
        case .chainOfSight(let c): return c.featureLevels
        }
    }

    private enum TypeKey: String, CodingKey { case type }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: TypeKey.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "projection": self = .projection(try ProjectionConfig(from: decoder))
        case "average_pooling": self = .averagePooling(try AveragePoolingConfig(from: decoder))
        case "attention_pooling": self = .attentionPooling(try AttentionPoolingConfig(from: decoder))
        case "c_abstractor": self = .cAbstractor(try CAbstractorConfig(from: decoder))
        case "chain_of_sight": self = .chainOfSight(try ChainOfSightConfig(from: decoder))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: c,
                debugDescription:
                    "unknown connector type \"\(type)\" (projection, average_pooling, attention_pooling, c_abstractor, chain_of_sight)"
            )
        }
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .projection(let c): try c.encode(to: encoder)
        case .averagePooling(let c): try c.encode(to: encoder)
        case .attentionPooling(let c): try c.encode(to: encoder)
        case .cAbstractor(let c): try c.encode(to: encoder)
        case .chainOfSight(let c): try c.encode(to: encoder)
        }
        var c = encoder.container(keyedBy: TypeKey.self)
        try c.encode(type, forKey: .type)
    }
}

/// Builds the connector a configuration describes, initialised from `seed`.
/// - Throws: `TensorError` for an invalid configuration (naming the field and the numbers).
public func makeConnector(_ configuration: ConnectorConfiguration, seed: UInt64 = 0) throws -> any Connector {
    switch configuration {
    case .projection(let c): return try ProjectionConnector(c, seed: seed)
    case .averagePooling(let c): return try AveragePoolingConnector(c, seed: seed)
    case .attentionPooling(let c): return try AttentionPoolingConnector(c, seed: seed)
    case .cAbstractor(let c): return try CAbstractor(c, seed: seed)
    case .chainOfSight(let c): return try ChainOfSight(c, seed: seed)
    }
}
