import TensorKernels

/// Convolution, pooling and interpolation kernels (NCHW).
/// Requirements are implemented in `CPUBackend+Conv.swift` and `ReferenceBackend+Conv.swift`.
///
/// Every kernel writes all of its outputs (gradients are overwritten, not accumulated). Shapes come
/// from the geometry structs; the ops in `Ops/Conv.swift` validate them before calling.
public protocol ConvBackend {
    /// y [N, O, Ho, Wo] = conv2d(x [N, C, H, W], weight [O, C/groups, kH, kW]) + bias [O] (nil: none).
    func conv2d(_ x: ConstPtr, weight: ConstPtr, bias: ConstPtr?, _ y: MutPtr, _ g: Conv2dGeometry)
    /// dx [N, C, H, W] from dy [N, O, Ho, Wo].
    func conv2dBackwardInput(dy: ConstPtr, weight: ConstPtr, dx: MutPtr, _ g: Conv2dGeometry)
    /// dWeight [O, C/groups, kH, kW] and dBias [O] from dy and x; either output may be nil (not needed).
    func conv2dBackwardWeight(
        dy: ConstPtr, x: ConstPtr, dWeight: MutPtr?, dBias: MutPtr?, _ g: Conv2dGeometry)

    /// Max pooling of `g.planes` planes; `indices` receives each window's argmax (flat index within
    /// its input plane, the first maximum on ties, -1 for a window with no input element).
    func maxPool2d(_ x: ConstPtr, _ y: MutPtr, indices: UnsafeMutablePointer<Int32>, _ g: Pool2dGeometry)
    /// dx = 0 plus dy routed to each window's argmax.
    func maxPool2dBackward(dy: ConstPtr, indices: UnsafePointer<Int32>, dx: MutPtr, _ g: Pool2dGeometry)
    /// Average pooling with PyTorch's divisor rule (`countIncludePad`).
    func avgPool2d(_ x: ConstPtr, _ y: MutPtr, _ g: Pool2dGeometry, countIncludePad: Bool)
    func avgPool2dBackward(dy: ConstPtr, dx: MutPtr, _ g: Pool2dGeometry, countIncludePad: Bool)
    /// Adaptive average pooling over PyTorch's bins [floor(i*In/Out), ceil((i+1)*In/Out)).
    func adaptiveAvgPool2d(
        _ x: ConstPtr, _ y: MutPtr, planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int)
    func adaptiveAvgPool2dBackward(
        dy: ConstPtr, dx: MutPtr, planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int)

    /// y [planes, outH, outW] = interpolate(x [planes, inH, inW]) with the taps of `ResampleTable`.
    func resize2d(_ x: ConstPtr, _ y: MutPtr, _ g: Resize2dGeometry)
    /// dx [planes, inH, inW]: the adjoint of `resize2d` (the same weights, transposed).
    func resize2dBackward(dy: ConstPtr, dx: MutPtr, _ g: Resize2dGeometry)
}
