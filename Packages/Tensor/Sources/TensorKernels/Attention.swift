import Foundation

/// Sizes of one scaled-dot-product attention call. Layouts (contiguous, row-major):
/// q `[batch, queryHeads, queryLength, headDim]`, k `[batch, kvHeads, keyLength, headDim]`,
/// v `[batch, kvHeads, keyLength, valueDim]`, out `[batch, queryHeads, queryLength, valueDim]`,
/// logsumexp `[batch, queryHeads, queryLength]`. Query head h reads kv head `h / (queryHeads / kvHeads)`.
public struct AttentionDims: Sendable, Equatable {
    public var batch: Int
    public var queryHeads: Int
    public var kvHeads: Int
    public var queryLength: Int
    public var keyLength: Int
    public var headDim: Int
    public var valueDim: Int
    /// Multiplies q . k before the softmax.
    public var scale: Float

    public init(
        batch: Int, queryHeads: Int, kvHeads: Int, queryLength: Int, keyLength: Int, headDim: Int,
        valueDim: Int,
        scale: Float
    ) {
        self.batch = batch
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.queryLength = queryLength
        self.keyLength = keyLength
        self.headDim = headDim
        self.valueDim = valueDim
        self.scale = scale
    }

    /// Query heads per kv head.
    public var groupSize: Int { queryHeads / kvHeads }
}

/// Which keys each query may see, in kernel form. Query i of a batch sits at absolute position
/// `queryOffset + i`; key j at position j. A key is visible when every present condition holds:
/// causal (`j <= queryOffset + i`), same document (`queryDocuments[b, i] == keyDocuments[b, j]`),
/// and valid (`keyValid[b, j]`).
public struct AttentionMaskSpec: Sendable, Equatable {
    public var causal: Bool
    public var queryOffset: Int
    /// `[batch * queryLength]`; present exactly when `keyDocuments` is.
    public var queryDocuments: [Int]?
    /// `[batch * keyLength]`.
    public var keyDocuments: [Int]?
    /// `[batch * keyLength]`.
    public var keyValid: [Bool]?

    public init(
        causal: Bool = false, queryOffset: Int = 0, queryDocuments: [Int]? = nil, keyDocuments: [Int]? = nil,
        keyValid: [Bool]? = nil
    ) {
        self.causal = causal
        self.queryOffset = queryOffset
        self.queryDocuments = queryDocuments
        self.keyDocuments = keyDocuments
        self.keyValid = keyValid
    }

    /// Whether query `i` of batch `b` may attend to key `j`.
    @inlinable
    public func isVisible(batch b: Int, query i: Int, key j: Int, queryLength: Int, keyLength: Int) -> Bool {
        if causal && j > queryOffset + i { return false }
        if let qd = queryDocuments, let kd = keyDocuments, qd[b * queryLength + i] != kd[b * keyLength + j] {
            return false
        }
        if let kv = keyValid, !kv[b * keyLength + j] { return false }
        return true
    }
}

/// Flash-attention style kernels: blocked over queries and keys with an online softmax (the forward
/// holds one block of scores per thread), blocks the mask removes entirely skipped, block products
/// through single-threaded `BLAS.sgemm` inside a parallel region over (batch, head, query block).
///
/// Rows with no visible key produce output 0, logsumexp `-inf` and gradient 0.
public enum AttentionKernels {
    /// Query and key block sizes.
    public struct BlockSizes: Sendable, Equatable {
        public var query: Int
        public var key: Int
        public init(query: Int, key: Int) {
            self.query = query
            self.key = key
        }
    }

    /// The block sizes the kernels use on the current task (tests set small blocks to exercise the
    /// block logic on small inputs).
    @TaskLocal public static var blockSizes = defaultBlockSizes

    /// The default block sizes.
    public static let defaultBlockSizes = BlockSizes(query: 64, key: 64)

    /// The forward's block sizes for `d`: `blockSizes`, except that with the default sizes and a head
    /// width of at most 32 one key block spans up to 512 keys. With short heads a block product is
    /// too small for a BLAS call to pay for itself (the tiny benchmark's 257-token CLIP attention
    /// with 16-wide heads spent as much in the per-call set-up as in the arithmetic), so a query
    /// block meets all its keys in one product and one online-softmax update.
    static func forwardBlockSizes(_ d: AttentionDims) -> BlockSizes {
        var s = blockSizes
        if s == defaultBlockSizes && d.headDim <= 32 { s.key = Swift.max(s.key, Swift.min(d.keyLength, 512)) }
        return s
    }

    // MARK: Mask plan

    /// Block classification: what the mask leaves of a (query block, key block) pair.
    @usableFromInline enum BlockKind { case skip, full, partial }

    /// Per-block summaries of the mask (document ranges, valid-key counts) in raw buffers.
    struct Plan {
        let bq: Int, bk: Int, nqb: Int, nkb: Int
        let tq: Int, tk: Int, batch: Int
        let causal: Bool, offset: Int
        let qdoc: UnsafeMutablePointer<Int>?, kdoc: UnsafeMutablePointer<Int>?
        let kvalid: UnsafeMutablePointer<Bool>?
        let qMin: UnsafeMutablePointer<Int>?, qMax: UnsafeMutablePointer<Int>?
        let kMin: UnsafeMutablePointer<Int>?, kMax: UnsafeMutablePointer<Int>?
        let kValidCount: UnsafeMutablePointer<Int>?

        init(_ d: AttentionDims, _ m: AttentionMaskSpec, _ sizes: BlockSizes) {
            let bq = Swift.max(1, sizes.query), bk = Swift.max(1, sizes.key)
            let tq = d.queryLength, tk = d.keyLength, batch = d.batch
            let nqb = (tq + bq - 1) / bq, nkb = (tk + bk - 1) / bk
            (self.bq, self.bk, self.tq, self.tk, self.batch, self.nqb, self.nkb) = (
                bq, bk, tq, tk, batch, nqb, nkb
            )
            causal = m.causal
            offset = m.queryOffset
            func copy<T>(_ a: [T]) -> UnsafeMutablePointer<T> {
                let p = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(a.count, 1))
                _ = UnsafeMutableBufferPointer(start: p, count: a.count).initialize(from: a)
                return p
            }
            func ranges(_ ids: UnsafeMutablePointer<Int>, _ len: Int, _ bs: Int, _ nb: Int) -> (
                UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>
            ) {
                let lo = UnsafeMutablePointer<Int>.allocate(capacity: Swift.max(batch * nb, 1))
                let hi = UnsafeMutablePointer<Int>.allocate(capacity: Swift.max(batch * nb, 1))
                for b in 0..<batch {
                    for blk in 0..<nb {
                        var mn = Int.max, mx = Int.min
                        for t in (blk * bs)..<Swift.min(len, (blk + 1) * bs) {
                            let v = ids[b * len + t]
                            mn = Swift.min(mn, v)
                            mx = Swift.max(mx, v)
                        }
                        lo[b * nb + blk] = mn
                        hi[b * nb + blk] = mx
                    }
                }
                return (lo, hi)
            }
            if let qd = m.queryDocuments, let kd = m.keyDocuments {
                let q = copy(qd), k = copy(kd)
                let (a0, a1) = ranges(q, tq, bq, nqb), (c0, c1) = ranges(k, tk, bk, nkb)
                (qdoc, kdoc, qMin, qMax, kMin, kMax) = (q, k, a0, a1, c0, c1)
            } else {
                (qdoc, kdoc, qMin, qMax, kMin, kMax) = (nil, nil, nil, nil, nil, nil)
            }
            if let kv = m.keyValid {
                let p = copy(kv)
                let counts = UnsafeMutablePointer<Int>.allocate(capacity: Swift.max(batch * nkb, 1))
                for b in 0..<batch {
                    for blk in 0..<nkb {
                        var n = 0
                        for t in (blk * bk)..<Swift.min(tk, (blk + 1) * bk) where p[b * tk + t] { n += 1 }
                        counts[b * nkb + blk] = n
                    }
                }
                (kvalid, kValidCount) = (p, counts)
            } else {
                (kvalid, kValidCount) = (nil, nil)
            }
        }

        func free() {
            for p in [qdoc, kdoc, qMin, qMax, kMin, kMax, kValidCount] { p?.deallocate() }
            kvalid?.deallocate()
        }

        /// What the mask leaves of block (qb, kb) in batch b, and which conditions need per-element work.
        @inline(__always)
        func classify(_ b: Int, _ qb: Int, _ kb: Int) -> (
            kind: BlockKind, causal: Bool, docs: Bool, valid: Bool
        ) {
            let q0 = qb * bq, q1 = Swift.min(tq, q0 + bq)
            let k0 = kb * bk, k1 = Swift.min(tk, k0 + bk)
            var needCausal = false, needDocs = false, needValid = false
            if causal {
                if k0 > offset + q1 - 1 { return (.skip, false, false, false) }
                needCausal = k1 - 1 > offset + q0
            }
            if let qMin, let qMax, let kMin, let kMax {
                let a0 = qMin[b * nqb + qb], a1 = qMax[b * nqb + qb]
                let c0 = kMin[b * nkb + kb], c1 = kMax[b * nkb + kb]
                if c1 < a0 || c0 > a1 { return (.skip, false, false, false) }
                needDocs = !(a0 == a1 && c0 == c1 && a0 == c0)
            }
            if let kValidCount {
                let n = kValidCount[b * nkb + kb]
                if n == 0 { return (.skip, false, false, false) }
                needValid = n < k1 - k0
            }
            let partial = needCausal || needDocs || needValid
            return (partial ? .partial : .full, needCausal, needDocs, needValid)
        }

        /// Sets the hidden scores of block (q0..<q0+nq, k0..<k0+nk) of batch b to -inf.
        @inline(__always)
        func applyMask(
            _ b: Int, q0: Int, nq: Int, k0: Int, nk: Int, _ s: UnsafeMutablePointer<Float>, ld: Int,
            causal doCausal: Bool, docs doDocs: Bool, valid doValid: Bool
        ) {
            for i in 0..<nq {
                let row = s + i * ld
                if doCausal {
                    let first = Swift.max(0, offset + q0 + i - k0 + 1)
                    if first < nk { for j in first..<nk { row[j] = -.infinity } }
                }
                if doDocs, let qdoc, let kdoc {
                    let d = qdoc[b * tq + q0 + i]
                    let kd = kdoc + b * tk + k0
                    for j in 0..<nk where kd[j] != d { row[j] = -.infinity }
                }
                if doValid, let kvalid {
                    let kv = kvalid + b * tk + k0
                    for j in 0..<nk where !kv[j] { row[j] = -.infinity }
                }
            }
        }
    }

    // MARK: Vector helpers

    /// e^x for x <= 0 (0 below -87, including -inf): `FastMath.expNonPositive`.
    @inline(__always)
    static func expNonPositive(_ x: Float) -> Float { FastMath.expNonPositive(x) }

    /// p[j] = exp(p[j] - shift) for j < n (shift >= every p[j]).
    @inline(__always)
    static func expShifted(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ shift: Float) {
        for j in 0..<n { p[j] = expNonPositive(p[j] - shift) }
    }

    @inline(__always)
    static func rowMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        let raw = UnsafeRawPointer(p)
        var m0 = SIMD8<Float>(repeating: -.infinity), m1 = m0
        var i = 0
        while i + 16 <= n {
            let a = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let b = raw.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
            m0 = m0.replacing(with: a, where: a .> m0)
            m1 = m1.replacing(with: b, where: b .> m1)
            i += 16
        }
        let m01 = m0.replacing(with: m1, where: m1 .> m0)
        var m = m01[0]
        for l in 1..<8 where m01[l] > m { m = m01[l] }
        while i < n {
            m = p[i] > m ? p[i] : m
            i += 1
        }
        return m
    }

    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var s0 = SIMD8<Float>(repeating: 0), s1 = s0
        var i = 0
        while i + 16 <= n {
            s0 +=
                ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            s1 +=
                ra.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
            i += 16
        }
        var s = (s0 + s1).sum()
        while i < n {
            s += a[i] * b[i]
            i += 1
        }
        return s
    }

    /// Runs `body(item)` for every item in `0..<items` over the compute threads, dealing items out
    /// round-robin (so that unequal items, as under a causal mask, balance), with OpenBLAS on one
    /// thread. `body` gets its thread's scratch of `scratch` floats.
    static func parallelItems(_ items: Int, scratch: Int, _ body: (Int, UnsafeMutablePointer<Float>) -> Void)
    {
        guard items > 0 else { return }
        let workers = Swift.max(1, Swift.min(ComputeRuntime.threads, items))
        BLAS.withSingleThread {
            ComputeRuntime.parallelFor(workers, grain: 1) { r in
                let buf = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(scratch, 1))
                defer { buf.deallocate() }
                for w in r {
                    var item = w
                    while item < items {
                        body(item, buf)
                        item += workers
                    }
                }
            }
        }
    }

    // MARK: Forward

    /// out = softmax(scale * q k^T + mask) v per (batch, head), and the per-row logsumexp of the
    /// scaled, masked scores (`-inf` for rows with no visible key, whose output is 0).
    public static func forward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, dims d: AttentionDims,
        mask: AttentionMaskSpec, out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>
    ) {
        let plan = Plan(d, mask, forwardBlockSizes(d))
        defer { plan.free() }
        let (bq, bk, nqb, nkb) = (plan.bq, plan.bk, plan.nqb, plan.nkb)
        let (tq, tk, hd, dv) = (d.queryLength, d.keyLength, d.headDim, d.valueDim)
        let group = d.groupSize
        let items = d.batch * d.queryHeads * nqb
        parallelItems(items, scratch: bq * bk + 2 * bq) { item, buf in
            let qb = item % nqb, bh = item / nqb
            let b = bh / d.queryHeads, h = bh % d.queryHeads
            let kvh = b * d.kvHeads + h / group
            let q0 = qb * bq, nq = Swift.min(bq, tq - q0)
            let Q = q + (bh * tq + q0) * hd
            let O = out + (bh * tq + q0) * dv
            let K = k + kvh * tk * hd, V = v + kvh * tk * dv
            let s = buf, mrow = buf + bq * bk, lrow = mrow + bq
            O.update(repeating: 0, count: nq * dv)
            mrow.update(repeating: -.infinity, count: nq)
            lrow.update(repeating: 0, count: nq)
            for kb in 0..<nkb {
                let cls = plan.classify(b, qb, kb)
                if cls.kind == .skip { continue }
                let k0 = kb * bk, nk = Swift.min(bk, tk - k0)
                BLAS.sgemm(
                    transA: false, transB: true, m: nq, n: nk, k: hd, alpha: d.scale, a: Q, lda: hd,
                    b: K + k0 * hd,
                    ldb: hd, beta: 0, c: s, ldc: bk)
                if cls.kind == .partial {
                    plan.applyMask(
                        b, q0: q0, nq: nq, k0: k0, nk: nk, s, ld: bk, causal: cls.causal, docs: cls.docs,
                        valid: cls.valid)
                }
                var any = false
                for i in 0..<nq {
                    let row = s + i * bk
                    let mOld = mrow[i]
                    let mNew = Swift.max(mOld, rowMax(row, nk))
                    if mNew == -.infinity {
                        row.update(repeating: 0, count: nk)
                        continue
                    }
                    expShifted(row, nk, mNew)
                    let rowSum = ReduceKernels.sum(row, nk)
                    let alpha = expNonPositive(mOld - mNew)
                    lrow[i] = lrow[i] * alpha + rowSum
                    mrow[i] = mNew
                    if alpha != 1 {
                        let o = O + i * dv
                        for c in 0..<dv { o[c] *= alpha }
                    }
                    any = true
                }
                if any && dv > 0 {
                    BLAS.sgemm(
                        transA: false, transB: false, m: nq, n: dv, k: nk, alpha: 1, a: s, lda: bk,
                        b: V + k0 * dv,
                        ldb: dv, beta: 1, c: O, ldc: dv)
                }
            }
            let lse = logSumExp + bh * tq + q0
            for i in 0..<nq {
                if lrow[i] > 0 {
                    let inv = 1 / lrow[i]
                    let o = O + i * dv
                    for c in 0..<dv { o[c] *= inv }
                    lse[i] = mrow[i] + Foundation.log(lrow[i])
                } else {
                    lse[i] = -.infinity
                }
            }
        }
    }

    // MARK: Backward

    /// Gradients of `forward` from its output and logsumexp: dq, dk, dv (all overwritten).
    ///
    /// Scores are recomputed per block: P = exp(scale q k^T - lse), dV += P^T dO, dP = dO V^T,
    /// dS = P * (dP - rowsum(dO * O)), dK += scale dS^T Q, dQ += scale dS K. With many (batch, kv head)
    /// pairs each thread owns whole pairs and does all three in one sweep; otherwise it runs two
    /// sweeps, one over key blocks (dK, dV) and one over query blocks (dQ). The summation order is the
    /// same in both, so results do not depend on the thread count.
    public static func backward(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, out: UnsafePointer<Float>,
        logSumExp: UnsafePointer<Float>, dOut: UnsafePointer<Float>, dims d: AttentionDims,
        mask: AttentionMaskSpec,
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>
    ) {
        let plan = Plan(d, mask, blockSizes)
        defer { plan.free() }
        let (bq, bk, nqb, nkb) = (plan.bq, plan.bk, plan.nqb, plan.nkb)
        let (tq, tk, hd, vd) = (d.queryLength, d.keyLength, d.headDim, d.valueDim)
        let group = d.groupSize
        let rows = d.batch * d.queryHeads * tq
        // Di = rowsum(dO * O).
        let delta = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(rows, 1))
        defer { delta.deallocate() }
        ComputeRuntime.parallelFor(rows, grain: Swift.max(1, (1 << 13) / Swift.max(vd, 1))) { r in
            for i in r { delta[i] = dot(dOut + i * vd, out + i * vd, vd) }
        }

        /// One (query head bh, query block qb, key block kb) step.
        func step(
            _ b: Int, _ bh: Int, _ kvh: Int, _ qb: Int, _ kb: Int, doKV: Bool, doQ: Bool,
            _ buf: UnsafeMutablePointer<Float>
        ) {
            let cls = plan.classify(b, qb, kb)
            if cls.kind == .skip { return }
            let q0 = qb * bq, nq = Swift.min(bq, tq - q0)
            let k0 = kb * bk, nk = Swift.min(bk, tk - k0)
            let Q = q + (bh * tq + q0) * hd, dO = dOut + (bh * tq + q0) * vd
            let K = k + (kvh * tk + k0) * hd, V = v + (kvh * tk + k0) * vd
            let lse = logSumExp + bh * tq + q0, di = delta + bh * tq + q0
            let p = buf, ds = buf + bq * bk
            BLAS.sgemm(
                transA: false, transB: true, m: nq, n: nk, k: hd, alpha: d.scale, a: Q, lda: hd, b: K,
                ldb: hd,
                beta: 0, c: p, ldc: bk)
            if cls.kind == .partial {
                plan.applyMask(
                    b, q0: q0, nq: nq, k0: k0, nk: nk, p, ld: bk, causal: cls.causal, docs: cls.docs,
                    valid: cls.valid)
            }
            for i in 0..<nq {
                let row = p + i * bk
                if lse[i] == -.infinity {
                    row.update(repeating: 0, count: nk)
                } else {
                    expShifted(row, nk, lse[i])
                }
            }
            if vd > 0 {
                if doKV {
                    BLAS.sgemm(
                        transA: true, transB: false, m: nk, n: vd, k: nq, alpha: 1, a: p, lda: bk, b: dO,
                        ldb: vd,
                        beta: 1, c: dv + (kvh * tk + k0) * vd, ldc: vd)
                }
                BLAS.sgemm(
                    transA: false, transB: true, m: nq, n: nk, k: vd, alpha: 1, a: dO, lda: vd, b: V, ldb: vd,
                    beta: 0, c: ds, ldc: bk)
            } else {
                for i in 0..<nq { (ds + i * bk).update(repeating: 0, count: nk) }
            }
            for i in 0..<nq {
                let pr = p + i * bk, sr = ds + i * bk, dd = di[i]
                for j in 0..<nk { sr[j] = pr[j] * (sr[j] - dd) }
            }
            if doKV {
                BLAS.sgemm(
                    transA: true, transB: false, m: nk, n: hd, k: nq, alpha: d.scale, a: ds, lda: bk, b: Q,
                    ldb: hd,
                    beta: 1, c: dk + (kvh * tk + k0) * hd, ldc: hd)
            }
            if doQ {
                BLAS.sgemm(
                    transA: false, transB: false, m: nq, n: hd, k: nk, alpha: d.scale, a: ds, lda: bk, b: K,
                    ldb: hd,
                    beta: 1, c: dq + (bh * tq + q0) * hd, ldc: hd)
            }
        }

        let pairs = d.batch * d.kvHeads
        let threads = ComputeRuntime.threads
        let scratch = 2 * bq * bk
        if threads == 1 || pairs % threads == 0 || pairs >= 4 * threads {
            // One sweep per (batch, kv head): the thread owns its dK, dV and its query heads' dQ.
            parallelItems(pairs, scratch: scratch) { kvh, buf in
                let b = kvh / d.kvHeads
                let h0 = (kvh % d.kvHeads) * group
                dk.advanced(by: kvh * tk * hd).update(repeating: 0, count: tk * hd)
                dv.advanced(by: kvh * tk * vd).update(repeating: 0, count: tk * vd)
                for g in 0..<group {
                    let bh = b * d.queryHeads + h0 + g
                    dq.advanced(by: bh * tq * hd).update(repeating: 0, count: tq * hd)
                    for qb in 0..<nqb {
                        for kb in 0..<nkb { step(b, bh, kvh, qb, kb, doKV: true, doQ: true, buf) }
                    }
                }
            }
        } else {
            // Few pairs: (batch, kv head, key block) items for dK/dV and (batch, head, query block)
            // items for dQ, dealt out together.
            let kvItems = pairs * nkb
            let qItems = d.batch * d.queryHeads * nqb
            parallelItems(kvItems + qItems, scratch: scratch) { item, buf in
                if item < kvItems {
                    let kb = item % nkb, kvh = item / nkb
                    let b = kvh / d.kvHeads
                    let h0 = (kvh % d.kvHeads) * group
                    let k0 = kb * bk, nk = Swift.min(bk, tk - k0)
                    dk.advanced(by: (kvh * tk + k0) * hd).update(repeating: 0, count: nk * hd)
                    dv.advanced(by: (kvh * tk + k0) * vd).update(repeating: 0, count: nk * vd)
                    for g in 0..<group {
                        let bh = b * d.queryHeads + h0 + g
                        for qb in 0..<nqb { step(b, bh, kvh, qb, kb, doKV: true, doQ: false, buf) }
                    }
                } else {
                    let it = item - kvItems
                    let qb = it % nqb, bh = it / nqb
                    let b = bh / d.queryHeads
                    let kvh = b * d.kvHeads + (bh % d.queryHeads) / group
                    let q0 = qb * bq, nq = Swift.min(bq, tq - q0)
                    dq.advanced(by: (bh * tq + q0) * hd).update(repeating: 0, count: nq * hd)
                    for kb in 0..<nkb { step(b, bh, kvh, qb, kb, doKV: false, doQ: true, buf) }
                }
            }
        }
    }
}
