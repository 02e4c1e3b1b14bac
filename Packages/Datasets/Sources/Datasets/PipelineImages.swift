import Foundation
import ImagePipeline
import Tensor
import Vision

/// A decoded image: `[3, H, W]` RGB values in [0, 1].
public typealias ImageDecoder = (ImageReference) throws -> Tensor
/// Turns a decoded image into the model's sub-images.
public typealias ImagePreprocessor = (Tensor) throws -> PreparedImage

/// The data pipeline's images, through Vision's one image pipeline (there is no second codec and no
/// second mean/std): JPEG and every PNG (libjpeg-turbo, libpng), Pillow-exact CLIP resizing, centre
/// cropping and normalisation, or MM1's sub-images. These are the loader's default decoder and
/// preprocessor; pass others to the loader to change them.
public enum PipelineImages {
    /// Decodes PNG or JPEG (file or tar member) with Vision's codecs.
    /// - Returns: `[3, H, W]` RGB in [0, 1] (gray, alpha and CMYK converted; EXIF orientation applied).
    /// - Throws: `DatasetError` naming the image for a missing, empty, corrupt or unsupported file.
    public static func decode(_ ref: ImageReference) throws -> Tensor {
        try image(ref).tensor()
    }

    /// Decodes to Vision's 8-bit RGB image.
    public static func image(_ ref: ImageReference) throws -> Image {
        do {
            switch ref {
            case .file(let u): return try ImageCodec.decode(contentsOf: u.path).rgb()
            case .bytes(let d, let name): return try ImageCodec.decode(Array(d), name: name).rgb()
            }
        } catch let e as VisionError {
            throw DatasetError("image", "\((e.source as NSString).lastPathComponent): \(e.message)")
        }
    }

    /// Back to 8 bits (exact for tensors made by `decode`, whose values are multiples of 1/255).
    static func bytes(_ t: Tensor) throws -> Image {
        guard t.rank == 3, t.shape[0] == 3 else {
            throw DatasetError("image", "expected [3, H, W], got \(t.shape)")
        }
        let (h, w) = (t.shape[1], t.shape[2])
        let s = t.scalars
        var px = [UInt8](repeating: 0, count: h * w * 3)
        for c in 0..<3 {
            for i in 0..<(h * w) { px[i * 3 + c] = UInt8(max(0, min(255, (s[c * h * w + i] * 255).rounded()))) }
        }
        return try Image(width: w, height: h, channels: 3, pixels: px)
    }

    /// HF `CLIPImageProcessor` preprocessing (shortest edge, centre crop, normalisation): one crop.
    public static func clip(_ processor: CLIPImageProcessor) -> ImagePreprocessor {
        return { t in try PreparedImage(pixels: try processor(try bytes(t))) }
    }

    /// `clip(CLIPImageProcessor(size: size))`.
    public static func clip(size: Int) -> ImagePreprocessor { clip(CLIPImageProcessor(size: size)) }

    /// Encodes `[3, H, W]` values in [0, 1] as a PNG file's bytes (lossless: `decode` gives the values
    /// back exactly when they are multiples of 1/255, as rendered images are).
    public static func encodePNG(_ image: Tensor) throws -> Data {
        Data(try ImageCodec.encodePNG(try bytes(image)))
    }

    /// Encodes `[3, H, W]` values in [0, 1] as a JPEG file's bytes (for test and benchmark data).
    public static func encodeJPEG(_ image: Tensor, quality: Int = 90) throws -> Data {
        Data(try ImageCodec.encodeJPEG(try bytes(image), quality: quality))
    }

    /// MM1's sub-images (overview plus crops) as the image's crops.
    public static func subImages(
        _ processor: CLIPImageProcessor, decomposition: SubImageDecomposition = .mm1
    ) -> ImagePreprocessor {
        return { t in
            try PreparedImage(pixels: try processor.subImages(try bytes(t), decomposition: decomposition))
        }
    }
}


