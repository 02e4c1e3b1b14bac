import Foundation
import TensorKernels

extension ReferenceBackend {
    public func unary(_ op: UnaryOp, _ x: ConstPtr, _ y: MutPtr, _ n: Int) {
        for i in 0..<n { y[i] = Scalar.unary(op, x[i]) }
    }

    public func unaryBackward(_ op: UnaryOp, x: ConstPtr, y: ConstPtr, dy: ConstPtr, dx: MutPtr, _ n: Int) {
        for i in 0..<n { dx[i] = dy[i] * Scalar.unaryDerivative(op, x[i], y[i]) }
    }

    public func binarySame(_ op: BinaryOp, _ a: ConstPtr, _ b: ConstPtr, _ out: MutPtr, _ n: Int) {
        for i in 0..<n { out[i] = Scalar.binary(op, a[i], b[i]) }
    }

    public func binary(
        _ op: BinaryOp, _ a: ConstPtr, _ aStrides: [Int], _ b: ConstPtr, _ bStrides: [Int], _ out: MutPtr,
        shape: [Int]
    ) {
        forEachIndex(shape) { lin, idx in
            out[lin] = Scalar.binary(op, a[dot(idx, aStrides)], b[dot(idx, bStrides)])
        }
    }

    public func axpby(_ alpha: Float, _ x: ConstPtr, _ beta: Float, _ y: MutPtr, _ n: Int) {
        for i in 0..<n { y[i] = Float(Double(alpha) * Double(x[i]) + Double(beta) * Double(y[i])) }
    }

    public func select(
        _ cond: ConstPtr, _ cStrides: [Int], _ a: ConstPtr, _ aStrides: [Int], _ b: ConstPtr,
        _ bStrides: [Int], _ out: MutPtr, shape: [Int]
    ) {
        forEachIndex(shape) { lin, idx in
            out[lin] = cond[dot(idx, cStrides)] != 0 ? a[dot(idx, aStrides)] : b[dot(idx, bStrides)]
        }
    }

    public func reduce(_ op: ReduceOp, _ x: ConstPtr, outer: Int, n: Int, inner: Int, _ out: MutPtr) {
        for o in 0..<outer {
            for i in 0..<inner {
                var acc: Double = op == .sum ? 0 : (op == .max ? -.infinity : .infinity)
                for j in 0..<n {
                    let v = Double(x[(o * n + j) * inner + i])
                    switch op {
                    case .sum: acc += v
                    case .max: acc = v.isNaN || acc.isNaN ? .nan : Swift.max(acc, v)
                    case .min: acc = v.isNaN || acc.isNaN ? .nan : Swift.min(acc, v)
                    }
                }
                out[o * inner + i] = Float(acc)
            }
        }
    }

    public func argReduce(
        max: Bool, _ x: ConstPtr, outer: Int, n: Int, inner: Int, values: MutPtr,
        indices: UnsafeMutablePointer<Int>
    ) {
        for o in 0..<outer {
            for i in 0..<inner {
                var best = x[o * n * inner + i]
                var at = 0
                for j in 0..<n {
                    let v = x[(o * n + j) * inner + i]
                    if v.isNaN { if !best.isNaN || at > j { best = v; at = j }; break }
                    if j > 0 && (max ? v > best : v < best) { best = v; at = j }
                }
                if best.isNaN && at == 0 && x[o * n * inner + i].isNaN { at = 0 }
                values[o * inner + i] = best
                indices[o * inner + i] = at
            }
        }
    }

    public func softmax(_ x: ConstPtr, rows: Int, n: Int, _ y: MutPtr, log: Bool) {
        for r in 0..<rows {
            var m = -Double.infinity
            for j in 0..<n { m = Swift.max(m, Double(x[r * n + j])) }
            var s = 0.0
            for j in 0..<n { s += Foundation.exp(Double(x[r * n + j]) - m) }
            for j in 0..<n {
                let v = Double(x[r * n + j]) - m
                y[r * n + j] = Float(log ? v - Foundation.log(s) : Foundation.exp(v) / s)
            }
        }
    }

    public func softmaxBackward(y: ConstPtr, dy: ConstPtr, rows: Int, n: Int, dx: MutPtr, log: Bool) {
        for r in 0..<rows {
            var acc = 0.0
            for j in 0..<n {
                acc += log ? Double(dy[r * n + j]) : Double(dy[r * n + j]) * Double(y[r * n + j])
            }
            for j in 0..<n {
                let yv = Double(y[r * n + j]), g = Double(dy[r * n + j])
                dx[r * n + j] = Float(log ? g - Foundation.exp(yv) * acc : yv * (g - acc))
            }
        }
    }

    public func cumsum(_ x: ConstPtr, outer: Int, n: Int, inner: Int, _ y: MutPtr, reverse: Bool) {
        for o in 0..<outer {
            for i in 0..<inner {
                var acc = 0.0
                for jj in 0..<n {
                    let j = reverse ? n - 1 - jj : jj
                    acc += Double(x[(o * n + j) * inner + i])
                    y[(o * n + j) * inner + i] = Float(acc)
                }
            }
        }
    }

    public func gemm(
        batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: ConstPtr, lda: Int, strideA: Int, b: ConstPtr, ldb: Int, strideB: Int,
        beta: Float, c: MutPtr, ldc: Int, strideC: Int
    ) {
        for bi in 0..<batch {
            let pa = a + bi * strideA, pb = b + bi * strideB, pc = c + bi * strideC
            for i in 0..<m {
                for j in 0..<n {
                    var acc = 0.0
                    for p in 0..<k {
                        let av = transA ? pa[p * lda + i] : pa[i * lda + p]
                        let bv = transB ? pb[j * ldb + p] : pb[p * ldb + j]
                        acc += Double(av) * Double(bv)
                    }
                    let prev = beta == 0 ? 0 : Double(beta) * Double(pc[i * ldc + j])
                    pc[i * ldc + j] = Float(Double(alpha) * acc + prev)
                }
            }
        }
    }

    public func gather(_ src: ConstPtr, strides: [Int], _ dst: MutPtr, shape: [Int]) {
        forEachIndex(shape) { lin, idx in dst[lin] = src[dot(idx, strides)] }
    }

    public func scatter(_ src: ConstPtr, _ dst: MutPtr, strides: [Int], shape: [Int]) {
        forEachIndex(shape) { lin, idx in dst[dot(idx, strides)] = src[lin] }
    }

    public func fill(_ value: Float, _ dst: MutPtr, _ n: Int) {
        for i in 0..<n { dst[i] = value }
    }
}
