import TensorKernels

extension CPUBackend {
    public func unary(_ op: UnaryOp, _ x: ConstPtr, _ y: MutPtr, _ n: Int) {
        ElementwiseKernels.unary(op, x, y, n)
    }

    public func unaryBackward(_ op: UnaryOp, x: ConstPtr, y: ConstPtr, dy: ConstPtr, dx: MutPtr, _ n: Int) {
        ElementwiseKernels.unaryBackward(op, x: x, y: y, dy: dy, dx: dx, n)
    }

    public func binarySame(_ op: BinaryOp, _ a: ConstPtr, _ b: ConstPtr, _ out: MutPtr, _ n: Int) {
        ElementwiseKernels.binarySame(op, a, b, out, n)
    }

    public func binary(
        _ op: BinaryOp, _ a: ConstPtr, _ aStrides: [Int], _ b: ConstPtr, _ bStrides: [Int], _ out: MutPtr,
        shape: [Int]
    ) {
        let contiguous = contiguousStrides(shape)
        if aStrides == contiguous && bStrides == contiguous {
            ElementwiseKernels.binarySame(op, a, b, out, shape.reduce(1, *))
        } else {
            ElementwiseKernels.binaryBroadcast(op, a, aStrides, b, bStrides, out, shape: shape)
        }
    }

    public func axpby(_ alpha: Float, _ x: ConstPtr, _ beta: Float, _ y: MutPtr, _ n: Int) {
        ComputeRuntime.parallelFor(n) { r in
            if beta == 1 {
                for i in r { y[i] += alpha * x[i] }
            } else {
                for i in r { y[i] = alpha * x[i] + beta * y[i] }
            }
        }
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
        ReduceKernels.reduce(op, x, outer: outer, n: n, inner: inner, out)
    }

    public func argReduce(
        max: Bool, _ x: ConstPtr, outer: Int, n: Int, inner: Int, values: MutPtr,
        indices: UnsafeMutablePointer<Int>
    ) {
        ReduceKernels.argReduce(
            max: max, x, outer: outer, n: n, inner: inner, values: values, indices: indices)
    }

    public func softmax(_ x: ConstPtr, rows: Int, n: Int, _ y: MutPtr, log: Bool) {
        ReduceKernels.softmax(x, rows: rows, n: n, y, log: log)
    }

    public func softmaxBackward(y: ConstPtr, dy: ConstPtr, rows: Int, n: Int, dx: MutPtr, log: Bool) {
        ReduceKernels.softmaxBackward(y: y, dy: dy, rows: rows, n: n, dx: dx, log: log)
    }

    public func cumsum(_ x: ConstPtr, outer: Int, n: Int, inner: Int, _ y: MutPtr, reverse: Bool) {
        ReduceKernels.cumsum(x, outer: outer, n: n, inner: inner, y, reverse: reverse)
    }

    public func gemm(
        batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: ConstPtr, lda: Int, strideA: Int, b: ConstPtr, ldb: Int, strideB: Int,
        beta: Float, c: MutPtr, ldc: Int, strideC: Int
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for bi in 0..<batch {
                for i in 0..<m { for j in 0..<n { c[bi * strideC + i * ldc + j] *= beta } }
            }
            return
        }
        // Problems whose A is shared and contiguous stack into one taller GEMM: [batch*m, k] x [k, n].
        if batch > 1 && strideA != 0 && !transA && strideB == 0 && lda == k && strideA == m * k && ldc == n
            && strideC == m * n
        {
            BLAS.sgemm(
                transA: false, transB: transB, m: batch * m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
                ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let flops = 2.0 * Double(m) * Double(n) * Double(k)
        if batch == 1 {
            // Small products run on one thread: OpenBLAS's threaded path costs more than it saves
            // there, and it allocates a 512 KB job buffer with malloc on every call.
            if flops < 4e6 && ComputeRuntime.threads > 1 {
                BLAS.withSingleThread {
                    BLAS.sgemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
                        ldb: ldb, beta: beta, c: c, ldc: ldc)
                }
            } else {
                BLAS.sgemm(
                    transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
                    ldb: ldb, beta: beta, c: c, ldc: ldc)
            }
            return
        }
        // Many small problems: one thread each (BLAS single-threaded inside) when they are small;
        // large problems go one after another with BLAS's own threads.
        if flops < 4e6 && ComputeRuntime.threads > 1 {
            BLAS.withSingleThread {
                ComputeRuntime.parallelFor(batch, grain: 1) { r in
                    for bi in r {
                        BLAS.sgemm(
                            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                            a: a + bi * strideA, lda: lda, b: b + bi * strideB, ldb: ldb, beta: beta,
                            c: c + bi * strideC, ldc: ldc)
                    }
                }
            }
        } else {
            for bi in 0..<batch {
                BLAS.sgemm(
                    transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                    a: a + bi * strideA, lda: lda, b: b + bi * strideB, ldb: ldb, beta: beta,
                    c: c + bi * strideC, ldc: ldc)
            }
        }
    }

    public func gather(_ src: ConstPtr, strides: [Int], _ dst: MutPtr, shape: [Int]) {
        ElementwiseKernels.gather(src, strides: strides, dst, shape: shape)
    }

    public func scatter(_ src: ConstPtr, _ dst: MutPtr, strides: [Int], shape: [Int]) {
        ElementwiseKernels.scatter(src, dst, strides: strides, shape: shape)
    }

    public func fill(_ value: Float, _ dst: MutPtr, _ n: Int) {
        ComputeRuntime.parallelFor(n) { r in for i in r { dst[i] = value } }
    }
}
