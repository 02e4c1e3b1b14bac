import Foundation

/// Normalisation kernels: layer / RMS / group norm over contiguous groups of a row, and batch norm
/// over the batch and spatial axes of each channel, each with one fused backward.
///
/// Layouts (all contiguous, row-major):
/// - grouped norms: `x` is `[rows, groups, channels / groups, inner]`; statistics per (row, group)
///   over its `channels / groups * inner` contiguous elements; the affine weight and bias are per
///   channel (broadcast over `inner`). Layer norm is `groups = 1, inner = 1`; group norm is
///   `rows = N, inner = H * W`.
/// - batch norm: `x` is `[batch, channels, inner]`; statistics per channel over `batch * inner`.
///
/// Reductions over rows for `dweight`/`dbias` go through per-chunk partial sums whose chunking depends
/// only on the shape, so results do not depend on the thread count.
public enum NormKernels {
    // MARK: Vector helpers

    /// Sum of `x[i] - c` over `n` contiguous floats and the sum of its squares.
    @inline(__always)
    static func centeredMoments(_ x: UnsafePointer<Float>, _ n: Int, _ c: Float) -> (Float, Float) {
        let raw = UnsafeRawPointer(x)
        let cv = SIMD8<Float>(repeating: c)
        var s0 = SIMD8<Float>(repeating: 0), s1 = SIMD8<Float>(repeating: 0)
        var q0 = SIMD8<Float>(repeating: 0), q1 = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 16 <= n {
            let a = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - cv
            let b = raw.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self) - cv
            s0 += a
            s1 += b
            q0 += a * a
            q1 += b * b
            i += 16
        }
        var s = (s0 + s1).sum(), q = (q0 + q1).sum()
        while i < n {
            let d = x[i] - c
            s += d
            q += d * d
            i += 1
        }
        return (s, q)
    }

    /// (sum dy, sum dy * (x - c)) over `n` contiguous floats.
    @inline(__always)
    static func gradMoments(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, _ c: Float) -> (
        Float, Float
    ) {
        let rg = UnsafeRawPointer(dy), rx = UnsafeRawPointer(x)
        let cv = SIMD8<Float>(repeating: c)
        var s0 = SIMD8<Float>(repeating: 0), s1 = SIMD8<Float>(repeating: 0)
        var p0 = SIMD8<Float>(repeating: 0), p1 = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 16 <= n {
            let g0 = rg.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let g1 = rg.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
            let a = rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - cv
            let b = rx.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self) - cv
            s0 += g0
            s1 += g1
            p0 += g0 * a
            p1 += g1 * b
            i += 16
        }
        var s = (s0 + s1).sum(), p = (p0 + p1).sum()
        while i < n {
            s += dy[i]
            p += dy[i] * (x[i] - c)
            i += 1
        }
        return (s, p)
    }

    /// (sum dy * w, sum dy * w * (x - c)) over `n` contiguous floats (per-element weight).
    @inline(__always)
    static func weightedGradMoments(
        _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, _ c: Float
    ) -> (Float, Float) {
        let rg = UnsafeRawPointer(dy), rw = UnsafeRawPointer(w), rx = UnsafeRawPointer(x)
        let cv = SIMD8<Float>(repeating: c)
        var s0 = SIMD8<Float>(repeating: 0), s1 = SIMD8<Float>(repeating: 0)
        var p0 = SIMD8<Float>(repeating: 0), p1 = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 16 <= n {
            let g0 =
                rg.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let g1 =
                rg.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
                * rw.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
            let a = rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - cv
            let b = rx.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self) - cv
            s0 += g0
            s1 += g1
            p0 += g0 * a
            p1 += g1 * b
            i += 16
        }
        var s = (s0 + s1).sum(), p = (p0 + p1).sum()
        while i < n {
            let g = dy[i] * w[i]
            s += g
            p += g * (x[i] - c)
            i += 1
        }
        return (s, p)
    }

    /// Rows per chunk for the deterministic dweight/dbias partial sums (a function of the shape only).
    @inline(__always)
    static func chunkRows(_ rows: Int, elementsPerRow: Int) -> Int {
        let byCount = (rows + 63) / 64
        let byWork = Swift.max(1, (1 << 14) / Swift.max(elementsPerRow, 1))
        return Swift.max(1, Swift.max(byCount, Swift.min(byWork, rows)))
    }

    // MARK: Grouped norms (layer, RMS, group)

    /// Normalises each (row, group) of `x` (`[rows, groups, channels / groups, inner]`), then applies
    /// the per-channel affine: `y = (x - mean) * rstd * weight[c] + bias[c]`. With `rms`, the mean is
    /// not subtracted and `rstd = 1 / sqrt(mean(x^2) + eps)` (the saved mean is 0).
    /// - Parameters: `mean`, `rstd`: `[rows * groups]`, written.
    public static func groupedForward(
        _ x: UnsafePointer<Float>, rows: Int, groups: Int, channels: Int, inner: Int,
        weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Float, rms: Bool,
        y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>
    ) {
        let cpg = channels / groups
        let m = cpg * inner
        let units = rows * groups
        guard units > 0 else { return }
        ComputeRuntime.parallelFor(units, grain: Swift.max(1, (1 << 13) / Swift.max(m, 1))) { r in
            for u in r {
                let g = u % groups
                let xs = x + u * m, ys = y + u * m
                var mu: Float = 0, rs: Float
                if m == 0 {
                    rs = 1 / (eps).squareRoot()
                } else if rms {
                    let (_, q) = centeredMoments(xs, m, 0)
                    rs = 1 / (q / Float(m) + eps).squareRoot()
                } else {
                    let (s, _) = centeredMoments(xs, m, 0)
                    mu = s / Float(m)
                    // Second pass around the mean (stable), with the first-order correction.
                    let (s2, q2) = centeredMoments(xs, m, mu)
                    let v = Swift.max((q2 - s2 * s2 / Float(m)) / Float(m), 0)
                    mu += s2 / Float(m)
                    rs = 1 / (v + eps).squareRoot()
                }
                mean[u] = mu
                rstd[u] = rs
                let c0 = g * cpg
                if inner == 1 {
                    switch (weight, bias) {
                    case let (w?, b?):
                        for c in 0..<cpg { ys[c] = (xs[c] - mu) * rs * w[c0 + c] + b[c0 + c] }
                    case let (w?, nil):
                        for c in 0..<cpg { ys[c] = (xs[c] - mu) * rs * w[c0 + c] }
                    case let (nil, b?):
                        for c in 0..<cpg { ys[c] = (xs[c] - mu) * rs + b[c0 + c] }
                    case (nil, nil):
                        for c in 0..<cpg { ys[c] = (xs[c] - mu) * rs }
                    }
                } else {
                    for c in 0..<cpg {
                        let a = rs * (weight?[c0 + c] ?? 1)
                        let shift = (bias?[c0 + c] ?? 0) - mu * a
                        let xc = xs + c * inner, yc = ys + c * inner
                        for s in 0..<inner { yc[s] = xc[s] * a + shift }
                    }
                }
            }
        }
    }

    /// Fused backward of `groupedForward`: `dx` (when non-nil), and `dweight`/`dbias` (`[channels]`,
    /// overwritten, when non-nil).
    ///
    /// With `xhat = (x - mean) * rstd` and `gw = dy * weight`, over the `M` elements of a group:
    /// `dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))` (without the `mean(gw)` term for RMS),
    /// `dweight[c] = sum dy * xhat`, `dbias[c] = sum dy`.
    public static func groupedBackward(
        _ x: UnsafePointer<Float>, dy: UnsafePointer<Float>, mean: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>,
        weight: UnsafePointer<Float>?, rows: Int, groups: Int, channels: Int, inner: Int, rms: Bool,
        dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
        dbias: UnsafeMutablePointer<Float>?
    ) {
        let cpg = channels / groups
        let m = cpg * inner
        let wantParams = dweight != nil || dbias != nil
        if rows == 0 || m == 0 {
            dweight?.update(repeating: 0, count: channels)
            dbias?.update(repeating: 0, count: channels)
            return
        }
        let per = chunkRows(rows, elementsPerRow: groups * m)
        let chunks = (rows + per - 1) / per
        // Partial sums per row chunk: [chunks, channels] for dweight and for dbias, in Double (the
        // results are rounded once, whatever the row count: micro-batches add up to the batch).
        let partW = UnsafeMutablePointer<Double>.allocate(capacity: wantParams ? chunks * channels : 1)
        let partB = UnsafeMutablePointer<Double>.allocate(capacity: wantParams ? chunks * channels : 1)
        defer {
            partW.deallocate()
            partB.deallocate()
        }
        if wantParams {
            partW.update(repeating: 0, count: chunks * channels)
            partB.update(repeating: 0, count: chunks * channels)
        }
        let items = chunks * groups
        let grain = Swift.max(1, (1 << 13) / Swift.max(per * m, 1))
        ComputeRuntime.parallelFor(items, grain: grain) { r in
            for item in r {
                let chunk = item / groups, g = item % groups
                let c0 = g * cpg
                let pw = partW + chunk * channels + c0, pb = partB + chunk * channels + c0
                for row in (chunk * per)..<Swift.min(rows, (chunk + 1) * per) {
                    let u = row * groups + g
                    let xs = x + u * m, gs = dy + u * m
                    let mu = mean[u], rs = rstd[u]
                    var sumG: Float = 0, sumGX: Float = 0  // sum gw, sum gw * (x - mu)
                    if inner == 1 {
                        if let w = weight {
                            (sumG, sumGX) = weightedGradMoments(gs, w + c0, xs, cpg, mu)
                        } else {
                            (sumG, sumGX) = gradMoments(gs, xs, cpg, mu)
                        }
                        if wantParams && dx == nil {
                            for c in 0..<cpg {
                                pw[c] += Double(gs[c] * (xs[c] - mu) * rs)
                                pb[c] += Double(gs[c])
                            }
                        }
                    } else {
                        for c in 0..<cpg {
                            let (s, p) = gradMoments(gs + c * inner, xs + c * inner, inner, mu)
                            let w = weight?[c0 + c] ?? 1
                            sumG += w * s
                            sumGX += w * p
                            if wantParams {
                                pw[c] += Double(p * rs)
                                pb[c] += Double(s)
                            }
                        }
                    }
                    guard let dx else { continue }
                    let ds = dx + u * m
                    let meanG = rms ? 0 : sumG / Float(m)
                    // mean(gw * xhat) * rstd, folded so that dx = rs * (gw - meanG) - (x - mu) * k.
                    let k = sumGX * rs * rs * rs / Float(m)
                    let rsMeanG = rs * meanG
                    if inner == 1 {
                        // One pass: dx, and the dweight/dbias partial sums.
                        switch (weight, wantParams) {
                        case let (w?, true):
                            let wc = w + c0
                            for c in 0..<cpg {
                                let g = gs[c], xc = xs[c] - mu
                                ds[c] = rs * g * wc[c] - rsMeanG - xc * k
                                pw[c] += Double(g * xc * rs)
                                pb[c] += Double(g)
                            }
                        case let (w?, false):
                            let wc = w + c0
                            for c in 0..<cpg { ds[c] = rs * gs[c] * wc[c] - rsMeanG - (xs[c] - mu) * k }
                        case (nil, true):
                            for c in 0..<cpg {
                                let g = gs[c], xc = xs[c] - mu
                                ds[c] = rs * g - rsMeanG - xc * k
                                pw[c] += Double(g * xc * rs)
                                pb[c] += Double(g)
                            }
                        case (nil, false):
                            for c in 0..<cpg { ds[c] = rs * gs[c] - rsMeanG - (xs[c] - mu) * k }
                        }
                    } else {
                        for c in 0..<cpg {
                            let a = rs * (weight?[c0 + c] ?? 1)
                            let xc = xs + c * inner, gc = gs + c * inner, dc = ds + c * inner
                            for s in 0..<inner { dc[s] = a * gc[s] - rsMeanG - (xc[s] - mu) * k }
                        }
                    }
                }
            }
        }
        if wantParams {
            for c in 0..<channels {
                var sw: Double = 0, sb: Double = 0
                for chunk in 0..<chunks {
                    sw += partW[chunk * channels + c]
                    sb += partB[chunk * channels + c]
                }
                dweight?[c] = Float(sw)
                dbias?[c] = Float(sb)
            }
        }
    }

    // MARK: Batch norm

    /// Channel ranges for the batch-norm kernels (whole channels per task).
    @inline(__always)
    static func channelGrain(_ batch: Int, _ inner: Int) -> Int {
        Swift.max(1, (1 << 14) / Swift.max(batch * inner, 1))
    }

    /// Per-channel mean and biased variance of `x` (`[batch, channels, inner]`).
    public static func batchStatistics(
        _ x: UnsafePointer<Float>, batch: Int, channels: Int, inner: Int,
        mean: UnsafeMutablePointer<Float>, variance: UnsafeMutablePointer<Float>
    ) {
        let count = Double(batch * inner)
        ComputeRuntime.parallelFor(channels, grain: channelGrain(batch, inner)) { r in
            if inner == 1 {
                // [batch, channels]: accumulate across rows, vectorised over the channel range.
                let lo = r.lowerBound, n = r.count
                let acc = UnsafeMutablePointer<Double>.allocate(capacity: n)
                defer { acc.deallocate() }
                acc.update(repeating: 0, count: n)
                for b in 0..<batch {
                    let row = x + b * channels + lo
                    for c in 0..<n { acc[c] += Double(row[c]) }
                }
                for c in 0..<n { mean[lo + c] = Float(acc[c] / Swift.max(count, 1)) }
                acc.update(repeating: 0, count: n)
                for b in 0..<batch {
                    let row = x + b * channels + lo
                    for c in 0..<n {
                        let d = Double(row[c] - mean[lo + c])
                        acc[c] += d * d
                    }
                }
                for c in 0..<n { variance[lo + c] = Float(acc[c] / Swift.max(count, 1)) }
                return
            }
            for c in r {
                var s: Double = 0
                for b in 0..<batch {
                    s += Double(centeredMoments(x + (b * channels + c) * inner, inner, 0).0)
                }
                let mu = Float(s / Swift.max(count, 1))
                var d: Double = 0, q: Double = 0
                for b in 0..<batch {
                    let (s1, q1) = centeredMoments(x + (b * channels + c) * inner, inner, mu)
                    d += Double(s1)
                    q += Double(q1)
                }
                let n = Swift.max(count, 1)
                mean[c] = Float(Double(mu) + d / n)
                variance[c] = Float(Swift.max((q - d * d / n) / n, 0))
            }
        }
    }

    /// `y = x * scale[c] + shift[c]` (or `y = dy * scale[c] - shift[c] - (x - center[c]) * slope[c]` when
    /// `dy` is given) over `[batch, channels, inner]`, vectorised over channels when `inner == 1`.
    @inline(__always)
    static func channelAffine(
        _ x: UnsafePointer<Float>, dy: UnsafePointer<Float>?, batch: Int, channels: Int, inner: Int,
        coefficients k: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>
    ) {
        // k: [scale, shift, center, slope] x channels.
        let scale = k, shift = k + channels, center = k + 2 * channels, slope = k + 3 * channels
        if inner == 1 {
            ComputeRuntime.parallelFor(batch, grain: Swift.max(1, (1 << 14) / Swift.max(channels, 1))) { r in
                for b in r {
                    let xs = x + b * channels, ys = out + b * channels
                    if let dy {
                        let gs = dy + b * channels
                        for c in 0..<channels {
                            ys[c] = gs[c] * scale[c] - shift[c] - (xs[c] - center[c]) * slope[c]
                        }
                    } else {
                        for c in 0..<channels { ys[c] = xs[c] * scale[c] + shift[c] }
                    }
                }
            }
            return
        }
        ComputeRuntime.parallelFor(batch * channels, grain: Swift.max(1, (1 << 14) / Swift.max(inner, 1))) {
            r in
            for row in r {
                let c = row % channels
                let a = scale[c], s0 = shift[c], m = center[c], sl = slope[c]
                let xs = x + row * inner, ys = out + row * inner
                if let dy {
                    let gs = dy + row * inner
                    for s in 0..<inner { ys[s] = gs[s] * a - s0 - (xs[s] - m) * sl }
                } else {
                    for s in 0..<inner { ys[s] = xs[s] * a + s0 }
                }
            }
        }
    }

    /// `y = (x - mean[c]) * rstd[c] * weight[c] + bias[c]` over `[batch, channels, inner]`.
    public static func batchForward(
        _ x: UnsafePointer<Float>, batch: Int, channels: Int, inner: Int, mean: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
        y: UnsafeMutablePointer<Float>
    ) {
        let k = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(4 * channels, 1))
        defer { k.deallocate() }
        for c in 0..<channels {
            let a = rstd[c] * (weight?[c] ?? 1)
            k[c] = a
            k[channels + c] = (bias?[c] ?? 0) - mean[c] * a
        }
        channelAffine(x, dy: nil, batch: batch, channels: channels, inner: inner, coefficients: k, y)
    }

    /// Fused backward of batch norm. Training (batch statistics):
    /// `dx = rstd * w * (dy - mean(dy) - xhat * mean(dy * xhat))` per channel; evaluation (fixed
    /// statistics): `dx = rstd * w * dy`. Both: `dweight[c] = sum dy * xhat`, `dbias[c] = sum dy`.
    public static func batchBackward(
        _ x: UnsafePointer<Float>, dy: UnsafePointer<Float>, batch: Int, channels: Int, inner: Int,
        mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, weight: UnsafePointer<Float>?, training: Bool,
        dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
        dbias: UnsafeMutablePointer<Float>?
    ) {
        // Per channel: sum dy and sum dy * (x - mean).
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(2 * channels, 1))
        defer { sums.deallocate() }
        ComputeRuntime.parallelFor(channels, grain: channelGrain(batch, inner)) { r in
            if inner == 1 {
                let lo = r.lowerBound, n = r.count
                let acc = UnsafeMutablePointer<Double>.allocate(capacity: 2 * n)
                defer { acc.deallocate() }
                acc.update(repeating: 0, count: 2 * n)
                for b in 0..<batch {
                    let xr = x + b * channels + lo, gr = dy + b * channels + lo
                    for c in 0..<n {
                        acc[c] += Double(gr[c])
                        acc[n + c] += Double(gr[c] * (xr[c] - mean[lo + c]))
                    }
                }
                for c in 0..<n {
                    sums[lo + c] = Float(acc[c])
                    sums[channels + lo + c] = Float(acc[n + c])
                }
                return
            }
            for c in r {
                var s: Double = 0, p: Double = 0
                for b in 0..<batch {
                    let o = (b * channels + c) * inner
                    let (s1, p1) = gradMoments(dy + o, x + o, inner, mean[c])
                    s += Double(s1)
                    p += Double(p1)
                }
                sums[c] = Float(s)
                sums[channels + c] = Float(p)
            }
        }
        for c in 0..<channels {
            dweight?[c] = sums[channels + c] * rstd[c]
            dbias?[c] = sums[c]
        }
        guard let dx else { return }
        let count = Float(Swift.max(batch * inner, 1))
        let k = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(4 * channels, 1))
        defer { k.deallocate() }
        for c in 0..<channels {
            let rs = rstd[c], a = rs * (weight?[c] ?? 1)
            k[c] = a
            k[channels + c] = training ? a * sums[c] / count : 0
            k[2 * channels + c] = mean[c]
            k[3 * channels + c] = training ? a * sums[channels + c] * rs * rs / count : 0
        }
        channelAffine(x, dy: dy, batch: batch, channels: channels, inner: inner, coefficients: k, dx)
    }
}
