/// Normalisation kernels (layer, RMS, group and batch norm) with fused backward.
/// Requirements are implemented in `CPUBackend+Norm.swift` and `ReferenceBackend+Norm.swift`.
///
/// Grouped norms see `x` as `[rows, groups, channels / groups, inner]` (contiguous): statistics per
/// (row, group) over its `channels / groups * inner` elements, affine weight and bias per channel.
/// Layer and RMS norm are `groups = 1, inner = 1`; group norm is `rows = N, inner = H * W`.
/// Batch norm sees `x` as `[batch, channels, inner]` with statistics per channel.
public protocol NormBackend {
    /// `y = (x - mean) * rstd * weight[c] + bias[c]` per (row, group); `rstd = 1 / sqrt(var + eps)`
    /// with the biased variance. With `rms`: no mean is subtracted, `rstd = 1 / sqrt(mean(x^2) + eps)`
    /// and the saved mean is 0. Writes `y` and `mean`, `rstd` (`[rows * groups]`).
    func groupedNormForward(
        _ x: ConstPtr, rows: Int, groups: Int, channels: Int, inner: Int, weight: ConstPtr?, bias: ConstPtr?,
        eps: Float, rms: Bool, y: MutPtr, mean: MutPtr, rstd: MutPtr)

    /// Fused backward of `groupedNormForward` from the saved `mean`/`rstd`: writes `dx`, `dweight`
    /// and `dbias` (`[channels]`) where they are non-nil.
    func groupedNormBackward(
        _ x: ConstPtr, dy: ConstPtr, mean: ConstPtr, rstd: ConstPtr, weight: ConstPtr?, rows: Int,
        groups: Int,
        channels: Int, inner: Int, rms: Bool, dx: MutPtr?, dweight: MutPtr?, dbias: MutPtr?)

    /// Per-channel mean and biased variance of `x` (`[batch, channels, inner]`).
    func batchNormStatistics(
        _ x: ConstPtr, batch: Int, channels: Int, inner: Int, mean: MutPtr, variance: MutPtr)

    /// `y = (x - mean[c]) * rstd[c] * weight[c] + bias[c]` over `[batch, channels, inner]`.
    func batchNormForward(
        _ x: ConstPtr, batch: Int, channels: Int, inner: Int, mean: ConstPtr, rstd: ConstPtr,
        weight: ConstPtr?,
        bias: ConstPtr?, y: MutPtr)

    /// Fused batch-norm backward. `training`: the statistics came from this batch (their gradient is
    /// included); otherwise they were fixed (running statistics). Writes `dx`, `dweight`, `dbias`
    /// (`[channels]`) where they are non-nil.
    func batchNormBackward(
        _ x: ConstPtr, dy: ConstPtr, batch: Int, channels: Int, inner: Int, mean: ConstPtr, rstd: ConstPtr,
        weight: ConstPtr?, training: Bool, dx: MutPtr?, dweight: MutPtr?, dbias: MutPtr?)
}
