import Foundation
import TensorKernels

extension ReferenceBackend {
    /// Softmax probabilities of query row i of (batch b, query head h) over all keys, in Double
    /// (all zero when no key is visible), and the row's logsumexp.
    private func probabilities(
        _ q: ConstPtr, _ k: ConstPtr, _ d: AttentionDims, _ mask: AttentionMaskSpec, b: Int, h: Int, i: Int
    ) -> (p: [Double], lse: Double) {
        let kvh = b * d.kvHeads + h / d.groupSize
        let qrow = q + ((b * d.queryHeads + h) * d.queryLength + i) * d.headDim
        var s = [Double](repeating: -.infinity, count: d.keyLength)
        for j in 0..<d.keyLength
        where mask.isVisible(batch: b, query: i, key: j, queryLength: d.queryLength, keyLength: d.keyLength) {
            let krow = k + (kvh * d.keyLength + j) * d.headDim
            var acc = 0.0
            for c in 0..<d.headDim { acc += Double(qrow[c]) * Double(krow[c]) }
            s[j] = acc * Double(d.scale)
        }
        let m = s.max() ?? -.infinity
        guard m > -.infinity else { return ([Double](repeating: 0, count: d.keyLength), -.infinity) }
        let e = s.map { Foundation.exp($0 - m) }
        let l = e.reduce(0, +)
        return (e.map { $0 / l }, m + Foundation.log(l))
    }

    public func attentionForward(
        q: ConstPtr, k: ConstPtr, v: ConstPtr, dims d: AttentionDims, mask: AttentionMaskSpec, out: MutPtr,
        logSumExp: MutPtr
    ) {
        for b in 0..<d.batch {
            for h in 0..<d.queryHeads {
                let kvh = b * d.kvHeads + h / d.groupSize
                for i in 0..<d.queryLength {
                    let (p, lse) = probabilities(q, k, d, mask, b: b, h: h, i: i)
                    let row = (b * d.queryHeads + h) * d.queryLength + i
                    logSumExp[row] = Float(lse)
                    for c in 0..<d.valueDim {
                        var acc = 0.0
                        for j in 0..<d.keyLength where p[j] != 0 {
                            acc += p[j] * Double(v[(kvh * d.keyLength + j) * d.valueDim + c])
                        }
                        out[row * d.valueDim + c] = Float(acc)
                    }
                }
            }
        }
    }

    /// Recomputes the probabilities from q and k in Double (ignoring the saved `out`/`logSumExp`).
    public func attentionBackward(
        q: ConstPtr, k: ConstPtr, v: ConstPtr, out: ConstPtr, logSumExp: ConstPtr, dOut: ConstPtr,
        dims d: AttentionDims, mask: AttentionMaskSpec, dq: MutPtr, dk: MutPtr, dv: MutPtr
    ) {
        let (tq, tk, hd, vd) = (d.queryLength, d.keyLength, d.headDim, d.valueDim)
        var gk = [Double](repeating: 0, count: d.batch * d.kvHeads * tk * hd)
        var gv = [Double](repeating: 0, count: d.batch * d.kvHeads * tk * vd)
        let scale = Double(d.scale)
        for b in 0..<d.batch {
            for h in 0..<d.queryHeads {
                let bh = b * d.queryHeads + h
                let kvh = b * d.kvHeads + h / d.groupSize
                for i in 0..<tq {
                    let (p, _) = probabilities(q, k, d, mask, b: b, h: h, i: i)
                    let go = dOut + (bh * tq + i) * vd
                    // dP_j = dO . v_j; dS_j = P_j (dP_j - sum_l P_l dP_l).
                    var dp = [Double](repeating: 0, count: tk)
                    var rowDot = 0.0
                    for j in 0..<tk where p[j] != 0 {
                        var acc = 0.0
                        for c in 0..<vd { acc += Double(go[c]) * Double(v[(kvh * tk + j) * vd + c]) }
                        dp[j] = acc
                        rowDot += p[j] * acc
                    }
                    var gq = [Double](repeating: 0, count: hd)
                    let qrow = q + (bh * tq + i) * hd
                    for j in 0..<tk where p[j] != 0 {
                        let dsj = p[j] * (dp[j] - rowDot) * scale
                        for c in 0..<vd { gv[(kvh * tk + j) * vd + c] += p[j] * Double(go[c]) }
                        for c in 0..<hd {
                            gq[c] += dsj * Double(k[(kvh * tk + j) * hd + c])
                            gk[(kvh * tk + j) * hd + c] += dsj * Double(qrow[c])
                        }
                    }
                    for c in 0..<hd { dq[(bh * tq + i) * hd + c] = Float(gq[c]) }
                }
            }
        }
        for i in 0..<gk.count { dk[i] = Float(gk[i]) }
        for i in 0..<gv.count { dv[i] = Float(gv[i]) }
    }
}
