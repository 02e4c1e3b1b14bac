import Foundation
import Tensor
import Vision

/// CLIP preprocessing as HF `CLIPImageProcessor` (its Pillow backend): RGB with transparency composited
/// on white, resize so the shorter side is `shortestEdge` (Pillow bicubic), center crop to `cropSize`,
/// rescale by 1/255, normalise with CLIP's mean and std. Optionally pad to a square first (LLaVA's
/// `pad` aspect mode, filled with the mean colour).
///
/// ```swift
/// let processor = CLIPImageProcessor(size: 336)
/// let batch = try processor.batch(paths: ["a.jpg", "b.png"])    // [2, 3, 336, 336]
/// ```
public struct CLIPImageProcessor: Sendable {
    /// Target of the shorter side before the crop.
    public var shortestEdge: Int
    /// Crop (height, width).
    public var cropHeight: Int
    public var cropWidth: Int
    public var normalization: ImageNormalization
    /// Colour transparency is composited onto (HF: white).
    public var background: [UInt8]
    /// Pad non-square images to a square of `padFill` before resizing.
    public var padToSquare: Bool
    /// Pad colour (default: CLIP's mean, truncated to 8 bits).
    public var padFill: [UInt8]
    public var limits: ImageLimits

    /// A processor for square inputs of `size` (224 for ViT-B/16 and ViT-L/14, 336 for ViT-L/14-336).
    public init(
        size: Int = 336, normalization: ImageNormalization = .clip, padToSquare: Bool = false,
        background: [UInt8] = [255, 255, 255], limits: ImageLimits = ImageLimits()
    ) {
        shortestEdge = size
        cropHeight = size
        cropWidth = size
        self.normalization = normalization
        self.background = background
        self.padToSquare = padToSquare
        padFill = normalization.meanBytes
        self.limits = limits
    }

    /// The processed 8-bit image before rescaling: RGB, padded (when set), resized, cropped.
    public func prepare(_ image: Image) throws -> Image {
        var im = try image.rgb(background: background)
        if padToSquare { im = try im.paddedToSquare(fill: padFill) }
        im = try im.resized(shortestEdge: shortestEdge)
        return try im.centerCropped(width: cropWidth, height: cropHeight)
    }

    /// - Returns: `[3, cropHeight, cropWidth]`, normalised.
    public func callAsFunction(_ image: Image) throws -> Tensor {
        try prepare(image).tensor(normalization: normalization)
    }

    /// - Returns: `[B, 3, cropHeight, cropWidth]`
    public func batch(_ images: [Image]) throws -> Tensor {
        try imageBatch(images.map(prepare), normalization: normalization)
    }

    /// Decodes and processes files.
    /// - Returns: `[B, 3, cropHeight, cropWidth]`
    /// - Throws: `VisionError` naming the first file that cannot be decoded (a data loader that wants
    ///   to skip bad files decodes them one by one with `ImageCodec.decode(contentsOf:)`).
    public func batch(paths: [String]) throws -> Tensor {
        try batch(paths.map { try ImageCodec.decode(contentsOf: $0, limits: limits) })
    }

    /// MM1 sub-images of one image: RGB, rescaled to [0, 1], cut by `decomposition` (which pads with the
    /// mean colour and resizes in floating point), then normalised.
    /// - Returns: `[decomposition.count, 3, S, S]`
    public func subImages(_ image: Image, decomposition: SubImageDecomposition = .mm1) throws -> Tensor {
        let x = try image.rgb(background: background).tensor()
        let parts = try decomposition.decompose(x)
        let mean = try Tensor(shape: [1, 3, 1, 1], normalization.mean)
        let std = try Tensor(shape: [1, 3, 1, 1], normalization.std)
        return try (parts - mean) / std
    }
}
