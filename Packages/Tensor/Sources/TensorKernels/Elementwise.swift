import Foundation

/// Elementwise functions of one tensor. Parameterised cases carry their constants.
public enum UnaryOp: Equatable, Sendable {
    case neg, abs, exp, log, sqrt, rsqrt, tanh, sigmoid, relu, square, reciprocal, sign
    /// Exact GELU: x * Phi(x), with the normal CDF through erf.
    case gelu
    /// GELU with the tanh approximation (PyTorch `approximate="tanh"`).
    case geluTanh
    /// CLIP's quick GELU: x * sigmoid(1.702 x).
    case quickGelu
    /// SiLU (swish): x * sigmoid(x).
    case silu
    /// softplus(x) = log(1 + exp(beta x)) / beta, linear above `threshold` (PyTorch's defaults 1, 20).
    case softplus(beta: Float, threshold: Float)
    /// x ** p for a constant exponent.
    case pow(Float)
    /// min(max(x, lo), hi).
    case clamp(Float, Float)
    /// a * x + b.
    case affine(Float, Float)
}

/// Elementwise functions of two tensors (with broadcasting at the op level).
public enum BinaryOp: Equatable, Sendable {
    case add, sub, mul, div, pow, maximum, minimum
    /// 1 where a > b else 0 (and the other comparisons): masks for `where`.
    case greater, less, equal, greaterEqual, lessEqual, notEqual
}

@inline(__always) func erfApprox(_ x: Float) -> Float { Foundation.erf(x) }

/// Scalar definitions shared by every backend, so that all agree to the last bit on the function
/// itself (backends differ only in loop structure).
public enum Scalar {
    @inline(__always)
    public static func unary(_ op: UnaryOp, _ x: Float) -> Float {
        switch op {
        case .neg: return -x
        case .abs: return Swift.abs(x)
        case .exp: return Foundation.exp(x)
        case .log: return Foundation.log(x)
        case .sqrt: return x.squareRoot()
        case .rsqrt: return 1 / x.squareRoot()
        case .tanh: return Foundation.tanh(x)
        case .sigmoid: return sigmoid(x)
        case .relu: return x > 0 ? x : 0
        case .square: return x * x
        case .reciprocal: return 1 / x
        case .sign: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .gelu: return 0.5 * x * (1 + Foundation.erf(x * 0.70710678118654752))
        case .geluTanh:
            let inner: Float = 0.79788456080286536 * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1 + Foundation.tanh(inner))
        case .quickGelu: return x * sigmoid(1.702 * x)
        case .silu: return x * sigmoid(x)
        case .softplus(let beta, let threshold):
            let bx = beta * x
            return bx > threshold ? x : Foundation.log1p(Foundation.exp(bx)) / beta
        case .pow(let p): return Foundation.pow(x, p)
        case .clamp(let lo, let hi): return Swift.min(Swift.max(x, lo), hi)
        case .affine(let a, let b): return a * x + b
        }
    }

    /// d op(x) / dx, given x and y = op(x).
    @inline(__always)
    public static func unaryDerivative(_ op: UnaryOp, _ x: Float, _ y: Float) -> Float {
        switch op {
        case .neg: return -1
        case .abs: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .exp: return y
        case .log: return 1 / x
        case .sqrt: return 0.5 / y
        case .rsqrt: return -0.5 * y * y * y
        case .tanh: return 1 - y * y
        case .sigmoid: return y * (1 - y)
        case .relu: return x > 0 ? 1 : 0
        case .square: return 2 * x
        case .reciprocal: return -y * y
        case .sign: return 0
        case .gelu:
            let cdf = 0.5 * (1 + Foundation.erf(x * 0.70710678118654752))
            let pdf = Foundation.exp(-0.5 * x * x) * 0.39894228040143268
            return cdf + x * pdf
        case .geluTanh:
            let k: Float = 0.79788456080286536
            let inner = k * (x + 0.044715 * x * x * x)
            let t = Foundation.tanh(inner)
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
        case .quickGelu:
            let s = sigmoid(1.702 * x)
            return s + x * 1.702 * s * (1 - s)
        case .silu:
            let s = sigmoid(x)
            return s * (1 + x * (1 - s))
        case .softplus(let beta, let threshold):
            let bx = beta * x
            return bx > threshold ? 1 : sigmoid(bx)
        case .pow(let p): return p == 0 ? 0 : p * Foundation.pow(x, p - 1)
        case .clamp(let lo, let hi): return (x >= lo && x <= hi) ? 1 : 0
        case .affine(let a, _): return a
        }
    }

    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float {
        // Stable for large |x|.
        if x >= 0 { return 1 / (1 + Foundation.exp(-x)) }
        let e = Foundation.exp(x)
        return e / (1 + e)
    }

    @inline(__always)
    public static func binary(_ op: BinaryOp, _ a: Float, _ b: Float) -> Float {
        switch op {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div: return a / b
        case .pow: return Foundation.pow(a, b)
        case .maximum: return a.isNaN || b.isNaN ? .nan : Swift.max(a, b)
        case .minimum: return a.isNaN || b.isNaN ? .nan : Swift.min(a, b)
        case .greater: return a > b ? 1 : 0
        case .less: return a < b ? 1 : 0
        case .equal: return a == b ? 1 : 0
        case .greaterEqual: return a >= b ? 1 : 0
        case .lessEqual: return a <= b ? 1 : 0
        case .notEqual: return a != b ? 1 : 0
        }
    }
}

/// A scalar function of one float, as a type, so that the generic loops below are specialised for
/// each function and vectorise (a closure argument would be an indirect call per element).
public protocol UnaryFunctor {
    func callAsFunction(_ x: Float) -> Float
}

/// A scalar function of two floats, as a type (see `UnaryFunctor`).
public protocol BinaryFunctor {
    func callAsFunction(_ a: Float, _ b: Float) -> Float
}

struct NegF: UnaryFunctor { @inline(__always) func callAsFunction(_ x: Float) -> Float { -x } }
struct AbsF: UnaryFunctor { @inline(__always) func callAsFunction(_ x: Float) -> Float { Swift.abs(x) } }
struct ReluF: UnaryFunctor { @inline(__always) func callAsFunction(_ x: Float) -> Float { x > 0 ? x : 0 } }
struct SquareF: UnaryFunctor { @inline(__always) func callAsFunction(_ x: Float) -> Float { x * x } }
struct SqrtF: UnaryFunctor { @inline(__always) func callAsFunction(_ x: Float) -> Float { x.squareRoot() } }
struct RsqrtF: UnaryFunctor {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { 1 / x.squareRoot() }
}
struct RecipF: UnaryFunctor { @inline(__always) func callAsFunction(_ x: Float) -> Float { 1 / x } }
struct AffineF: UnaryFunctor {
    let a: Float, b: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { a * x + b }
}
struct ClampF: UnaryFunctor {
    let lo: Float, hi: Float
    @inline(__always) func callAsFunction(_ x: Float) -> Float { Swift.min(Swift.max(x, lo), hi) }
}
struct ExpF: UnaryFunctor { @inline(__always) func callAsFunction(_ x: Float) -> Float { FastMath.exp(x) } }
struct SigmoidF: UnaryFunctor {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { 1 / (1 + FastMath.exp(-x)) }
}
struct SiluF: UnaryFunctor {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x / (1 + FastMath.exp(-x)) }
}
struct QuickGeluF: UnaryFunctor {
    @inline(__always) func callAsFunction(_ x: Float) -> Float { x / (1 + FastMath.exp(-1.702 * x)) }
}
struct TanhF: UnaryFunctor { @inline(__always) func callAsFunction(_ x: Float) -> Float { FastMath.tanh(x) } }
struct GeluTanhF: UnaryFunctor {
    @inline(__always) func callAsFunction(_ v: Float) -> Float {
        0.5 * v * (1 + FastMath.tanh(0.79788456080286536 * (v + 0.044715 * v * v * v)))
    }
}
struct ScalarUnaryF: UnaryFunctor {
    let op: UnaryOp
    @inline(__always) func callAsFunction(_ x: Float) -> Float { Scalar.unary(op, x) }
}

struct AddF: BinaryFunctor {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a + b }
}
struct SubF: BinaryFunctor {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a - b }
}
struct MulF: BinaryFunctor {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a * b }
}
struct DivF: BinaryFunctor {
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a / b }
}
struct ScalarBinaryF: BinaryFunctor {
    let op: BinaryOp
    @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { Scalar.binary(op, a, b) }
}

/// Vectorised, multi-threaded elementwise loops over contiguous buffers.
public enum ElementwiseKernels {
    @inline(__always)
    static func map<F: UnaryFunctor>(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, _ f: F
    ) {
        ComputeRuntime.parallelFor(n) { r in
            let xs = x + r.lowerBound, ys = y + r.lowerBound
            for i in 0..<r.count { ys[i] = f(xs[i]) }
        }
    }

    /// y = op(x) over `n` elements.
    public static func unary(
        _ op: UnaryOp, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int
    ) {
        switch op {
        case .neg: map(x, y, n, NegF())
        case .abs: map(x, y, n, AbsF())
        case .relu: map(x, y, n, ReluF())
        case .square: map(x, y, n, SquareF())
        case .sqrt: map(x, y, n, SqrtF())
        case .rsqrt: map(x, y, n, RsqrtF())
        case .reciprocal: map(x, y, n, RecipF())
        case .affine(let a, let b): map(x, y, n, AffineF(a: a, b: b))
        case .clamp(let lo, let hi): map(x, y, n, ClampF(lo: lo, hi: hi))
        case .exp: map(x, y, n, ExpF())
        case .sigmoid: map(x, y, n, SigmoidF())
        case .silu: map(x, y, n, SiluF())
        case .quickGelu: map(x, y, n, QuickGeluF())
        case .tanh: map(x, y, n, TanhF())
        case .geluTanh: map(x, y, n, GeluTanhF())
        default: map(x, y, n, ScalarUnaryF(op: op))
        }
    }

    /// dx = dy * op'(x) over `n` elements (y = op(x) is given for ops whose derivative uses it).
    public static func unaryBackward(
        _ op: UnaryOp, x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>, _ n: Int
    ) {
        ComputeRuntime.parallelFor(n) { r in
            let xs = x + r.lowerBound, ys = y + r.lowerBound, gs = dy + r.lowerBound, ds = dx + r.lowerBound
            let m = r.count
            switch op {
            case .relu: for i in 0..<m { ds[i] = xs[i] > 0 ? gs[i] : 0 }
            case .affine(let a, _): for i in 0..<m { ds[i] = a * gs[i] }
            case .neg: for i in 0..<m { ds[i] = -gs[i] }
            case .square: for i in 0..<m { ds[i] = 2 * xs[i] * gs[i] }
            case .exp: for i in 0..<m { ds[i] = ys[i] * gs[i] }
            case .sigmoid: for i in 0..<m { ds[i] = ys[i] * (1 - ys[i]) * gs[i] }
            case .tanh: for i in 0..<m { ds[i] = (1 - ys[i] * ys[i]) * gs[i] }
            case .silu:
                for i in 0..<m {
                    let s = 1 / (1 + FastMath.exp(-xs[i]))
                    ds[i] = gs[i] * s * (1 + xs[i] * (1 - s))
                }
            case .quickGelu:
                for i in 0..<m {
                    let s = 1 / (1 + FastMath.exp(-1.702 * xs[i]))
                    ds[i] = gs[i] * (s + xs[i] * 1.702 * s * (1 - s))
                }
            default: for i in 0..<m { ds[i] = gs[i] * Scalar.unaryDerivative(op, xs[i], ys[i]) }
            }
        }
    }

    @inline(__always)
    static func zipLoop<F: BinaryFunctor>(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ n: Int,
        _ f: F
    ) {
        ComputeRuntime.parallelFor(n) { r in
            let as_ = a + r.lowerBound, bs = b + r.lowerBound, cs = c + r.lowerBound
            for i in 0..<r.count { cs[i] = f(as_[i], bs[i]) }
        }
    }

    /// c = a op b where a and b have the same number of elements `n`, contiguous.
    public static func binarySame(
        _ op: BinaryOp, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>, _ n: Int
    ) {
        switch op {
        case .add: zipLoop(a, b, c, n, AddF())
        case .sub: zipLoop(a, b, c, n, SubF())
        case .mul: zipLoop(a, b, c, n, MulF())
        case .div: zipLoop(a, b, c, n, DivF())
        default: zipLoop(a, b, c, n, ScalarBinaryF(op: op))
        }
    }

    /// General broadcasting: `shape` is the output shape; `aStrides`/`bStrides` are element strides
    /// of a and b over it (0 along broadcast dimensions). The output is contiguous.
    public static func binaryBroadcast(
        _ op: BinaryOp, _ a: UnsafePointer<Float>, _ aStrides: [Int], _ b: UnsafePointer<Float>,
        _ bStrides: [Int],
        _ c: UnsafeMutablePointer<Float>, shape: [Int]
    ) {
        switch op {
        case .add: broadcastLoop(a, aStrides, b, bStrides, c, shape, AddF())
        case .sub: broadcastLoop(a, aStrides, b, bStrides, c, shape, SubF())
        case .mul: broadcastLoop(a, aStrides, b, bStrides, c, shape, MulF())
        case .div: broadcastLoop(a, aStrides, b, bStrides, c, shape, DivF())
        default: broadcastLoop(a, aStrides, b, bStrides, c, shape, ScalarBinaryF(op: op))
        }
    }

    @inline(__always)
    static func broadcastLoop<F: BinaryFunctor>(
        _ a: UnsafePointer<Float>, _ aStrides: [Int], _ b: UnsafePointer<Float>, _ bStrides: [Int],
        _ c: UnsafeMutablePointer<Float>, _ shape: [Int], _ f: F
    ) {
        let rank = shape.count
        let n = shape.reduce(1, *)
        if n == 0 { return }
        if rank == 0 {
            c[0] = f(a[0], b[0])
            return
        }
        let inner = shape[rank - 1]
        let sa = aStrides[rank - 1], sb = bStrides[rank - 1]
        let rows = n / inner
        do {
            ComputeRuntime.parallelFor(rows, grain: Swift.max(1, (1 << 14) / Swift.max(inner, 1))) { r in
                var idx = [Int](repeating: 0, count: rank)
                // Decompose the first row index of this chunk.
                var rem = r.lowerBound
                for d in stride(from: rank - 2, through: 0, by: -1) {
                    idx[d] = rem % shape[d]
                    rem /= shape[d]
                }
                for row in r {
                    var oa = 0, ob = 0
                    for d in 0..<(rank - 1) {
                        oa += idx[d] * aStrides[d]
                        ob += idx[d] * bStrides[d]
                    }
                    let pa = a + oa, pb = b + ob, pc = c + row * inner
                    if sa == 1 && sb == 1 {
                        for i in 0..<inner { pc[i] = f(pa[i], pb[i]) }
                    } else if sa == 1 && sb == 0 {
                        let v = pb[0]
                        for i in 0..<inner { pc[i] = f(pa[i], v) }
                    } else if sa == 0 && sb == 1 {
                        let v = pa[0]
                        for i in 0..<inner { pc[i] = f(v, pb[i]) }
                    } else {
                        for i in 0..<inner { pc[i] = f(pa[i * sa], pb[i * sb]) }
                    }
                    // Advance the multi-index over the leading dimensions.
                    var d = rank - 2
                    while d >= 0 {
                        idx[d] += 1
                        if idx[d] < shape[d] { break }
                        idx[d] = 0
                        d -= 1
                    }
                }
            }
        }
    }

    /// Copies a strided view into a contiguous buffer: `dst[i0, ..., ik] = src[sum(i_d * strides[d])]`.
    /// Strides may be zero (broadcast) or negative (flip); `src` points at element (0, ..., 0).
    public static func gather(
        _ src: UnsafePointer<Float>, strides: [Int], _ dst: UnsafeMutablePointer<Float>, shape: [Int]
    ) {
        let rank = shape.count
        let n = shape.reduce(1, *)
        if n == 0 { return }
        if rank == 0 {
            dst[0] = src[0]
            return
        }
        let inner = shape[rank - 1]
        let si = strides[rank - 1]
        let rows = n / inner
        ComputeRuntime.parallelFor(rows, grain: Swift.max(1, (1 << 15) / Swift.max(inner, 1))) { r in
            var idx = [Int](repeating: 0, count: rank)
            var rem = r.lowerBound
            for d in stride(from: rank - 2, through: 0, by: -1) {
                idx[d] = rem % shape[d]
                rem /= shape[d]
            }
            for row in r {
                var o = 0
                for d in 0..<(rank - 1) { o += idx[d] * strides[d] }
                let ps = src + o, pd = dst + row * inner
                if si == 1 {
                    pd.update(from: ps, count: inner)
                } else {
                    for i in 0..<inner { pd[i] = ps[i * si] }
                }
                var d = rank - 2
                while d >= 0 {
                    idx[d] += 1
                    if idx[d] < shape[d] { break }
                    idx[d] = 0
                    d -= 1
                }
            }
        }
    }

    /// Writes contiguous `src` of `shape` into the strided view of `dst` (non-overlapping).
    public static func scatter(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, strides: [Int], shape: [Int]
    ) {
        let rank = shape.count
        let n = shape.reduce(1, *)
        if n == 0 { return }
        if rank == 0 {
            dst[0] = src[0]
            return
        }
        let inner = shape[rank - 1]
        let si = strides[rank - 1]
        let rows = n / inner
        ComputeRuntime.parallelFor(rows, grain: Swift.max(1, (1 << 15) / Swift.max(inner, 1))) { r in
            var idx = [Int](repeating: 0, count: rank)
            var rem = r.lowerBound
            for d in stride(from: rank - 2, through: 0, by: -1) {
                idx[d] = rem % shape[d]
                rem /= shape[d]
            }
            for row in r {
                var o = 0
                for d in 0..<(rank - 1) { o += idx[d] * strides[d] }
                let pd = dst + o, ps = src + row * inner
                if si == 1 {
                    pd.update(from: ps, count: inner)
                } else {
                    for i in 0..<inner { pd[i * si] = ps[i] }
                }
                var d = rank - 2
                while d >= 0 {
                    idx[d] += 1
                    if idx[d] < shape[d] { break }
                    idx[d] = 0
                    d -= 1
                }
            }
        }
    }
}
