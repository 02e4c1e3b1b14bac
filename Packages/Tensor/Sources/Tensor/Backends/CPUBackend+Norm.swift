import TensorKernels

extension CPUBackend {
    public func groupedNormForward(
        _ x: ConstPtr, rows: Int, groups: Int, channels: Int, inner: Int, weight: ConstPtr?, bias: ConstPtr?,
        eps: Float, rms: Bool, y: MutPtr, mean: MutPtr, rstd: MutPtr
    ) {
        NormKernels.groupedForward(
            x, rows: rows, groups: groups, channels: channels, inner: inner, weight: weight, bias: bias,
            eps: eps,
            rms: rms, y: y, mean: mean, rstd: rstd)
    }

    public func groupedNormBackward(
        _ x: ConstPtr, dy: ConstPtr, mean: ConstPtr, rstd: ConstPtr, weight: ConstPtr?, rows: Int,
        groups: Int,
        channels: Int, inner: Int, rms: Bool, dx: MutPtr?, dweight: MutPtr?, dbias: MutPtr?
    ) {
        NormKernels.groupedBackward(
            x, dy: dy, mean: mean, rstd: rstd, weight: weight, rows: rows, groups: groups, channels: channels,
            inner: inner, rms: rms, dx: dx, dweight: dweight, dbias: dbias)
    }

    public func batchNormStatistics(
        _ x: ConstPtr, batch: Int, channels: Int, inner: Int, mean: MutPtr, variance: MutPtr
    ) {
        NormKernels.batchStatistics(
            x, batch: batch, channels: channels, inner: inner, mean: mean, variance: variance)
    }

    public func batchNormForward(
        _ x: ConstPtr, batch: Int, channels: Int, inner: Int, mean: ConstPtr, rstd: ConstPtr,
        weight: ConstPtr?,
        bias: ConstPtr?, y: MutPtr
    ) {
        NormKernels.batchForward(
            x, batch: batch, channels: channels, inner: inner, mean: mean, rstd: rstd, weight: weight,
            bias: bias, y: y)
    }

    public func batchNormBackward(
        _ x: ConstPtr, dy: ConstPtr, batch: Int, channels: Int, inner: Int, mean: ConstPtr, rstd: ConstPtr,
        weight: ConstPtr?, training: Bool, dx: MutPtr?, dweight: MutPtr?, dbias: MutPtr?
    ) {
        NormKernels.batchBackward(
            x, dy: dy, batch: batch, channels: channels, inner: inner, mean: mean, rstd: rstd, weight: weight,
            training: training, dx: dx, dweight: dweight, dbias: dbias)
    }
}
