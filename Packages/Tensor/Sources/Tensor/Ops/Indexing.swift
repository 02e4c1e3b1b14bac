import TensorKernels

/// Looks up rows of an embedding table (PyTorch `F.embedding`).
///
/// Backward scatter-adds the output gradient into dWeight: rows of repeated ids sum. The kernel
/// splits the work over columns, so no two threads write one element.
/// ```swift
/// let table = Parameter(Tensor.normal([32000, 512], generator: &gen))
/// let x = try embedding(tokens, weight: table.value)     // tokens [B, T] -> [B, T, 512]
/// ```
/// - Parameters:
///   - ids: indices of any shape, each in [0, V).
///   - weight: `[V, D]`.
/// - Returns: `[ids.shape..., D]`.
/// - Throws: `TensorError` when weight is not 2-D or an id is out of range (naming its position,
///   the id and V).
public func embedding(_ ids: IndexTensor, weight: Tensor) throws -> Tensor {
    guard weight.rank == 2 else {
        throw TensorError("embedding", "weight must be [V, D], got \(fmt(weight.shape))")
    }
    let vocab = weight.shape[0], dim = weight.shape[1]
    for (pos, id) in ids.values.enumerated() where id < 0 || id >= vocab {
        throw TensorError(
            "embedding",
            "id \(id) at position \(indexingPositionDescription(pos, ids.shape)) is out of range for a vocabulary of \(vocab) (weight \(fmt(weight.shape)))"
        )
    }
    let k = ids.count
    let out = Tensor(uninitializedShape: ids.shape + [dim])
    ids.values.withUnsafeBufferPointer { ip in
        if k > 0 {
            Backends.current.indexSelect(
                weight.ptr, outer: 1, n: vocab, inner: dim, indices: ip.baseAddress!, k: k,
                out.storage.pointer)
        }
    }
    return Tensor.record(out, op: "embedding", inputs: [weight]) { g in
        let dw = Tensor.zeros([vocab, dim])
        ids.values.withUnsafeBufferPointer { ip in
            if k > 0 {
                Backends.current.indexAdd(
                    g.ptr, outer: 1, k: k, inner: dim, indices: ip.baseAddress!, n: vocab, dw.storage.pointer)
            }
        }
        return [dw]
    }
}

extension Tensor {
    /// Selects entries along `axis` at `indices` (PyTorch `index_select`); indices may repeat, and
    /// their gradients then sum.
    /// - Parameters:
    ///   - axis: the axis to index (negative counts from the end).
    ///   - indices: 1-D (or 0-D), each in [0, shape[axis]).
    /// - Returns: this shape with `shape[axis]` replaced by `indices.count`.
    /// - Throws: `TensorError` for a bad axis, a multi-dimensional index, or an index out of range.
    public func indexSelect(axis: Int, indices: IndexTensor) throws -> Tensor {
        let op = "index_select"
        guard rank >= 1 else { throw TensorError(op, "cannot index a scalar tensor") }
        let a = try normalizeAxis(axis, rank: rank, op: op)
        guard indices.shape.count <= 1 else {
            throw TensorError(op, "indices must be 1-D, got shape \(fmt(indices.shape))")
        }
        let (outer, n, inner) = split3(a)
        for (pos, i) in indices.values.enumerated() where i < 0 || i >= n {
            throw TensorError(
                op,
                "index \(i) at position \(pos) is out of range for dimension \(a) of size \(n) (input \(fmt(shape)))"
            )
        }
        let k = indices.count
        var outShape = shape
        outShape[a] = k
        let out = Tensor(uninitializedShape: outShape)
        indices.values.withUnsafeBufferPointer { ip in
            if out.count > 0 {
                Backends.current.indexSelect(
                    ptr, outer: outer, n: n, inner: inner, indices: ip.baseAddress!, k: k, out.storage.pointer
                )
            }
        }
        let inShape = shape
        return Tensor.record(out, op: op, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            indices.values.withUnsafeBufferPointer { ip in
                if g.count > 0 {
                    Backends.current.indexAdd(
                        g.ptr, outer: outer, k: k, inner: inner, indices: ip.baseAddress!, n: n,
                        dx.storage.pointer)
                }
            }
            return [dx]
        }
    }

    /// Checks an index for gather / scatter_add along axis `a` of a tensor of `shape`: same rank,
    /// no larger than `shape` off the axis (and than `limit` everywhere, when given), values in
    /// [0, shape[a]).
    func checkAxisIndex(_ index: IndexTensor, axis a: Int, op: String, limit: [Int]? = nil) throws {
        guard index.shape.count == rank else {
            throw TensorError(
                op, "index of shape \(fmt(index.shape)) must have the rank of the input \(fmt(shape))")
        }
        for d in 0..<rank {
            if d != a, index.shape[d] > shape[d] {
                throw TensorError(
                    op, "index \(fmt(index.shape)) is larger than the input \(fmt(shape)) in dimension \(d)")
            }
            if let limit, index.shape[d] > limit[d] {
                throw TensorError(
                    op, "index \(fmt(index.shape)) is larger than the source \(fmt(limit)) in dimension \(d)")
            }
        }
        let n = shape[a]
        for (pos, i) in index.values.enumerated() where i < 0 || i >= n {
            throw TensorError(
                op,
                "index \(i) at position \(indexingPositionDescription(pos, index.shape)) is out of range for dimension \(a) of size \(n) (input \(fmt(shape)))"
            )
        }
    }

    /// Gathers values along `axis` (PyTorch `gather`): for a 3-D input and axis 1,
    /// `out[i][j][k] = self[i][index[i][j][k]][k]`.
    /// - Parameters:
    ///   - axis: the axis the index addresses.
    ///   - index: the output's shape; same rank as this tensor, no larger off `axis`; values in
    ///     [0, shape[axis]).
    /// - Returns: `index.shape`.
    /// - Throws: `TensorError` for a rank or size mismatch or an index out of range.
    public func gather(axis: Int, index: IndexTensor) throws -> Tensor {
        let op = "gather"
        guard rank >= 1 else { throw TensorError(op, "cannot gather from a scalar tensor") }
        let a = try normalizeAxis(axis, rank: rank, op: op)
        try checkAxisIndex(index, axis: a, op: op)
        let out = Tensor(uninitializedShape: index.shape)
        let strides = contiguousStrides(shape)
        index.values.withUnsafeBufferPointer { ip in
            if out.count > 0 {
                Backends.current.gatherAlongAxis(
                    ptr, srcStrides: strides, axis: a, index: ip.baseAddress!, indexShape: index.shape,
                    out.storage.pointer)
            }
        }
        let inShape = shape
        return Tensor.record(out, op: op, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            index.values.withUnsafeBufferPointer { ip in
                if g.count > 0 {
                    Backends.current.scatterAddAlongAxis(
                        g.ptr, srcStrides: contiguousStrides(index.shape), axis: a, index: ip.baseAddress!,
                        indexShape: index.shape, dx.storage.pointer, dstStrides: strides)
                }
            }
            return [dx]
        }
    }

    /// Out-of-place scatter-add along `axis` (PyTorch `scatter_add`): a copy of this tensor where,
    /// for a 3-D input and axis 0, `out[index[i][j][k]][j][k] += source[i][j][k]` for every
    /// position of `index`; repeated targets sum. Differentiable with respect to this tensor and
    /// `source`.
    /// - Parameters:
    ///   - index: same rank; no larger than `source` anywhere, nor than this tensor off `axis`;
    ///     values in [0, shape[axis]).
    ///   - source: same rank as this tensor; only the leading `index.shape` block is read.
    /// - Returns: this tensor's shape.
    /// - Throws: `TensorError` for a rank or size mismatch or an index out of range.
    public func scatterAdd(axis: Int, index: IndexTensor, source: Tensor) throws -> Tensor {
        let op = "scatter_add"
        guard rank >= 1 else { throw TensorError(op, "cannot scatter into a scalar tensor") }
        let a = try normalizeAxis(axis, rank: rank, op: op)
        guard source.rank == rank else {
            throw TensorError(op, "source \(fmt(source.shape)) must have the rank of the input \(fmt(shape))")
        }
        try checkAxisIndex(index, axis: a, op: op, limit: source.shape)
        let out = Tensor(uninitializedShape: shape)
        out.storage.pointer.update(from: storage.pointer, count: count)
        let strides = contiguousStrides(shape)
        let sourceStrides = contiguousStrides(source.shape)
        index.values.withUnsafeBufferPointer { ip in
            if index.count > 0 {
                Backends.current.scatterAddAlongAxis(
                    source.ptr, srcStrides: sourceStrides, axis: a, index: ip.baseAddress!,
                    indexShape: index.shape,
                    out.storage.pointer, dstStrides: strides)
            }
        }
        let x = self
        let sourceShape = source.shape
        return Tensor.record(out, op: op, inputs: [self, source]) { g in
            var gs: Tensor? = nil
            if source.node != nil {
                let picked = try g.gather(axis: a, index: index)
                gs = try picked.padded(zip(sourceShape, index.shape).map { (0, $0 - $1) })
            }
            return [x.node != nil ? g : nil, gs]
        }
    }
}

/// "5" for a 1-D (or 0-D) index tensor, "5 ([1, 2])" for higher ranks.
func indexingPositionDescription(_ linear: Int, _ shape: [Int]) -> String {
    guard shape.count > 1 else { return "\(linear)" }
    var idx = [Int](repeating: 0, count: shape.count)
    var rem = linear
    for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
        idx[d] = rem % shape[d]
        rem /= shape[d]
    }
    return "\(linear) (\(fmt(idx)))"
}
