/// Branch-free float functions that the compiler can vectorise (libm's `expf` is a call per element).
/// Accuracy: within 2 ulp of libm over the float range (checked against libm in the tests).
public enum FastMath {
    /// e^c for c already clamped to [-87.34, 88] (Cephes-style: Cody-Waite reduction by ln 2,
    /// degree-6 polynomial, scale by 2^k). Rounding to nearest adds and subtracts 1.5 * 2^23 (no libm
    /// call on baseline x86-64); t's low mantissa bits then hold k, so 2^k is built with integer ops.
    @inline(__always)
    static func expCore(_ c: Float) -> Float {
        let t = c * 1.44269504088896341 + 12_582_912
        let k = t - 12_582_912
        let r = c - k * 0.693359375 + k * 2.12194440e-4
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * r * r + r + 1
        return y * Float(bitPattern: (t.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
    }

    /// e^x over the whole float range (inf above 88.72, 0 below -87.34, NaN kept).
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        var out = expCore(Swift.min(Swift.max(x, -87.33654), 88.0))
        out = x > 88.72283 ? Float.infinity : out
        out = x < -87.33654 ? 0 : out
        return x.isNaN ? x : out
    }

    /// tanh(x): an odd polynomial for |x| < 0.625, else 1 - 2 / (e^(2|x|) + 1) with the sign of x.
    @inline(__always)
    public static func tanh(_ x: Float) -> Float {
        let a = Swift.abs(x)
        let z = x * x
        var p: Float = -5.70498872745e-3
        p = p * z + 2.06390887954e-2
        p = p * z - 5.37397155531e-2
        p = p * z + 1.33314422036e-1
        p = p * z - 3.33332819422e-1
        let small = p * z * x + x
        let e = exp(2 * Swift.min(a, 9.5))
        var large = 1 - 2 / (e + 1)
        large = x < 0 ? -large : large
        return a < 0.625 ? small : large
    }

    /// e^x for x <= 0 (the softmax, attention and cross-entropy kernels only exponentiate values minus
    /// their row max or log-sum-exp): the polynomial of `exp` without the upper clamp and NaN select,
    /// exact 0 below -87 so that -inf contributes nothing.
    @inline(__always)
    public static func expNonPositive(_ x: Float) -> Float {
        let out = expCore(x < -87 ? -87 : x)
        return x < -87 ? 0 : out
    }

    /// `expNonPositive` on 16 lanes.
    @inline(__always)
    public static func expNonPositive(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let c = x.replacing(with: -87.0, where: x .< -87.0)
        let t = c * 1.44269504088896341 + 12582912.0
        let k = t - 12582912.0
        let r = c - k * 0.693359375 + k * 2.12194440e-4
        var p = SIMD16<Float>(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * r * r + r + 1
        let ki = unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((ki &+ 127) &<< 23, to: SIMD16<Float>.self)
        return (y * scale).replacing(with: 0, where: x .< -87.0)
    }
}
