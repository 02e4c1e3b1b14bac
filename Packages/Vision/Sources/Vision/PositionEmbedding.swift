import Layers

/// How a learned position-embedding grid is resampled to another patch grid.
///
/// The class position (row 0) is always kept unchanged; the `g x g` patch rows are reshaped to an
/// image `[1, C, g, g]`, resampled to `[1, C, h, w]` with `interpolate`, and flattened back row-major.
/// Resampling to the stored grid returns the table unchanged (all three rules are the identity there).
public struct PositionInterpolation: Sendable, Equatable, CustomStringConvertible {
    /// The resampling kernel (bicubic for all the presets).
    public var mode: InterpolationMode
    /// Corner pixels map to corners (`align_corners=True`).
    public var alignCorners: Bool
    /// PyTorch's antialiased resampling (a normalised kernel that widens when shrinking; for bicubic
    /// it uses A = -0.5, so it changes upsampling too).
    public var antialias: Bool

    public init(mode: InterpolationMode = .bicubic, alignCorners: Bool = false, antialias: Bool = false) {
        self.mode = mode
        self.alignCorners = alignCorners
        self.antialias = antialias
    }

    /// HF transformers' `CLIPVisionEmbeddings.interpolate_pos_encoding`: bicubic, `align_corners=False`,
    /// no antialias. The default.
    public static let huggingFace = PositionInterpolation()
    /// Chain-of-Sight's resampling: bicubic with `align_corners=True`.
    public static let chainOfSight = PositionInterpolation(alignCorners: true)
    /// timm's `resample_abs_pos_embed`: bicubic, `align_corners=False`, antialias on.
    public static let timm = PositionInterpolation(antialias: true)

    public var description: String {
        "\(mode.rawValue)(alignCorners: \(alignCorners), antialias: \(antialias))"
    }
}

/// Resamples a position-embedding table with one class row to a new patch grid.
///
/// - Parameters:
///   - table: `[1 + g*g, C]`, the class position first, then the `g x g` grid row-major.
///   - grid: the new grid (height, width) in patches.
///   - method: the resampling rule (default: HF's).
/// - Returns: `[1 + h*w, C]`. Differentiable with respect to `table`.
/// - Throws: `VisionError` when the table's patch rows are not a square grid or the new grid is empty.
public func interpolatePositionEmbedding(
    _ table: Tensor, grid: (height: Int, width: Int), method: PositionInterpolation = .huggingFace
) throws -> Tensor {
    let op = "interpolatePositionEmbedding"
    guard table.rank == 2, table.shape[0] >= 2 else {
        throw VisionError(op, "expects a table [1 + g*g, C], got \(table.shape)")
    }
    let (n, c) = (table.shape[0] - 1, table.shape[1])
    let g = Int(Double(n).squareRoot().rounded())
    guard g * g == n else {
        throw VisionError(op, "the table's \(n) patch positions (shape \(table.shape)) are not a square grid")
    }
    guard grid.height > 0, grid.width > 0 else {
        throw VisionError(op, "the new grid \(grid.height) x \(grid.width) must be positive")
    }
    if grid.height == g && grid.width == g { return table }
    let cls = try table.narrow(axis: 0, start: 0, length: 1)
    let patches = try table.narrow(axis: 0, start: 1, length: n).reshaped([1, g, g, c]).permuted([0, 3, 1, 2])
    let resized = try interpolate(
        patches, size: (grid.height, grid.width), mode: method.mode, alignCorners: method.alignCorners,
        antialias: method.antialias)
    let flat = try resized.permuted([0, 2, 3, 1]).reshaped([grid.height * grid.width, c])
    return try Tensor.concatenate([cls, flat], axis: 0)
}
