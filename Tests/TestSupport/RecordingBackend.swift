import Foundation
import Tensor

/// A backend that runs every kernel on another backend (the CPU one by default) and records the
/// name of each kernel it was asked to run: a test can tell which backend ran an op's forward and
/// which ran its backward.
public final class RecordingBackend: Backend, @unchecked Sendable {
    public let name: String
    let inner: any Backend
    private let lock = NSLock()
    private var _calls: [String] = []

    public init(name: String, wrapping inner: any Backend = CPUBackend.shared) {
        self.name = name
        self.inner = inner
    }

    /// The kernels run so far, in order.
    public var calls: [String] { lock.withLock { _calls } }

    /// Forgets the kernels recorded so far.
    public func reset() { lock.withLock { _calls.removeAll() } }

    @inline(__always)
    func log(_ kernel: String) { lock.withLock { _calls.append(kernel) } }

    // Elementwise.
    public func unary(_ op: UnaryOp, _ x: ConstPtr, _ y: MutPtr, _ n: Int) {
        log("unary"); inner.unary(op, x, y, n)
    }
    public func unaryBackward(_ op: UnaryOp, x: ConstPtr, y: ConstPtr, dy: ConstPtr, dx: MutPtr, _ n: Int) {
        log("unaryBackward"); inner.unaryBackward(op, x: x, y: y, dy: dy, dx: dx, n)
    }
    public func binarySame(_ op: BinaryOp, _ a: ConstPtr, _ b: ConstPtr, _ out: MutPtr, _ n: Int) {
        log("binarySame"); inner.binarySame(op, a, b, out, n)
    }
    public func binary(
        _ op: BinaryOp, _ a: ConstPtr, _ aStrides: [Int], _ b: ConstPtr, _ bStrides: [Int], _ out: MutPtr,
        shape: [Int]
    ) {
        log("binary"); inner.binary(op, a, aStrides, b, bStrides, out, shape: shape)
    }
    public func axpby(_ alpha: Float, _ x: ConstPtr, _ beta: Float, _ y: MutPtr, _ n: Int) {
        log("axpby"); inner.axpby(alpha, x, beta, y, n)
    }
    public func select(
        _ cond: ConstPtr, _ cStrides: [Int], _ a: ConstPtr, _ aStrides: [Int], _ b: ConstPtr,
        _ bStrides: [Int], _ out: MutPtr, shape: [Int]
    ) {
        log("select"); inner.select(cond, cStrides, a, aStrides, b, bStrides, out, shape: shape)
    }

    // Reductions.
    public func reduce(_ op: ReduceOp, _ x: ConstPtr, outer: Int, n: Int, inner i: Int, _ out: MutPtr) {
        log("reduce"); inner.reduce(op, x, outer: outer, n: n, inner: i, out)
    }
    public func argReduce(
        max: Bool, _ x: ConstPtr, outer: Int, n: Int, inner i: Int, values: MutPtr,
        indices: UnsafeMutablePointer<Int>
    ) {
        log("argReduce"); inner.argReduce(max: max, x, outer: outer, n: n, inner: i, values: values, indices: indices)
    }
    public func softmax(_ x: ConstPtr, rows: Int, n: Int, _ y: MutPtr, log l: Bool) {
        log("softmax"); inner.softmax(x, rows: rows, n: n, y, log: l)
    }
    public func softmaxBackward(y: ConstPtr, dy: ConstPtr, rows: Int, n: Int, dx: MutPtr, log l: Bool) {
        log("softmaxBackward"); inner.softmaxBackward(y: y, dy: dy, rows: rows, n: n, dx: dx, log: l)
    }
    public func cumsum(_ x: ConstPtr, outer: Int, n: Int, inner i: Int, _ y: MutPtr, reverse: Bool) {
        log("cumsum"); inner.cumsum(x, outer: outer, n: n, inner: i, y, reverse: reverse)
    }

    // Linear algebra and movement.
    public func gemm(
        batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: ConstPtr, lda: Int, strideA: Int, b: ConstPtr, ldb: Int, strideB: Int,
        beta: Float, c: MutPtr, ldc: Int, strideC: Int
    ) {
        log("gemm")
        inner.gemm(
            batch: batch, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
            strideA: strideA, b: b, ldb: ldb, strideB: strideB, beta: beta, c: c, ldc: ldc, strideC: strideC)
    }
    public func gather(_ src: ConstPtr, strides: [Int], _ dst: MutPtr, shape: [Int]) {
        log("gather"); inner.gather(src, strides: strides, dst, shape: shape)
    }
    public func scatter(_ src: ConstPtr, _ dst: MutPtr, strides: [Int], shape: [Int]) {
        log("scatter"); inner.scatter(src, dst, strides: strides, shape: shape)
    }
    public func fill(_ value: Float, _ dst: MutPtr, _ n: Int) {
        log("fill"); inner.fill(value, dst, n)
    }

    // Convolution and pooling.
    public func conv2d(_ x: ConstPtr, weight: ConstPtr, bias: ConstPtr?, _ y: MutPtr, _ g: Conv2dGeometry) {
        log("conv2d"); inner.conv2d(x, weight: weight, bias: bias, y, g)
    }
    public func conv2dBackwardInput(dy: ConstPtr, weight: ConstPtr, dx: MutPtr, _ g: Conv2dGeometry) {
        log("conv2dBackwardInput"); inner.conv2dBackwardInput(dy: dy, weight: weight, dx: dx, g)
    }
    public func conv2dBackwardWeight(
        dy: ConstPtr, x: ConstPtr, dWeight: MutPtr?, dBias: MutPtr?, _ g: Conv2dGeometry
    ) {
        log("conv2dBackwardWeight"); inner.conv2dBackwardWeight(dy: dy, x: x, dWeight: dWeight, dBias: dBias, g)
    }
    public func maxPool2d(_ x: ConstPtr, _ y: MutPtr, indices: UnsafeMutablePointer<Int32>, _ g: Pool2dGeometry) {
        log("maxPool2d"); inner.maxPool2d(x, y, indices: indices, g)
    }
    public func maxPool2dBackward(dy: ConstPtr, indices: UnsafePointer<Int32>, dx: MutPtr, _ g: Pool2dGeometry) {
        log("maxPool2dBackward"); inner.maxPool2dBackward(dy: dy, indices: indices, dx: dx, g)
    }
    public func avgPool2d(_ x: ConstPtr, _ y: MutPtr, _ g: Pool2dGeometry, countIncludePad: Bool) {
        log("avgPool2d"); inner.avgPool2d(x, y, g, countIncludePad: countIncludePad)
    }
    public func avgPool2dBackward(dy: ConstPtr, dx: MutPtr, _ g: Pool2dGeometry, countIncludePad: Bool) {
        log("avgPool2dBackward"); inner.avgPool2dBackward(dy: dy, dx: dx, g, countIncludePad: countIncludePad)
    }
    public func adaptiveAvgPool2d(
        _ x: ConstPtr, _ y: MutPtr, planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int
    ) {
        log("adaptiveAvgPool2d")
        inner.adaptiveAvgPool2d(
            x, y, planes: planes, inHeight: inHeight, inWidth: inWidth, outHeight: outHeight, outWidth: outWidth)
    }
    public func adaptiveAvgPool2dBackward(
        dy: ConstPtr, dx: MutPtr, planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int
    ) {
        log("adaptiveAvgPool2dBackward")
        inner.adaptiveAvgPool2dBackward(
            dy: dy, dx: dx, planes: planes, inHeight: inHeight, inWidth: inWidth, outHeight: outHeight,
            outWidth: outWidth)
    }
    public func resize2d(_ x: ConstPtr, _ y: MutPtr, _ g: Resize2dGeometry) {
        log("resize2d"); inner.resize2d(x, y, g)
    }
    public func resize2dBackward(dy: ConstPtr, dx: MutPtr, _ g: Resize2dGeometry) {
        log("resize2dBackward"); inner.resize2dBackward(dy: dy, dx: dx, g)
    }

    // Normalisation.
    public func groupedNormForward(
        _ x: ConstPtr, rows: Int, groups: Int, channels: Int, inner i: Int, weight: ConstPtr?, bias: ConstPtr?,
        eps: Float, rms: Bool, y: MutPtr, mean: MutPtr, rstd: MutPtr
    ) {
        log("groupedNormForward")
        inner.groupedNormForward(
            x, rows: rows, groups: groups, channels: channels, inner: i, weight: weight, bias: bias, eps: eps,
            rms: rms, y: y, mean: mean, rstd: rstd)
    }
    public func groupedNormBackward(
        _ x: ConstPtr, dy: ConstPtr, mean: ConstPtr, rstd: ConstPtr, weight: ConstPtr?, rows: Int, groups: Int,
        channels: Int, inner i: Int, rms: Bool, dx: MutPtr?, dweight: MutPtr?, dbias: MutPtr?
    ) {
        log("groupedNormBackward")
        inner.groupedNormBackward(
            x, dy: dy, mean: mean, rstd: rstd, weight: weight, rows: rows, groups: groups, channels: channels,
            inner: i, rms: rms, dx: dx, dweight: dweight, dbias: dbias)
    }
    public func batchNormStatistics(
        _ x: ConstPtr, batch: Int, channels: Int, inner i: Int, mean: MutPtr, variance: MutPtr
    ) {
        log("batchNormStatistics")
        inner.batchNormStatistics(x, batch: batch, channels: channels, inner: i, mean: mean, variance: variance)
    }
    public func batchNormForward(
        _ x: ConstPtr, batch: Int, channels: Int, inner i: Int, mean: ConstPtr, rstd: ConstPtr,
        weight: ConstPtr?, bias: ConstPtr?, y: MutPtr
    ) {
        log("batchNormForward")
        inner.batchNormForward(
            x, batch: batch, channels: channels, inner: i, mean: mean, rstd: rstd, weight: weight, bias: bias, y: y)
    }
    public func batchNormBackward(
        _ x: ConstPtr, dy: ConstPtr, batch: Int, channels: Int, inner i: Int, mean: ConstPtr, rstd: ConstPtr,
        weight: ConstPtr?, training: Bool, dx: MutPtr?, dweight: MutPtr?, dbias: MutPtr?
    ) {
        log("batchNormBackward")
        inner.batchNormBackward(
            x, dy: dy, batch: batch, channels: channels, inner: i, mean: mean, rstd: rstd, weight: weight,
            training: training, dx: dx, dweight: dweight, dbias: dbias)
    }

    // Attention.
    public func attentionForward(
        q: ConstPtr, k: ConstPtr, v: ConstPtr, dims: AttentionDims, mask: AttentionMaskSpec, out: MutPtr,
        logSumExp: MutPtr
    ) {
        log("attentionForward")
        inner.attentionForward(q: q, k: k, v: v, dims: dims, mask: mask, out: out, logSumExp: logSumExp)
    }
    public func attentionBackward(
        q: ConstPtr, k: ConstPtr, v: ConstPtr, out: ConstPtr, logSumExp: ConstPtr, dOut: ConstPtr,
        dims: AttentionDims, mask: AttentionMaskSpec, dq: MutPtr, dk: MutPtr, dv: MutPtr
    ) {
        log("attentionBackward")
        inner.attentionBackward(
            q: q, k: k, v: v, out: out, logSumExp: logSumExp, dOut: dOut, dims: dims, mask: mask, dq: dq, dk: dk,
            dv: dv)
    }

    // Loss and indexing.
    public func crossEntropyForward(
        logits: ConstPtr, targets: UnsafePointer<Int>, rows: Int, classes: Int, ignoreIndex: Int,
        labelSmoothing: Float, lse: MutPtr, loss: MutPtr
    ) {
        log("crossEntropyForward")
        inner.crossEntropyForward(
            logits: logits, targets: targets, rows: rows, classes: classes, ignoreIndex: ignoreIndex,
            labelSmoothing: labelSmoothing, lse: lse, loss: loss)
    }
    public func crossEntropyBackward(
        logits: ConstPtr, targets: UnsafePointer<Int>, lse: ConstPtr, rows: Int, classes: Int, ignoreIndex: Int,
        labelSmoothing: Float, gradLoss: Float, gradZ: Float, zLossCoefficient: Float, dlogits: MutPtr
    ) {
        log("crossEntropyBackward")
        inner.crossEntropyBackward(
            logits: logits, targets: targets, lse: lse, rows: rows, classes: classes, ignoreIndex: ignoreIndex,
            labelSmoothing: labelSmoothing, gradLoss: gradLoss, gradZ: gradZ, zLossCoefficient: zLossCoefficient,
            dlogits: dlogits)
    }
    public func indexSelect(
        _ x: ConstPtr, outer: Int, n: Int, inner i: Int, indices: UnsafePointer<Int>, k: Int, _ out: MutPtr
    ) {
        log("indexSelect"); inner.indexSelect(x, outer: outer, n: n, inner: i, indices: indices, k: k, out)
    }
    public func indexAdd(
        _ src: ConstPtr, outer: Int, k: Int, inner i: Int, indices: UnsafePointer<Int>, n: Int, _ dst: MutPtr
    ) {
        log("indexAdd"); inner.indexAdd(src, outer: outer, k: k, inner: i, indices: indices, n: n, dst)
    }
    public func gatherAlongAxis(
        _ src: ConstPtr, srcStrides: [Int], axis: Int, index: UnsafePointer<Int>, indexShape: [Int], _ out: MutPtr
    ) {
        log("gatherAlongAxis")
        inner.gatherAlongAxis(src, srcStrides: srcStrides, axis: axis, index: index, indexShape: indexShape, out)
    }
    public func scatterAddAlongAxis(
        _ src: ConstPtr, srcStrides: [Int], axis: Int, index: UnsafePointer<Int>, indexShape: [Int],
        _ dst: MutPtr, dstStrides: [Int]
    ) {
        log("scatterAddAlongAxis")
        inner.scatterAddAlongAxis(
            src, srcStrides: srcStrides, axis: axis, index: index, indexShape: indexShape, dst, dstStrides: dstStrides)
    }
    public func philoxDropout(_ x: ConstPtr, _ y: MutPtr, count: Int, p: Float, seed: UInt64, offset: UInt64) {
        log("philoxDropout"); inner.philoxDropout(x, y, count: count, p: p, seed: seed, offset: offset)
    }

    // Optimizer phase.
    public func sumOfSquares(_ x: ConstPtr, _ n: Int) -> Double {
        log("sumOfSquares"); return inner.sumOfSquares(x, n)
    }
    public func adamW(
        parameter p: MutPtr, gradient g: ConstPtr, expAvg m: MutPtr, expAvgSq v: MutPtr, _ n: Int,
        _ c: AdamWCoefficients
    ) {
        log("adamW"); inner.adamW(parameter: p, gradient: g, expAvg: m, expAvgSq: v, n, c)
    }
    public func sgd(
        parameter p: MutPtr, gradient g: ConstPtr, momentumBuffer: MutPtr?, firstStep: Bool, _ n: Int,
        _ c: SGDCoefficients
    ) {
        log("sgd"); inner.sgd(parameter: p, gradient: g, momentumBuffer: momentumBuffer, firstStep: firstStep, n, c)
    }
}
