@_exported import Layers

/// A patch grid: `height` rows by `width` columns of ViT patches (row-major token order).
public struct Grid: Codable, Hashable, Sendable, CustomStringConvertible {
    /// Rows of patches.
    public var height: Int
    /// Columns of patches.
    public var width: Int

    public init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }

    /// A `side x side` grid.
    public static func square(_ side: Int) -> Grid { Grid(height: side, width: side) }

    /// Number of patches, `height * width`.
    public var count: Int { height * width }

    public var description: String { "\(height)x\(width)" }
}

/// One level of vision features: `features` `[B, H*W, C]` (patch tokens only, row-major over the
/// grid, no class token) and the `grid` (H, W) they lie on.
public struct FeatureLevel {
    /// `[B, H*W, C]`.
    public var features: Tensor
    /// The patch grid of `features`.
    public var grid: Grid

    public init(_ features: Tensor, grid: Grid) {
        self.features = features
        self.grid = grid
    }

    /// A level from features that may carry a leading class token (a ViT's raw hidden states,
    /// `[B, 1 + H*W, C]`): with `dropClassToken`, the first token is removed and checked to be the
    /// only extra one; without it, this is `init(_:grid:)`.
    /// - Parameters:
    ///   - features: `[B, 1 + H*W, C]` with `dropClassToken`, else `[B, H*W, C]`.
    ///   - dropClassToken: remove the leading class token.
    /// - Throws: `TensorError` naming both token counts when `features` is not `[B, 1 + H*W, C]`.
    public init(_ features: Tensor, grid: Grid, dropClassToken: Bool) throws {
        guard dropClassToken else {
            self.init(features, grid: grid)
            return
        }
        guard features.rank == 3, features.shape[1] == grid.count + 1 else {
            throw TensorError(
                "FeatureLevel",
                "dropping the class token needs [B, 1 + \(grid.count), C] features for a \(grid) grid, got \(features.shape)")
        }
        self.init(try features.narrow(axis: 1, start: 1, length: grid.count), grid: grid)
    }
}

/// A vision-language connector: vision feature levels in, LLM-width tokens out.
///
/// Every connector takes `featureLevels.count` levels, each `[B, H*W, C]` with its grid, in the order
/// of `featureLevels` (HF `hidden_states` indices of the vision tower: 0 is the embeddings, negative
/// values count from the end as in Python), and returns `[B, T, llmDim]` with
/// `T == tokenCount(grid:)`. The token count is computed by the configuration
/// (`ConnectorConfiguration.tokenCount(grid:)`), the single place that data packing and the model
/// both read.
public protocol Connector: Module {
    /// The configuration the connector was built from (`makeConnector(_:seed:)` rebuilds it).
    var configuration: ConnectorConfiguration { get }

    /// Applies the connector.
    /// - Parameter levels: one `FeatureLevel` per entry of `configuration.featureLevels`, in order.
    /// - Returns: `[B, tokenCount(grid:), llmDim]`.
    /// - Throws: `TensorError` when the number of levels, a grid, a width or a batch size is wrong.
    func callAsFunction(_ levels: [FeatureLevel]) throws -> Tensor
}

extension Connector {
    /// Width of the vision features the connector reads.
    public var visionDim: Int { configuration.visionDim }
    /// Width of the output tokens.
    public var llmDim: Int { configuration.llmDim }
    /// HF `hidden_states` indices of the feature levels the connector reads, in input order.
    public var featureLevels: [Int] { configuration.featureLevels }

    /// Number of output tokens for an input patch grid (see `ConnectorConfiguration.tokenCount(grid:)`).
    public func tokenCount(grid: Grid) throws -> Int { try configuration.tokenCount(grid: grid) }

    /// Applies a single-level connector (or a multi-level one fed the same features at every level).
    /// - Parameters:
    ///   - features: `[B, H*W, C]`
    ///   - grid: (H, W)
    /// - Returns: `[B, T, llmDim]`
    public func callAsFunction(_ features: Tensor, grid: Grid) throws -> Tensor {
        try self(Array(repeating: FeatureLevel(features, grid: grid), count: featureLevels.count))
    }

    /// Applies the connector to features that may carry a leading class token (see
    /// `FeatureLevel.init(_:grid:dropClassToken:)`).
    /// - Parameters:
    ///   - features: `[B, 1 + H*W, C]` with `dropClassToken`, else `[B, H*W, C]`.
    ///   - grid: (H, W)
    ///   - dropClassToken: remove the leading class token first.
    /// - Returns: `[B, T, llmDim]`
    public func callAsFunction(_ features: Tensor, grid: Grid, dropClassToken: Bool) throws -> Tensor {
        let level = try FeatureLevel(features, grid: grid, dropClassToken: dropClassToken)
        return try self(Array(repeating: level, count: featureLevels.count))
    }
}

/// Checks a connector's input levels: count, rank, width, grid and batch.
/// - Returns: the batch size.
func checkLevels(_ levels: [FeatureLevel], expected: Int, visionDim: Int, grid: Grid?, op: String) throws
    -> Int
{
    guard levels.count == expected else {
        throw TensorError(op, "expects \(expected) feature level(s), got \(levels.count)")
    }
    var batch: Int? = nil
    for (i, level) in levels.enumerated() {
        let x = level.features
        guard x.rank == 3, x.shape[2] == visionDim else {
            throw TensorError(op, "feature level \(i) must be [B, H*W, \(visionDim)], got \(x.shape)")
        }
        guard x.shape[1] == level.grid.count else {
            throw TensorError(
                op,
                "feature level \(i) has \(x.shape[1]) tokens but its grid \(level.grid) has \(level.grid.count)"
            )
        }
        if let grid, level.grid != grid {
            throw TensorError(
                op,
                "feature level \(i) has a \(level.grid) grid (\(level.grid.count) patches), but the connector is configured for \(grid) (\(grid.count) patches)"
            )
        }
        if let b = batch, b != x.shape[0] {
            throw TensorError(op, "feature levels differ in batch size: \(b) vs \(x.shape[0]) at level \(i)")
        }
        batch = x.shape[0]
    }
    return batch ?? 0
}

/// `[B, H*W, C]` -> `[B, C, H, W]`.
func tokensToMap(_ x: Tensor, grid: Grid) throws -> Tensor {
    try x.reshaped([x.shape[0], grid.height, grid.width, x.shape[2]]).permuted([0, 3, 1, 2])
}

/// `[B, C, H, W]` -> `[B, H*W, C]`.
func mapToTokens(_ x: Tensor) throws -> Tensor {
    try x.permuted([0, 2, 3, 1]).reshaped([x.shape[0], x.shape[2] * x.shape[3], x.shape[1]])
}
