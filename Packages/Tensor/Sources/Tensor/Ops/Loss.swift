import TensorKernels

/// How a loss combines its per-element (or per-token) terms.
public enum LossReduction: Sendable {
    /// Divide the sum by the number of terms (for cross-entropy: the supervised rows).
    case mean
    /// The plain sum.
    case sum
}

/// The two sums a fused cross-entropy pass produces, left unreduced so that callers can normalise
/// across micro-batches or devices (divide by a global token count) themselves.
public struct CrossEntropyParts {
    /// Scalar, differentiable: the sum of per-token cross-entropy over the supervised rows.
    public var lossSum: Tensor
    /// Scalar, differentiable: `zLossCoefficient * sum(lse^2)` over the supervised rows, where lse is
    /// a row's log-sum-exp (PaLM's z-loss). 0 when the coefficient is 0.
    public var zLossSum: Tensor
    /// Number of supervised rows (targets other than `ignoreIndex`).
    public var count: Int
}

/// Fused cross-entropy over the last axis: one pass over each row of logits computes its max,
/// log-sum-exp, target logit and (with smoothing) mean logit, keeping only the per-row log-sum-exp;
/// backward writes dlogits directly from the logits and that log-sum-exp (the probability tensor is
/// never stored).
///
/// Per supervised row with log-sum-exp `lse` and target `t`, as PyTorch's `cross_entropy`:
/// `loss = (1 - eps) * (lse - x[t]) + eps * (lse - mean_j x[j])` with eps = `labelSmoothing`.
/// Rows whose target is `ignoreIndex` contribute nothing (and get a zero gradient).
///
/// `lossSum` and `zLossSum` share one recorded node: using both costs one backward pass.
///
/// ```swift
/// let parts = try crossEntropyParts(logits: logits, targets: labels, zLossCoefficient: 1e-4)
/// let loss = try (parts.lossSum + parts.zLossSum) / Float(parts.count)
/// ```
/// - Parameters:
///   - logits: `[N, C]`, or `[..., C]` (for example `[B, T, C]`; classes are the last axis).
///   - targets: class indices of shape `logits.shape.dropLast()` (`[N]`, or `[B, T]`).
///   - ignoreIndex: target value that marks rows without supervision (default -100, as PyTorch).
///   - labelSmoothing: eps in [0, 1].
///   - zLossCoefficient: weight of the z-loss term (0 disables it).
/// - Returns: the two scalar sums and the supervised count.
/// - Throws: `TensorError` for a shape mismatch, eps outside [0, 1], or a target outside [0, C)
///   that is not `ignoreIndex` (naming the row, the value and C).
public func crossEntropyParts(
    logits: Tensor, targets: IndexTensor, ignoreIndex: Int = -100, labelSmoothing: Float = 0,
    zLossCoefficient: Float = 0
) throws -> CrossEntropyParts {
    let op = "cross_entropy"
    guard logits.rank >= 2 else {
        throw TensorError(op, "logits must be [N, C] (or [..., C]), got \(fmt(logits.shape))")
    }
    let classes = logits.shape[logits.rank - 1]
    let lead = Array(logits.shape.dropLast())
    guard targets.shape == lead else {
        throw TensorError(
            op,
            "targets of shape \(fmt(targets.shape)) do not match logits \(fmt(logits.shape)) (expected \(fmt(lead)))"
        )
    }
    guard labelSmoothing >= 0, labelSmoothing <= 1 else {
        throw TensorError(op, "labelSmoothing must be in [0, 1], got \(labelSmoothing)")
    }
    guard zLossCoefficient.isFinite else {
        throw TensorError(op, "zLossCoefficient must be finite, got \(zLossCoefficient)")
    }
    let rows = targets.count
    var count = 0
    for (row, t) in targets.values.enumerated() where t != ignoreIndex {
        guard t >= 0, t < classes else {
            throw TensorError(
                op,
                "target \(t) at row \(indexingPositionDescription(row, lead)) is outside [0, \(classes)) for logits \(fmt(logits.shape)) "
                    + "and is not ignoreIndex \(ignoreIndex)")
        }
        count += 1
    }

    let lse = Tensor(uninitializedShape: [rows])
    let perRow = Tensor(uninitializedShape: [rows])
    let backend = Backends.current
    targets.values.withUnsafeBufferPointer { tp in
        backend.crossEntropyForward(
            logits: logits.ptr, targets: tp.baseAddress!, rows: rows, classes: classes,
            ignoreIndex: ignoreIndex,
            labelSmoothing: labelSmoothing, lse: lse.storage.pointer, loss: perRow.storage.pointer)
    }
    var lossSum = 0.0, lseSquares = 0.0
    for (row, t) in targets.values.enumerated() where t != ignoreIndex {
        lossSum += Double(perRow.storage.pointer[row])
        let l = Double(lse.storage.pointer[row])
        lseSquares += l * l
    }
    let zSum = zLossCoefficient == 0 ? 0 : Double(zLossCoefficient) * lseSquares

    // Both sums live in one recorded [2] tensor, so that backward runs once with both gradients.
    let both = Tensor(shape: [2], storage: Storage(copying: [Float(lossSum), Float(zSum)]))
    let recorded = Tensor.record(both, op: op, inputs: [logits]) { g in
        let dx = Tensor(uninitializedShape: logits.shape)
        let gLoss = g.storage.pointer[0], gZ = g.storage.pointer[1]
        targets.values.withUnsafeBufferPointer { tp in
            Backends.current.crossEntropyBackward(
                logits: logits.ptr, targets: tp.baseAddress!, lse: lse.ptr, rows: rows, classes: classes,
                ignoreIndex: ignoreIndex, labelSmoothing: labelSmoothing, gradLoss: gLoss, gradZ: gZ,
                zLossCoefficient: zLossCoefficient, dlogits: dx.storage.pointer)
        }
        return [dx]
    }
    return CrossEntropyParts(
        lossSum: try recorded.narrow(axis: 0, start: 0, length: 1).reshaped([]),
        zLossSum: try recorded.narrow(axis: 0, start: 1, length: 1).reshaped([]),
        count: count)
}

/// Cross-entropy between logits and class targets (PyTorch `cross_entropy`), optionally with label
/// smoothing and a z-loss term, through the fused kernel of `crossEntropyParts`.
///
/// `.mean` divides (CE sum + z-loss sum) by the number of supervised rows, as PyTorch's mean over
/// non-ignored targets. When every target is `ignoreIndex` it returns 0 with a zero gradient
/// (PyTorch returns NaN), so a fully masked micro-batch cannot poison a training step.
/// - Parameters:
///   - logits: `[N, C]` or `[..., C]` (classes last).
///   - targets: `[N]` or `logits.shape.dropLast()`.
/// - Returns: a scalar.
/// - Throws: as `crossEntropyParts`.
public func crossEntropy(
    logits: Tensor, targets: IndexTensor, ignoreIndex: Int = -100, labelSmoothing: Float = 0,
    zLossCoefficient: Float = 0, reduction: LossReduction = .mean
) throws -> Tensor {
    let parts = try crossEntropyParts(
        logits: logits, targets: targets, ignoreIndex: ignoreIndex, labelSmoothing: labelSmoothing,
        zLossCoefficient: zLossCoefficient)
    let total = zLossCoefficient == 0 ? parts.lossSum : try parts.lossSum + parts.zLossSum
    switch reduction {
    case .sum: return total
    case .mean: return parts.count == 0 ? total * 0 : total / Float(parts.count)
    }
}

/// Mean squared error (PyTorch `mse_loss`): the mean (or sum) of `(input - target)^2`,
/// differentiable with respect to both.
/// - Parameters:
///   - input: any shape.
///   - target: the same shape as `input`.
/// - Returns: a scalar.
/// - Throws: `TensorError` when the shapes differ.
public func mseLoss(_ input: Tensor, _ target: Tensor, reduction: LossReduction = .mean) throws -> Tensor {
    guard input.shape == target.shape else {
        throw TensorError(
            "mse_loss", "input \(fmt(input.shape)) and target \(fmt(target.shape)) differ in shape")
    }
    let squared = try (input - target).square()
    switch reduction {
    case .sum: return try squared.sum()
    case .mean: return try squared.mean()
    }
}
