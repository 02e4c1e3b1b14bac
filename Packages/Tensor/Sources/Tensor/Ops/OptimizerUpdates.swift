import TensorKernels

// The optimizer phase's kernels as tensor operations: what Optim's AdamW, SGD and gradient norm
// call. Not recorded for autodiff; they run on `Backends.current`, like every other op.

extension Tensor {
    /// The sum of the squared elements, accumulated in Double (the global gradient norm's building
    /// block). The CPU backend's order is fixed and does not depend on the thread count
    /// (`OptimizerKernels.sumOfSquares`).
    public func sumOfSquares() -> Double {
        Backends.current.sumOfSquares(ptr, count)
    }

    /// The fused AdamW update of this parameter tensor and its two moments, in place (no new buffer
    /// when none of the three buffers is shared).
    /// - Parameters:
    ///   - gradient: same shape as `self`.
    ///   - expAvg, expAvgSq: the first and second moments, same shape as `self`.
    ///   - coefficients: the step's constants (`AdamWCoefficients` gives the formula).
    /// - Throws: `TensorError` naming the shapes when they differ.
    public mutating func adamWUpdate(
        gradient: Tensor, expAvg: inout Tensor, expAvgSq: inout Tensor, _ coefficients: AdamWCoefficients
    ) throws {
        guard gradient.shape == shape, expAvg.shape == shape, expAvgSq.shape == shape else {
            throw TensorError(
                "adamw_update",
                "parameter \(fmt(shape)), gradient \(fmt(gradient.shape)), exp_avg \(fmt(expAvg.shape)), exp_avg_sq \(fmt(expAvgSq.shape)) must match"
            )
        }
        let n = count
        let g = gradient.ptr
        let backend = Backends.current
        expAvg.withUnsafeMutableBufferPointer { m in
            expAvgSq.withUnsafeMutableBufferPointer { v in
                withUnsafeMutableBufferPointer { p in
                    backend.adamW(
                        parameter: p.baseAddress!, gradient: g, expAvg: m.baseAddress!, expAvgSq: v.baseAddress!,
                        n, coefficients)
                }
            }
        }
    }

    /// The fused SGD update of this parameter tensor, in place. With momentum, `momentumBuffer` nil
    /// on entry is the first step (the buffer is created from the gradient, as PyTorch does).
    /// - Throws: `TensorError` naming the shapes when they differ.
    public mutating func sgdUpdate(
        gradient: Tensor, momentumBuffer: inout Tensor?, _ coefficients: SGDCoefficients
    ) throws {
        guard gradient.shape == shape, momentumBuffer.map({ $0.shape == shape }) ?? true else {
            throw TensorError(
                "sgd_update",
                "parameter \(fmt(shape)), gradient \(fmt(gradient.shape)), momentum_buffer \(momentumBuffer.map { fmt($0.shape) } ?? "none") must match"
            )
        }
        let n = count
        let g = gradient.ptr
        let backend = Backends.current
        guard coefficients.momentum != 0 else {
            withUnsafeMutableBufferPointer { p in
                backend.sgd(parameter: p.baseAddress!, gradient: g, momentumBuffer: nil, firstStep: false, n, coefficients)
            }
            return
        }
        let first = momentumBuffer == nil
        var buffer = momentumBuffer ?? Tensor(uninitializedShape: shape)
        momentumBuffer = nil  // unique, so the in-place write does not copy
        buffer.withUnsafeMutableBufferPointer { b in
            withUnsafeMutableBufferPointer { p in
                backend.sgd(parameter: p.baseAddress!, gradient: g, momentumBuffer: b.baseAddress!, firstStep: first, n, coefficients)
            }
        }
        momentumBuffer = buffer
    }
}
