/// An error from the Vision package: what was wrong, and the file concerned when there is one.
///
/// ```
/// photo.jpg: not a JPEG or PNG file (starts with 47 49 46 38)
/// CLIPVisionModel.load: missing vision_model.post_layernorm.weight
/// ```
public struct VisionError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file (or directory) concerned, or the operation when no file is involved.
    public var source: String
    /// What was wrong.
    public var message: String

    public init(_ source: String, _ message: String) {
        self.source = source
        self.message = message
    }

    public var description: String { "\(source): \(message)" }
}
