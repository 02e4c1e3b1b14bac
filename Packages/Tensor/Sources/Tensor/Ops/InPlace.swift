import TensorKernels

extension Tensor {
    /// `self = alpha * other + beta * self`, in place (no new buffer when this tensor's buffer is not
    /// shared). Not recorded for autodiff: for optimizer updates and gradient accumulation.
    /// - Throws: `TensorError` when the shapes differ.
    public mutating func axpby(_ alpha: Float, _ other: Tensor, beta: Float = 1) throws {
        guard other.shape == shape else {
            throw TensorError("axpby", "shapes \(fmt(shape)) and \(fmt(other.shape)) differ")
        }
        let n = count
        let src = other.ptr
        withUnsafeMutableBufferPointer { y in
            Backends.current.axpby(alpha, src, beta, y.baseAddress!, n)
        }
    }

    /// `self += alpha * other`, in place.
    public mutating func add(_ other: Tensor, scaledBy alpha: Float = 1) throws { try axpby(alpha, other) }

    /// Multiplies every element by `factor`, in place.
    public mutating func scale(by factor: Float) {
        let n = count
        withUnsafeMutableBufferPointer { y in
            Backends.current.unary(.affine(factor, 0), UnsafePointer(y.baseAddress!), y.baseAddress!, n)
        }
    }

    /// Sets every element to `value`, in place.
    public mutating func fill(_ value: Float) {
        let n = count
        withUnsafeMutableBufferPointer { y in Backends.current.fill(value, y.baseAddress!, n) }
    }
}
