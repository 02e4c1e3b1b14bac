/// An error in evaluation input: names the file, and the line, element or id where it applies.
public struct EvaluationError: Error, CustomStringConvertible, Equatable, Sendable {
    /// "file:line", "file[element]", "file" or a short context such as "predictions".
    public var location: String
    public var message: String
    public init(_ location: String, _ message: String) {
        self.location = location
        self.message = message
    }
    public var description: String { "\(location): \(message)" }
}
