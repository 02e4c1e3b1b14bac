import TensorKernels

extension Tensor {
    /// Normalised, sorted, unique axes; all axes when `axes` is nil.
    func reductionAxes(_ axes: [Int]?, op: String) throws -> [Int] {
        guard let axes else { return Array(0..<rank) }
        let norm = try axes.map { try normalizeAxis($0, rank: rank, op: op) }
        guard Set(norm).count == norm.count else { throw TensorError(op, "repeated axis in \(axes)") }
        return norm.sorted()
    }

    /// (outer, n, inner) around `axis` for a contiguous tensor.
    func split3(_ axis: Int) -> (Int, Int, Int) {
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        return (outer, shape[axis], inner)
    }

    /// Reduces along sorted axes without recording (keepDim shape).
    func reduceRaw(_ op: ReduceOp, axes: [Int]) -> Tensor {
        var cur = self
        for axis in axes.reversed() {
            let (outer, n, inner) = cur.split3(axis)
            var outShape = cur.shape
            outShape[axis] = 1
            let out = Tensor(uninitializedShape: outShape)
            Backends.current.reduce(op, cur.ptr, outer: outer, n: n, inner: inner, out.storage.pointer)
            cur = out
        }
        return cur
    }

    func keepDimShape(_ axes: [Int]) -> [Int] {
        var s = shape
        for a in axes { s[a] = 1 }
        return s
    }

    func droppedShape(_ axes: [Int]) -> [Int] {
        shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    }

    /// Sum over `axes` (all when nil).
    /// - Returns: the shape without those axes, or with size 1 there when `keepDim`.
    public func sum(axes: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
        let ax = try reductionAxes(axes, op: "sum")
        let kept = keepDimShape(ax)
        var out = reduceRaw(.sum, axes: ax)
        if !keepDim { out.shape = droppedShape(ax) }
        let inShape = shape
        return Tensor.record(out, op: "sum", inputs: [self]) { g in
            [try g.reshaped(kept).broadcast(to: inShape)]
        }
    }

    /// Sum of all elements (a scalar).
    public func sum() throws -> Tensor { try sum(axes: nil) }

    /// Sum over one axis.
    public func sum(axis: Int, keepDim: Bool = false) throws -> Tensor {
        try sum(axes: [axis], keepDim: keepDim)
    }

    /// Mean over `axes` (all when nil).
    public func mean(axes: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
        let ax = try reductionAxes(axes, op: "mean")
        let n = ax.reduce(1) { $0 * shape[$1] }
        return try sum(axes: ax, keepDim: keepDim) / Float(n)
    }

    /// Mean over one axis.
    public func mean(axis: Int, keepDim: Bool = false) throws -> Tensor {
        try mean(axes: [axis], keepDim: keepDim)
    }

    /// Variance over `axes` with `correction` (1: unbiased, PyTorch's default; 0: population).
    public func variance(axes: [Int]? = nil, correction: Int = 1, keepDim: Bool = false) throws -> Tensor {
        let ax = try reductionAxes(axes, op: "var")
        let n = ax.reduce(1) { $0 * shape[$1] }
        let centered = try self - mean(axes: ax, keepDim: true)
        return try centered.square().sum(axes: ax, keepDim: keepDim) / Float(Swift.max(n - correction, 0))
    }

    /// Standard deviation over `axes` with `correction`.
    public func standardDeviation(axes: [Int]? = nil, correction: Int = 1, keepDim: Bool = false) throws
        -> Tensor
    {
        try variance(axes: axes, correction: correction, keepDim: keepDim).sqrt()
    }

    /// Largest value over `axes` (all when nil); the gradient is shared evenly among ties (`amax`).
    public func max(axes: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
        try extremum(.max, axes, keepDim)
    }
    /// Smallest value over `axes`; the gradient is shared evenly among ties (`amin`).
    public func min(axes: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
        try extremum(.min, axes, keepDim)
    }

    func extremum(_ op: ReduceOp, _ axes: [Int]?, _ keepDim: Bool) throws -> Tensor {
        let name = op == .max ? "amax" : "amin"
        let ax = try reductionAxes(axes, op: name)
        let kept = keepDimShape(ax)
        var out = reduceRaw(op, axes: ax)
        let keptOut = out
        if !keepDim { out.shape = droppedShape(ax) }
        let x = self
        return Tensor.record(out, op: name, inputs: [self]) { g in
            let mask = try Tensor.binaryRaw(.equal, x, keptOut, name: name)
            let ties = mask.reduceRaw(.sum, axes: ax)
            return [try mask * (g.reshaped(kept) / ties)]
        }
    }

    /// Largest value along `axis` and its index (the first on ties), as `torch.max(x, dim)`.
    /// The gradient flows to the selected element.
    /// - Returns: values and indices, both of the shape without `axis` (or size 1 with `keepDim`).
    public func max(axis: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: IndexTensor) {
        try argExtremum(true, axis, keepDim)
    }

    /// Smallest value along `axis` and its index (the first on ties).
    public func min(axis: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: IndexTensor) {
        try argExtremum(false, axis, keepDim)
    }

    /// Index of the largest value along `axis`.
    public func argmax(axis: Int, keepDim: Bool = false) throws -> IndexTensor {
        try argExtremum(true, axis, keepDim).indices
    }
    /// Index of the smallest value along `axis`.
    public func argmin(axis: Int, keepDim: Bool = false) throws -> IndexTensor {
        try argExtremum(false, axis, keepDim).indices
    }

    func argExtremum(_ isMax: Bool, _ axis: Int, _ keepDim: Bool) throws -> (
        values: Tensor, indices: IndexTensor
    ) {
        let name = isMax ? "max" : "min"
        let a = try normalizeAxis(axis, rank: rank, op: name)
        let (outer, n, inner) = split3(a)
        guard n > 0 else {
            throw TensorError(name, "cannot reduce an empty axis \(axis) of shape \(fmt(shape))")
        }
        let shapeOut = keepDim ? keepDimShape([a]) : droppedShape([a])
        var values = Tensor(uninitializedShape: shapeOut)
        var idx = [Int](repeating: 0, count: outer * inner)
        idx.withUnsafeMutableBufferPointer { ip in
            Backends.current.argReduce(
                max: isMax, ptr, outer: outer, n: n, inner: inner, values: values.storage.pointer,
                indices: ip.baseAddress!)
        }
        let indices = IndexTensor(shape: shapeOut, unchecked: idx)
        let inShape = shape
        values = Tensor.record(values, op: name, inputs: [self]) { g in
            let dx = Tensor.zeros(inShape)
            for (k, j) in idx.enumerated() {
                let o = k / inner, i = k % inner
                dx.storage.pointer[(o * n + j) * inner + i] = g.storage.pointer[k]
            }
            return [dx]
        }
        return (values, indices)
    }

    /// log(sum(exp(x))) over `axes`, computed stably.
    public func logSumExp(axes: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
        let ax = try reductionAxes(axes, op: "logsumexp")
        let m = noGrad { reduceRaw(.max, axes: ax) }
        let safeM = noGrad {
            m.unaryOp(.clamp(-Float.greatestFiniteMagnitude, .greatestFiniteMagnitude), name: "clamp")
        }
        let shifted = try (self - safeM).exp().sum(axes: ax, keepDim: true).log() + safeM
        return keepDim ? shifted : try shifted.reshaped(droppedShape(ax))
    }

    /// p-norm over `axes` (p = 2 by default; 1 and inf supported). The 2-norm's gradient is 0 at 0.
    public func norm(p: Float = 2, axes: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
        if p == 1 { return try abs().sum(axes: axes, keepDim: keepDim) }
        if p == .infinity { return try abs().max(axes: axes, keepDim: keepDim) }
        guard p == 2 else { throw TensorError("norm", "p = \(p) is not supported (1, 2, inf)") }
        let ax = try reductionAxes(axes, op: "norm")
        let kept = keepDimShape(ax)
        var out = noGrad { square().reduceRaw(.sum, axes: ax).sqrt() }
        let keptOut = out
        if !keepDim { out.shape = droppedShape(ax) }
        let x = self
        return Tensor.record(out, op: "norm", inputs: [self]) { g in
            let denom = try Tensor.where(keptOut.equal(Tensor(0)), Tensor(1), keptOut)
            return [try x * (g.reshaped(kept) / denom)]
        }
    }

    /// Moves `axis` last (for kernels that work on the last axis); returns the permutation used.
    func movingAxisLast(_ axis: Int) throws -> (Tensor, [Int]?) {
        if axis == rank - 1 { return (self, nil) }
        var perm = Array(0..<rank)
        perm.remove(at: axis)
        perm.append(axis)
        return (try permuted(perm), perm)
    }

    func softmaxImpl(_ axis: Int, log: Bool) throws -> Tensor {
        let name = log ? "log_softmax" : "softmax"
        let a = try normalizeAxis(axis, rank: rank, op: name)
        let (x, perm) = try movingAxisLast(a)
        let n = x.shape.last ?? 1
        let rows = n == 0 ? 0 : x.count / n
        let y = Tensor(uninitializedShape: x.shape)
        Backends.current.softmax(x.ptr, rows: rows, n: n, y.storage.pointer, log: log)
        let out = Tensor.record(y, op: name, inputs: [x]) { g in
            let dx = Tensor(uninitializedShape: y.shape)
            Backends.current.softmaxBackward(
                y: y.ptr, dy: g.ptr, rows: rows, n: n, dx: dx.storage.pointer, log: log)
            return [dx]
        }
        guard let perm else { return out }
        return try out.permuted(inversePermutation(perm))
    }

    /// Softmax along `axis` (numerically stable).
    public func softmax(axis: Int = -1) throws -> Tensor { try softmaxImpl(axis, log: false) }
    /// Log-softmax along `axis` (numerically stable).
    public func logSoftmax(axis: Int = -1) throws -> Tensor { try softmaxImpl(axis, log: true) }

    /// Inclusive cumulative sum along `axis`.
    public func cumsum(axis: Int) throws -> Tensor {
        let a = try normalizeAxis(axis, rank: rank, op: "cumsum")
        let (outer, n, inner) = split3(a)
        let y = Tensor(uninitializedShape: shape)
        Backends.current.cumsum(ptr, outer: outer, n: n, inner: inner, y.storage.pointer, reverse: false)
        return Tensor.record(y, op: "cumsum", inputs: [self]) { g in
            let dx = Tensor(uninitializedShape: g.shape)
            Backends.current.cumsum(
                g.ptr, outer: outer, n: n, inner: inner, dx.storage.pointer, reverse: true)
            return [dx]
        }
    }
}

public func softmax(_ x: Tensor, axis: Int = -1) throws -> Tensor { try x.softmax(axis: axis) }
public func logSoftmax(_ x: Tensor, axis: Int = -1) throws -> Tensor { try x.logSoftmax(axis: axis) }

func inversePermutation(_ p: [Int]) -> [Int] {
    var inv = [Int](repeating: 0, count: p.count)
    for (i, d) in p.enumerated() { inv[d] = i }
    return inv
}
