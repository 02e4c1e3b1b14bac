/// NumPy/PyTorch broadcasting: shapes are aligned at the right; a size-1 (or missing) dimension
/// stretches to match.
/// - Throws: `TensorError` naming `op` and both shapes when two sizes differ and neither is 1.
public func broadcastShapes(_ a: [Int], _ b: [Int], op: String = "broadcast") throws -> [Int] {
    let rank = max(a.count, b.count)
    var out = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if da == db || db == 1 {
            out[i] = da
        } else if da == 1 {
            out[i] = db
        } else {
            throw TensorError(
                op, "shapes \(fmt(a)) and \(fmt(b)) cannot be broadcast (dimension \(i): \(da) vs \(db))")
        }
    }
    return out
}

/// Element strides that read a contiguous tensor of `shape` as if it had `target` shape (0 where
/// broadcast). `shape` must broadcast to `target`.
func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
    let own = contiguousStrides(shape)
    let offset = target.count - shape.count
    return (0..<target.count).map { i in
        i < offset || shape[i - offset] == 1 ? 0 : own[i - offset]
    }
}

extension Tensor {
    /// Sums a broadcast gradient back to `shape` (the reverse of broadcasting).
    func sumToShape(_ shape: [Int]) throws -> Tensor {
        if self.shape == shape { return self }
        let offset = self.shape.count - shape.count
        var axes: [Int] = Array(0..<offset)
        for (i, s) in shape.enumerated() where s == 1 && self.shape[i + offset] != 1 {
            axes.append(i + offset)
        }
        let summed = axes.isEmpty ? self : try sum(axes: axes, keepDim: true)
        return try summed.reshaped(shape)
    }

    /// A contiguous copy of this tensor broadcast to `shape` (`expand` followed by a copy).
    /// - Throws: `TensorError` when the shapes do not broadcast.
    public func broadcast(to shape: [Int]) throws -> Tensor {
        let target = try broadcastShapes(self.shape, shape, op: "broadcast(to:)")
        guard target == shape else {
            throw TensorError(
                "broadcast(to:)", "shape \(fmt(self.shape)) cannot be broadcast to \(fmt(shape))")
        }
        if self.shape == shape { return self }
        var out = Tensor(uninitializedShape: shape)
        Backends.current.gather(
            ptr, strides: broadcastStrides(self.shape, to: shape), out.storage.pointer, shape: shape)
        let inShape = self.shape
        out = Tensor.record(out, op: "broadcast", inputs: [self]) { g in [try g.sumToShape(inShape)] }
        return out
    }

    /// `broadcast(to:)` under PyTorch's name.
    public func expand(_ shape: [Int]) throws -> Tensor { try broadcast(to: shape) }
}
