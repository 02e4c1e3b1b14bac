// CPU kernels for the loss family: the fused cross-entropy (forward keeps only the per-row
// log-sum-exp; backward writes dlogits directly), and the indexing kernels behind embedding,
// index_select, gather and scatter_add.

/// Fused cross-entropy kernels over contiguous rows of logits.
public enum CrossEntropyKernels {
    typealias V = SIMD16<Float>

    /// Logits are consumed in blocks this long (8 KiB, resident in L1): the block's max is taken,
    /// the running sum is rescaled if the max grew, then the block's exponentials are summed, so
    /// every row is streamed from memory once.
    static let block = 2048

    /// e^x for x <= 0 on 16 lanes (`FastMath.expNonPositive`): logits minus their row max or lse.
    @inline(__always)
    static func exp(_ x: V) -> V { FastMath.expNonPositive(x) }

    /// Scalar twin for row tails.
    @inline(__always)
    static func exp(_ x: Float) -> Float { FastMath.expNonPositive(x) }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> V {
        UnsafeRawPointer(p).loadUnaligned(fromByteOffset: i &* 4, as: V.self)
    }

    /// Max (NaN-ignoring; NaN reaches the loss through the exponential sum) and sum of `n` floats.
    @inline(__always)
    static func maxAndSum(_ x: UnsafePointer<Float>, _ n: Int, wantSum: Bool) -> (Float, Float) {
        var m = V(repeating: -.infinity)
        var s = V(repeating: 0)
        var i = 0
        if wantSum {
            while i + 16 <= n {
                let v = load(x, i)
                m = m.replacing(with: v, where: v .> m)
                s += v
                i += 16
            }
        } else {
            while i + 16 <= n {
                let v = load(x, i)
                m = m.replacing(with: v, where: v .> m)
                i += 16
            }
        }
        var mx = m.max()
        var sum = s.sum()
        while i < n {
            let v = x[i]
            mx = v > mx ? v : mx
            sum += v
            i += 1
        }
        return (mx, sum)
    }

    /// Sum of e^(x[i] - shift) over `n` floats.
    @inline(__always)
    static func sumExp(_ x: UnsafePointer<Float>, _ n: Int, shift: Float) -> Float {
        let sv = V(repeating: shift)
        var acc = V(repeating: 0)
        var i = 0
        while i + 16 <= n {
            acc += exp(load(x, i) - sv)
            i += 16
        }
        var s = acc.sum()
        while i < n {
            s += exp(x[i] - shift)
            i += 1
        }
        return s
    }

    /// Per-row log-sum-exp and loss of `rows` rows of `classes` logits.
    ///
    /// For a supervised row r with target t: lse[r] = log(sum_j e^x[r, j]) and
    /// loss[r] = (1 - eps) * (lse - x[r, t]) + eps * (lse - mean_j x[r, j]).
    /// Rows whose target is `ignoreIndex` get lse = 0 and loss = 0 (and are not read).
    /// Targets other than `ignoreIndex` must lie in [0, classes).
    public static func forward(
        logits: UnsafePointer<Float>, targets: UnsafePointer<Int>, rows: Int, classes: Int, ignoreIndex: Int,
        labelSmoothing eps: Float, lse: UnsafeMutablePointer<Float>, loss: UnsafeMutablePointer<Float>
    ) {
        let smoothing = eps != 0
        ComputeRuntime.parallelFor(rows, grain: Swift.max(1, (1 << 14) / Swift.max(classes, 1))) { r in
            for row in r {
                let t = targets[row]
                if t == ignoreIndex {
                    lse[row] = 0
                    loss[row] = 0
                    continue
                }
                let x = logits + row &* classes
                var m = -Float.infinity
                var s: Float = 0
                var sumX: Float = 0
                var j = 0
                while j < classes {
                    let len = Swift.min(block, classes - j)
                    let (bm, bs) = maxAndSum(x + j, len, wantSum: smoothing)
                    sumX += bs
                    if bm > m {
                        s *= exp(m - bm)
                        m = bm
                    }
                    s += sumExp(x + j, len, shift: m)
                    j += len
                }
                // An all -inf row has m = -inf and s = 0: lse = -inf and the loss is NaN, as PyTorch.
                let l = m + _logf(s)
                lse[row] = l
                let nll = l - x[t]
                loss[row] = smoothing ? (1 - eps) * nll + eps * (l - sumX / Float(classes)) : nll
            }
        }
    }

    /// dlogits of `gradLoss * sum(loss) + gradZ * coefficient * sum(lse^2)`:
    /// dx[r, j] = softmax[r, j] * (gradLoss + 2 * coefficient * lse[r] * gradZ)
    ///            - gradLoss * ((1 - eps) * [j == t] + eps / classes),
    /// and 0 for ignored rows. `lse` is what `forward` wrote.
    public static func backward(
        logits: UnsafePointer<Float>, targets: UnsafePointer<Int>, lse: UnsafePointer<Float>, rows: Int,
        classes: Int,
        ignoreIndex: Int, labelSmoothing eps: Float, gradLoss: Float, gradZ: Float, zLossCoefficient: Float,
        dlogits: UnsafeMutablePointer<Float>
    ) {
        ComputeRuntime.parallelFor(rows, grain: Swift.max(1, (1 << 14) / Swift.max(classes, 1))) { r in
            for row in r {
                let t = targets[row]
                let d = dlogits + row &* classes
                if t == ignoreIndex {
                    d.update(repeating: 0, count: classes)
                    continue
                }
                let x = logits + row &* classes
                let l = lse[row]
                let a = gradLoss + 2 * zLossCoefficient * l * gradZ
                let c = gradLoss * eps / Float(classes)
                let av = V(repeating: a), cv = V(repeating: c), lv = V(repeating: l)
                let raw = UnsafeMutableRawPointer(d)
                var j = 0
                while j + 16 <= classes {
                    raw.storeBytes(of: exp(load(x, j) - lv) * av - cv, toByteOffset: j &* 4, as: V.self)
                    j += 16
                }
                while j < classes {
                    d[j] = exp(x[j] - l) * a - c
                    j += 1
                }
                d[t] -= gradLoss * (1 - eps)
            }
        }
    }
}

/// Indexing kernels: row selection along an axis, its adjoint (index_add), and torch-style
/// gather / scatter_add along an axis.
public enum IndexKernels {
    /// out[o, i, :] = x[o, indices[i], :] for a contiguous x of [outer, n, inner] and out of
    /// [outer, k, inner]. Indices must lie in [0, n).
    public static func indexSelect(
        _ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int, indices: UnsafePointer<Int>, k: Int,
        _ out: UnsafeMutablePointer<Float>
    ) {
        if inner == 0 { return }
        ComputeRuntime.parallelFor(outer * k, grain: Swift.max(1, (1 << 15) / inner)) { r in
            for row in r {
                let o = row / k, i = row % k
                (out + row &* inner).update(from: x + (o &* n &+ indices[i]) &* inner, count: inner)
            }
        }
    }

    /// dst[o, indices[i], :] += src[o, i, :] for src of [outer, k, inner] and dst of [outer, n, inner]
    /// (torch `index_add_`; repeated indices sum). Work is split over (o, column range) so no two
    /// threads write one element; each element sums its contributions in order of i.
    public static func indexAdd(
        _ src: UnsafePointer<Float>, outer: Int, k: Int, inner: Int, indices: UnsafePointer<Int>, n: Int,
        _ dst: UnsafeMutablePointer<Float>
    ) {
        if inner == 0 || k == 0 || outer == 0 { return }
        let threads = ComputeRuntime.threads
        // Column pieces of at least 16 floats, enough of them to give every thread work.
        let pieces = outer >= threads ? 1 : Swift.max(1, Swift.min((threads + outer - 1) / outer, inner / 16))
        let width = (inner + pieces - 1) / pieces
        let units = outer * pieces
        let grain = Swift.max(1, (1 << 15) / Swift.max(1, k * width))
        ComputeRuntime.parallelFor(units, grain: grain) { r in
            for u in r {
                let o = u / pieces
                let c0 = (u % pieces) * width
                let c1 = Swift.min(inner, c0 + width)
                if c0 >= c1 { continue }
                let s0 = src + o &* k &* inner
                let d0 = dst + o &* n &* inner
                for i in 0..<k {
                    let s = s0 + i &* inner
                    let d = d0 + indices[i] &* inner
                    for c in c0..<c1 { d[c] += s[c] }
                }
            }
        }
    }

    /// Offsets sum_d c_d * strides[d] of every multi-index c of `shape`, row-major.
    static func offsets(_ shape: ArraySlice<Int>, _ strides: ArraySlice<Int>) -> [Int] {
        var out = [0]
        for (size, stride) in zip(shape, strides) {
            var next = [Int]()
            next.reserveCapacity(out.count * size)
            for base in out { for c in 0..<size { next.append(base + c * stride) } }
            out = next
        }
        return out
    }

    /// torch.gather along `axis`: for every multi-index c of `indexShape` (row-major, written
    /// contiguously to `out`), out[c] = src[c with c[axis] replaced by index[c]] where src is read
    /// through `srcStrides`. Index values must lie in range.
    public static func gather(
        _ src: UnsafePointer<Float>, srcStrides: [Int], axis: Int, index: UnsafePointer<Int>,
        indexShape: [Int],
        _ out: UnsafeMutablePointer<Float>
    ) {
        let count = indexShape.reduce(1, *)
        if count == 0 { return }
        let outerOff = offsets(indexShape[..<axis], srcStrides[..<axis])
        let innerOff = offsets(indexShape[(axis + 1)...], srcStrides[(axis + 1)...])
        let k = indexShape[axis], inner = innerOff.count, sa = srcStrides[axis]
        ComputeRuntime.parallelFor(outerOff.count * k, grain: Swift.max(1, (1 << 14) / inner)) { r in
            outerOff.withUnsafeBufferPointer { oo in
                innerOff.withUnsafeBufferPointer { io in
                    for row in r {
                        let base = src + oo[row / k]
                        let lin = row &* inner
                        for i in 0..<inner { out[lin &+ i] = base[index[lin &+ i] &* sa &+ io[i]] }
                    }
                }
            }
        }
    }

    /// torch.scatter_add along `axis`, in place on `dst`: for every multi-index c of `indexShape`,
    /// dst[c with c[axis] replaced by index[c]] += src[c] (dst and src read through their strides).
    /// Work is split over the non-axis coordinates, so no two threads write one element.
    public static func scatterAdd(
        _ src: UnsafePointer<Float>, srcStrides: [Int], axis: Int, index: UnsafePointer<Int>,
        indexShape: [Int],
        _ dst: UnsafeMutablePointer<Float>, dstStrides: [Int]
    ) {
        let count = indexShape.reduce(1, *)
        if count == 0 { return }
        let srcOuter = offsets(indexShape[..<axis], srcStrides[..<axis])
        let srcInner = offsets(indexShape[(axis + 1)...], srcStrides[(axis + 1)...])
        let dstOuter = offsets(indexShape[..<axis], dstStrides[..<axis])
        let dstInner = offsets(indexShape[(axis + 1)...], dstStrides[(axis + 1)...])
        let k = indexShape[axis], inner = srcInner.count
        let ssa = srcStrides[axis], dsa = dstStrides[axis]
        let threads = ComputeRuntime.threads
        let outer = srcOuter.count
        let pieces = outer >= threads ? 1 : Swift.max(1, Swift.min((threads + outer - 1) / outer, inner / 16))
        let width = (inner + pieces - 1) / pieces
        ComputeRuntime.parallelFor(outer * pieces, grain: Swift.max(1, (1 << 14) / Swift.max(1, k * width))) {
            r in
            for u in r {
                let o = u / pieces
                let c0 = (u % pieces) * width
                let c1 = Swift.min(inner, c0 + width)
                if c0 >= c1 { continue }
                let s0 = src + srcOuter[o], d0 = dst + dstOuter[o]
                for j in 0..<k {
                    let lin = (o &* k &+ j) &* inner
                    for i in c0..<c1 {
                        d0[index[lin &+ i] &* dsa &+ dstInner[i]] += s0[j &* ssa &+ srcInner[i]]
                    }
                }
            }
        }
    }
}
