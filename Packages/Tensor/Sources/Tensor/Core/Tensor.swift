import TensorKernels

/// An n-dimensional array of Float32 values, row-major and contiguous, with value semantics.
///
/// A `Tensor` is a value: copying one is cheap (the buffer is shared) and a write to a shared buffer
/// copies it first (copy-on-write). Operations that involve a trainable `Parameter` (or a tensor made
/// with `requiringGradient()`) record what reverse-mode autodiff needs, unless recording is off
/// (`noGrad { }`). See `valueAndGradient(at:_:)`.
///
/// ```swift
/// let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
/// let y = try (x * 2 + 1).sum()      // 48
/// ```
public struct Tensor {
    /// Sizes of each dimension; `[]` for a scalar.
    public internal(set) var shape: [Int]
    /// The element type (Float32 today).
    public var dtype: DType { .float32 }
    @usableFromInline var storage: Storage
    /// The autodiff node that produced this tensor, when it is being recorded.
    var node: GradNode?

    /// Wraps an existing buffer. `storage.count` must equal the product of `shape`.
    init(shape: [Int], storage: Storage, node: GradNode? = nil) {
        self.shape = shape
        self.storage = storage
        self.node = node
    }

    /// A tensor with undefined contents (for kernels that write every element).
    init(uninitializedShape shape: [Int]) {
        self.init(shape: shape, storage: Storage(count: shapeCount(shape)))
    }

    /// A tensor from row-major values.
    /// - Throws: `TensorError` when `scalars.count` is not the product of `shape` or a size is negative.
    public init(shape: [Int], scalars: [Float]) throws {
        try checkShape(shape, op: "Tensor(shape:scalars:)")
        guard shapeCount(shape) == scalars.count else {
            throw TensorError(
                "Tensor(shape:scalars:)", "\(scalars.count) values cannot fill shape \(fmt(shape))")
        }
        self.init(shape: shape, storage: Storage(copying: scalars))
    }

    /// A tensor from row-major values of any binary floating-point type.
    public init<S: Sequence>(shape: [Int], _ values: S) throws where S.Element: BinaryFloatingPoint {
        try self.init(shape: shape, scalars: values.map { Float($0) })
    }

    /// A 0-dimensional tensor holding `value`.
    public init(_ value: Float) {
        self.init(shape: [], storage: Storage(copying: CollectionOfOne(value)))
    }

    /// A 1-dimensional tensor of `values`.
    public init(_ values: [Float]) {
        self.init(shape: [values.count], storage: Storage(copying: values))
    }

    /// A 2-dimensional tensor from rows of equal length.
    /// - Throws: `TensorError` when rows differ in length.
    public init(rows: [[Float]]) throws {
        let cols = rows.first?.count ?? 0
        guard rows.allSatisfy({ $0.count == cols }) else {
            throw TensorError("Tensor(rows:)", "rows have different lengths \(rows.map(\.count))")
        }
        self.init(shape: [rows.count, cols], storage: Storage(copying: rows.joined()))
    }

    /// Number of elements (product of `shape`; 1 for a scalar).
    public var count: Int { storage.count }
    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// The elements in row-major order.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }

    /// The value of a one-element tensor.
    /// - Throws: `TensorError` when the tensor has more than one element.
    public func item() throws -> Float {
        guard count == 1 else {
            throw TensorError("item", "tensor of shape \(fmt(shape)) has \(count) elements, not 1")
        }
        return storage.pointer[0]
    }

    /// Whether this tensor is being recorded for autodiff.
    public var requiresGradient: Bool { node != nil }

    /// The same values, cut off from autodiff recording.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// Read access to the contiguous elements.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Write access to the elements; copies the buffer first when it is shared (copy-on-write).
    /// Mutating a tensor in place cuts it off from autodiff recording.
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) {
            let fresh = Storage(count: storage.count)
            fresh.pointer.update(from: storage.pointer, count: storage.count)
            storage = fresh
        }
        node = nil
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Raw read pointer for kernels (valid while `self` is alive).
    @inlinable var ptr: UnsafePointer<Float> { UnsafePointer(storage.pointer) }
}

/// Product of a shape's sizes (1 for a scalar).
@inlinable
func shapeCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

/// Row-major strides of a contiguous shape.
@inlinable
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = s
        s *= shape[i]
    }
    return strides
}

func checkShape(_ shape: [Int], op: String) throws {
    guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError(op, "negative size in shape \(fmt(shape))") }
}

/// Normalises a possibly negative axis for a tensor of `rank` dimensions.
func normalizeAxis(_ axis: Int, rank: Int, op: String) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < max(rank, 1) else {
        throw TensorError(op, "axis \(axis) is out of range for a tensor of rank \(rank)")
    }
    return a
}

extension Tensor: CustomStringConvertible {
    /// Prints like PyTorch: `tensor([[1.0000, 2.0000], ...], shape=[2, 2])`, eliding long dimensions.
    public var description: String {
        func fmtValue(_ v: Float) -> String {
            if v.isNaN { return "nan" }
            if v.isInfinite { return v > 0 ? "inf" : "-inf" }
            let r = (Double(v) * 10000).rounded() / 10000
            var s = String(r)
            if let dot = s.firstIndex(of: ".") {
                let decimals = s.distance(from: dot, to: s.endIndex) - 1
                if decimals < 4 && !s.contains("e") { s += String(repeating: "0", count: 4 - decimals) }
            }
            return s
        }
        let p = storage.pointer
        let strides = contiguousStrides(shape)
        func render(_ dim: Int, _ offset: Int) -> String {
            if dim == shape.count { return fmtValue(p[offset]) }
            let n = shape[dim]
            var idx: [Int] = Array(0..<n)
            var elided = false
            if n > 6 { idx = [0, 1, 2, n - 3, n - 2, n - 1]; elided = true }
            var parts = idx.map { render(dim + 1, offset + $0 * strides[dim]) }
            if elided { parts.insert("...", at: 3) }
            let sep = dim == shape.count - 1 ? ", " : ",\n" + String(repeating: " ", count: dim + 8)
            return "[" + parts.joined(separator: sep) + "]"
        }
        let body = shape.isEmpty ? fmtValue(p[0]) : render(0, 0)
        let grad = node != nil ? ", requires_grad" : ""
        return "tensor(\(body), shape=\(fmt(shape))\(grad))"
    }
}
