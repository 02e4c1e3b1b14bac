/// An error of the data pipeline, naming the step and the file, line or member involved.
public struct DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
    public var step: String
    public var message: String
    public init(_ step: String, _ message: String) {
        self.step = step
        self.message = message
    }
    public var description: String { "\(step): \(message)" }
}

/// SplitMix64: a tiny deterministic generator whose whole state is one integer (so a cursor restores it
/// exactly).
public struct SplitMix64: Codable, Equatable, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }
    /// Uniform in 0..<n (n > 0).
    public mutating func next(below n: Int) -> Int { Int(next() % UInt64(n)) }
}
