/// An error from a tensor operation: the op's name and what was wrong, with the shapes involved.
///
/// ```
/// matmul: inner dimensions differ: [2, 3] x [4, 5]
/// ```
public struct TensorError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The operation that failed (`matmul`, `add`, `reshape`, `backward`, ...).
    public var op: String
    /// What was wrong, with the shapes involved.
    public var message: String

    public init(_ op: String, _ message: String) {
        self.op = op
        self.message = message
    }

    public var description: String { "\(op): \(message)" }
}

/// Formats a shape like PyTorch prints sizes: `[2, 3]`.
@inlinable
func fmt(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
