import TensorKernels

// Convolution, pooling and interpolation over NCHW tensors, with PyTorch's semantics
// (`torch.nn.functional.conv2d`, `max_pool2d`, `avg_pool2d`, `adaptive_avg_pool2d`, `interpolate`).

/// Checks the common preconditions of the 2-D ops: a 4-D input and positive pairs.
private func checkNCHW(_ x: Tensor, _ op: String) throws {
    guard x.rank == 4 else { throw TensorError(op, "expected a 4-D input [N, C, H, W], got \(fmt(x.shape))") }
}

private func checkPositive(_ pair: (Int, Int), _ name: String, _ op: String) throws {
    guard pair.0 > 0 && pair.1 > 0 else {
        throw TensorError(op, "\(name) must be positive, got (\(pair.0), \(pair.1))")
    }
}

/// 2-D convolution (cross-correlation, as PyTorch) of an NCHW input.
///
/// ```swift
/// let y = try conv2d(x, weight: w, bias: b, stride: (2, 2), padding: (1, 1))
/// ```
/// - Parameters:
///   - x: `[N, C, H, W]`
///   - weight: `[O, C / groups, kH, kW]` (PyTorch's layout)
///   - bias: `[O]` or nil
///   - stride, padding, dilation: (height, width); padding is zeros on both sides.
///   - groups: channels are split into `groups` independent convolutions; `groups == C` is depthwise.
/// - Returns: `[N, O, Ho, Wo]` with Ho = (H + 2 padH - dilH (kH - 1) - 1) / strideH + 1 (and Wo alike).
/// - Throws: `TensorError` naming the shapes when ranks are wrong, the channels do not match
///   `weight.shape[1] * groups`, O is not divisible by `groups`, the bias is not `[O]`, or the dilated
///   kernel is larger than the padded input.
public func conv2d(
    _ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
    padding: (Int, Int) = (0, 0),
    dilation: (Int, Int) = (1, 1), groups: Int = 1
) throws -> Tensor {
    let op = "conv2d"
    try checkNCHW(x, op)
    guard weight.rank == 4 else {
        throw TensorError(
            op,
            "expected a 4-D weight [O, C/groups, kH, kW], got \(fmt(weight.shape)) for input \(fmt(x.shape))")
    }
    guard groups > 0 else { throw TensorError(op, "groups must be positive, got \(groups)") }
    try checkPositive(stride, "stride", op)
    try checkPositive(dilation, "dilation", op)
    guard padding.0 >= 0 && padding.1 >= 0 else {
        throw TensorError(op, "padding must be non-negative, got (\(padding.0), \(padding.1))")
    }
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    guard kh > 0 && kw > 0 else { throw TensorError(op, "weight \(fmt(weight.shape)) has an empty kernel") }
    guard o % groups == 0 else {
        throw TensorError(
            op,
            "weight \(fmt(weight.shape)) has \(o) output channels, which groups = \(groups) does not divide")
    }
    guard c % groups == 0 else {
        throw TensorError(
            op, "input \(fmt(x.shape)) has \(c) channels, which groups = \(groups) does not divide")
    }
    guard weight.shape[1] * groups == c else {
        throw TensorError(
            op,
            "with groups = \(groups), weight \(fmt(weight.shape)) expects an input with \(weight.shape[1] * groups) channels, but input \(fmt(x.shape)) has \(c)"
        )
    }
    if let bias, bias.shape != [o] {
        throw TensorError(
            op, "bias \(fmt(bias.shape)) does not match weight \(fmt(weight.shape)) (expected [\(o)])")
    }
    let g = Conv2dGeometry(
        batch: n, inChannels: c, inHeight: h, inWidth: w, outChannels: o, kernel: (kh, kw), stride: stride,
        padding: padding, dilation: dilation, groups: groups)
    guard g.outHeight > 0 && g.outWidth > 0 else {
        let ekh = dilation.0 * (kh - 1) + 1, ekw = dilation.1 * (kw - 1) + 1
        throw TensorError(
            op,
            "padded input \(h + 2 * padding.0) x \(w + 2 * padding.1) of \(fmt(x.shape)) is smaller than the (dilated) kernel \(ekh) x \(ekw) of weight \(fmt(weight.shape))"
        )
    }
    try requireBLAS(op)
    let y = Tensor(uninitializedShape: [n, o, g.outHeight, g.outWidth])
    Backends.current.conv2d(x.ptr, weight: weight.ptr, bias: bias?.ptr, y.storage.pointer, g)
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
    return Tensor.record(y, op: op, inputs: inputs) { gy in
        var dx: Tensor? = nil
        if x.node != nil {
            let t = Tensor(uninitializedShape: x.shape)
            Backends.current.conv2dBackwardInput(dy: gy.ptr, weight: weight.ptr, dx: t.storage.pointer, g)
            dx = t
        }
        let dw: Tensor? = weight.node != nil ? Tensor(uninitializedShape: weight.shape) : nil
        let db: Tensor? = bias?.node != nil ? Tensor(uninitializedShape: [o]) : nil
        if dw != nil || db != nil {
            Backends.current.conv2dBackwardWeight(
                dy: gy.ptr, x: x.ptr, dWeight: dw?.storage.pointer, dBias: db?.storage.pointer, g)
        }
        return bias == nil ? [dx, dw] : [dx, dw, db]
    }
}

/// Validates pooling arguments and returns the geometry (output sizes from PyTorch's rule).
private func poolGeometry(
    _ x: Tensor, kernel: (Int, Int), stride: (Int, Int)?, padding: (Int, Int), dilation: (Int, Int),
    ceilMode: Bool, op: String
) throws -> Pool2dGeometry {
    try checkNCHW(x, op)
    try checkPositive(kernel, "kernel size", op)
    let s = stride ?? kernel
    try checkPositive(s, "stride", op)
    try checkPositive(dilation, "dilation", op)
    guard padding.0 >= 0 && padding.1 >= 0 && padding.0 <= kernel.0 / 2 && padding.1 <= kernel.1 / 2 else {
        throw TensorError(
            op,
            "padding (\(padding.0), \(padding.1)) must be non-negative and at most half of the kernel (\(kernel.0), \(kernel.1))"
        )
    }
    let (h, w) = (x.shape[2], x.shape[3])
    let oh = Pool2dGeometry.outputSize(
        input: h, kernel: kernel.0, stride: s.0, padding: padding.0, dilation: dilation.0, ceilMode: ceilMode)
    let ow = Pool2dGeometry.outputSize(
        input: w, kernel: kernel.1, stride: s.1, padding: padding.1, dilation: dilation.1, ceilMode: ceilMode)
    guard oh > 0 && ow > 0 else {
        throw TensorError(
            op,
            "input \(fmt(x.shape)) is too small for kernel (\(kernel.0), \(kernel.1)) with padding (\(padding.0), \(padding.1)) and dilation (\(dilation.0), \(dilation.1)): the output would be \(oh) x \(ow)"
        )
    }
    return Pool2dGeometry(
        planes: x.shape[0] * x.shape[1], inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, kernel: kernel,
        stride: s,
        padding: padding, dilation: dilation)
}

/// 2-D max pooling, as `torch.nn.functional.max_pool2d`.
///
/// Padding counts as -infinity (it never wins); the gradient goes to the window's maximum, the first
/// one in row-major order on ties; NaN propagates.
/// - Parameters:
///   - x: `[N, C, H, W]`
///   - kernel: (kH, kW)
///   - stride: defaults to the kernel size.
///   - padding: at most half the kernel.
///   - ceilMode: round the output size up (the last window must still start inside the input or
///     the left padding).
/// - Returns: `[N, C, Ho, Wo]`
/// - Throws: `TensorError` for a non-4-D input, non-positive sizes, too much padding, or an input
///   smaller than the kernel.
public func maxPool2d(
    _ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
    dilation: (Int, Int) = (1, 1),
    ceilMode: Bool = false
) throws -> Tensor {
    let g = try poolGeometry(
        x, kernel: kernel, stride: stride, padding: padding, dilation: dilation, ceilMode: ceilMode,
        op: "max_pool2d")
    let y = Tensor(uninitializedShape: [x.shape[0], x.shape[1], g.outHeight, g.outWidth])
    var argmax = [Int32](repeating: -1, count: y.count)
    argmax.withUnsafeMutableBufferPointer { ib in
        Backends.current.maxPool2d(x.ptr, y.storage.pointer, indices: ib.baseAddress!, g)
    }
    let indices = argmax
    let inShape = x.shape
    return Tensor.record(y, op: "max_pool2d", inputs: [x]) { gy in
        let dx = Tensor(uninitializedShape: inShape)
        indices.withUnsafeBufferPointer { ib in
            Backends.current.maxPool2dBackward(
                dy: gy.ptr, indices: ib.baseAddress!, dx: dx.storage.pointer, g)
        }
        return [dx]
    }
}

/// 2-D average pooling, as `torch.nn.functional.avg_pool2d`.
///
/// The divisor is the window size clipped to the padded input when `countIncludePad` (so ceil-mode
/// windows hanging past the padding divide by less), else the number of input elements in the window.
/// - Parameters:
///   - x: `[N, C, H, W]`
///   - kernel: (kH, kW)
///   - stride: defaults to the kernel size.
///   - padding: zeros, at most half the kernel.
/// - Returns: `[N, C, Ho, Wo]`
/// - Throws: `TensorError` as `maxPool2d`.
public func avgPool2d(
    _ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
    ceilMode: Bool = false,
    countIncludePad: Bool = true
) throws -> Tensor {
    let g = try poolGeometry(
        x, kernel: kernel, stride: stride, padding: padding, dilation: (1, 1), ceilMode: ceilMode,
        op: "avg_pool2d")
    let y = Tensor(uninitializedShape: [x.shape[0], x.shape[1], g.outHeight, g.outWidth])
    Backends.current.avgPool2d(x.ptr, y.storage.pointer, g, countIncludePad: countIncludePad)
    let inShape = x.shape
    return Tensor.record(y, op: "avg_pool2d", inputs: [x]) { gy in
        let dx = Tensor(uninitializedShape: inShape)
        Backends.current.avgPool2dBackward(
            dy: gy.ptr, dx: dx.storage.pointer, g, countIncludePad: countIncludePad)
        return [dx]
    }
}

/// Adaptive average pooling to a fixed output size, as `torch.nn.functional.adaptive_avg_pool2d`:
/// output cell i averages input rows [floor(i * H / Ho), ceil((i + 1) * H / Ho)) (and columns alike),
/// so bins overlap when the sizes do not divide.
/// - Parameters:
///   - x: `[N, C, H, W]` with H, W > 0
///   - outputSize: (Ho, Wo), positive
/// - Returns: `[N, C, Ho, Wo]`
public func adaptiveAvgPool2d(_ x: Tensor, outputSize: (Int, Int)) throws -> Tensor {
    let op = "adaptive_avg_pool2d"
    try checkNCHW(x, op)
    try checkPositive(outputSize, "output size", op)
    let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
    guard h > 0 && w > 0 else {
        throw TensorError(op, "input \(fmt(x.shape)) has an empty spatial dimension")
    }
    let (oh, ow) = outputSize
    let y = Tensor(uninitializedShape: [x.shape[0], x.shape[1], oh, ow])
    Backends.current.adaptiveAvgPool2d(
        x.ptr, y.storage.pointer, planes: planes, inHeight: h, inWidth: w, outHeight: oh, outWidth: ow)
    let inShape = x.shape
    return Tensor.record(y, op: op, inputs: [x]) { gy in
        let dx = Tensor(uninitializedShape: inShape)
        Backends.current.adaptiveAvgPool2dBackward(
            dy: gy.ptr, dx: dx.storage.pointer, planes: planes, inHeight: h, inWidth: w, outHeight: oh,
            outWidth: ow)
        return [dx]
    }
}

/// Resizes the spatial dimensions of an NCHW tensor, numerically as `torch.nn.functional.interpolate`
/// (with `recompute_scale_factor` unset).
///
/// - Source coordinates: with `alignCorners` the corner pixels map to corners (step (in - 1) / (out - 1));
///   otherwise pixel centres map, src = (dst + 0.5) * step - 0.5, where step is in / out, or
///   1 / scaleFactor when `scaleFactor` is given (the output size is then floor(in * scaleFactor)).
/// - `nearest` takes floor(dst * step); `bilinear` clamps negative coordinates to 0; `bicubic` uses
///   Keys' kernel with A = -0.75 and clamps its four taps at the borders.
/// - `antialias` (bilinear and bicubic): a separable filter (triangle, or Keys with A = -0.5) whose
///   support widens by the scale when downsampling, weights normalised to sum to 1; a dimension whose
///   size does not change is copied.
///
/// The gradient is the adjoint of the same weights.
/// - Parameters:
///   - x: `[N, C, H, W]`
///   - size: (Ho, Wo); exactly one of `size` and `scaleFactor`.
///   - scaleFactor: (height, width) multipliers.
/// - Returns: `[N, C, Ho, Wo]`
/// - Throws: `TensorError` for a non-4-D input, both or neither of `size`/`scaleFactor`, an empty
///   output, `alignCorners` or `antialias` with `nearest`.
public func interpolate(
    _ x: Tensor, size: (Int, Int)? = nil, scaleFactor: (Double, Double)? = nil, mode: InterpolationMode,
    alignCorners: Bool = false, antialias: Bool = false
) throws -> Tensor {
    let op = "interpolate"
    try checkNCHW(x, op)
    let (h, w) = (x.shape[2], x.shape[3])
    guard (size == nil) != (scaleFactor == nil) else {
        throw TensorError(op, "give exactly one of size and scaleFactor (input \(fmt(x.shape)))")
    }
    if mode == .nearest && alignCorners {
        throw TensorError(op, "alignCorners applies only to the bilinear and bicubic modes, not nearest")
    }
    if mode == .nearest && antialias {
        throw TensorError(op, "antialias applies only to the bilinear and bicubic modes, not nearest")
    }
    guard h > 0 && w > 0 else {
        throw TensorError(op, "input \(fmt(x.shape)) has an empty spatial dimension")
    }
    let oh: Int, ow: Int
    if let size {
        (oh, ow) = size
    } else {
        let s = scaleFactor!
        guard s.0 > 0 && s.1 > 0 && s.0.isFinite && s.1.isFinite else {
            throw TensorError(op, "scale factors must be positive and finite, got (\(s.0), \(s.1))")
        }
        oh = Int(Double(h) * s.0)
        ow = Int(Double(w) * s.1)
    }
    guard oh > 0 && ow > 0 else {
        throw TensorError(op, "the output size \(oh) x \(ow) for input \(fmt(x.shape)) must be positive")
    }
    let g = Resize2dGeometry(
        planes: x.shape[0] * x.shape[1], inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, mode: mode,
        alignCorners: alignCorners, antialias: antialias, scaleHeight: scaleFactor?.0,
        scaleWidth: scaleFactor?.1)
    let y = Tensor(uninitializedShape: [x.shape[0], x.shape[1], oh, ow])
    Backends.current.resize2d(x.ptr, y.storage.pointer, g)
    let inShape = x.shape
    return Tensor.record(y, op: "interpolate_\(mode.rawValue)", inputs: [x]) { gy in
        let dx = Tensor(uninitializedShape: inShape)
        Backends.current.resize2dBackward(dy: gy.ptr, dx: dx.storage.pointer, g)
        return [dx]
    }
}
