import Tensor
import Vision

/// An 8-bit image: `channels` interleaved samples per pixel (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA),
/// rows top to bottom. Value type.
public struct Image: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    /// `height * width * channels` samples, row-major, channels interleaved.
    public var pixels: [UInt8]

    /// - Throws: `VisionError` when the sizes are not positive, `channels` is not 1...4, or the pixel count is wrong.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0 else {
            throw VisionError("Image", "size \(width) x \(height) must be positive")
        }
        guard (1...4).contains(channels) else {
            throw VisionError("Image", "channels must be 1...4, got \(channels)")
        }
        guard pixels.count == width * height * channels else {
            throw VisionError("Image", "\(pixels.count) samples for \(width) x \(height) x \(channels)")
        }
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// A solid image of `color` (one value per channel).
    public init(width: Int, height: Int, color: [UInt8]) throws {
        try self.init(
            width: width, height: height, channels: color.count,
            pixels: Array((0..<(width * height)).map { _ in color }.joined()))
    }

    /// Whether the last channel is alpha (2 or 4 channels).
    public var hasAlpha: Bool { channels == 2 || channels == 4 }

    /// The sample at (x, y), channel `c`.
    public subscript(x: Int, y: Int, c: Int) -> UInt8 { pixels[(y * width + x) * channels + c] }

    /// The pixels as floats `[C, H, W]` (channels first), each `value / 255` (HF's `rescale`), then
    /// normalised per channel when `normalization` is given.
    /// - Throws: `VisionError` when the normalisation has another channel count.
    public func tensor(normalization: ImageNormalization? = nil) throws -> Tensor {
        if let n = normalization, n.mean.count != channels || n.std.count != channels {
            throw VisionError(
                "Image.tensor", "normalisation for \(n.mean.count) channels applied to \(channels)")
        }
        let plane = width * height
        var out = [Float](repeating: 0, count: plane * channels)
        for c in 0..<channels {
            let (m, s) = normalization.map { (Float($0.mean[c]), Float($0.std[c])) } ?? (0, 1)
            for i in 0..<plane {
                let v = Float(Double(pixels[i * channels + c]) * (1.0 / 255.0))
                out[c * plane + i] = normalization == nil ? v : (v - m) / s
            }
        }
        return try Tensor(shape: [channels, height, width], scalars: out)
    }
}

/// Per-channel mean and standard deviation: `(x - mean) / std` on values in [0, 1].
public struct ImageNormalization: Equatable, Sendable {
    public var mean: [Double]
    public var std: [Double]

    public init(mean: [Double], std: [Double]) {
        self.mean = mean
        self.std = std
    }

    /// OpenAI CLIP's statistics (HF `OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`).
    public static let clip = ImageNormalization(
        mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711])
    /// ImageNet's statistics (timm, torchvision).
    public static let imageNet = ImageNormalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    /// CLIP's mean as 8-bit values, truncated (LLaVA's pad-to-square fill): (122, 116, 104).
    public var meanBytes: [UInt8] { mean.map { UInt8(max(0, min(255, $0 * 255))) } }
}

/// Stacks images of equal size into a batch.
/// - Returns: `[B, C, H, W]`
/// - Throws: `VisionError` when the list is empty or the shapes differ.
public func imageBatch(_ images: [Image], normalization: ImageNormalization? = .clip) throws -> Tensor {
    guard let first = images.first else { throw VisionError("imageBatch", "no images") }
    for (i, im) in images.enumerated()
    where (im.width, im.height, im.channels) != (first.width, first.height, first.channels) {
        throw VisionError(
            "imageBatch",
            "image \(i) is \(im.width) x \(im.height) x \(im.channels), image 0 is \(first.width) x \(first.height) x \(first.channels)"
        )
    }
    return try Tensor.stack(images.map { try $0.tensor(normalization: normalization) }, axis: 0)
}
