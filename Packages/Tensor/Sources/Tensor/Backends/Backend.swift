import TensorKernels

// The backend seam: every op reaches its kernels through `Backend`, so that another device (a CUDA
// backend with cuBLAS and runtime-compiled kernels loaded through dlopen) can be added without
// touching any op or layer. Kernels see raw element pointers and sizes only.
//
// Two backends exist: `CPUBackend` (vectorised, multi-threaded, OpenBLAS) and `ReferenceBackend`
// (plain loops, double accumulation, single thread), which the tests run every op against.
//
// The protocol is split by op family; each family's requirements and both implementations live in
// that family's files (`CPUBackend+Conv.swift`, `ReferenceBackend+Conv.swift`, ...).

public typealias ConstPtr = UnsafePointer<Float>
public typealias MutPtr = UnsafeMutablePointer<Float>

/// Elementwise kernels.
public protocol ElementwiseBackend {
    /// y[i] = op(x[i]) for i < n.
    func unary(_ op: UnaryOp, _ x: ConstPtr, _ y: MutPtr, _ n: Int)
    /// dx[i] = dy[i] * op'(x[i]) (y = op(x) given for ops whose derivative uses it).
    func unaryBackward(_ op: UnaryOp, x: ConstPtr, y: ConstPtr, dy: ConstPtr, dx: MutPtr, _ n: Int)
    /// out[i] = a[i] op b[i] for i < n (operands of the same shape).
    func binarySame(_ op: BinaryOp, _ a: ConstPtr, _ b: ConstPtr, _ out: MutPtr, _ n: Int)
    /// out = a op b over `shape`, with element strides of a and b (0 where broadcast). out contiguous.
    func binary(
        _ op: BinaryOp, _ a: ConstPtr, _ aStrides: [Int], _ b: ConstPtr, _ bStrides: [Int], _ out: MutPtr,
        shape: [Int])
    /// y[i] = alpha * x[i] + beta * y[i] for i < n (in place; the optimizers' update primitive).
    func axpby(_ alpha: Float, _ x: ConstPtr, _ beta: Float, _ y: MutPtr, _ n: Int)
    /// out[i] = cond[i] != 0 ? a[i] : b[i] with broadcasting strides.
    func select(
        _ cond: ConstPtr, _ cStrides: [Int], _ a: ConstPtr, _ aStrides: [Int], _ b: ConstPtr,
        _ bStrides: [Int], _ out: MutPtr, shape: [Int])
}

/// Reduction kernels over the middle axis of `[outer, n, inner]`.
public protocol ReductionBackend {
    func reduce(_ op: ReduceOp, _ x: ConstPtr, outer: Int, n: Int, inner: Int, _ out: MutPtr)
    func argReduce(
        max: Bool, _ x: ConstPtr, outer: Int, n: Int, inner: Int, values: MutPtr,
        indices: UnsafeMutablePointer<Int>)
    /// Softmax or log-softmax of contiguous rows.
    func softmax(_ x: ConstPtr, rows: Int, n: Int, _ y: MutPtr, log: Bool)
    func softmaxBackward(y: ConstPtr, dy: ConstPtr, rows: Int, n: Int, dx: MutPtr, log: Bool)
    func cumsum(_ x: ConstPtr, outer: Int, n: Int, inner: Int, _ y: MutPtr, reverse: Bool)
}

/// Matrix products, row-major.
public protocol LinalgBackend {
    /// For each of `batch` problems b: C_b = alpha * op(A_b) op(B_b) + beta * C_b, where
    /// A_b = a + b * strideA (stride 0 broadcasts one matrix to all problems), and so on.
    func gemm(
        batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: ConstPtr, lda: Int, strideA: Int, b: ConstPtr, ldb: Int, strideB: Int,
        beta: Float, c: MutPtr, ldc: Int, strideC: Int)
}

/// Data movement.
public protocol MovementBackend {
    /// Copies a strided view (strides may be 0 or negative; `src` is element (0, ..., 0)) into a
    /// contiguous `dst` of `shape`.
    func gather(_ src: ConstPtr, strides: [Int], _ dst: MutPtr, shape: [Int])
    /// Writes a contiguous `src` of `shape` into a strided view of `dst` (element (0, ..., 0) at
    /// `dst`): `dst[sum(i_d * strides[d])] = src[i]`. The view's elements must not overlap.
    func scatter(_ src: ConstPtr, _ dst: MutPtr, strides: [Int], shape: [Int])
    /// dst[i] = value for i < n.
    func fill(_ value: Float, _ dst: MutPtr, _ n: Int)
}

/// A device: one implementation of every kernel family.
public protocol Backend: AnyObject, ElementwiseBackend, ReductionBackend, LinalgBackend, MovementBackend,
    ConvBackend, NormBackend, AttentionBackend, LossBackend, OptimizerBackend
{
    /// A short name for logs and test messages ("cpu", "reference").
    var name: String { get }
}

/// Which backend ops use on the current task.
public enum Backends {
    /// The backend of the current task (default: `CPUBackend.shared`).
    @TaskLocal public static var current: any Backend = CPUBackend.shared
}

/// Runs `body` with every op dispatched to `backend` (for example `ReferenceBackend.shared`).
public func withBackend<R>(_ backend: any Backend, _ body: () throws -> R) rethrows -> R {
    try Backends.$current.withValue(backend) { try body() }
}

/// The vectorised, multi-threaded CPU backend over OpenBLAS.
public final class CPUBackend: Backend, @unchecked Sendable {
    public static let shared = CPUBackend()
    public var name: String { "cpu" }
}

/// Plain loops with double-precision accumulation, single-threaded: the oracle that the optimised
/// kernels are tested against.
public final class ReferenceBackend: Backend, @unchecked Sendable {
    public static let shared = ReferenceBackend()
    public var name: String { "reference" }
}

/// Walks every multi-index of `shape` in row-major order, calling `body(linearIndex, index)`.
@inline(__always)
func forEachIndex(_ shape: [Int], _ body: (Int, [Int]) -> Void) {
    let n = shape.reduce(1, *)
    if n == 0 { return }
    var idx = [Int](repeating: 0, count: shape.count)
    for lin in 0..<n {
        body(lin, idx)
        var d = shape.count - 1
        while d >= 0 {
            idx[d] += 1
            if idx[d] < shape[d] { break }
            idx[d] = 0
            d -= 1
        }
    }
}

@inline(__always)
func dot(_ idx: [Int], _ strides: [Int]) -> Int {
    var o = 0
    for i in 0..<idx.count { o += idx[i] * strides[i] }
    return o
}
