import Layers
import Tensor

/// MM1's sub-image decomposition: a high-resolution image becomes one overview plus a grid of crops,
/// each encoded independently by the vision tower at the crop size (with interpolated positions when
/// the crop size is not the tower's native size).
///
/// The rule, for an image `[C, H, W]` (or a batch `[B, C, H, W]`), crop size `S` and a `rows x cols` grid:
/// 1. If the image is not square and `fit` is `.padToSquare`, it is padded to `max(H, W)` on both sides
///    with `fill`, the image centred (the left/top pad is `(max - side) / 2` rounded down). With
///    `.stretch` it is left as is (and step 2 changes its aspect ratio).
/// 2. The (padded) image is resized to `rows*S x cols*S` (bicubic with antialias, PIL's filter) unless it
///    already has that size: a 1344 x 1344 image with S = 672 is cut as is; a 1792 x 1792 one is first
///    shrunk to 1344; a 1000 x 700 one is padded to 1000 x 1000, then enlarged to 1344.
/// 3. Crop `(i, j)` is rows `[i*S, (i+1)*S)` and columns `[j*S, (j+1)*S)` of that image.
/// 4. The overview is the (padded) image of step 1 resized to `S x S` directly.
///
/// Order (per image): the overview first (when `overview` is on), then the crops row by row: top-left,
/// top-right, bottom-left, bottom-right for 2 x 2. The tower's tokens for the sub-images are concatenated
/// in the same order, each sub-image's patch tokens row-major (`mergeTokens`).
public struct SubImageDecomposition: Sendable, Equatable {
    /// How a non-square image is made square before it is cut.
    public enum Fit: Sendable, Equatable {
        /// Resize to the grid's shape directly (distorts the aspect ratio).
        case stretch
        /// Pad to a square with `fill` (per channel) first, the image centred.
        case padToSquare
    }

    /// Side of each crop and of the overview, in pixels (MM1: 672).
    public var cropSize: Int
    /// Crops per column and per row (MM1: 2 x 2).
    public var rows: Int
    public var cols: Int
    /// Whether a downsized overview of the whole image comes first (MM1: yes).
    public var overview: Bool
    public var fit: Fit
    /// Padding colour per channel in the image's value range; default CLIP's mean in [0, 1], which
    /// normalises to 0 (LLaVA's choice).
    public var fill: [Float]

    public init(
        cropSize: Int = 672, rows: Int = 2, cols: Int = 2, overview: Bool = true, fit: Fit = .padToSquare,
        fill: [Float] = [0.48145466, 0.4578275, 0.40821073]
    ) {
        self.cropSize = cropSize
        self.rows = rows
        self.cols = cols
        self.overview = overview
        self.fit = fit
        self.fill = fill
    }

    /// MM1's configuration: 672-pixel crops in a 2 x 2 grid plus the overview (5 sub-images from 1344 x 1344).
    public static let mm1 = SubImageDecomposition()

    /// Sub-images per input image.
    public var count: Int { rows * cols + (overview ? 1 : 0) }

    /// Visual tokens per input image when each sub-image yields `tokensPerSubImage` tokens.
    public func tokenCount(tokensPerSubImage: Int) -> Int { count * tokensPerSubImage }

    /// Cuts images into sub-images.
    /// - Parameter images: `[C, H, W]` or `[B, C, H, W]`, unnormalised or normalised (the fill is
    ///   used as given).
    /// - Returns: `[B * count, C, S, S]`, image `b`'s sub-images at `b*count ..< (b+1)*count` in the
    ///   documented order (`B = 1` for a single image).
    /// - Throws: `VisionError` for a bad shape, an empty grid, or a fill of the wrong length.
    public func decompose(_ images: Tensor) throws -> Tensor {
        let op = "SubImageDecomposition"
        let x = images.rank == 3 ? try images.unsqueezed(0) : images
        guard x.rank == 4, x.shape[2] > 0, x.shape[3] > 0 else {
            throw VisionError(op, "expects [C, H, W] or [B, C, H, W], got \(images.shape)")
        }
        guard cropSize > 0, rows > 0, cols > 0 else {
            throw VisionError(op, "crop size \(cropSize) and grid \(rows) x \(cols) must be positive")
        }
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var square = x
        if fit == .padToSquare && h != w {
            guard fill.count == c else {
                throw VisionError(op, "fill has \(fill.count) values for \(c) channels")
            }
            let side = max(h, w)
            let (top, left) = ((side - h) / 2, (side - w) / 2)
            let canvas = try Tensor(shape: [1, c, 1, 1], scalars: fill).broadcast(to: [b, c, side, side])
            // Place the image by padding it with zeros and adding the canvas outside it.
            let pad = [(0, 0), (0, 0), (top, side - h - top), (left, side - w - left)]
            let placed = try x.padded(pad)
            let mask = try Tensor.ones([1, 1, h, w]).padded(pad)
            square = try placed + canvas * (1 - mask)
        }
        func resized(_ t: Tensor, _ oh: Int, _ ow: Int) throws -> Tensor {
            if t.shape[2] == oh && t.shape[3] == ow { return t }
            return try interpolate(t, size: (oh, ow), mode: .bicubic, antialias: true)
        }
        let full = try resized(square, rows * cropSize, cols * cropSize)
        var parts: [Tensor] = []  // each [B, 1, C, S, S]
        if overview { parts.append(try resized(square, cropSize, cropSize).unsqueezed(1)) }
        for i in 0..<rows {
            let band = try full.narrow(axis: 2, start: i * cropSize, length: cropSize)
            for j in 0..<cols {
                parts.append(try band.narrow(axis: 3, start: j * cropSize, length: cropSize).unsqueezed(1))
            }
        }
        return try Tensor.concatenate(parts, axis: 1).reshaped([b * count, c, cropSize, cropSize])
    }

    /// Joins the tower's per-sub-image tokens into one sequence per image, in decomposition order.
    /// - Parameter tokens: `[B * count, T, C]` (e.g. `features(...).levels[0]` of `decompose`'s output)
    /// - Returns: `[B, count * T, C]`
    /// - Throws: `VisionError` when the batch is not a multiple of `count`.
    public func mergeTokens(_ tokens: Tensor) throws -> Tensor {
        guard tokens.rank == 3, tokens.shape[0] % count == 0 else {
            throw VisionError(
                "SubImageDecomposition.mergeTokens", "expects [B * \(count), T, C], got \(tokens.shape)")
        }
        return try tokens.reshaped([tokens.shape[0] / count, count * tokens.shape[1], tokens.shape[2]])
    }
}
