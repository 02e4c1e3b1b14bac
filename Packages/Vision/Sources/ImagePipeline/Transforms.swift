import Vision

// Geometric and colour transforms on 8-bit images, matching Pillow where HF's CLIP processor uses it.

extension Image {
    /// Applies an EXIF orientation (1...8) so that the image is upright, as Pillow's `exif_transpose`:
    /// 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
    /// counter-clockwise. Other values leave the image unchanged.
    public func oriented(exif orientation: Int) -> Image {
        guard (2...8).contains(orientation) else { return self }
        let (w, h) = (width, height)
        let swaps = orientation >= 5
        let (ow, oh) = swaps ? (h, w) : (w, h)
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<oh {
            for x in 0..<ow {
                let (sx, sy): (Int, Int)
                switch orientation {
                case 2: (sx, sy) = (w - 1 - x, y)
                case 3: (sx, sy) = (w - 1 - x, h - 1 - y)
                case 4: (sx, sy) = (x, h - 1 - y)
                case 5: (sx, sy) = (y, x)
                case 6: (sx, sy) = (y, h - 1 - x)
                case 7: (sx, sy) = (w - 1 - y, h - 1 - x)
                default: (sx, sy) = (w - 1 - y, x)
                }
                let d = (y * ow + x) * channels, s = (sy * w + sx) * channels
                for c in 0..<channels { out[d + c] = pixels[s + c] }
            }
        }
        return try! Image(width: ow, height: oh, channels: channels, pixels: out)
    }

    /// Three-channel RGB: gray is replicated, and transparency is composited onto the opaque
    /// `background` colour (HF's `convert_to_rgb` uses white), with Pillow's `alpha_composite` rounding.
    public func rgb(background: [UInt8] = [255, 255, 255]) throws -> Image {
        guard background.count == 3 else {
            throw VisionError("Image.rgb", "background needs 3 values, got \(background.count)")
        }
        if channels == 3 { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * 3)
        for i in 0..<n {
            let color: (UInt8, UInt8, UInt8)
            let alpha: UInt8
            switch channels {
            case 1: (color, alpha) = ((pixels[i], pixels[i], pixels[i]), 255)
            case 2: (color, alpha) = ((pixels[2 * i], pixels[2 * i], pixels[2 * i]), pixels[2 * i + 1])
            default:
                (color, alpha) = ((pixels[4 * i], pixels[4 * i + 1], pixels[4 * i + 2]), pixels[4 * i + 3])
            }
            let src = [color.0, color.1, color.2]
            for c in 0..<3 {
                out[3 * i + c] =
                    alpha == 255 ? src[c] : Image.composite(src[c], over: background[c], alpha: alpha)
            }
        }
        return try Image(width: width, height: height, channels: 3, pixels: out)
    }

    /// Pillow's `alpha_composite` of a source sample over an opaque destination, 7-bit fixed point.
    static func composite(_ s: UInt8, over d: UInt8, alpha a: UInt8) -> UInt8 {
        if a == 0 { return d }
        let precision: UInt32 = 7
        let sa = UInt32(a)
        let blend = 255 * (255 - sa)
        let outa255 = sa * 255 + blend
        let coef1 = sa * 255 * 255 * (1 << precision) / outa255
        let coef2 = 255 * (1 << precision) - coef1
        let tmp = UInt32(s) * coef1 + UInt32(d) * coef2 + (0x80 << precision)
        return UInt8(truncatingIfNeeded: ((((tmp >> 8) + tmp) >> 8) >> precision))
    }

    /// Resizes with Pillow's bicubic filter (Keys, A = -0.5, widened by the scale when shrinking, so it
    /// antialiases), 8-bit fixed-point weights, horizontal pass then vertical, rounding to 8 bits after
    /// each pass, exactly as `PIL.Image.resize(..., BICUBIC)` on an RGB or L image. Alpha channels are
    /// resampled like colour (no premultiplication): composite first (`rgb`) to match Pillow on RGBA.
    /// - Throws: `VisionError` for a non-positive size.
    public func resized(width ow: Int, height oh: Int) throws -> Image {
        guard ow > 0, oh > 0 else {
            throw VisionError("Image.resized", "target size \(ow) x \(oh) must be positive")
        }
        var img = self
        if ow != width { img = img.resampledHorizontally(to: ow) }
        if oh != height { img = img.transposedAxes().resampledHorizontally(to: oh).transposedAxes() }
        return img
    }

    /// Resizes so that the shorter side is `size` and the longer `int(size * long / short)` (HF's
    /// `get_resize_output_image_size` with `default_to_square=False`), bicubic as `resized`.
    public func resized(shortestEdge size: Int) throws -> Image {
        let (short, long) = width <= height ? (width, height) : (height, width)
        let newLong = Int(Double(size) * Double(long) / Double(short))
        return width <= height
            ? try resized(width: size, height: newLong) : try resized(width: newLong, height: size)
    }

    /// The centre `width x height` region, HF's rule: top = (H - h) / 2 and left = (W - w) / 2 rounded
    /// down; where the image is smaller, the missing border is `fill` (HF pads with 0), the image centred
    /// the same way.
    public func centerCropped(width cw: Int, height ch: Int, fill: [UInt8]? = nil) throws -> Image {
        guard cw > 0, ch > 0 else {
            throw VisionError("Image.centerCropped", "crop size \(cw) x \(ch) must be positive")
        }
        let f = fill ?? [UInt8](repeating: 0, count: channels)
        guard f.count == channels else {
            throw VisionError("Image.centerCropped", "fill needs \(channels) values")
        }
        let top = (height - ch) >= 0 ? (height - ch) / 2 : -((ch - height + 1) / 2)
        let left = (width - cw) >= 0 ? (width - cw) / 2 : -((cw - width + 1) / 2)
        return crop(left: left, top: top, width: cw, height: ch, fill: f)
    }

    /// Pads to a square of side max(W, H) with `fill`, the image at ((side - W) / 2, (side - H) / 2)
    /// rounded down (LLaVA's `expand2square`).
    public func paddedToSquare(fill: [UInt8]) throws -> Image {
        guard fill.count == channels else {
            throw VisionError("Image.paddedToSquare", "fill needs \(channels) values")
        }
        let side = max(width, height)
        if width == height { return self }
        return crop(
            left: -((side - width) / 2), top: -((side - height) / 2), width: side, height: side, fill: fill)
    }

    /// The region at (left, top) of the given size; pixels outside the image are `fill`.
    func crop(left: Int, top: Int, width cw: Int, height ch: Int, fill: [UInt8]) -> Image {
        var out = [UInt8](repeating: 0, count: cw * ch * channels)
        for y in 0..<ch {
            for x in 0..<cw {
                let (sx, sy) = (x + left, y + top)
                let d = (y * cw + x) * channels
                if sx >= 0 && sx < width && sy >= 0 && sy < height {
                    let s = (sy * width + sx) * channels
                    for c in 0..<channels { out[d + c] = pixels[s + c] }
                } else {
                    for c in 0..<channels { out[d + c] = fill[c] }
                }
            }
        }
        return try! Image(width: cw, height: ch, channels: channels, pixels: out)
    }

    /// Swaps x and y (so the vertical pass can reuse the horizontal one).
    func transposedAxes() -> Image {
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<height {
            for x in 0..<width {
                let s = (y * width + x) * channels, d = (x * height + y) * channels
                for c in 0..<channels { out[d + c] = pixels[s + c] }
            }
        }
        return try! Image(width: height, height: width, channels: channels, pixels: out)
    }

    /// One Pillow 8-bit resampling pass along x.
    func resampledHorizontally(to outWidth: Int) -> Image {
        let taps = PillowBicubic.taps(inSize: width, outSize: outWidth)
        var out = [UInt8](repeating: 0, count: outWidth * height * channels)
        let one = Int32(1) << (PillowBicubic.precisionBits - 1)
        for y in 0..<height {
            let row = y * width * channels
            for xx in 0..<outWidth {
                let (start, weights) = taps[xx]
                for c in 0..<channels {
                    var acc = one
                    for (k, wgt) in weights.enumerated() {
                        acc = acc &+ Int32(pixels[row + (start + k) * channels + c]) &* wgt
                    }
                    out[(y * outWidth + xx) * channels + c] = PillowBicubic.clip8(acc)
                }
            }
        }
        return try! Image(width: outWidth, height: height, channels: channels, pixels: out)
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bicubic filter.
enum PillowBicubic {
    static let precisionBits: Int32 = 32 - 8 - 2

    static func filter(_ v: Double) -> Double {
        let a = -0.5
        let x = abs(v)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// For each output sample: the first input index and the fixed-point weights.
    static func taps(inSize: Int, outSize: Int) -> [(Int, [Int32])] {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        let ss = 1 / filterScale
        return (0..<outSize).map { xx in
            let center = (Double(xx) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)  // Int() truncates toward zero, as C's (int)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var k = (0..<max(xmax, 0)).map { filter((Double($0 + xmin) - center + 0.5) * ss) }
            let total = k.reduce(0, +)
            if total != 0 { k = k.map { $0 / total } }
            let fixed = k.map { v -> Int32 in
                let scaled = v * Double(Int32(1) << precisionBits)
                return Int32(v < 0 ? (-0.5 + scaled) : (0.5 + scaled))
            }
            return (xmin, fixed)
        }
    }

    static func clip8(_ v: Int32) -> UInt8 {
        if v >= ((Int32(1) << precisionBits) << 8) { return 255 }
        if v <= 0 { return 0 }
        return UInt8(v >> precisionBits)
    }
}
