/// An n-dimensional array of integer indices (token ids, gather indices, argmax results).
///
/// Kept apart from `Tensor` (which stores Float32) so indices never lose precision.
public struct IndexTensor: Equatable, Sendable {
    /// Sizes of each dimension.
    public var shape: [Int]
    /// Row-major values.
    public var values: [Int]

    /// - Throws: `TensorError` when `values.count` is not the product of `shape`.
    public init(shape: [Int], values: [Int]) throws {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw TensorError("IndexTensor", "\(values.count) values cannot fill shape \(fmt(shape))")
        }
        self.shape = shape
        self.values = values
    }

    /// A 1-dimensional index tensor.
    public init(_ values: [Int]) {
        self.shape = [values.count]
        self.values = values
    }

    init(shape: [Int], unchecked values: [Int]) {
        self.shape = shape
        self.values = values
    }

    /// Number of indices.
    public var count: Int { values.count }
}
