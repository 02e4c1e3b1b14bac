import TensorKernels

extension CPUBackend {
    public func crossEntropyForward(
        logits: ConstPtr, targets: UnsafePointer<Int>, rows: Int, classes: Int, ignoreIndex: Int,
        labelSmoothing: Float, lse: MutPtr, loss: MutPtr
    ) {
        CrossEntropyKernels.forward(
            logits: logits, targets: targets, rows: rows, classes: classes, ignoreIndex: ignoreIndex,
            labelSmoothing: labelSmoothing, lse: lse, loss: loss)
    }

    public func crossEntropyBackward(
        logits: ConstPtr, targets: UnsafePointer<Int>, lse: ConstPtr, rows: Int, classes: Int,
        ignoreIndex: Int,
        labelSmoothing: Float, gradLoss: Float, gradZ: Float, zLossCoefficient: Float, dlogits: MutPtr
    ) {
        CrossEntropyKernels.backward(
            logits: logits, targets: targets, lse: lse, rows: rows, classes: classes,
            ignoreIndex: ignoreIndex,
            labelSmoothing: labelSmoothing, gradLoss: gradLoss, gradZ: gradZ,
            zLossCoefficient: zLossCoefficient,
            dlogits: dlogits)
    }

    public func indexSelect(
        _ x: ConstPtr, outer: Int, n: Int, inner: Int, indices: UnsafePointer<Int>, k: Int, _ out: MutPtr
    ) {
        IndexKernels.indexSelect(x, outer: outer, n: n, inner: inner, indices: indices, k: k, out)
    }

    public func indexAdd(
        _ src: ConstPtr, outer: Int, k: Int, inner: Int, indices: UnsafePointer<Int>, n: Int, _ dst: MutPtr
    ) {
        IndexKernels.indexAdd(src, outer: outer, k: k, inner: inner, indices: indices, n: n, dst)
    }

    public func gatherAlongAxis(
        _ src: ConstPtr, srcStrides: [Int], axis: Int, index: UnsafePointer<Int>, indexShape: [Int],
        _ out: MutPtr
    ) {
        IndexKernels.gather(
            src, srcStrides: srcStrides, axis: axis, index: index, indexShape: indexShape, out)
    }

    public func scatterAddAlongAxis(
        _ src: ConstPtr, srcStrides: [Int], axis: Int, index: UnsafePointer<Int>, indexShape: [Int],
        _ dst: MutPtr, dstStrides: [Int]
    ) {
        IndexKernels.scatterAdd(
            src, srcStrides: srcStrides, axis: axis, index: index, indexShape: indexShape, dst,
            dstStrides: dstStrides)
    }

    public func philoxDropout(_ x: ConstPtr, _ y: MutPtr, count: Int, p: Float, seed: UInt64, offset: UInt64)
    {
        let scale = 1 / (1 - p)
        // Chunks start on Philox block boundaries (multiples of 4 elements).
        let blocks = (count + 3) / 4
        ComputeRuntime.parallelFor(blocks, grain: 1 << 10) { r in
            for b in r {
                let w = RandomGenerator.philox(offset &+ UInt64(b), seed)
                let i = b &* 4
                if i + 4 <= count {
                    y[i] = Float(w.0 >> 8) * 0x1p-24 >= p ? x[i] * scale : 0
                    y[i + 1] = Float(w.1 >> 8) * 0x1p-24 >= p ? x[i + 1] * scale : 0
                    y[i + 2] = Float(w.2 >> 8) * 0x1p-24 >= p ? x[i + 2] * scale : 0
                    y[i + 3] = Float(w.3 >> 8) * 0x1p-24 >= p ? x[i + 3] * scale : 0
                } else {
                    for j in i..<count {
                        let u = Float(RandomGenerator.word(w, j) >> 8) * 0x1p-24
                        y[j] = u >= p ? x[j] * scale : 0
                    }
                }
            }
        }
    }
}
