import Foundation
import Tensor

/// A decoded image: `[3, H, W]` RGB values in [0, 1].
public typealias ImageDecoder = (ImageReference) throws -> Tensor
/// Turns a decoded image into the model's sub-images.
public typealias ImagePreprocessor = (Tensor) throws -> PreparedImage

/// The built-in codecs: binary PPM (P6) and PNG written with stored (uncompressed) deflate blocks, which
/// is what the synthetic-world writer produces. Compressed PNG and JPEG come from Vision's image I/O
/// (pass its decoder as the loader's `ImageDecoder`).
public enum BuiltinImageCodec {
    /// Decodes a PPM or stored-deflate PNG.
    /// - Returns: `[3, H, W]` in [0, 1].
    /// - Throws: `DatasetError` naming the image for a missing file, a corrupt or unsupported image.
    public static func decode(_ ref: ImageReference) throws -> Tensor {
        let data: Data
        switch ref {
        case .file(let u):
            try requireRegularFile(u, step: "image")
            guard let d = try? Data(contentsOf: u) else {
                throw DatasetError("image", "\(u.lastPathComponent): missing or unreadable image")
            }
            data = d
        case .bytes(let d, _): data = d
        }
        let name = (ref.name as NSString).lastPathComponent
        let b = [UInt8](data)
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try decodePNG(b, name: name) }
        if b.starts(with: [0x50, 0x36]) { return try decodePPM(b, name: name) }
        throw DatasetError("image", "\(name): not a PNG or PPM image (JPEG needs Vision's decoder)")
    }

    static func decodePPM(_ b: [UInt8], name: String) throws -> Tensor {
        var i = 2
        var fields: [Int] = []
        while fields.count < 3, i < b.count {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
            if i < b.count, b[i] == UInt8(ascii: "#") { while i < b.count, b[i] != 0x0A { i += 1 }; continue }
            var v = 0
            let s = i
            while i < b.count, (48...57).contains(b[i]) { v = v * 10 + Int(b[i] - 48); i += 1 }
            guard i > s else { throw DatasetError("image", "\(name): corrupt PPM header") }
            fields.append(v)
        }
        i += 1
        guard fields.count == 3, fields[0] > 0, fields[1] > 0, fields[2] == 255,
            b.count - i >= fields[0] * fields[1] * 3
        else {
            throw DatasetError("image", "\(name): corrupt or truncated PPM")
        }
        return try planar(
            Array(b[i..<(i + fields[0] * fields[1] * 3)]), width: fields[0], height: fields[1], channels: 3)
    }

    static func planar(_ px: [UInt8], width: Int, height: Int, channels: Int) throws -> Tensor {
        var out = [Float](repeating: 0, count: 3 * height * width)
        let hw = height * width
        for p in 0..<hw {
            for c in 0..<3 { out[c * hw + p] = Float(px[p * channels + (channels >= 3 ? c : 0)]) / 255 }
        }
        return try Tensor(shape: [3, height, width], scalars: out)
    }

    static func be32(_ b: [UInt8], _ i: Int) -> Int {
        Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
    }

    static func decodePNG(_ b: [UInt8], name: String) throws -> Tensor {
        var i = 8
        var width = 0, height = 0, channels = 0
        var idat: [UInt8] = []
        while i + 12 <= b.count {
            let len = be32(b, i)
            guard len >= 0, i + 12 + len <= b.count else {
                throw DatasetError("image", "\(name): truncated PNG chunk")
            }
            let type = String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)
            let body = Array(b[(i + 8)..<(i + 8 + len)])
            guard UInt32(be32(b, i + 8 + len)) == crc32(Array(b[(i + 4)..<(i + 8 + len)])) else {
                throw DatasetError("image", "\(name): PNG \(type) chunk fails its CRC")
            }
            if type == "IHDR" {
                guard body.count >= 13 else { throw DatasetError("image", "\(name): PNG header chunk too short") }
                width = be32(body, 0); height = be32(body, 4)
                // 2^31 per side is PNG's own limit; the product is bounded by the data checked below.
                guard width <= 1 << 31, height <= 1 << 31, width * height <= 1 << 32 else {
                    throw DatasetError("image", "\(name): PNG of \(width) x \(height) pixels is too large")
                }
                guard body[8] == 8, body[12] == 0 else {
                    throw DatasetError("image", "\(name): only 8-bit non-interlaced PNG")
                }
                switch body[9] {
                case 0: channels = 1;
                case 2: channels = 3;
                case 6: channels = 4
                default: throw DatasetError("image", "\(name): PNG colour type \(body[9]) not supported")
                }
            } else if type == "IDAT" {
                idat += body
            } else if type == "IEND" {
                break
            }
            i += 12 + len
        }
        guard width > 0, height > 0, idat.count > 2 else {
            throw DatasetError("image", "\(name): PNG without header or data")
        }
        // zlib stream of stored blocks
        var raw: [UInt8] = []
        var p = 2
        var final = false
        while !final {
            guard p + 5 <= idat.count else { throw DatasetError("image", "\(name): truncated PNG data") }
            final = idat[p] & 1 == 1
            guard (idat[p] >> 1) & 3 == 0 else {
                throw DatasetError(
                    "image",
                    "\(name): compressed PNG (the built-in codec reads stored blocks; use Vision's decoder)")
            }
            let n = Int(idat[p + 1]) | Int(idat[p + 2]) << 8
            p += 5
            guard p + n <= idat.count else { throw DatasetError("image", "\(name): truncated PNG data") }
            raw += idat[p..<(p + n)]
            p += n
        }
        let stride = width * channels
        guard raw.count == height * (stride + 1) else {
            throw DatasetError("image", "\(name): PNG data of the wrong size")
        }
        var px = [UInt8](repeating: 0, count: height * stride)
        for y in 0..<height {
            let f = raw[y * (stride + 1)]
            for x in 0..<stride {
                let v = raw[y * (stride + 1) + 1 + x]
                let a = x >= channels ? Int(px[y * stride + x - channels]) : 0
                let up = y > 0 ? Int(px[(y - 1) * stride + x]) : 0
                let c = (x >= channels && y > 0) ? Int(px[(y - 1) * stride + x - channels]) : 0
                let pred: Int
                switch f {
                case 0: pred = 0
                case 1: pred = a
                case 2: pred = up
                case 3: pred = (a + up) / 2
                case 4:
                    let q = a + up - c
                    let (pa, pb, pc) = (abs(q - a), abs(q - up), abs(q - c))
                    pred = pa <= pb && pa <= pc ? a : (pb <= pc ? up : c)
                default: throw DatasetError("image", "\(name): bad PNG filter \(f)")
                }
                px[y * stride + x] = UInt8((Int(v) + pred) & 255)
            }
        }
        return try planar(px, width: width, height: height, channels: channels)
    }

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }
    static func crc32(_ b: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for x in b { c = crcTable[Int((c ^ UInt32(x)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// Encodes `[3, H, W]` values in [0, 1] as an RGB PNG with stored deflate blocks.
    public static func encodePNG(_ image: Tensor) throws -> Data {
        guard image.rank == 3, image.shape[0] == 3 else {
            throw DatasetError("image", "encodePNG needs [3, H, W], got \(image.shape)")
        }
        let (h, w) = (image.shape[1], image.shape[2])
        let s = image.scalars
        var raw: [UInt8] = []
        raw.reserveCapacity(h * (3 * w + 1))
        for y in 0..<h {
            raw.append(0)
            for x in 0..<w {
                for c in 0..<3 {
                    raw.append(UInt8(max(0, min(255, (s[c * h * w + y * w + x] * 255).rounded()))))
                }
            }
        }
        var z: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65535, raw.count - i)
            z.append(i + n == raw.count ? 1 : 0)
            z += [UInt8(n & 255), UInt8(n >> 8), UInt8(~n & 255), UInt8((~n >> 8) & 255)]
            z += raw[i..<(i + n)]
            i += n
        } while i < raw.count
        var a: UInt32 = 1, bsum: UInt32 = 0
        for x in raw { a = (a + UInt32(x)) % 65521; bsum = (bsum + a) % 65521 }
        z += [UInt8(bsum >> 8), UInt8(bsum & 255), UInt8(a >> 8), UInt8(a & 255)]
        func be(_ v: Int) -> [UInt8] {
            [UInt8((v >> 24) & 255), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)]
        }
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func chunk(_ t: String, _ body: [UInt8]) {
            let tb = Array(t.utf8)
            out += be(body.count) + tb + body + be(Int(crc32(tb + body)))
        }
        chunk("IHDR", be(w) + be(h) + [8, 2, 0, 0, 0])
        chunk("IDAT", z)
        chunk("IEND", [])
        return Data(out)
    }

    /// The default preprocessing: nearest-neighbour resize to `size` x `size` and CLIP normalisation,
    /// one crop. (Vision's `SubImageDecomposition` gives MM1's overview plus crops.)
    public static func preprocessor(
        size: Int, mean: [Float] = [0.48145466, 0.4578275, 0.40821073],
        std: [Float] = [0.26862954, 0.26130258, 0.27577711]
    ) -> ImagePreprocessor {
        return { img in
            let (h, w) = (img.shape[1], img.shape[2])
            let s = img.scalars
            var out = [Float](repeating: 0, count: 3 * size * size)
            for c in 0..<3 {
                for y in 0..<size {
                    let sy = min(h - 1, y * h / size)
                    for x in 0..<size {
                        let sx = min(w - 1, x * w / size)
                        out[(c * size + y) * size + x] = (s[(c * h + sy) * w + sx] - mean[c]) / std[c]
                    }
                }
            }
            return try PreparedImage(pixels: Tensor(shape: [1, 3, size, size], scalars: out))
        }
    }
}
