/// Sampling weights over the three kinds of pre-training data (MM1: 45% interleaved,
/// 45% image-caption, 10% text-only).
public struct MixtureWeights: Codable, Equatable, Sendable {
    public var interleaved: Double
    public var imageCaption: Double
    public var textOnly: Double

    public init(interleaved: Double = 0.45, imageCaption: Double = 0.45, textOnly: Double = 0.10) {
        self.interleaved = interleaved
        self.imageCaption = imageCaption
        self.textOnly = textOnly
    }

    /// The weights scaled to sum to one, in the order interleaved, image-caption, text-only.
    /// Returns nil when a weight is negative or all are zero.
    public var normalized: [Double]? {
        let w = [interleaved, imageCaption, textOnly]
        let total = w.reduce(0, +)
        guard w.allSatisfy({ $0 >= 0 && $0.isFinite }), total > 0 else { return nil }
        return w.map { $0 / total }
    }
}
