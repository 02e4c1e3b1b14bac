/// Reductions over the middle axis of a `[outer, n, inner]` view of a contiguous buffer.
public enum ReduceOp: Sendable, Equatable {
    case sum, max, min
}

public enum ReduceKernels {
    /// Sum of `n` contiguous floats with 16-wide SIMD accumulators.
    @inline(__always)
    public static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD16<Float>(repeating: 0), acc1 = SIMD16<Float>(repeating: 0)
        var i = 0
        let raw = UnsafeRawPointer(x)
        while i + 32 <= n {
            acc0 += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            acc1 += raw.loadUnaligned(fromByteOffset: (i + 16) * 4, as: SIMD16<Float>.self)
            i += 32
        }
        var s = (acc0 + acc1).sum()
        while i < n {
            s += x[i]
            i += 1
        }
        return s
    }

    /// Max of `n` contiguous floats (NaN propagates).
    @inline(__always)
    public static func max(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        var nan = false
        for i in 0..<n {
            let v = x[i]
            nan = nan || v.isNaN
            m = v > m ? v : m
        }
        return nan ? .nan : m
    }

    @inline(__always)
    static func min(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = Float.infinity
        var nan = false
        for i in 0..<n {
            let v = x[i]
            nan = nan || v.isNaN
            m = v < m ? v : m
        }
        return nan ? .nan : m
    }

    /// out[o, i] = reduce_j x[o, j, i].
    public static func reduce(
        _ op: ReduceOp, _ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int,
        _ out: UnsafeMutablePointer<Float>
    ) {
        if inner == 1 {
            ComputeRuntime.parallelFor(outer, grain: Swift.max(1, (1 << 14) / Swift.max(n, 1))) { r in
                for o in r {
                    let row = x + o * n
                    switch op {
                    case .sum: out[o] = sum(row, n)
                    case .max: out[o] = max(row, n)
                    case .min: out[o] = min(row, n)
                    }
                }
            }
            return
        }
        ComputeRuntime.parallelFor(outer * inner, grain: 1 << 12) { r in
            // Work in (o, i-chunk) pieces: rows of the range share o.
            var idx = r.lowerBound
            while idx < r.upperBound {
                let o = idx / inner
                let i0 = idx % inner
                let i1 = Swift.min(inner, i0 + (r.upperBound - idx))
                let dst = out + o * inner
                let base = x + o * n * inner
                if op == .sum {
                    // Accumulated in Double and rounded once: the result does not depend on how the
                    // reduced axis was split (micro-batches add up to the batch's sum within rounding).
                    withUnsafeTemporaryAllocation(of: Double.self, capacity: i1 - i0) { acc in
                        for i in 0..<(i1 - i0) { acc[i] = 0 }
                        for j in 0..<n {
                            let src = base + j * inner + i0
                            for i in 0..<(i1 - i0) { acc[i] += Double(src[i]) }
                        }
                        for i in 0..<(i1 - i0) { dst[i0 + i] = Float(acc[i]) }
                    }
                    idx += i1 - i0
                    continue
                }
                for i in i0..<i1 { dst[i] = base[i] }
                var nanSeen = false
                for j in 1..<Swift.max(n, 1) {
                    let src = base + j * inner
                    switch op {
                    case .sum: for i in i0..<i1 { dst[i] += src[i] }
                    case .max:
                        for i in i0..<i1 {
                            let v = src[i]
                            nanSeen = nanSeen || v.isNaN
                            dst[i] = v > dst[i] ? v : dst[i]
                        }
                    case .min:
                        for i in i0..<i1 {
                            let v = src[i]
                            nanSeen = nanSeen || v.isNaN
                            dst[i] = v < dst[i] ? v : dst[i]
                        }
                    }
                }
                if n == 0 {
                    for i in i0..<i1 { dst[i] = op == .sum ? 0 : (op == .max ? -.infinity : .infinity) }
                }
                if nanSeen {
                    for i in i0..<i1 where (0..<n).contains(where: { base[$0 * inner + i].isNaN }) {
                        dst[i] = .nan
                    }
                }
                idx += i1 - i0
            }
        }
    }

    /// Index (and value) of the max or min along the middle axis; the first one on ties, as PyTorch.
    public static func argReduce(
        max isMax: Bool, _ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int,
        values: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int>
    ) {
        ComputeRuntime.parallelFor(outer * inner, grain: 1 << 10) { r in
            for idx in r {
                let o = idx / inner, i = idx % inner
                let base = x + o * n * inner + i
                var best = base[0]
                var at = 0
                if !best.isNaN {
                    for j in 1..<Swift.max(n, 1) {
                        let v = base[j * inner]
                        if v.isNaN { best = v; at = j; break }
                        if isMax ? v > best : v < best { best = v; at = j }
                    }
                }
                values[idx] = best
                indices[idx] = at
            }
        }
    }

    /// Softmax (or log-softmax) of each of `rows` contiguous rows of length `n`.
    public static func softmax(
        _ x: UnsafePointer<Float>, rows: Int, n: Int, _ y: UnsafeMutablePointer<Float>, log: Bool
    ) {
        ComputeRuntime.parallelFor(rows, grain: Swift.max(1, (1 << 13) / Swift.max(n, 1))) { r in
            for row in r {
                let xs = x + row * n, ys = y + row * n
                let m = max(xs, n)
                if log {
                    var s: Float = 0
                    for j in 0..<n { s += FastMath.exp(xs[j] - m) }
                    let lse = m + Foundation_log(s)
                    for j in 0..<n { ys[j] = xs[j] - lse }
                } else {
                    for j in 0..<n { ys[j] = FastMath.exp(xs[j] - m) }
                    let inv = 1 / sum(UnsafePointer(ys), n)
                    for j in 0..<n { ys[j] *= inv }
                }
            }
        }
    }

    /// Gradient of softmax (dx = y * (dy - sum(dy * y))) or of log-softmax
    /// (dx = dy - exp(y) * sum(dy)), row by row.
    public static func softmaxBackward(
        y: UnsafePointer<Float>, dy: UnsafePointer<Float>, rows: Int, n: Int, dx: UnsafeMutablePointer<Float>,
        log: Bool
    ) {
        ComputeRuntime.parallelFor(rows, grain: Swift.max(1, (1 << 13) / Swift.max(n, 1))) { r in
            for row in r {
                let ys = y + row * n, gs = dy + row * n, ds = dx + row * n
                if log {
                    let s = sum(gs, n)
                    for j in 0..<n { ds[j] = gs[j] - FastMath.exp(ys[j]) * s }
                } else {
                    var dot: Float = 0
                    for j in 0..<n { dot += gs[j] * ys[j] }
                    for j in 0..<n { ds[j] = ys[j] * (gs[j] - dot) }
                }
            }
        }
    }

    /// Inclusive cumulative sum along the middle axis (`reverse`: from the end).
    public static func cumsum(
        _ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int, _ y: UnsafeMutablePointer<Float>,
        reverse: Bool
    ) {
        ComputeRuntime.parallelFor(outer * inner, grain: 256) { r in
            for idx in r {
                let o = idx / inner, i = idx % inner
                let base = o * n * inner + i
                var acc: Float = 0
                for jj in 0..<n {
                    let j = reverse ? n - 1 - jj : jj
                    acc += x[base + j * inner]
                    y[base + j * inner] = acc
                }
            }
        }
    }
}

@inline(__always) func Foundation_log(_ x: Float) -> Float { _logf(x) }
