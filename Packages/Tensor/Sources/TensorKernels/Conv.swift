import Foundation

// Convolution, pooling and resampling kernels over NCHW buffers (contiguous, row-major).
//
// Convolution lowers to GEMM: the input patches of one group of a chunk of images are unfolded into
// a column matrix (im2col, [Cg*kH*kW, images*Ho*Wo]) and multiplied by the group's weight matrix
// ([Og, Cg*kH*kW]) with one `BLAS.sgemm`. Backward folds the input-gradient columns back (col2im)
// and accumulates the weight gradient as another GEMM. Depthwise convolutions (one input channel per
// group) skip the GEMM: a direct loop over the kernel taps with contiguous rows vectorises better.
//
// Resampling (`interpolate`) follows PyTorch's CPU kernels: the per-axis source indices and weights
// (`ResampleTable`) are computed with the same Float32 arithmetic as ATen, then applied separably
// (width first, then height).

// MARK: - Geometry

/// Floor division (rounds toward negative infinity), as ATen's `div_rtn`.
@inline(__always)
public func floorDivide(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q
}

/// Shapes and hyper-parameters of a 2-D convolution: input [N, C, H, W], weight [O, C/groups, kH, kW],
/// output [N, O, Ho, Wo].
public struct Conv2dGeometry: Equatable, Sendable {
    public var batch: Int
    public var inChannels: Int
    public var inHeight: Int
    public var inWidth: Int
    public var outChannels: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideHeight: Int
    public var strideWidth: Int
    public var padHeight: Int
    public var padWidth: Int
    public var dilationHeight: Int
    public var dilationWidth: Int
    public var groups: Int
    /// (H + 2 pad - dilation (k - 1) - 1) / stride + 1 (may be <= 0 for invalid settings).
    public var outHeight: Int
    public var outWidth: Int

    public init(
        batch: Int, inChannels: Int, inHeight: Int, inWidth: Int, outChannels: Int,
        kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int), groups: Int
    ) {
        self.batch = batch
        self.inChannels = inChannels
        self.inHeight = inHeight
        self.inWidth = inWidth
        self.outChannels = outChannels
        (kernelHeight, kernelWidth) = kernel
        (strideHeight, strideWidth) = stride
        (padHeight, padWidth) = padding
        (dilationHeight, dilationWidth) = dilation
        self.groups = groups
        outHeight = floorDivide(inHeight + 2 * padding.0 - dilation.0 * (kernel.0 - 1) - 1, stride.0) + 1
        outWidth = floorDivide(inWidth + 2 * padding.1 - dilation.1 * (kernel.1 - 1) - 1, stride.1) + 1
    }

    /// Input channels per group (C / groups).
    public var inPerGroup: Int { inChannels / groups }
    /// Output channels per group (O / groups).
    public var outPerGroup: Int { outChannels / groups }
    /// Every group sees one input channel (groups == C > 1): the direct depthwise path applies.
    public var isDepthwise: Bool { groups > 1 && groups == inChannels }
    /// A 1x1 kernel with stride 1 and no padding: the input is already the column matrix.
    public var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideHeight == 1 && strideWidth == 1 && padHeight == 0
            && padWidth == 0
    }
}

/// Shapes and hyper-parameters of a 2-D pooling over `planes` independent [H, W] planes (N * C).
public struct Pool2dGeometry: Equatable, Sendable {
    public var planes: Int
    public var inHeight: Int
    public var inWidth: Int
    public var outHeight: Int
    public var outWidth: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideHeight: Int
    public var strideWidth: Int
    public var padHeight: Int
    public var padWidth: Int
    public var dilationHeight: Int
    public var dilationWidth: Int

    public init(
        planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int, kernel: (Int, Int),
        stride: (Int, Int), padding: (Int, Int), dilation: (Int, Int) = (1, 1)
    ) {
        self.planes = planes
        self.inHeight = inHeight
        self.inWidth = inWidth
        self.outHeight = outHeight
        self.outWidth = outWidth
        (kernelHeight, kernelWidth) = kernel
        (strideHeight, strideWidth) = stride
        (padHeight, padWidth) = padding
        (dilationHeight, dilationWidth) = dilation
    }

    /// PyTorch's pooling output size: floor (or ceil in `ceilMode`) of
    /// (in + 2 pad - dilation (k - 1) - 1) / stride, plus one; in `ceilMode` the last window must start
    /// inside the input or the left padding.
    public static func outputSize(
        input: Int, kernel: Int, stride: Int, padding: Int, dilation: Int, ceilMode: Bool
    ) -> Int {
        var out =
            floorDivide(
                input + 2 * padding - dilation * (kernel - 1) - 1 + (ceilMode ? stride - 1 : 0), stride) + 1
        if ceilMode && (out - 1) * stride >= input + padding { out -= 1 }
        return out
    }
}

/// Interpolation modes of `interpolate` (PyTorch's `nearest`, `bilinear`, `bicubic`).
public enum InterpolationMode: String, Sendable, Equatable {
    /// The source pixel at floor(dst * in / out) (PyTorch's legacy `nearest`, not `nearest-exact`).
    case nearest
    /// Linear in each axis over the two nearest source pixels.
    case bilinear
    /// Keys cubic convolution (A = -0.75) over four source pixels per axis, clamped at the borders.
    case bicubic
}

/// Everything a backend needs to resize `planes` planes from [inHeight, inWidth] to
/// [outHeight, outWidth].
public struct Resize2dGeometry: Equatable, Sendable {
    public var planes: Int
    public var inHeight: Int
    public var inWidth: Int
    public var outHeight: Int
    public var outWidth: Int
    public var mode: InterpolationMode
    public var alignCorners: Bool
    public var antialias: Bool
    /// The user's scale factors (output / input) when the size came from them; they then map
    /// coordinates as 1 / scale instead of in / out, as PyTorch does.
    public var scaleHeight: Double?
    public var scaleWidth: Double?

    public init(
        planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int, mode: InterpolationMode,
        alignCorners: Bool, antialias: Bool, scaleHeight: Double?, scaleWidth: Double?
    ) {
        self.planes = planes
        self.inHeight = inHeight
        self.inWidth = inWidth
        self.outHeight = outHeight
        self.outWidth = outWidth
        self.mode = mode
        self.alignCorners = alignCorners
        self.antialias = antialias
        self.scaleHeight = scaleHeight
        self.scaleWidth = scaleWidth
    }

    /// The per-axis source taps (height, width).
    public func tables() -> (height: ResampleTable, width: ResampleTable) {
        (
            ResampleTable(
                mode: mode, inSize: inHeight, outSize: outHeight, alignCorners: alignCorners,
                antialias: antialias, scale: scaleHeight),
            ResampleTable(
                mode: mode, inSize: inWidth, outSize: outWidth, alignCorners: alignCorners,
                antialias: antialias, scale: scaleWidth)
        )
    }
}

// MARK: - Resampling rules (PyTorch's, in Float32 like ATen's CPU kernels)

/// One axis of a resampling: for each output index o, `count[o]` taps
/// `(index[o * taps + t], weight[o * taps + t])`; the output is the weighted sum of the inputs at the
/// taps. Shared by every backend so that all use the same coordinates and weights.
public struct ResampleTable: Sendable {
    public let inSize: Int
    public let outSize: Int
    /// Taps per output (the widest window).
    public let taps: Int
    /// The axis is copied unchanged (PyTorch skips it).
    public let isIdentity: Bool
    public private(set) var index: [Int32]
    public private(set) var weight: [Float]
    public private(set) var count: [Int32]

    /// PyTorch's `area_pixel_compute_scale`: the source step per output step.
    @inline(__always)
    public static func areaPixelScale(inSize: Int, outSize: Int, alignCorners: Bool, scale: Double?) -> Float
    {
        if alignCorners { return outSize > 1 ? Float(inSize - 1) / Float(outSize - 1) : 0 }
        return scalesValue(scale, inSize: inSize, outSize: outSize)
    }

    /// PyTorch's `compute_scales_value`: 1 / scale factor when one was given, else in / out.
    @inline(__always)
    public static func scalesValue(_ scale: Double?, inSize: Int, outSize: Int) -> Float {
        if let s = scale, s > 0 { return Float(1.0 / s) }
        return Float(inSize) / Float(outSize)
    }

    /// PyTorch's `area_pixel_compute_source_index`: align_corners maps dst * scale; otherwise pixel
    /// centres map, (dst + 0.5) * scale - 0.5, clamped at 0 for the linear modes.
    @inline(__always)
    public static func sourceIndex(scale: Float, dst: Int, alignCorners: Bool, cubic: Bool) -> Float {
        if alignCorners { return scale * Float(dst) }
        let src = scale * (Float(dst) + 0.5) - 0.5
        return (!cubic && src < 0) ? 0 : src
    }

    /// PyTorch's `guard_index_and_lambda`: the floor index (at most in - 1) and the fraction in [0, 1].
    @inline(__always)
    public static func guardIndex(_ real: Float, inSize: Int) -> (Int, Float) {
        let i = Swift.min(Int(real.rounded(.down)), inSize - 1)
        let lambda = Swift.min(Swift.max(real - Float(i), 0), 1)
        return (i, lambda)
    }

    /// Keys cubic kernel for |x| <= 1.
    @inline(__always)
    public static func cubic1(_ x: Float, _ a: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
    /// Keys cubic kernel for 1 < |x| < 2.
    @inline(__always)
    public static func cubic2(_ x: Float, _ a: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }

    /// The four bicubic weights (A = -0.75) for taps at floor - 1 ... floor + 2, fraction `t`.
    @inline(__always)
    public static func cubicCoefficients(_ t: Float) -> (Float, Float, Float, Float) {
        let a: Float = -0.75
        let x2 = 1 - t
        return (cubic2(t + 1, a), cubic1(t, a), cubic1(x2, a), cubic2(x2 + 1, a))
    }

    /// The antialiasing filters: triangle (bilinear) or Keys cubic with A = -0.5 (bicubic, as PIL).
    @inline(__always)
    public static func antialiasFilter(_ v: Float, cubic: Bool) -> Float {
        let x = Swift.abs(v)
        if cubic {
            if x < 1 { return cubic1(x, -0.5) }
            if x < 2 { return cubic2(x, -0.5) }
            return 0
        }
        return x < 1 ? 1 - x : 0
    }

    /// The taps of one axis, following PyTorch's CPU kernels (`upsample_nearest2d`,
    /// `upsample_bilinear2d`, `upsample_bicubic2d` and the antialiased `_upsample_*_aa` separable
    /// kernels).
    /// - Parameter scale: the user's scale factor for this axis (output / input), if the size came from one.
    public init(
        mode: InterpolationMode, inSize: Int, outSize: Int, alignCorners: Bool, antialias: Bool,
        scale: Double?
    ) {
        self.inSize = inSize
        self.outSize = outSize
        func identity() -> (Int, Bool, [Int32], [Float], [Int32]) {
            (
                1, true, (0..<outSize).map { Int32($0) }, [Float](repeating: 1, count: outSize),
                [Int32](repeating: 1, count: outSize)
            )
        }
        var t: (taps: Int, id: Bool, index: [Int32], weight: [Float], count: [Int32])
        switch (mode, antialias) {
        case (.nearest, _):
            // nearest_idx: same size copies, exact doubling halves the index, else floor(dst * scale).
            if outSize == inSize {
                t = identity()
            } else {
                let s = ResampleTable.scalesValue(scale, inSize: inSize, outSize: outSize)
                let idx = (0..<outSize).map { o -> Int32 in
                    if outSize == 2 * inSize { return Int32(o >> 1) }
                    return Int32(Swift.min(Int((Float(o) * s).rounded(.down)), inSize - 1))
                }
                t = (
                    1, false, idx, [Float](repeating: 1, count: outSize),
                    [Int32](repeating: 1, count: outSize)
                )
            }
        case (.bilinear, false):
            if outSize == inSize {
                t = identity()
            } else {
                let s = ResampleTable.areaPixelScale(
                    inSize: inSize, outSize: outSize, alignCorners: alignCorners, scale: scale)
                var idx = [Int32](), w = [Float]()
                idx.reserveCapacity(2 * outSize)
                w.reserveCapacity(2 * outSize)
                for o in 0..<outSize {
                    let real = ResampleTable.sourceIndex(
                        scale: s, dst: o, alignCorners: alignCorners, cubic: false)
                    let (i0, l1) = ResampleTable.guardIndex(real, inSize: inSize)
                    let i1 = i0 + (i0 < inSize - 1 ? 1 : 0)
                    idx += [Int32(i0), Int32(i1)]
                    w += [1 - l1, l1]
                }
                t = (2, false, idx, w, [Int32](repeating: 2, count: outSize))
            }
        case (.bicubic, false):
            let s = ResampleTable.areaPixelScale(
                inSize: inSize, outSize: outSize, alignCorners: alignCorners, scale: scale)
            var idx = [Int32](), w = [Float]()
            idx.reserveCapacity(4 * outSize)
            w.reserveCapacity(4 * outSize)
            for o in 0..<outSize {
                let real = ResampleTable.sourceIndex(
                    scale: s, dst: o, alignCorners: alignCorners, cubic: true)
                let (i0, lambda) = ResampleTable.guardIndex(real, inSize: inSize)
                let c = ResampleTable.cubicCoefficients(lambda)
                for j in 0..<4 { idx.append(Int32(Swift.max(Swift.min(i0 - 1 + j, inSize - 1), 0))) }
                w += [c.0, c.1, c.2, c.3]
            }
            t = (4, false, idx, w, [Int32](repeating: 4, count: outSize))
        case (_, true):
            // Separable antialiasing (PIL's scheme): the filter widens by the scale when downsampling;
            // weights are normalised to sum to 1. A dimension whose size does not change is skipped.
            if outSize == inSize {
                t = identity()
                break
            }
            let cubic = mode == .bicubic
            let interpSize = cubic ? 4 : 2
            let s = ResampleTable.areaPixelScale(
                inSize: inSize, outSize: outSize, alignCorners: alignCorners, scale: scale)
            let support: Float =
                s >= 1 ? Float(Double(interpSize) * 0.5 * Double(s)) : Float(interpSize) * 0.5
            let maxTaps = Int(support.rounded(.up)) * 2 + 1
            let invScale: Float = s >= 1 ? Float(1.0 / Double(s)) : 1
            var idx = [Int32](repeating: 0, count: maxTaps * outSize)
            var w = [Float](repeating: 0, count: maxTaps * outSize)
            var cnt = [Int32](repeating: 0, count: outSize)
            for o in 0..<outSize {
                let center = Float(Double(s) * (Double(o) + 0.5))
                let xmin = Swift.max(Int(Double(center - support) + 0.5), 0)
                var xsize = Swift.min(Int(Double(center + support) + 0.5), inSize) - xmin
                xsize = Swift.min(Swift.max(xsize, 0), maxTaps)
                var total: Float = 0
                for j in 0..<xsize {
                    let arg = Float((Double(Float(j + xmin) - center) + 0.5) * Double(invScale))
                    let v = ResampleTable.antialiasFilter(arg, cubic: cubic)
                    w[o * maxTaps + j] = v
                    total += v
                }
                for j in 0..<xsize {
                    if total != 0 { w[o * maxTaps + j] /= total }
                    idx[o * maxTaps + j] = Int32(xmin + j)
                }
                cnt[o] = Int32(xsize)
            }
            t = (maxTaps, false, idx, w, cnt)
        }
        taps = t.taps
        isIdentity = t.id
        index = t.index
        weight = t.weight
        count = t.count
    }
}

// MARK: - Convolution

/// Dot product of two contiguous float runs with 8-wide SIMD partial sums.
@inline(__always)
func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD8<Float>(repeating: 0), acc1 = SIMD8<Float>(repeating: 0)
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var i = 0
    while i + 16 <= n {
        acc0 +=
            ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        acc1 +=
            ra.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
            * rb.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n {
        s += a[i] * b[i]
        i += 1
    }
    return s
}

/// Valid output range [lo, hi) along one axis for a tap at input offset `o * stride + offset`.
@inline(__always)
func validOutputRange(offset: Int, stride: Int, inSize: Int, outSize: Int) -> (Int, Int) {
    let lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride
    let last = inSize - 1 - offset
    let hi = last < 0 ? 0 : Swift.min(outSize, last / stride + 1)
    let l = Swift.min(lo, outSize)
    return (l, Swift.max(l, hi))
}

public enum ConvKernels {
    /// Column-buffer budget (floats) per chunk of images: chunks keep the unfolded input bounded.
    static let columnBudget = 1 << 22

    @inline(__always)
    static func allocate(_ n: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(n, 1))
    }

    /// Unfolds group `grp` of images `n0 ..< n0 + nb` into `col` [Cg*kH*kW, nb*P] (P = Ho*Wo).
    static func im2col(
        _ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, _ g: Conv2dGeometry, group grp: Int,
        n0: Int, nb: Int
    ) {
        let cg = g.inPerGroup, kh = g.kernelHeight, kw = g.kernelWidth
        let ho = g.outHeight, wo = g.outWidth, p = ho * wo
        let h = g.inHeight, w = g.inWidth
        let sh = g.strideHeight, sw = g.strideWidth
        let rowLen = nb * p
        let rows = cg * kh * kw
        ComputeRuntime.parallelFor(nb * rows, grain: Swift.max(1, 4096 / Swift.max(p, 1))) { r in
            for item in r {
                let j = item / rows, row = item % rows
                let c = row / (kh * kw), ky = (row / kw) % kh, kx = row % kw
                let src = x + ((n0 + j) * g.inChannels + grp * cg + c) * h * w
                let dst = col + row * rowLen + j * p
                let offY = ky * g.dilationHeight - g.padHeight
                let offX = kx * g.dilationWidth - g.padWidth
                let (xlo, xhi) = validOutputRange(offset: offX, stride: sw, inSize: w, outSize: wo)
                for oy in 0..<ho {
                    let iy = oy * sh + offY
                    let d = dst + oy * wo
                    if iy < 0 || iy >= h {
                        d.update(repeating: 0, count: wo)
                        continue
                    }
                    let s = src + iy * w + offX
                    for ox in 0..<xlo { d[ox] = 0 }
                    if sw == 1 {
                        for ox in xlo..<xhi { d[ox] = s[ox] }
                    } else {
                        for ox in xlo..<xhi { d[ox] = s[ox * sw] }
                    }
                    for ox in xhi..<wo { d[ox] = 0 }
                }
            }
        }
    }

    /// Adds the columns `col` [Cg*kH*kW, nb*P] back into group `grp` of images `n0 ..< n0 + nb` of dx.
    static func col2im(
        _ col: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ g: Conv2dGeometry, group grp: Int,
        n0: Int, nb: Int
    ) {
        let cg = g.inPerGroup, kh = g.kernelHeight, kw = g.kernelWidth
        let ho = g.outHeight, wo = g.outWidth, p = ho * wo
        let h = g.inHeight, w = g.inWidth
        let sh = g.strideHeight, sw = g.strideWidth
        let rowLen = nb * p
        ComputeRuntime.parallelFor(nb * cg, grain: 1) { r in
            for item in r {
                let j = item / cg, c = item % cg
                let dst = dx + ((n0 + j) * g.inChannels + grp * cg + c) * h * w
                for ky in 0..<kh {
                    let offY = ky * g.dilationHeight - g.padHeight
                    for kx in 0..<kw {
                        let offX = kx * g.dilationWidth - g.padWidth
                        let (xlo, xhi) = validOutputRange(offset: offX, stride: sw, inSize: w, outSize: wo)
                        let src = col + ((c * kh + ky) * kw + kx) * rowLen + j * p
                        for oy in 0..<ho {
                            let iy = oy * sh + offY
                            if iy < 0 || iy >= h { continue }
                            let d = dst + iy * w + offX
                            let s = src + oy * wo
                            if sw == 1 {
                                for ox in xlo..<xhi { d[ox] += s[ox] }
                            } else {
                                for ox in xlo..<xhi { d[ox * sw] += s[ox] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Whether to run one GEMM per image (large images, or a single one) rather than one GEMM over
    /// the chunk followed by a copy between [Og, nb, P] and the NCHW layout.
    @inline(__always)
    static func perImage(nb: Int, p: Int) -> Bool { nb == 1 || p >= 256 }

    /// Copies group `grp` of dy for images n0 ..< n0 + nb into t [Og, nb * P].
    static func gatherGroup(
        _ dy: UnsafePointer<Float>, _ t: UnsafeMutablePointer<Float>, _ g: Conv2dGeometry, group grp: Int,
        n0: Int, nb: Int
    ) {
        let og = g.outPerGroup, p = g.outHeight * g.outWidth
        ComputeRuntime.parallelFor(nb * og, grain: Swift.max(1, 8192 / p)) { r in
            for item in r {
                let j = item / og, o = item % og
                (t + o * nb * p + j * p).update(
                    from: dy + ((n0 + j) * g.outChannels + grp * og + o) * p, count: p)
            }
        }
    }

    /// Images per chunk so that the column buffer stays within budget.
    static func chunk(_ g: Conv2dGeometry) -> Int {
        let k = g.inPerGroup * g.kernelHeight * g.kernelWidth
        let p = g.outHeight * g.outWidth
        return Swift.max(1, Swift.min(g.batch, columnBudget / Swift.max(k * p, 1)))
    }

    /// y [N, O, Ho, Wo] = conv(x, weight) + bias.
    public static func forward(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>,
        _ g: Conv2dGeometry
    ) {
        let p = g.outHeight * g.outWidth
        if g.batch == 0 || g.outChannels == 0 || p == 0 { return }
        if g.isDepthwise {
            depthwiseForward(x, weight: weight, bias: bias, y, g)
            return
        }
        let og = g.outPerGroup, cg = g.inPerGroup
        let k = cg * g.kernelHeight * g.kernelWidth
        if k == 0 {
            fillBias(bias, y, g)
            return
        }
        if g.isPointwise {
            for n in 0..<g.batch {
                for grp in 0..<g.groups {
                    BLAS.sgemm(
                        transA: false, transB: false, m: og, n: p, k: cg, a: weight + grp * og * k, lda: k,
                        b: x + (n * g.inChannels + grp * cg) * p, ldb: p, beta: 0,
                        c: y + (n * g.outChannels + grp * og) * p, ldc: p)
                }
            }
            addBias(bias, y, g)
            return
        }
        let nbMax = chunk(g)
        let col = allocate(k * nbMax * p)
        let tmp = perImage(nb: nbMax, p: p) ? nil : allocate(og * nbMax * p)
        defer {
            col.deallocate()
            tmp?.deallocate()
        }
        var n0 = 0
        while n0 < g.batch {
            let nb = Swift.min(nbMax, g.batch - n0)
            for grp in 0..<g.groups {
                im2col(x, col, g, group: grp, n0: n0, nb: nb)
                if perImage(nb: nb, p: p) {
                    // One GEMM per image, straight into y, reading that image's block of columns.
                    for j in 0..<nb {
                        BLAS.sgemm(
                            transA: false, transB: false, m: og, n: p, k: k, a: weight + grp * og * k, lda: k,
                            b: col + j * p,
                            ldb: nb * p, beta: 0, c: y + ((n0 + j) * g.outChannels + grp * og) * p, ldc: p)
                    }
                } else {
                    let t = tmp!
                    BLAS.sgemm(
                        transA: false, transB: false, m: og, n: nb * p, k: k, a: weight + grp * og * k,
                        lda: k, b: col,
                        ldb: nb * p, beta: 0, c: t, ldc: nb * p)
                    // [Og, nb, P] -> y[n0 + j, grp * Og + o, P]
                    ComputeRuntime.parallelFor(nb * og, grain: Swift.max(1, 8192 / p)) { r in
                        for item in r {
                            let j = item / og, o = item % og
                            (y + ((n0 + j) * g.outChannels + grp * og + o) * p).update(
                                from: t + o * nb * p + j * p, count: p)
                        }
                    }
                }
            }
            n0 += nb
        }
        addBias(bias, y, g)
    }

    static func fillBias(_ bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>, _ g: Conv2dGeometry)
    {
        let p = g.outHeight * g.outWidth
        ComputeRuntime.parallelFor(g.batch * g.outChannels, grain: Swift.max(1, 8192 / Swift.max(p, 1))) {
            r in
            for item in r { (y + item * p).update(repeating: bias?[item % g.outChannels] ?? 0, count: p) }
        }
    }

    static func addBias(_ bias: UnsafePointer<Float>?, _ y: UnsafeMutablePointer<Float>, _ g: Conv2dGeometry)
    {
        guard let bias else { return }
        let p = g.outHeight * g.outWidth
        ComputeRuntime.parallelFor(g.batch * g.outChannels, grain: Swift.max(1, 8192 / Swift.max(p, 1))) {
            r in
            for item in r {
                let b = bias[item % g.outChannels]
                let d = y + item * p
                for i in 0..<p { d[i] += b }
            }
        }
    }

    /// dx [N, C, H, W] = the input gradient of the convolution for output gradient dy.
    public static func backwardInput(
        dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
        _ g: Conv2dGeometry
    ) {
        let hw = g.inHeight * g.inWidth
        let p = g.outHeight * g.outWidth
        let total = g.batch * g.inChannels * hw
        if total == 0 { return }
        if g.isDepthwise {
            depthwiseBackwardInput(dy: dy, weight: weight, dx: dx, g)
            return
        }
        let og = g.outPerGroup, cg = g.inPerGroup
        let k = cg * g.kernelHeight * g.kernelWidth
        if g.isPointwise {
            for n in 0..<g.batch {
                for grp in 0..<g.groups {
                    let c = dx + (n * g.inChannels + grp * cg) * p
                    if og == 0 {
                        c.update(repeating: 0, count: cg * p)
                        continue
                    }
                    BLAS.sgemm(
                        transA: true, transB: false, m: cg, n: p, k: og, a: weight + grp * og * k, lda: k,
                        b: dy + (n * g.outChannels + grp * og) * p, ldb: p, beta: 0, c: c, ldc: p)
                }
            }
            return
        }
        ComputeRuntime.parallelFor(total) { r in (dx + r.lowerBound).update(repeating: 0, count: r.count) }
        if og == 0 || p == 0 { return }
        let nbMax = chunk(g)
        let dcol = allocate(k * nbMax * p)
        let dyg = perImage(nb: nbMax, p: p) ? nil : allocate(og * nbMax * p)
        defer {
            dcol.deallocate()
            dyg?.deallocate()
        }
        var n0 = 0
        while n0 < g.batch {
            let nb = Swift.min(nbMax, g.batch - n0)
            for grp in 0..<g.groups {
                if perImage(nb: nb, p: p) {
                    for j in 0..<nb {
                        BLAS.sgemm(
                            transA: true, transB: false, m: k, n: p, k: og, a: weight + grp * og * k, lda: k,
                            b: dy + ((n0 + j) * g.outChannels + grp * og) * p, ldb: p, beta: 0,
                            c: dcol + j * p, ldc: nb * p)
                    }
                } else {
                    let t = dyg!
                    gatherGroup(dy, t, g, group: grp, n0: n0, nb: nb)
                    BLAS.sgemm(
                        transA: true, transB: false, m: k, n: nb * p, k: og, a: weight + grp * og * k, lda: k,
                        b: t, ldb: nb * p,
                        beta: 0, c: dcol, ldc: nb * p)
                }
                col2im(dcol, dx, g, group: grp, n0: n0, nb: nb)
            }
            n0 += nb
        }
    }

    /// dWeight [O, C/groups, kH, kW] and dBias [O] (either may be nil) for output gradient dy.
    public static func backwardWeight(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>?,
        dBias: UnsafeMutablePointer<Float>?,
        _ g: Conv2dGeometry
    ) {
        let p = g.outHeight * g.outWidth
        if let dBias {
            ComputeRuntime.parallelFor(g.outChannels, grain: Swift.max(1, 8192 / Swift.max(p * g.batch, 1))) {
                r in
                for o in r {
                    var acc = 0.0
                    for n in 0..<g.batch {
                        acc += Double(ReduceKernels.sum(dy + (n * g.outChannels + o) * p, p))
                    }
                    dBias[o] = Float(acc)
                }
            }
        }
        guard let dWeight else { return }
        let og = g.outPerGroup, cg = g.inPerGroup
        let k = cg * g.kernelHeight * g.kernelWidth
        if og * k == 0 || g.outChannels == 0 { return }
        if g.batch == 0 || p == 0 {
            dWeight.update(repeating: 0, count: g.outChannels * k)
            return
        }
        if g.isDepthwise {
            depthwiseBackwardWeight(dy: dy, x: x, dWeight: dWeight, g)
            return
        }
        if g.isPointwise {
            for n in 0..<g.batch {
                for grp in 0..<g.groups {
                    BLAS.sgemm(
                        transA: false, transB: true, m: og, n: cg, k: p,
                        a: dy + (n * g.outChannels + grp * og) * p, lda: p,
                        b: x + (n * g.inChannels + grp * cg) * p, ldb: p, beta: n == 0 ? 0 : 1,
                        c: dWeight + grp * og * k, ldc: k)
                }
            }
            return
        }
        let nbMax = chunk(g)
        let col = allocate(k * nbMax * p)
        let dyg = perImage(nb: nbMax, p: p) ? nil : allocate(og * nbMax * p)
        defer {
            col.deallocate()
            dyg?.deallocate()
        }
        var n0 = 0
        while n0 < g.batch {
            let nb = Swift.min(nbMax, g.batch - n0)
            for grp in 0..<g.groups {
                im2col(x, col, g, group: grp, n0: n0, nb: nb)
                if perImage(nb: nb, p: p) {
                    for j in 0..<nb {
                        BLAS.sgemm(
                            transA: false, transB: true, m: og, n: k, k: p,
                            a: dy + ((n0 + j) * g.outChannels + grp * og) * p, lda: p,
                            b: col + j * p, ldb: nb * p, beta: n0 + j == 0 ? 0 : 1, c: dWeight + grp * og * k,
                            ldc: k)
                    }
                } else {
                    let t = dyg!
                    gatherGroup(dy, t, g, group: grp, n0: n0, nb: nb)
                    BLAS.sgemm(
                        transA: false, transB: true, m: og, n: k, k: nb * p, a: t, lda: nb * p, b: col,
                        ldb: nb * p,
                        beta: n0 == 0 ? 0 : 1, c: dWeight + grp * og * k, ldc: k)
                }
            }
            n0 += nb
        }
    }

    // MARK: Depthwise (groups == C): direct loops over the taps

    static func depthwiseForward(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>,
        _ g: Conv2dGeometry
    ) {
        let mult = g.outPerGroup
        let h = g.inHeight, w = g.inWidth, ho = g.outHeight, wo = g.outWidth
        let kh = g.kernelHeight, kw = g.kernelWidth, sh = g.strideHeight, sw = g.strideWidth
        ComputeRuntime.parallelFor(
            g.batch * g.outChannels, grain: Swift.max(1, 4096 / Swift.max(ho * wo * kh * kw, 1))
        ) { r in
            for item in r {
                let n = item / g.outChannels, o = item % g.outChannels
                let c = o / mult
                let src = x + (n * g.inChannels + c) * h * w
                let dst = y + item * ho * wo
                dst.update(repeating: bias?[o] ?? 0, count: ho * wo)
                for ky in 0..<kh {
                    let offY = ky * g.dilationHeight - g.padHeight
                    let (ylo, yhi) = validOutputRange(offset: offY, stride: sh, inSize: h, outSize: ho)
                    for kx in 0..<kw {
                        let wv = weight[(o * kh + ky) * kw + kx]
                        let offX = kx * g.dilationWidth - g.padWidth
                        let (xlo, xhi) = validOutputRange(offset: offX, stride: sw, inSize: w, outSize: wo)
                        for oy in ylo..<yhi {
                            let s = src + (oy * sh + offY) * w + offX
                            let d = dst + oy * wo
                            if sw == 1 {
                                for ox in xlo..<xhi { d[ox] += wv * s[ox] }
                            } else {
                                for ox in xlo..<xhi { d[ox] += wv * s[ox * sw] }
                            }
                        }
                    }
                }
            }
        }
    }

    static func depthwiseBackwardInput(
        dy: UnsafePointer<Float>, weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
        _ g: Conv2dGeometry
    ) {
        let mult = g.outPerGroup
        let h = g.inHeight, w = g.inWidth, ho = g.outHeight, wo = g.outWidth
        let kh = g.kernelHeight, kw = g.kernelWidth, sh = g.strideHeight, sw = g.strideWidth
        ComputeRuntime.parallelFor(
            g.batch * g.inChannels, grain: Swift.max(1, 4096 / Swift.max(ho * wo * kh * kw * mult, 1))
        ) { r in
            for item in r {
                let n = item / g.inChannels, c = item % g.inChannels
                let dst = dx + item * h * w
                dst.update(repeating: 0, count: h * w)
                for m in 0..<mult {
                    let o = c * mult + m
                    let src = dy + (n * g.outChannels + o) * ho * wo
                    for ky in 0..<kh {
                        let offY = ky * g.dilationHeight - g.padHeight
                        let (ylo, yhi) = validOutputRange(offset: offY, stride: sh, inSize: h, outSize: ho)
                        for kx in 0..<kw {
                            let wv = weight[(o * kh + ky) * kw + kx]
                            let offX = kx * g.dilationWidth - g.padWidth
                            let (xlo, xhi) = validOutputRange(
                                offset: offX, stride: sw, inSize: w, outSize: wo)
                            for oy in ylo..<yhi {
                                let d = dst + (oy * sh + offY) * w + offX
                                let s = src + oy * wo
                                if sw == 1 {
                                    for ox in xlo..<xhi { d[ox] += wv * s[ox] }
                                } else {
                                    for ox in xlo..<xhi { d[ox * sw] += wv * s[ox] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    static func depthwiseBackwardWeight(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
        _ g: Conv2dGeometry
    ) {
        let mult = g.outPerGroup
        let h = g.inHeight, w = g.inWidth, ho = g.outHeight, wo = g.outWidth
        let kh = g.kernelHeight, kw = g.kernelWidth, sh = g.strideHeight, sw = g.strideWidth
        ComputeRuntime.parallelFor(
            g.outChannels * kh * kw, grain: Swift.max(1, 4096 / Swift.max(ho * wo * g.batch, 1))
        ) { r in
            for item in r {
                let o = item / (kh * kw), ky = (item / kw) % kh, kx = item % kw
                let c = o / mult
                let offY = ky * g.dilationHeight - g.padHeight
                let offX = kx * g.dilationWidth - g.padWidth
                let (ylo, yhi) = validOutputRange(offset: offY, stride: sh, inSize: h, outSize: ho)
                let (xlo, xhi) = validOutputRange(offset: offX, stride: sw, inSize: w, outSize: wo)
                var acc = 0.0
                for n in 0..<g.batch {
                    let src = x + (n * g.inChannels + c) * h * w
                    let gy = dy + (n * g.outChannels + o) * ho * wo
                    for oy in ylo..<yhi {
                        let s = src + (oy * sh + offY) * w + offX
                        let d = gy + oy * wo
                        var row: Float = 0
                        if sw == 1 {
                            row = dotProduct(d + xlo, s + xlo, xhi - xlo)
                        } else {
                            for ox in xlo..<xhi { row += d[ox] * s[ox * sw] }
                        }
                        acc += Double(row)
                    }
                }
                dWeight[item] = Float(acc)
            }
        }
    }
}

// MARK: - Pooling

public enum PoolKernels {
    /// Max over each window (padding never wins; NaN propagates, the first maximum on ties); `indices`
    /// receives the flat index (ih * W + iw) of the winner within its plane, or -1 for an empty window.
    public static func maxForward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>,
        _ g: Pool2dGeometry
    ) {
        let h = g.inHeight, w = g.inWidth, ho = g.outHeight, wo = g.outWidth
        ComputeRuntime.parallelFor(
            g.planes, grain: Swift.max(1, 4096 / Swift.max(ho * wo * g.kernelHeight * g.kernelWidth, 1))
        ) { r in
            for plane in r {
                let src = x + plane * h * w
                let dst = y + plane * ho * wo
                let idx = indices + plane * ho * wo
                for oy in 0..<ho {
                    var y0 = oy * g.strideHeight - g.padHeight
                    let y1 = Swift.min(y0 + (g.kernelHeight - 1) * g.dilationHeight + 1, h)
                    while y0 < 0 { y0 += g.dilationHeight }
                    for ox in 0..<wo {
                        var x0 = ox * g.strideWidth - g.padWidth
                        let x1 = Swift.min(x0 + (g.kernelWidth - 1) * g.dilationWidth + 1, w)
                        while x0 < 0 { x0 += g.dilationWidth }
                        var best = -Float.infinity
                        var at: Int32 = (y0 < y1 && x0 < x1) ? Int32(y0 * w + x0) : -1
                        var iy = y0
                        while iy < y1 {
                            var ix = x0
                            while ix < x1 {
                                let v = src[iy * w + ix]
                                if v > best || v.isNaN {
                                    best = v
                                    at = Int32(iy * w + ix)
                                }
                                ix += g.dilationWidth
                            }
                            iy += g.dilationHeight
                        }
                        dst[oy * wo + ox] = best
                        idx[oy * wo + ox] = at
                    }
                }
            }
        }
    }

    /// dx = 0, then dx[argmax] += dy for every window.
    public static func maxBackward(
        dy: UnsafePointer<Float>, indices: UnsafePointer<Int32>, dx: UnsafeMutablePointer<Float>,
        _ g: Pool2dGeometry
    ) {
        let hw = g.inHeight * g.inWidth, p = g.outHeight * g.outWidth
        ComputeRuntime.parallelFor(g.planes, grain: Swift.max(1, 8192 / Swift.max(hw + p, 1))) { r in
            for plane in r {
                let d = dx + plane * hw
                d.update(repeating: 0, count: hw)
                let s = dy + plane * p
                let idx = indices + plane * p
                for i in 0..<p where idx[i] >= 0 { d[Int(idx[i])] += s[i] }
            }
        }
    }

    /// The window of output (oy, ox) for average pooling: clipped bounds and the divisor.
    @inline(__always)
    static func avgWindow(_ oy: Int, _ ox: Int, _ g: Pool2dGeometry, countIncludePad: Bool) -> (
        Int, Int, Int, Int, Float
    ) {
        var y0 = oy * g.strideHeight - g.padHeight, x0 = ox * g.strideWidth - g.padWidth
        var y1 = Swift.min(y0 + g.kernelHeight, g.inHeight + g.padHeight)
        var x1 = Swift.min(x0 + g.kernelWidth, g.inWidth + g.padWidth)
        let poolSize = (y1 - y0) * (x1 - x0)
        y0 = Swift.max(y0, 0)
        x0 = Swift.max(x0, 0)
        y1 = Swift.min(y1, g.inHeight)
        x1 = Swift.min(x1, g.inWidth)
        let divisor = countIncludePad ? poolSize : (y1 - y0) * (x1 - x0)
        return (y0, y1, x0, x1, Float(divisor))
    }

    /// Mean over each window (PyTorch's divisor rule: the window clipped to input + padding when
    /// counting padding, else only the input part; an empty window gives 0).
    public static func avgForward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: Pool2dGeometry,
        countIncludePad: Bool
    ) {
        let h = g.inHeight, w = g.inWidth, ho = g.outHeight, wo = g.outWidth
        ComputeRuntime.parallelFor(
            g.planes, grain: Swift.max(1, 4096 / Swift.max(ho * wo * g.kernelHeight * g.kernelWidth, 1))
        ) { r in
            for plane in r {
                let src = x + plane * h * w
                let dst = y + plane * ho * wo
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        let (y0, y1, x0, x1, div) = avgWindow(oy, ox, g, countIncludePad: countIncludePad)
                        if y0 >= y1 || x0 >= x1 {
                            dst[oy * wo + ox] = 0
                            continue
                        }
                        var s: Float = 0
                        for iy in y0..<y1 { for ix in x0..<x1 { s += src[iy * w + ix] } }
                        dst[oy * wo + ox] = s / div
                    }
                }
            }
        }
    }

    public static func avgBackward(
        dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, _ g: Pool2dGeometry, countIncludePad: Bool
    ) {
        let h = g.inHeight, w = g.inWidth, ho = g.outHeight, wo = g.outWidth
        ComputeRuntime.parallelFor(
            g.planes, grain: Swift.max(1, 4096 / Swift.max(ho * wo * g.kernelHeight * g.kernelWidth, 1))
        ) { r in
            for plane in r {
                let dst = dx + plane * h * w
                dst.update(repeating: 0, count: h * w)
                let src = dy + plane * ho * wo
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        let (y0, y1, x0, x1, div) = avgWindow(oy, ox, g, countIncludePad: countIncludePad)
                        if y0 >= y1 || x0 >= x1 { continue }
                        let v = src[oy * wo + ox] / div
                        for iy in y0..<y1 { for ix in x0..<x1 { dst[iy * w + ix] += v } }
                    }
                }
            }
        }
    }

    /// PyTorch's adaptive bins: [floor(i * in / out), ceil((i + 1) * in / out)).
    @inline(__always)
    public static func adaptiveBin(_ i: Int, inSize: Int, outSize: Int) -> (Int, Int) {
        ((i * inSize) / outSize, ((i + 1) * inSize + outSize - 1) / outSize)
    }

    public static func adaptiveAvgForward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, planes: Int, inHeight h: Int,
        inWidth w: Int, outHeight ho: Int,
        outWidth wo: Int
    ) {
        ComputeRuntime.parallelFor(planes, grain: Swift.max(1, 4096 / Swift.max(h * w, 1))) { r in
            for plane in r {
                let src = x + plane * h * w
                let dst = y + plane * ho * wo
                for oy in 0..<ho {
                    let (y0, y1) = adaptiveBin(oy, inSize: h, outSize: ho)
                    for ox in 0..<wo {
                        let (x0, x1) = adaptiveBin(ox, inSize: w, outSize: wo)
                        var s: Float = 0
                        for iy in y0..<y1 { for ix in x0..<x1 { s += src[iy * w + ix] } }
                        dst[oy * wo + ox] = s / Float(y1 - y0) / Float(x1 - x0)
                    }
                }
            }
        }
    }

    public static func adaptiveAvgBackward(
        dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, planes: Int, inHeight h: Int,
        inWidth w: Int, outHeight ho: Int,
        outWidth wo: Int
    ) {
        ComputeRuntime.parallelFor(planes, grain: Swift.max(1, 4096 / Swift.max(h * w, 1))) { r in
            for plane in r {
                let dst = dx + plane * h * w
                dst.update(repeating: 0, count: h * w)
                let src = dy + plane * ho * wo
                for oy in 0..<ho {
                    let (y0, y1) = adaptiveBin(oy, inSize: h, outSize: ho)
                    for ox in 0..<wo {
                        let (x0, x1) = adaptiveBin(ox, inSize: w, outSize: wo)
                        let v = src[oy * wo + ox] / Float(y1 - y0) / Float(x1 - x0)
                        for iy in y0..<y1 { for ix in x0..<x1 { dst[iy * w + ix] += v } }
                    }
                }
            }
        }
    }
}

// MARK: - Resampling

public enum ResampleKernels {
    /// dst [rows, outSize] from src [rows, inSize] along the contiguous axis.
    static func horizontal(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, _ t: ResampleTable
    ) {
        let taps = t.taps, inW = t.inSize, outW = t.outSize
        t.index.withUnsafeBufferPointer { ib in
            t.weight.withUnsafeBufferPointer { wb in
                t.count.withUnsafeBufferPointer { cb in
                    let idx = ib.baseAddress!, wt = wb.baseAddress!, cnt = cb.baseAddress!
                    ComputeRuntime.parallelFor(rows, grain: Swift.max(1, 8192 / Swift.max(outW * taps, 1))) {
                        r in
                        for row in r {
                            let s = src + row * inW, d = dst + row * outW
                            for o in 0..<outW {
                                let base = o * taps
                                var acc: Float = 0
                                for k in 0..<Int(cnt[o]) { acc += s[Int(idx[base + k])] * wt[base + k] }
                                d[o] = acc
                            }
                        }
                    }
                }
            }
        }
    }

    /// dst [planes, outSize, width] from src [planes, inSize, width] along the middle axis.
    static func vertical(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, planes: Int, width: Int,
        _ t: ResampleTable
    ) {
        let taps = t.taps, inH = t.inSize, outH = t.outSize
        t.index.withUnsafeBufferPointer { ib in
            t.weight.withUnsafeBufferPointer { wb in
                t.count.withUnsafeBufferPointer { cb in
                    let idx = ib.baseAddress!, wt = wb.baseAddress!, cnt = cb.baseAddress!
                    ComputeRuntime.parallelFor(
                        planes * outH, grain: Swift.max(1, 8192 / Swift.max(width * taps, 1))
                    ) { r in
                        for item in r {
                            let p = item / outH, o = item % outH
                            let d = dst + item * width
                            let base = o * taps
                            let c = Int(cnt[o])
                            if c == 0 {
                                d.update(repeating: 0, count: width)
                                continue
                            }
                            let s0 = src + (p * inH + Int(idx[base])) * width
                            let w0 = wt[base]
                            for i in 0..<width { d[i] = s0[i] * w0 }
                            for k in 1..<Swift.max(c, 1) {
                                let s = src + (p * inH + Int(idx[base + k])) * width
                                let wk = wt[base + k]
                                for i in 0..<width { d[i] += s[i] * wk }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adjoint of `horizontal`: dst [rows, inSize] = sum of src [rows, outSize] along the taps.
    static func horizontalAdjoint(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, _ t: ResampleTable
    ) {
        let taps = t.taps, inW = t.inSize, outW = t.outSize
        t.index.withUnsafeBufferPointer { ib in
            t.weight.withUnsafeBufferPointer { wb in
                t.count.withUnsafeBufferPointer { cb in
                    let idx = ib.baseAddress!, wt = wb.baseAddress!, cnt = cb.baseAddress!
                    ComputeRuntime.parallelFor(rows, grain: Swift.max(1, 8192 / Swift.max(outW * taps, 1))) {
                        r in
                        for row in r {
                            let s = src + row * outW, d = dst + row * inW
                            d.update(repeating: 0, count: inW)
                            for o in 0..<outW {
                                let base = o * taps, v = s[o]
                                for k in 0..<Int(cnt[o]) { d[Int(idx[base + k])] += v * wt[base + k] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adjoint of `vertical`: dst [planes, inSize, width] from src [planes, outSize, width].
    static func verticalAdjoint(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, planes: Int, width: Int,
        _ t: ResampleTable
    ) {
        let taps = t.taps, inH = t.inSize, outH = t.outSize
        t.index.withUnsafeBufferPointer { ib in
            t.weight.withUnsafeBufferPointer { wb in
                t.count.withUnsafeBufferPointer { cb in
                    let idx = ib.baseAddress!, wt = wb.baseAddress!, cnt = cb.baseAddress!
                    ComputeRuntime.parallelFor(
                        planes, grain: Swift.max(1, 8192 / Swift.max(width * outH * taps, 1))
                    ) { r in
                        for p in r {
                            let plane = dst + p * inH * width
                            plane.update(repeating: 0, count: inH * width)
                            for o in 0..<outH {
                                let s = src + (p * outH + o) * width
                                let base = o * taps
                                for k in 0..<Int(cnt[o]) {
                                    let d = plane + Int(idx[base + k]) * width
                                    let wk = wt[base + k]
                                    for i in 0..<width { d[i] += s[i] * wk }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    static func copy(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        ComputeRuntime.parallelFor(n) { r in
            (dst + r.lowerBound).update(from: src + r.lowerBound, count: r.count)
        }
    }

    /// y [planes, outH, outW] = resize(x [planes, inH, inW]): the width pass, then the height pass.
    public static func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ g: Resize2dGeometry
    ) {
        let (th, tw) = g.tables()
        let rows = g.planes * g.inHeight
        if g.planes == 0 { return }
        switch (th.isIdentity, tw.isIdentity) {
        case (true, true): copy(x, y, g.planes * g.inHeight * g.inWidth)
        case (true, false): horizontal(x, y, rows: rows, tw)
        case (false, true): vertical(x, y, planes: g.planes, width: g.inWidth, th)
        case (false, false):
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(rows * g.outWidth, 1))
            defer { tmp.deallocate() }
            horizontal(x, tmp, rows: rows, tw)
            vertical(tmp, y, planes: g.planes, width: g.outWidth, th)
        }
    }

    /// dx [planes, inH, inW] = the adjoint of `forward` applied to dy [planes, outH, outW].
    public static func backward(
        dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, _ g: Resize2dGeometry
    ) {
        let (th, tw) = g.tables()
        let rows = g.planes * g.inHeight
        if g.planes == 0 { return }
        switch (th.isIdentity, tw.isIdentity) {
        case (true, true): copy(dy, dx, g.planes * g.inHeight * g.inWidth)
        case (true, false): horizontalAdjoint(dy, dx, rows: rows, tw)
        case (false, true): verticalAdjoint(dy, dx, planes: g.planes, width: g.inWidth, th)
        case (false, false):
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(rows * g.outWidth, 1))
            defer { tmp.deallocate() }
            verticalAdjoint(dy, tmp, planes: g.planes, width: g.outWidth, th)
            horizontalAdjoint(tmp, dx, rows: rows, tw)
        }
    }
}
