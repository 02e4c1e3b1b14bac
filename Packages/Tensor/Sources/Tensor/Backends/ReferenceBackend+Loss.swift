import Foundation
import TensorKernels

extension ReferenceBackend {
    public func crossEntropyForward(
        logits: ConstPtr, targets: UnsafePointer<Int>, rows: Int, classes: Int, ignoreIndex: Int,
        labelSmoothing: Float, lse: MutPtr, loss: MutPtr
    ) {
        let eps = Double(labelSmoothing)
        for r in 0..<rows {
            let t = targets[r]
            if t == ignoreIndex {
                lse[r] = 0
                loss[r] = 0
                continue
            }
            var m = -Double.infinity
            var sumX = 0.0
            for j in 0..<classes {
                let v = Double(logits[r * classes + j])
                m = Swift.max(m, v)
                sumX += v
            }
            var s = 0.0
            for j in 0..<classes { s += Foundation.exp(Double(logits[r * classes + j]) - m) }
            let l = m + Foundation.log(s)
            let nll = l - Double(logits[r * classes + t])
            lse[r] = Float(l)
            loss[r] = Float((1 - eps) * nll + eps * (l - sumX / Double(classes)))
        }
    }

    public func crossEntropyBackward(
        logits: ConstPtr, targets: UnsafePointer<Int>, lse: ConstPtr, rows: Int, classes: Int,
        ignoreIndex: Int,
        labelSmoothing: Float, gradLoss: Float, gradZ: Float, zLossCoefficient: Float, dlogits: MutPtr
    ) {
        let eps = Double(labelSmoothing), gl = Double(gradLoss)
        for r in 0..<rows {
            let t = targets[r]
            if t == ignoreIndex {
                for j in 0..<classes { dlogits[r * classes + j] = 0 }
                continue
            }
            // Recompute the log-sum-exp in Double rather than trusting the stored Float.
            var m = -Double.infinity
            for j in 0..<classes { m = Swift.max(m, Double(logits[r * classes + j])) }
            var s = 0.0
            for j in 0..<classes { s += Foundation.exp(Double(logits[r * classes + j]) - m) }
            let l = m + Foundation.log(s)
            let a = gl + 2 * Double(zLossCoefficient) * l * Double(gradZ)
            for j in 0..<classes {
                let softmax = Foundation.exp(Double(logits[r * classes + j]) - l)
                let target = (j == t ? 1 - eps : 0) + eps / Double(classes)
                dlogits[r * classes + j] = Float(softmax * a - gl * target)
            }
        }
    }

    public func indexSelect(
        _ x: ConstPtr, outer: Int, n: Int, inner: Int, indices: UnsafePointer<Int>, k: Int, _ out: MutPtr
    ) {
        for o in 0..<outer {
            for i in 0..<k {
                for c in 0..<inner { out[(o * k + i) * inner + c] = x[(o * n + indices[i]) * inner + c] }
            }
        }
    }

    public func indexAdd(
        _ src: ConstPtr, outer: Int, k: Int, inner: Int, indices: UnsafePointer<Int>, n: Int, _ dst: MutPtr
    ) {
        // Accumulate in Double per destination element, then add once.
        var acc = [Double](repeating: 0, count: outer * n * inner)
        for o in 0..<outer {
            for i in 0..<k {
                for c in 0..<inner {
                    acc[(o * n + indices[i]) * inner + c] += Double(src[(o * k + i) * inner + c])
                }
            }
        }
        for e in 0..<acc.count where acc[e] != 0 { dst[e] = Float(Double(dst[e]) + acc[e]) }
    }

    public func gatherAlongAxis(
        _ src: ConstPtr, srcStrides: [Int], axis: Int, index: UnsafePointer<Int>, indexShape: [Int],
        _ out: MutPtr
    ) {
        forEachIndex(indexShape) { lin, idx in
            var c = idx
            c[axis] = index[lin]
            out[lin] = src[dot(c, srcStrides)]
        }
    }

    public func scatterAddAlongAxis(
        _ src: ConstPtr, srcStrides: [Int], axis: Int, index: UnsafePointer<Int>, indexShape: [Int],
        _ dst: MutPtr, dstStrides: [Int]
    ) {
        var acc: [Int: Double] = [:]
        forEachIndex(indexShape) { lin, idx in
            var c = idx
            c[axis] = index[lin]
            acc[dot(c, dstStrides), default: 0] += Double(src[dot(idx, srcStrides)])
        }
        for (offset, v) in acc { dst[offset] = Float(Double(dst[offset]) + v) }
    }

    public func philoxDropout(_ x: ConstPtr, _ y: MutPtr, count: Int, p: Float, seed: UInt64, offset: UInt64)
    {
        let keep = 1 - Double(p)
        for i in 0..<count {
            let block = RandomGenerator.philox(offset &+ UInt64(i / 4), seed)
            let u = Double(RandomGenerator.word(block, i) >> 8) / Double(1 << 24)
            y[i] = u >= Double(p) ? Float(Double(x[i]) / keep) : 0
        }
    }
}
