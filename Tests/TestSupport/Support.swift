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
