import Tensor

/// Largest absolute difference between two equally long float sequences, scaled by the largest
/// magnitude of the reference: max|a - b| / max|b| (the project's "relative" error).
public func relativeError<A: Collection, B: Collection>(_ a: A, _ b: B) -> Double
where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
    precondition(a.count == b.count, "lengths differ: \(a.count) vs \(b.count)")
    var num = 0.0
    var den = 0.0
    for (x, y) in zip(a, b) {
        num = max(num, abs(Double(x) - Double(y)))
        den = max(den, abs(Double(y)))
    }
    return den == 0 ? num : num / den
}

/// SplitMix64 as a `RandomNumberGenerator`: the seeded source for Swift's `random(in:using:)`,
/// `shuffle(using:)` and `randomElement(using:)` in tests (test data, corruption positions, kill
/// delays). Tests never draw from the system generator, so a failure reproduces.
public struct SplitMix: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(_ seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
