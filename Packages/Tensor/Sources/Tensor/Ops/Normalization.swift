import TensorKernels

// Normalisation ops. Each forward saves its per-group mean and reciprocal standard deviation; the
// backward is one fused kernel that produces the gradients of the input, weight and bias together.

/// Layer normalisation over the trailing `normalizedShape` dimensions, as
/// `torch.nn.functional.layer_norm`: `(x - mean) / sqrt(var + eps) * weight + bias`, with the biased
/// variance.
/// - Parameters:
///   - x: `[..., *normalizedShape]`
///   - normalizedShape: the trailing dimensions to normalise over (non-empty).
///   - weight: `normalizedShape`, or nil (no scaling).
///   - bias: `normalizedShape`, or nil (no shift).
/// - Returns: the shape of `x`.
/// - Throws: `TensorError` when `x` does not end with `normalizedShape` or weight/bias have another shape.
public func layerNorm(
    _ x: Tensor, normalizedShape: [Int], weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5
) throws -> Tensor {
    let op = "layer_norm"
    guard !normalizedShape.isEmpty, normalizedShape.count <= x.rank,
        Array(x.shape.suffix(normalizedShape.count)) == normalizedShape
    else {
        throw TensorError(
            op, "input \(fmt(x.shape)) does not end with normalizedShape \(fmt(normalizedShape))")
    }
    try checkAffine(op, weight: weight, bias: bias, expected: normalizedShape)
    let n = shapeCount(normalizedShape)
    let rows = n == 0 ? 0 : x.count / n
    return groupedNorm(
        x, rows: rows, groups: 1, channels: n, inner: 1, weight: weight, bias: bias, eps: eps, rms: false,
        op: op)
}

/// RMS normalisation over the last dimension, as Hugging Face `LlamaRMSNorm`:
/// `x * rsqrt(mean(x^2, -1) + eps) * weight`.
/// - Parameters:
///   - x: `[..., D]`
///   - weight: `[D]`, or nil (no scaling).
/// - Returns: the shape of `x`.
/// - Throws: `TensorError` when `x` is a scalar or the weight is not `[D]`.
public func rmsNorm(_ x: Tensor, weight: Tensor? = nil, eps: Float = 1e-6) throws -> Tensor {
    let op = "rms_norm"
    guard let d = x.shape.last else {
        throw TensorError(op, "input must have at least 1 dimension, got \(fmt(x.shape))")
    }
    try checkAffine(op, weight: weight, bias: nil, expected: [d])
    let rows = d == 0 ? 0 : x.count / d
    return groupedNorm(
        x, rows: rows, groups: 1, channels: d, inner: 1, weight: weight, bias: nil, eps: eps, rms: true,
        op: op)
}

/// Group normalisation, as `torch.nn.functional.group_norm`: the channels are split into `groups`
/// groups and each (sample, group) is normalised over its channels and spatial positions; then a
/// per-channel affine is applied.
/// - Parameters:
///   - x: `[N, C, *]`
///   - groups: divides `C`.
///   - weight: `[C]`, or nil.
///   - bias: `[C]`, or nil.
/// - Returns: `[N, C, *]`.
/// - Throws: `TensorError` when `x` has fewer than 2 dimensions, `groups` does not divide `C`, or
///   weight/bias are not `[C]`.
public func groupNorm(
    _ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5
) throws -> Tensor {
    let op = "group_norm"
    guard x.rank >= 2 else { throw TensorError(op, "input must be [N, C, *], got \(fmt(x.shape))") }
    let c = x.shape[1]
    guard groups > 0, c % groups == 0 else {
        throw TensorError(op, "\(groups) groups do not divide the \(c) channels of \(fmt(x.shape))")
    }
    try checkAffine(op, weight: weight, bias: bias, expected: [c])
    let inner = x.shape.dropFirst(2).reduce(1, *)
    return groupedNorm(
        x, rows: x.shape[0], groups: groups, channels: c, inner: inner, weight: weight, bias: bias, eps: eps,
        rms: false, op: op)
}

/// Batch normalisation, as `torch.nn.functional.batch_norm`.
///
/// Training: normalises with the batch's per-channel mean and biased variance, and (when running
/// statistics are given) updates them in place: `running = (1 - momentum) * running + momentum * batch`,
/// with the unbiased variance for `runningVar`, as PyTorch. Evaluation: normalises with the running
/// statistics. The result is differentiable with respect to `x`, `weight` and `bias` in both modes
/// (in evaluation the statistics are constants).
/// - Parameters:
///   - x: `[N, C, *]`
///   - runningMean, runningVar: `[C]` each, or both nil (training only: batch statistics, no update).
///   - weight, bias: `[C]`, or nil.
/// - Returns: `[N, C, *]`.
/// - Throws: `TensorError` for a bad shape, only one running statistic, evaluation without running
///   statistics, or training with a single value per channel.
public func batchNorm(
    _ x: Tensor, runningMean: inout Tensor?, runningVar: inout Tensor?, weight: Tensor? = nil,
    bias: Tensor? = nil,
    training: Bool, momentum: Float = 0.1, eps: Float = 1e-5
) throws -> Tensor {
    let op = "batch_norm"
    guard x.rank >= 2 else { throw TensorError(op, "input must be [N, C, *], got \(fmt(x.shape))") }
    let batch = x.shape[0], channels = x.shape[1]
    let inner = x.shape.dropFirst(2).reduce(1, *)
    try checkAffine(op, weight: weight, bias: bias, expected: [channels])
    switch (runningMean, runningVar) {
    case (nil, nil):
        guard training else {
            throw TensorError(op, "evaluation mode needs runningMean and runningVar (input \(fmt(x.shape)))")
        }
    case let (m?, v?):
        guard m.shape == [channels], v.shape == [channels] else {
            throw TensorError(
                op,
                "running statistics \(fmt(m.shape)) and \(fmt(v.shape)) must be [\(channels)] for input \(fmt(x.shape))"
            )
        }
    default:
        throw TensorError(op, "give both runningMean and runningVar, or neither")
    }
    let count = batch * inner
    let mean = Tensor(uninitializedShape: [channels])
    let rstd = Tensor(uninitializedShape: [channels])
    if training {
        guard count > 1 else {
            throw TensorError(op, "training needs more than 1 value per channel, got input \(fmt(x.shape))")
        }
        let variance = Tensor(uninitializedShape: [channels])
        Backends.current.batchNormStatistics(
            x.ptr, batch: batch, channels: channels, inner: inner, mean: mean.storage.pointer,
            variance: variance.storage.pointer)
        for c in 0..<channels {
            rstd.storage.pointer[c] = Float(1 / (Double(variance.ptr[c]) + Double(eps)).squareRoot())
        }
        if let rm = runningMean, let rv = runningVar {
            let newMean = Tensor(uninitializedShape: [channels]),
                newVar = Tensor(uninitializedShape: [channels])
            let unbias = Double(count) / Double(count - 1)
            let mo = Double(momentum)
            for c in 0..<channels {
                newMean.storage.pointer[c] = Float((1 - mo) * Double(rm.ptr[c]) + mo * Double(mean.ptr[c]))
                newVar.storage.pointer[c] = Float(
                    (1 - mo) * Double(rv.ptr[c]) + mo * Double(variance.ptr[c]) * unbias)
            }
            runningMean = newMean
            runningVar = newVar
        }
    } else {
        let rm = runningMean!, rv = runningVar!
        for c in 0..<channels {
            mean.storage.pointer[c] = rm.ptr[c]
            rstd.storage.pointer[c] = Float(1 / (Double(rv.ptr[c]) + Double(eps)).squareRoot())
        }
    }
    let y = Tensor(uninitializedShape: x.shape)
    Backends.current.batchNormForward(
        x.ptr, batch: batch, channels: channels, inner: inner, mean: mean.ptr, rstd: rstd.ptr,
        weight: weight?.ptr,
        bias: bias?.ptr, y: y.storage.pointer)
    let inputs = [x] + [weight, bias].compactMap { $0 }
    return Tensor.record(y, op: op, inputs: inputs) { g in
        let dx = x.node != nil ? Tensor(uninitializedShape: x.shape) : nil
        let dw = weight?.node != nil ? Tensor(uninitializedShape: [channels]) : nil
        let db = bias?.node != nil ? Tensor(uninitializedShape: [channels]) : nil
        Backends.current.batchNormBackward(
            x.ptr, dy: g.ptr, batch: batch, channels: channels, inner: inner, mean: mean.ptr, rstd: rstd.ptr,
            weight: weight?.ptr, training: training, dx: dx?.storage.pointer, dweight: dw?.storage.pointer,
            dbias: db?.storage.pointer)
        return affineGradients(dx, weight: weight, dw, bias: bias, db)
    }
}

/// Checks that weight and bias (when given) have the `expected` shape.
private func checkAffine(_ op: String, weight: Tensor?, bias: Tensor?, expected: [Int]) throws {
    if let w = weight, w.shape != expected {
        throw TensorError(op, "weight \(fmt(w.shape)) must be \(fmt(expected))")
    }
    if let b = bias, b.shape != expected {
        throw TensorError(op, "bias \(fmt(b.shape)) must be \(fmt(expected))")
    }
}

/// Gradients in the order of `[x, weight?, bias?]` (absent inputs dropped).
private func affineGradients(_ dx: Tensor?, weight: Tensor?, _ dw: Tensor?, bias: Tensor?, _ db: Tensor?)
    -> [Tensor?]
{
    var out: [Tensor?] = [dx]
    if weight != nil { out.append(dw) }
    if bias != nil { out.append(db) }
    return out
}

/// Layer, RMS and group norm: `x` as `[rows, groups, channels / groups, inner]`.
private func groupedNorm(
    _ x: Tensor, rows: Int, groups: Int, channels: Int, inner: Int, weight: Tensor?, bias: Tensor?,
    eps: Float,
    rms: Bool, op: String
) -> Tensor {
    let y = Tensor(uninitializedShape: x.shape)
    let mean = Tensor(uninitializedShape: [rows * groups])
    let rstd = Tensor(uninitializedShape: [rows * groups])
    Backends.current.groupedNormForward(
        x.ptr, rows: rows, groups: groups, channels: channels, inner: inner, weight: weight?.ptr,
        bias: bias?.ptr,
        eps: eps, rms: rms, y: y.storage.pointer, mean: mean.storage.pointer, rstd: rstd.storage.pointer)
    let inputs = [x] + [weight, bias].compactMap { $0 }
    return Tensor.record(y, op: op, inputs: inputs) { g in
        let dx = x.node != nil ? Tensor(uninitializedShape: x.shape) : nil
        let dw = weight?.node != nil ? Tensor(uninitializedShape: weight!.shape) : nil
        let db = bias?.node != nil ? Tensor(uninitializedShape: bias!.shape) : nil
        Backends.current.groupedNormBackward(
            x.ptr, dy: g.ptr, mean: mean.ptr, rstd: rstd.ptr, weight: weight?.ptr, rows: rows, groups: groups,
            channels: channels, inner: inner, rms: rms, dx: dx?.storage.pointer, dweight: dw?.storage.pointer,
            dbias: db?.storage.pointer)
        return affineGradients(dx, weight: weight, dw, bias: bias, db)
    }
}
