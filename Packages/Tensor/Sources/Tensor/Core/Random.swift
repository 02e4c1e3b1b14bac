import Foundation
import TensorKernels

/// A counter-based random generator (Philox4x32-10): the value of element i of a draw depends only
/// on the seed, the generator's offset and i, so results are identical on any thread count.
///
/// Pass it explicitly (`inout`); each draw advances `offset`. It is `Codable`, so a training
/// checkpoint can store and restore it exactly.
public struct RandomGenerator: Codable, Equatable, Sendable {
    /// The key.
    public var seed: UInt64
    /// Philox blocks (of four 32-bit values) used so far.
    public var offset: UInt64

    public init(seed: UInt64, offset: UInt64 = 0) {
        self.seed = seed
        self.offset = offset
    }

    /// Four 32-bit values of block `counter`.
    @inline(__always)
    static func philox(_ counter: UInt64, _ seed: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: counter), c1 = UInt32(truncatingIfNeeded: counter >> 32)
        var c2: UInt32 = 0, c3: UInt32 = 0
        var k0 = UInt32(truncatingIfNeeded: seed), k1 = UInt32(truncatingIfNeeded: seed >> 32)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let n0 = UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0
            let n2 = UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1
            c0 = n0
            c1 = UInt32(truncatingIfNeeded: p1)
            c2 = n2
            c3 = UInt32(truncatingIfNeeded: p0)
            k0 = k0 &+ 0x9E37_79B9
            k1 = k1 &+ 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }

    @inline(__always)
    static func word(_ block: (UInt32, UInt32, UInt32, UInt32), _ i: Int) -> UInt32 {
        switch i & 3 {
        case 0: return block.0
        case 1: return block.1
        case 2: return block.2
        default: return block.3
        }
    }

    /// Uniform floats in [0, 1) with 24 random bits each, one per element.
    mutating func fillUniform(_ out: UnsafeMutablePointer<Float>, _ n: Int) {
        let base = offset, key = seed
        ComputeRuntime.parallelFor(n, grain: 1 << 12) { r in
            var i = r.lowerBound
            while i < r.upperBound {
                let block = RandomGenerator.philox(base &+ UInt64(i / 4), key)
                let end = Swift.min(r.upperBound, (i / 4 + 1) * 4)
                while i < end {
                    out[i] = Float(RandomGenerator.word(block, i) >> 8) * 0x1p-24
                    i += 1
                }
            }
        }
        offset &+= UInt64((n + 3) / 4)
    }

    /// Standard normal floats (Box-Muller over pairs of 32-bit uniforms), one per element.
    mutating func fillNormal(_ out: UnsafeMutablePointer<Float>, _ n: Int) {
        let base = offset, key = seed
        ComputeRuntime.parallelFor(n, grain: 1 << 11) { r in
            for i in r {
                let block = RandomGenerator.philox(base &+ UInt64(i / 2), key)
                let a = RandomGenerator.word(block, (i & 1) * 2),
                    b = RandomGenerator.word(block, (i & 1) * 2 + 1)
                let u1 = (Double(a) + 0.5) * 0x1p-32, u2 = Double(b) * 0x1p-32
                out[i] = Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
            }
        }
        offset &+= UInt64((n + 1) / 2)
    }
}

extension Tensor {
    /// Uniform values in [low, high).
    public static func uniform(
        _ shape: [Int], low: Float = 0, high: Float = 1, generator: inout RandomGenerator
    ) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        generator.fillUniform(t.storage.pointer, t.count)
        if low != 0 || high != 1 {
            Backends.current.unary(.affine(high - low, low), t.ptr, t.storage.pointer, t.count)
        }
        return t
    }

    /// Normal values with the given mean and standard deviation.
    public static func normal(
        _ shape: [Int], mean: Float = 0, std: Float = 1, generator: inout RandomGenerator
    ) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        generator.fillNormal(t.storage.pointer, t.count)
        if mean != 0 || std != 1 {
            Backends.current.unary(.affine(std, mean), t.ptr, t.storage.pointer, t.count)
        }
        return t
    }

    /// Normal values truncated to [a, b] (absolute bounds, as `torch.nn.init.trunc_normal_`), drawn by
    /// inverting the normal CDF over the allowed interval.
    public static func truncatedNormal(
        _ shape: [Int], mean: Float = 0, std: Float = 1, a: Float = -2, b: Float = 2,
        generator: inout RandomGenerator
    ) -> Tensor {
        func cdf(_ x: Double) -> Double { (1 + Foundation.erf(x / 2.0.squareRoot())) / 2 }
        let lo = cdf(Double((a - mean) / std)), hi = cdf(Double((b - mean) / std))
        let t = uniform(shape, generator: &generator)
        let p = t.storage.pointer
        for i in 0..<t.count {
            let u = (2 * lo - 1) + (2 * hi - 2 * lo) * Double(p[i])
            let x =
                erfinv(Swift.min(Swift.max(u, -1 + 1e-15), 1 - 1e-15)) * 2.0.squareRoot() * Double(std)
                + Double(mean)
            p[i] = Swift.min(Swift.max(Float(x), a), b)
        }
        return t
    }
}

/// Inverse error function (Giles' approximation refined by two Newton steps), in Double.
func erfinv(_ y: Double) -> Double {
    var w = -Foundation.log((1 - y) * (1 + y))
    var x: Double
    if w < 5 {
        w -= 2.5
        var p = 2.81022636e-08
        for c in [
            3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503, -0.00417768164,
            0.246640727, 1.50140941,
        ] {
            p = c + p * w
        }
        x = p * y
    } else {
        w = w.squareRoot() - 3
        var p = -0.000200214257
        for c in [
            0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047,
            1.00167406, 2.83297682,
        ] {
            p = c + p * w
        }
        x = p * y
    }
    for _ in 0..<2 {
        let err = Foundation.erf(x) - y
        x -= err / (2 / Double.pi.squareRoot() * Foundation.exp(-x * x))
    }
    return x
}
