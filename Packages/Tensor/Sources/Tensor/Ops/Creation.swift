import TensorKernels

extension Tensor {
    /// A tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: Storage(count: shapeCount(shape), zeroed: true))
    }

    /// A tensor of ones.
    public static func ones(_ shape: [Int]) -> Tensor { full(shape, 1) }

    /// A tensor filled with `value`.
    public static func full(_ shape: [Int], _ value: Float) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        Backends.current.fill(value, t.storage.pointer, t.count)
        return t
    }

    /// Zeros of this tensor's shape.
    public func zerosLike() -> Tensor { .zeros(shape) }

    /// Values `start, start + step, ...` below `end` (1-D), as `torch.arange`.
    /// - Throws: `TensorError` when `step` is 0 or points away from `end`.
    public static func arange(_ start: Float = 0, _ end: Float, step: Float = 1) throws -> Tensor {
        guard step != 0, (end - start) / step >= 0 || end == start else {
            throw TensorError("arange", "step \(step) cannot go from \(start) to \(end)")
        }
        let n = Int(((end - start) / step).rounded(.up))
        return Tensor((0..<Swift.max(n, 0)).map { start + Float($0) * step })
    }

    /// `count` evenly spaced values from `start` to `end` inclusive (1-D), as `torch.linspace`.
    public static func linspace(_ start: Float, _ end: Float, count: Int) -> Tensor {
        if count == 1 { return Tensor([start]) }
        let step = (end - start) / Float(Swift.max(count - 1, 1))
        // PyTorch fills the second half from the end for symmetry.
        let half = count / 2
        return Tensor(
            (0..<Swift.max(count, 0)).map { i in
                i < half ? start + step * Float(i) : end - step * Float(count - 1 - i)
            })
    }

    /// The `n x m` identity (m defaults to n).
    public static func eye(_ n: Int, _ m: Int? = nil) -> Tensor {
        let cols = m ?? n
        let t = Tensor.zeros([n, cols])
        for i in 0..<Swift.min(n, cols) { t.storage.pointer[i * cols + i] = 1 }
        return t
    }
}
