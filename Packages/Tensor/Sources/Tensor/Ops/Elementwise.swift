import Foundation
import TensorKernels

extension Tensor {
    /// Applies an elementwise function, recording its derivative.
    func unaryOp(_ op: UnaryOp, name: String) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        Backends.current.unary(op, ptr, out.storage.pointer, count)
        let x = self
        return Tensor.record(out, op: name, inputs: [self]) { g in
            let dx = Tensor(uninitializedShape: x.shape)
            Backends.current.unaryBackward(
                op, x: x.ptr, y: out.ptr, dy: g.ptr, dx: dx.storage.pointer, x.count)
            return [dx]
        }
    }

    /// Elementwise `a op b` with broadcasting (no autodiff recording).
    static func binaryRaw(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, name: String) throws -> Tensor {
        if a.shape == b.shape {
            // Same shape: no broadcasting strides to build.
            let out = Tensor(uninitializedShape: a.shape)
            Backends.current.binarySame(op, a.ptr, b.ptr, out.storage.pointer, a.count)
            return out
        }
        let shape = try broadcastShapes(a.shape, b.shape, op: name)
        let out = Tensor(uninitializedShape: shape)
        Backends.current.binary(
            op, a.ptr, broadcastStrides(a.shape, to: shape), b.ptr, broadcastStrides(b.shape, to: shape),
            out.storage.pointer, shape: shape)
        return out
    }

    static func binaryOp(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, name: String) throws -> Tensor {
        let out = try binaryRaw(op, a, b, name: name)
        return record(out, op: name, inputs: [a, b]) { g in
            let ga: Tensor?
            let gb: Tensor?
            switch op {
            case .add:
                ga = a.node != nil ? try g.sumToShape(a.shape) : nil
                gb = b.node != nil ? try g.sumToShape(b.shape) : nil
            case .sub:
                ga = a.node != nil ? try g.sumToShape(a.shape) : nil
                gb = b.node != nil ? try (-g).sumToShape(b.shape) : nil
            case .mul:
                ga = a.node != nil ? try (g * b).sumToShape(a.shape) : nil
                gb = b.node != nil ? try (g * a).sumToShape(b.shape) : nil
            case .div:
                ga = a.node != nil ? try (g / b).sumToShape(a.shape) : nil
                gb = b.node != nil ? try (-(g * out) / b).sumToShape(b.shape) : nil
            case .pow:
                // d/da a^b = b a^(b-1); d/db a^b = a^b ln a (0 where a == 0, as PyTorch for b > 0).
                ga =
                    a.node != nil
                    ? try (g * b * binaryRaw(.pow, a, b - 1, name: name)).sumToShape(a.shape) : nil
                if b.node != nil {
                    let lna = a.unaryOp(.log, name: "log").detached()
                    let safe = try Tensor.where(binaryRaw(.greater, a, Tensor(0), name: name), lna, Tensor(0))
                    gb = try (g * out * safe).sumToShape(b.shape)
                } else {
                    gb = nil
                }
            case .maximum, .minimum:
                // The gradient goes to the selected input; ties split it evenly (as PyTorch).
                let pick = try binaryRaw(op == .maximum ? .greater : .less, a, b, name: name)
                let tie = try binaryRaw(.equal, a, b, name: name)
                let wa = try pick + tie * 0.5
                ga = a.node != nil ? try (g * wa).sumToShape(a.shape) : nil
                gb = b.node != nil ? try (g * (1 - wa)).sumToShape(b.shape) : nil
            default:
                ga = nil
                gb = nil
            }
            return [ga, gb]
        }
    }

    // MARK: Operators (broadcasting; throw on incompatible shapes)

    /// Elementwise sum with broadcasting. - Throws: `TensorError` naming both shapes.
    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try binaryOp(.add, a, b, name: "add") }
    /// Elementwise difference with broadcasting.
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try binaryOp(.sub, a, b, name: "sub") }
    /// Elementwise product with broadcasting.
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try binaryOp(.mul, a, b, name: "mul") }
    /// Elementwise quotient with broadcasting.
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try binaryOp(.div, a, b, name: "div") }

    public static func + (a: Tensor, s: Float) -> Tensor { a.unaryOp(.affine(1, s), name: "add") }
    public static func + (s: Float, a: Tensor) -> Tensor { a.unaryOp(.affine(1, s), name: "add") }
    public static func - (a: Tensor, s: Float) -> Tensor { a.unaryOp(.affine(1, -s), name: "sub") }
    public static func - (s: Float, a: Tensor) -> Tensor { a.unaryOp(.affine(-1, s), name: "rsub") }
    public static func * (a: Tensor, s: Float) -> Tensor { a.unaryOp(.affine(s, 0), name: "mul") }
    public static func * (s: Float, a: Tensor) -> Tensor { a.unaryOp(.affine(s, 0), name: "mul") }
    public static func / (a: Tensor, s: Float) -> Tensor { a.unaryOp(.affine(1 / s, 0), name: "div") }
    public static func / (s: Float, a: Tensor) -> Tensor { a.unaryOp(.reciprocal, name: "reciprocal") * s }
    public static prefix func - (a: Tensor) -> Tensor { a.unaryOp(.neg, name: "neg") }

    /// a ** b elementwise with broadcasting.
    public func pow(_ exponent: Tensor) throws -> Tensor {
        try Tensor.binaryOp(.pow, self, exponent, name: "pow")
    }
    /// a ** p for a constant p.
    public func pow(_ p: Float) -> Tensor { unaryOp(.pow(p), name: "pow") }
    /// Elementwise maximum with broadcasting (ties share the gradient).
    public static func maximum(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try binaryOp(.maximum, a, b, name: "maximum")
    }
    /// Elementwise minimum with broadcasting.
    public static func minimum(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try binaryOp(.minimum, a, b, name: "minimum")
    }

    // MARK: Comparisons (masks of 0 and 1, not differentiable)

    public func greater(_ b: Tensor) throws -> Tensor { try Tensor.binaryRaw(.greater, self, b, name: "gt") }
    public func less(_ b: Tensor) throws -> Tensor { try Tensor.binaryRaw(.less, self, b, name: "lt") }
    public func equal(_ b: Tensor) throws -> Tensor { try Tensor.binaryRaw(.equal, self, b, name: "eq") }
    public func greaterEqual(_ b: Tensor) throws -> Tensor {
        try Tensor.binaryRaw(.greaterEqual, self, b, name: "ge")
    }
    public func lessEqual(_ b: Tensor) throws -> Tensor {
        try Tensor.binaryRaw(.lessEqual, self, b, name: "le")
    }
    public func notEqual(_ b: Tensor) throws -> Tensor {
        try Tensor.binaryRaw(.notEqual, self, b, name: "ne")
    }

    /// `condition != 0 ? a : b` elementwise, all three broadcast together.
    /// - Returns: shape of the three broadcast together.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        let shape = try broadcastShapes(
            try broadcastShapes(condition.shape, a.shape, op: "where"), b.shape, op: "where")
        let out = Tensor(uninitializedShape: shape)
        Backends.current.select(
            condition.ptr, broadcastStrides(condition.shape, to: shape), a.ptr,
            broadcastStrides(a.shape, to: shape),
            b.ptr, broadcastStrides(b.shape, to: shape), out.storage.pointer, shape: shape)
        return record(out, op: "where", inputs: [a, b]) { g in
            let zero = Tensor(0)
            let ga = a.node != nil ? try Tensor.where(condition, g, zero).sumToShape(a.shape) : nil
            let gb = b.node != nil ? try Tensor.where(condition, zero, g).sumToShape(b.shape) : nil
            return [ga, gb]
        }
    }

    /// Sets elements where `mask` (broadcast) is non-zero to `value` (PyTorch `masked_fill`).
    public func maskedFill(_ mask: Tensor, _ value: Float) throws -> Tensor {
        let out = try Tensor.where(mask, Tensor(value), self)
        guard out.shape == shape else {
            throw TensorError("maskedFill", "mask \(fmt(mask.shape)) does not broadcast to \(fmt(shape))")
        }
        return out
    }
}

// MARK: Elementwise functions

extension Tensor {
    public func exp() -> Tensor { unaryOp(.exp, name: "exp") }
    public func log() -> Tensor { unaryOp(.log, name: "log") }
    public func sqrt() -> Tensor { unaryOp(.sqrt, name: "sqrt") }
    public func rsqrt() -> Tensor { unaryOp(.rsqrt, name: "rsqrt") }
    public func abs() -> Tensor { unaryOp(.abs, name: "abs") }
    public func tanh() -> Tensor { unaryOp(.tanh, name: "tanh") }
    public func sigmoid() -> Tensor { unaryOp(.sigmoid, name: "sigmoid") }
    public func square() -> Tensor { unaryOp(.square, name: "square") }
    /// min(max(x, lo), hi); the gradient passes where lo <= x <= hi.
    public func clamp(min lo: Float = -.infinity, max hi: Float = .infinity) -> Tensor {
        unaryOp(.clamp(lo, hi), name: "clamp")
    }
}

/// max(x, 0).
public func relu(_ x: Tensor) -> Tensor { x.unaryOp(.relu, name: "relu") }
/// GELU: exact (`x * Phi(x)`) by default, or the tanh approximation (PyTorch `approximate="tanh"`).
public func gelu(_ x: Tensor, approximate: Bool = false) -> Tensor {
    x.unaryOp(approximate ? .geluTanh : .gelu, name: approximate ? "gelu_tanh" : "gelu")
}
/// CLIP's quick GELU: `x * sigmoid(1.702 x)`.
public func quickGelu(_ x: Tensor) -> Tensor { x.unaryOp(.quickGelu, name: "quick_gelu") }
/// SiLU (swish): `x * sigmoid(x)`.
public func silu(_ x: Tensor) -> Tensor { x.unaryOp(.silu, name: "silu") }
/// `log(1 + exp(beta x)) / beta`, linear above `threshold` (PyTorch's defaults).
public func softplus(_ x: Tensor, beta: Float = 1, threshold: Float = 20) -> Tensor {
    x.unaryOp(.softplus(beta: beta, threshold: threshold), name: "softplus")
}
public func sigmoid(_ x: Tensor) -> Tensor { x.sigmoid() }
public func tanh(_ x: Tensor) -> Tensor { x.tanh() }
public func exp(_ x: Tensor) -> Tensor { x.exp() }
public func log(_ x: Tensor) -> Tensor { x.log() }
public func sqrt(_ x: Tensor) -> Tensor { x.sqrt() }
