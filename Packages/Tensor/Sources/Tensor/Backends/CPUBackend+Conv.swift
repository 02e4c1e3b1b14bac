import TensorKernels

extension CPUBackend {
    public func conv2d(_ x: ConstPtr, weight: ConstPtr, bias: ConstPtr?, _ y: MutPtr, _ g: Conv2dGeometry) {
        ConvKernels.forward(x, weight: weight, bias: bias, y, g)
    }

    public func conv2dBackwardInput(dy: ConstPtr, weight: ConstPtr, dx: MutPtr, _ g: Conv2dGeometry) {
        ConvKernels.backwardInput(dy: dy, weight: weight, dx: dx, g)
    }

    public func conv2dBackwardWeight(
        dy: ConstPtr, x: ConstPtr, dWeight: MutPtr?, dBias: MutPtr?, _ g: Conv2dGeometry
    ) {
        ConvKernels.backwardWeight(dy: dy, x: x, dWeight: dWeight, dBias: dBias, g)
    }

    public func maxPool2d(
        _ x: ConstPtr, _ y: MutPtr, indices: UnsafeMutablePointer<Int32>, _ g: Pool2dGeometry
    ) {
        PoolKernels.maxForward(x, y, indices: indices, g)
    }

    public func maxPool2dBackward(
        dy: ConstPtr, indices: UnsafePointer<Int32>, dx: MutPtr, _ g: Pool2dGeometry
    ) {
        PoolKernels.maxBackward(dy: dy, indices: indices, dx: dx, g)
    }

    public func avgPool2d(_ x: ConstPtr, _ y: MutPtr, _ g: Pool2dGeometry, countIncludePad: Bool) {
        PoolKernels.avgForward(x, y, g, countIncludePad: countIncludePad)
    }

    public func avgPool2dBackward(dy: ConstPtr, dx: MutPtr, _ g: Pool2dGeometry, countIncludePad: Bool) {
        PoolKernels.avgBackward(dy: dy, dx: dx, g, countIncludePad: countIncludePad)
    }

    public func adaptiveAvgPool2d(
        _ x: ConstPtr, _ y: MutPtr, planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int
    ) {
        PoolKernels.adaptiveAvgForward(
            x, y, planes: planes, inHeight: inHeight, inWidth: inWidth, outHeight: outHeight,
            outWidth: outWidth)
    }

    public func adaptiveAvgPool2dBackward(
        dy: ConstPtr, dx: MutPtr, planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int
    ) {
        PoolKernels.adaptiveAvgBackward(
            dy: dy, dx: dx, planes: planes, inHeight: inHeight, inWidth: inWidth, outHeight: outHeight,
            outWidth: outWidth)
    }

    public func resize2d(_ x: ConstPtr, _ y: MutPtr, _ g: Resize2dGeometry) {
        ResampleKernels.forward(x, y, g)
    }

    public func resize2dBackward(dy: ConstPtr, dx: MutPtr, _ g: Resize2dGeometry) {
        ResampleKernels.backward(dy: dy, dx: dx, g)
    }
}
