import TensorKernels

extension Tensor {
    /// The same elements with a new shape (one size may be -1: inferred). Shares the buffer.
    /// - Throws: `TensorError` when the element counts differ.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var target = newShape
        if let inferred = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != inferred }.reduce(1) { $0 * $1.element }
            guard newShape.filter({ $0 == -1 }).count == 1, known > 0, count % known == 0 else {
                throw TensorError("reshape", "cannot reshape \(fmt(shape)) to \(fmt(newShape))")
            }
            target[inferred] = count / known
        }
        guard target.allSatisfy({ $0 >= 0 }), shapeCount(target) == count else {
            throw TensorError(
                "reshape", "cannot reshape \(fmt(shape)) (\(count) elements) to \(fmt(newShape))")
        }
        if target == shape { return self }
        let inShape = shape
        let out = Tensor(shape: target, storage: storage)
        return Tensor.record(out, op: "reshape", inputs: [self]) { g in [try g.reshaped(inShape)] }
    }

    /// `reshaped` under PyTorch's `view` name.
    public func view(_ shape: [Int]) throws -> Tensor { try reshaped(shape) }

    /// Flattens dimensions `start...end` into one.
    public func flattened(from start: Int = 0, to end: Int = -1) throws -> Tensor {
        if rank == 0 { return try reshaped([1]) }
        let s = try normalizeAxis(start, rank: rank, op: "flatten")
        let e = try normalizeAxis(end, rank: rank, op: "flatten")
        guard s <= e else { throw TensorError("flatten", "start \(start) is after end \(end)") }
        let merged = shape[s...e].reduce(1, *)
        return try reshaped(Array(shape[..<s]) + [merged] + Array(shape[(e + 1)...]))
    }

    /// Reorders dimensions: output dimension i is input dimension `dims[i]` (a contiguous copy).
    /// - Throws: `TensorError` when `dims` is not a permutation of the axes.
    public func permuted(_ dims: [Int]) throws -> Tensor {
        let p = try dims.map { try normalizeAxis($0, rank: rank, op: "permute") }
        guard p.count == rank, Set(p).count == rank else {
            throw TensorError("permute", "\(dims) is not a permutation of the \(rank) axes of \(fmt(shape))")
        }
        if p == Array(0..<rank) { return self }
        let strides = contiguousStrides(shape)
        let outShape = p.map { shape[$0] }
        let out = Tensor(uninitializedShape: outShape)
        Backends.current.gather(ptr, strides: p.map { strides[$0] }, out.storage.pointer, shape: outShape)
        return Tensor.record(out, op: "permute", inputs: [self]) { g in
            [try g.permuted(inversePermutation(p))]
        }
    }

    /// Swaps two dimensions (the last two by default).
    public func transposed(_ a: Int = -2, _ b: Int = -1) throws -> Tensor {
        let x = try normalizeAxis(a, rank: rank, op: "transpose")
        let y = try normalizeAxis(b, rank: rank, op: "transpose")
        var p = Array(0..<rank)
        p.swapAt(x, y)
        return try permuted(p)
    }

    /// Inserts a size-1 dimension at `axis` (which may be `rank`, or negative as PyTorch).
    public func unsqueezed(_ axis: Int) throws -> Tensor {
        let a = try normalizeAxis(axis < 0 ? axis + rank + 1 : axis, rank: rank + 1, op: "unsqueeze")
        var s = shape
        s.insert(1, at: a)
        return try reshaped(s)
    }

    /// Removes size-1 dimensions: the given one, or all when nil.
    public func squeezed(_ axis: Int? = nil) throws -> Tensor {
        if let axis {
            let a = try normalizeAxis(axis, rank: rank, op: "squeeze")
            guard shape[a] == 1 else { return self }
            var s = shape
            s.remove(at: a)
            return try reshaped(s)
        }
        return try reshaped(shape.filter { $0 != 1 })
    }

    /// Elements `start..<end` (step `step`) along `axis`; negative bounds count from the end.
    /// - Returns: the shape with `axis` of size ceil((end - start) / step).
    public func slice(axis: Int, start: Int, end: Int? = nil, step: Int = 1) throws -> Tensor {
        let a = try normalizeAxis(axis, rank: rank, op: "slice")
        guard step > 0 else { throw TensorError("slice", "step must be positive, got \(step)") }
        let n = shape[a]
        func clampIndex(_ i: Int) -> Int { Swift.min(Swift.max(i < 0 ? i + n : i, 0), n) }
        let lo = clampIndex(start)
        let hi = Swift.max(lo, clampIndex(end ?? n))
        let len = (hi - lo + step - 1) / step
        var outShape = shape
        outShape[a] = len
        var strides = contiguousStrides(shape)
        let base = lo * strides[a]
        strides[a] *= step
        let out = Tensor(uninitializedShape: outShape)
        if out.count > 0 {
            Backends.current.gather(ptr + base, strides: strides, out.storage.pointer, shape: outShape)
        }
        let inShape = shape
        return Tensor.record(out, op: "slice", inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            if g.count > 0 {
                Backends.current.scatter(g.ptr, dx.storage.pointer + base, strides: strides, shape: outShape)
            }
            return [dx]
        }
    }

    /// `length` elements from `start` along `axis` (PyTorch `narrow`).
    /// - Throws: `TensorError` when the range leaves the dimension.
    public func narrow(axis: Int, start: Int, length: Int) throws -> Tensor {
        let a = try normalizeAxis(axis, rank: rank, op: "narrow")
        guard start >= 0, length >= 0, start + length <= shape[a] else {
            throw TensorError(
                "narrow", "range \(start)..<\(start + length) is outside dimension \(a) of \(fmt(shape))")
        }
        return try slice(axis: a, start: start, end: start + length)
    }

    /// Splits along `axis` into pieces of the given sizes (they must sum to the dimension).
    public func split(sizes: [Int], axis: Int = 0) throws -> [Tensor] {
        let a = try normalizeAxis(axis, rank: rank, op: "split")
        guard sizes.reduce(0, +) == shape[a], sizes.allSatisfy({ $0 >= 0 }) else {
            throw TensorError("split", "sizes \(sizes) do not sum to dimension \(a) of \(fmt(shape))")
        }
        var start = 0
        return try sizes.map { s in
            defer { start += s }
            return try narrow(axis: a, start: start, length: s)
        }
    }

    /// Splits along `axis` into `chunks` pieces of ceil(n / chunks) (the last may be smaller), as PyTorch.
    public func chunked(_ chunks: Int, axis: Int = 0) throws -> [Tensor] {
        let a = try normalizeAxis(axis, rank: rank, op: "chunk")
        guard chunks > 0 else { throw TensorError("chunk", "chunks must be positive, got \(chunks)") }
        let n = shape[a]
        let size = Swift.max(1, (n + chunks - 1) / chunks)
        var sizes: [Int] = []
        var left = n
        while left > 0 {
            sizes.append(Swift.min(size, left))
            left -= size
        }
        return try split(sizes: sizes, axis: a)
    }

    /// Pads each dimension with `padding[d] = (before, after)` elements of `value` (one pair per
    /// dimension, first to last; fewer pairs pad the trailing dimensions).
    public func padded(_ padding: [(Int, Int)], value: Float = 0) throws -> Tensor {
        guard padding.count <= rank else {
            throw TensorError("pad", "\(padding.count) padding pairs for a tensor of rank \(rank)")
        }
        let full = Array(repeating: (0, 0), count: rank - padding.count) + padding
        guard full.allSatisfy({ $0.0 >= 0 && $0.1 >= 0 }) else {
            throw TensorError("pad", "negative padding \(padding) (use slice to crop)")
        }
        let outShape = zip(shape, full).map { $0 + $1.0 + $1.1 }
        let out = Tensor.full(outShape, value)
        let outStrides = contiguousStrides(outShape)
        let base = zip(full, outStrides).reduce(0) { $0 + $1.0.0 * $1.1 }
        if count > 0 {
            Backends.current.scatter(ptr, out.storage.pointer + base, strides: outStrides, shape: shape)
        }
        let inShape = shape
        return Tensor.record(out, op: "pad", inputs: [self]) { g in
            let dx = Tensor(uninitializedShape: inShape)
            if dx.count > 0 {
                Backends.current.gather(g.ptr + base, strides: outStrides, dx.storage.pointer, shape: inShape)
            }
            return [dx]
        }
    }

    /// Reverses the order of elements along `axes`.
    public func flipped(_ axes: [Int]) throws -> Tensor {
        let ax = try reductionAxes(axes, op: "flip")
        var strides = contiguousStrides(shape)
        var base = 0
        for a in ax where shape[a] > 0 {
            base += (shape[a] - 1) * strides[a]
            strides[a] = -strides[a]
        }
        let out = Tensor(uninitializedShape: shape)
        if count > 0 {
            Backends.current.gather(ptr + base, strides: strides, out.storage.pointer, shape: shape)
        }
        return Tensor.record(out, op: "flip", inputs: [self]) { g in [try g.flipped(ax)] }
    }

    /// Tiles the tensor `counts[d]` times along each dimension (PyTorch `repeat`; extra leading
    /// counts add dimensions).
    public func repeated(_ counts: [Int]) throws -> Tensor {
        guard counts.count >= rank, counts.allSatisfy({ $0 >= 0 }) else {
            throw TensorError("repeat", "repeat counts \(counts) need at least \(rank) non-negative values")
        }
        let src = Array(repeating: 1, count: counts.count - rank) + shape
        // [d0, d1] -> [1, d0, 1, d1] -> expand [r0, d0, r1, d1] -> [r0*d0, r1*d1]
        let interleaved = src.flatMap { [1, $0] }
        let expandedShape = zip(counts, src).flatMap { [$0, $1] }
        return try reshaped(interleaved).broadcast(to: expandedShape).reshaped(
            zip(counts, src).map { $0 * $1 })
    }

    /// Joins tensors along an existing `axis`; all other sizes must agree.
    public static func concatenate(_ tensors: [Tensor], axis: Int = 0) throws -> Tensor {
        guard let first = tensors.first else { throw TensorError("concat", "no tensors to concatenate") }
        let a = try normalizeAxis(axis, rank: first.rank, op: "concat")
        for t in tensors {
            var s1 = t.shape, s0 = first.shape
            guard s1.count == s0.count else {
                throw TensorError("concat", "shapes \(fmt(first.shape)) and \(fmt(t.shape)) differ in rank")
            }
            s1[a] = 0
            s0[a] = 0
            guard s0 == s1 else {
                throw TensorError(
                    "concat", "shapes \(fmt(first.shape)) and \(fmt(t.shape)) differ outside axis \(a)")
            }
        }
        var outShape = first.shape
        outShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        let out = Tensor(uninitializedShape: outShape)
        let strides = contiguousStrides(outShape)
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            if t.count > 0 {
                Backends.current.scatter(
                    t.ptr, out.storage.pointer + offset * strides[a], strides: strides, shape: t.shape)
            }
            offset += t.shape[a]
        }
        let sizes = tensors.map { $0.shape[a] }
        return record(out, op: "concat", inputs: tensors) { g in
            try zip(offsets, sizes).map { try g.narrow(axis: a, start: $0, length: $1) }
        }
    }

    /// Joins tensors of equal shape along a new `axis`.
    public static func stack(_ tensors: [Tensor], axis: Int = 0) throws -> Tensor {
        guard let first = tensors.first else { throw TensorError("stack", "no tensors to stack") }
        for t in tensors where t.shape != first.shape {
            throw TensorError("stack", "shapes \(fmt(first.shape)) and \(fmt(t.shape)) differ")
        }
        return try concatenate(tensors.map { try $0.unsqueezed(axis) }, axis: axis < 0 ? axis : axis)
    }

    /// Keeps the lower triangle of the last two dimensions (`j <= i + diagonal`), zeroing the rest.
    public func tril(diagonal: Int = 0) throws -> Tensor {
        guard rank >= 2 else { throw TensorError("tril", "needs at least 2 dimensions, got \(fmt(shape))") }
        return try self
            * Tensor.triangle(rows: shape[rank - 2], cols: shape[rank - 1], diagonal: diagonal, lower: true)
    }

    /// Keeps the upper triangle of the last two dimensions (`j >= i + diagonal`).
    public func triu(diagonal: Int = 0) throws -> Tensor {
        guard rank >= 2 else { throw TensorError("triu", "needs at least 2 dimensions, got \(fmt(shape))") }
        return try self
            * Tensor.triangle(rows: shape[rank - 2], cols: shape[rank - 1], diagonal: diagonal, lower: false)
    }

    /// A `[rows, cols]` mask of ones on and below (`lower`) or on and above the given diagonal.
    public static func triangle(rows: Int, cols: Int, diagonal: Int = 0, lower: Bool = true) -> Tensor {
        let out = Tensor.zeros([rows, cols])
        for i in 0..<rows {
            for j in 0..<cols where lower ? j <= i + diagonal : j >= i + diagonal {
                out.storage.pointer[i * cols + j] = 1
            }
        }
        return out
    }
}
