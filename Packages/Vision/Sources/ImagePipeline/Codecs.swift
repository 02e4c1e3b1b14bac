import Foundation
import TensorFiles
import Vision
import _CImageCodecs

/// Limits applied while decoding, before any pixel buffer is allocated.
public struct ImageLimits: Sendable, Equatable {
    /// Largest `width * height` accepted (a decompression-bomb guard); 0 for no limit.
    public var maxPixels: Int
    /// Largest buffer taken for one PNG ancillary chunk (text, ICC profile, EXIF), stored or
    /// decompressed, in bytes: a chunk's length field is checked against it before anything is
    /// allocated.
    public var maxChunkBytes: Int

    public init(maxPixels: Int = 100_000_000, maxChunkBytes: Int = 16 << 20) {
        self.maxPixels = maxPixels
        self.maxChunkBytes = maxChunkBytes
    }
}

/// The file formats the pipeline reads and writes.
public enum ImageFormat: String, Sendable {
    case png, jpeg

    /// The format from a file's first bytes, or nil.
    public static func sniff<C: Collection>(_ bytes: C) -> ImageFormat? where C.Element == UInt8 {
        let head = Array(bytes.prefix(8))
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if head.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        return nil
    }
}

/// PNG and JPEG decoding and encoding (libpng, libjpeg-turbo).
public enum ImageCodec {
    /// Reads and decodes an image file.
    ///
    /// JPEG: grayscale, YCbCr and CMYK/YCCK (Adobe-inverted or not) become RGB. PNG: every bit depth and
    /// colour type; 16-bit samples become 8-bit by round(v * 255 / 65535), palettes are expanded and
    /// transparency becomes an alpha channel. The EXIF orientation (JPEG APP1, PNG eXIf) is applied
    /// unless `applyOrientation` is false, so the result is upright as viewers show it.
    /// - Returns: 1 to 4 channels (gray, gray + alpha, RGB, RGBA); see `Image.rgb(background:)`.
    /// - Throws: `VisionError` naming the file: missing or unreadable, empty, not PNG or JPEG,
    ///   truncated or corrupt, zero-sized, or over `limits.maxPixels`.
    public static func decode(
        contentsOf path: String, limits: ImageLimits = ImageLimits(), applyOrientation: Bool = true
    ) throws -> Image {
        let data: Data
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG {
            // Reading a FIFO would wait for a writer for ever.
            throw VisionError(path, "not a regular file")
        }
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw VisionError(path, "cannot read the file: \((error as NSError).localizedDescription)")
        }
        return try decode(Array(data), name: path, limits: limits, applyOrientation: applyOrientation)
    }

    /// Walks the PNG chunk list before libpng sees it: a chunk's length field is only a claim, and
    /// libpng allocates what it claims before reading. Every chunk must fit in the bytes that follow
    /// it, and an ancillary chunk (text, ICC profile, EXIF, unknown) may not exceed
    /// `limits.maxChunkBytes`; image data (IDAT) is bounded by the file alone.
    static func checkPNGChunks(_ b: [UInt8], name: String, limits: ImageLimits) throws {
        var i = 8
        while i + 8 <= b.count {
            let length = Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
            let type = String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)
            guard length <= b.count - i - 12 else {
                throw VisionError(
                    name,
                    "invalid PNG data: chunk '\(type)' at byte \(i) claims \(length) bytes but only \(max(0, b.count - i - 12)) follow (truncated or corrupt)")
            }
            let critical = b[i + 4] & 0x20 == 0
            if !critical && length > limits.maxChunkBytes {
                throw VisionError(
                    name,
                    "PNG chunk '\(type)' of \(length) bytes is over the limit of \(limits.maxChunkBytes) (ImageLimits.maxChunkBytes)")
            }
            if type == "IEND" { return }
            i += 12 + length
        }
    }

    /// Decodes image bytes; errors name `name`.
    public static func decode(
        _ bytes: [UInt8], name: String, limits: ImageLimits = ImageLimits(), applyOrientation: Bool = true
    ) throws -> Image {
        guard !bytes.isEmpty else { throw VisionError(name, "the file is empty") }
        guard let format = ImageFormat.sniff(bytes) else {
            let head = bytes.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw VisionError(name, "not a PNG or JPEG file (starts with \(head))")
        }
        if format == .png { try checkPNGChunks(bytes, name: name, limits: limits) }
        var raw = sl_image()
        let status = bytes.withUnsafeBufferPointer { buf -> Int32 in
            switch format {
            case .png: return sl_decode_png(buf.baseAddress, buf.count, Int64(limits.maxPixels), max(limits.maxChunkBytes, 1), &raw)
            case .jpeg: return sl_decode_jpeg(buf.baseAddress, buf.count, Int64(limits.maxPixels), &raw)
            }
        }
        defer { sl_image_free(&raw) }
        guard status == 0, let p = raw.pixels else {
            let message = withUnsafeBytes(of: raw.error) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            throw VisionError(name, message.isEmpty ? "cannot decode the \(format.rawValue) data" : message)
        }
        let count = Int(raw.width) * Int(raw.height) * Int(raw.channels)
        let image = try Image(
            width: Int(raw.width), height: Int(raw.height), channels: Int(raw.channels),
            pixels: Array(UnsafeBufferPointer(start: p, count: count)))
        return applyOrientation ? image.oriented(exif: Int(raw.orientation)) : image
    }

    /// Encodes as PNG (8-bit, any channel count).
    public static func encodePNG(_ image: Image) throws -> [UInt8] {
        try encode(image, "PNG") { px, out, size, err in
            sl_encode_png(px, Int32(image.width), Int32(image.height), Int32(image.channels), out, size, err)
        }
    }

    /// Encodes as baseline JPEG; alpha is composited on `background` first, gray stays gray.
    public static func encodeJPEG(_ image: Image, quality: Int = 90, background: [UInt8] = [255, 255, 255])
        throws -> [UInt8]
    {
        let flat = image.channels == 1 ? image : try image.rgb(background: background)
        return try encode(flat, "JPEG") { px, out, size, err in
            sl_encode_jpeg(
                px, Int32(flat.width), Int32(flat.height), Int32(flat.channels), Int32(quality), out, size,
                err)
        }
    }

    /// Encodes by the path's extension (`.png`, `.jpg`/`.jpeg`) and writes the file.
    /// - Throws: `VisionError` naming the file for an unknown extension or a failed write.
    public static func write(_ image: Image, to path: String, quality: Int = 90) throws {
        let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
        let bytes: [UInt8]
        switch ext {
        case "png": bytes = try encodePNG(image)
        case "jpg", "jpeg": bytes = try encodeJPEG(image, quality: quality)
        default: throw VisionError(path, "unknown image extension \".\(ext)\" (png, jpg, jpeg)")
        }
        do {
            try DurableFile.write(bytes, to: path)
        } catch {
            let reason = (error as? TensorFileError)?.message ?? (error as NSError).localizedDescription
            throw VisionError(path, "cannot write the file: \(reason)")
        }
    }

    private static func encode(
        _ image: Image, _ what: String,
        _ body: (
            UnsafePointer<UInt8>?, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
            UnsafeMutablePointer<Int>, UnsafeMutablePointer<CChar>
        ) -> Int32
    ) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var error = [CChar](repeating: 0, count: 256)
        let status = image.pixels.withUnsafeBufferPointer { px in
            error.withUnsafeMutableBufferPointer { e in body(px.baseAddress, &out, &size, e.baseAddress!) }
        }
        defer { sl_free(out) }
        guard status == 0, let out else {
            throw VisionError(
                "encode\(what)",
                String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }
}
