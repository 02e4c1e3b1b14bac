import TensorKernels

extension Tensor {
    /// Matrix product with batch broadcasting, as `torch.matmul`, reading either operand transposed
    /// (a flag to the GEMM, never a copy).
    ///
    /// `a` is `[..., m, k]` (`[..., k, m]` when `transposeA`), `b` is `[..., k, n]` (`[..., n, k]` when
    /// `transposeB`); leading batch dimensions broadcast. 1-D operands are treated as PyTorch does.
    /// A 2-D `b` against a batched `a` runs as one GEMM over all rows.
    /// - Returns: `[..., m, n]`.
    /// - Throws: `TensorError` naming both shapes when inner dimensions differ or batches do not broadcast.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false)
        throws -> Tensor
    {
        guard a.rank >= 1, b.rank >= 1 else {
            throw TensorError(
                "matmul", "both operands need at least 1 dimension, got \(fmt(a.shape)) and \(fmt(b.shape))")
        }
        if a.rank == 1 {
            return try matmul(a.unsqueezed(0), b, transposeA: false, transposeB: transposeB).squeezed(-2)
        }
        if b.rank == 1 {
            return try matmul(a, b.unsqueezed(1), transposeA: transposeA, transposeB: false).squeezed(-1)
        }
        let m = transposeA ? a.shape[a.rank - 1] : a.shape[a.rank - 2]
        let ka = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
        let kb = transposeB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
        let n = transposeB ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
        guard ka == kb else {
            throw TensorError(
                "matmul",
                "inner dimensions differ: \(fmt(a.shape))\(transposeA ? "^T" : "") x \(fmt(b.shape))\(transposeB ? "^T" : "") (\(ka) vs \(kb))"
            )
        }
        // A batched a against a 2-D b: fold the batch into the rows, one GEMM.
        if b.rank == 2 && a.rank > 2 && !transposeA {
            let rows = a.shape.dropLast().reduce(1, *)
            let y = try matmul(a.reshaped([rows, ka]), b, transposeB: transposeB)
            return try y.reshaped(Array(a.shape.dropLast()) + [n])
        }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batch = try broadcastShapes(batchA, batchB, op: "matmul")
        let nb = batch.reduce(1, *)
        var A = a, B = b
        var strideA = a.shape.suffix(2).reduce(1, *), strideB = b.shape.suffix(2).reduce(1, *)
        if batchA.reduce(1, *) == 1 {
            strideA = 0
        } else if batchA != batch {
            A = try a.broadcast(to: batch + a.shape.suffix(2))
        }
        if batchB.reduce(1, *) == 1 {
            strideB = 0
        } else if batchB != batch {
            B = try b.broadcast(to: batch + b.shape.suffix(2))
        }
        let out = Tensor(uninitializedShape: batch + [m, n])
        if out.count > 0 {
            try requireBLAS("matmul")
            Backends.current.gemm(
                batch: nb, transA: transposeA, transB: transposeB, m: m, n: n, k: ka, alpha: 1,
                a: A.ptr, lda: a.shape[a.rank - 1], strideA: strideA, b: B.ptr, ldb: b.shape[b.rank - 1],
                strideB: strideB,
                beta: 0, c: out.storage.pointer, ldc: n, strideC: m * n)
        }
        let (ta, tb) = (transposeA, transposeB)
        return record(out, op: "matmul", inputs: [a, b]) { g in
            var ga: Tensor? = nil, gb: Tensor? = nil
            if a.node != nil {
                let full =
                    ta
                    ? try matmul(b, g, transposeA: tb, transposeB: true) : try matmul(g, b, transposeB: !tb)
                ga = try full.sumToShape(a.shape)
            }
            if b.node != nil {
                let full =
                    tb
                    ? try matmul(g, a, transposeA: true, transposeB: ta) : try matmul(a, g, transposeA: !ta)
                gb = try full.sumToShape(b.shape)
            }
            return [ga, gb]
        }
    }

    /// `matmul(self, other)`.
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        try Tensor.matmul(self, other, transposeA: transposeA, transposeB: transposeB)
    }
}

/// Throws `TensorError(op, ...)` saying what to install when the CPU backend is active and OpenBLAS
/// could not be loaded (every GEMM of that backend goes through it).
func requireBLAS(_ op: String) throws {
    guard Backends.current is CPUBackend else { return }
    do { try ComputeRuntime.requireBLAS() } catch let e as BLAS.Unavailable {
        throw TensorError(op, e.description)
    }
}

/// `y = x W^T + b`, as `torch.nn.functional.linear`.
/// - Parameters:
///   - x: `[..., in]`
///   - weight: `[out, in]` (PyTorch's layout)
///   - bias: `[out]` or nil
/// - Returns: `[..., out]`
/// - Throws: `TensorError` when `in` differs or the bias is not `[out]`.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
    guard weight.rank == 2, x.shape.last == weight.shape[1] else {
        throw TensorError(
            "linear", "input \(fmt(x.shape)) does not match weight \(fmt(weight.shape)) ([out, in])")
    }
    let y = try Tensor.matmul(x, weight, transposeB: true)
    guard let bias else { return y }
    guard bias.shape == [weight.shape[0]] else {
        throw TensorError("linear", "bias \(fmt(bias.shape)) does not match weight \(fmt(weight.shape))")
    }
    return try y + bias
}
