import Tensor

/// Conversions between Float32 and the stored element types (little-endian bytes).
///
/// float16 and bfloat16 are written with round-to-nearest-even (PyTorch's `.half()` and
/// `.bfloat16()`) and widen exactly, so a value read from a 16-bit file and written back in the same
/// type keeps its bits. A NaN stays a NaN (its payload may be quieted).
public enum ElementConversion {
    /// The bfloat16 bits nearest to `value` (ties to even).
    @inline(__always)
    public static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN {
            let high = UInt16(truncatingIfNeeded: bits >> 16)
            // Keep a NaN a NaN when its payload sits only in the low half.
            return high & 0x7F == 0 ? high | 0x40 : high
        }
        let rounding = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// The Float32 with the same value as bfloat16 `bits` (exact).
    @inline(__always)
    public static func float(bfloat16Bits bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// The IEEE half bits nearest to `value` (ties to even; overflow gives infinity).
    @inline(__always)
    public static func float16Bits(_ value: Float) -> UInt16 { Float16(value).bitPattern }

    /// The Float32 with the same value as IEEE half `bits` (exact).
    @inline(__always)
    public static func float(float16Bits bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    /// Converts `count` little-endian elements of `dtype` at `raw` to Float32 in `out`.
    /// - Returns: false when `dtype` cannot be converted (8-bit floats).
    @discardableResult
    public static func decode(
        _ raw: UnsafeRawPointer, dtype: StoredDType, count: Int, into out: UnsafeMutablePointer<Float>
    ) -> Bool {
        @inline(__always) func each<T: FixedWidthInteger>(_: T.Type, _ f: (T) -> Float) {
            for i in 0..<count {
                out[i] = f(
                    T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)))
            }
        }
        switch dtype {
        case .float32:
            // Little-endian hosts only (x86-64, arm64): the bytes are the values.
            UnsafeMutableRawPointer(out).copyMemory(from: raw, byteCount: count * 4)
        case .float64: each(UInt64.self) { Float(Double(bitPattern: $0)) }
        case .float16: each(UInt16.self) { float(float16Bits: $0) }
        case .bfloat16: each(UInt16.self) { float(bfloat16Bits: $0) }
        case .int64: each(Int64.self) { Float($0) }
        case .int32: each(Int32.self) { Float($0) }
        case .int16: each(Int16.self) { Float($0) }
        case .int8: each(Int8.self) { Float($0) }
        case .uint64: each(UInt64.self) { Float($0) }
        case .uint32: each(UInt32.self) { Float($0) }
        case .uint16: each(UInt16.self) { Float($0) }
        case .uint8: each(UInt8.self) { Float($0) }
        case .bool: each(UInt8.self) { $0 != 0 ? 1 : 0 }
        case .float8e4m3, .float8e5m2: return false
        }
        return true
    }

    /// `values` as little-endian bytes of `dtype`.
    public static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: WeightDType) -> [UInt8] {
        let n = values.count
        switch dtype {
        case .float32:
            return [UInt8](UnsafeRawBufferPointer(values))
        case .float16, .bfloat16:
            var out = [UInt8](repeating: 0, count: n * 2)
            out.withUnsafeMutableBytes { dst in
                for i in 0..<n {
                    let h = dtype == .float16 ? float16Bits(values[i]) : bfloat16Bits(values[i])
                    dst.storeBytes(of: h.littleEndian, toByteOffset: i * 2, as: UInt16.self)
                }
            }
            return out
        }
    }

    /// `tensor`'s values as 16-bit patterns of `dtype` (`.float16` or `.bfloat16`).
    public static func halfBits(_ tensor: Tensor, as dtype: WeightDType) -> [UInt16] {
        tensor.withUnsafeBufferPointer { v in
            dtype == .float16 ? v.map(float16Bits) : v.map(bfloat16Bits)
        }
    }

    /// A tensor of `shape` from `count` stored elements at `raw`.
    package static func tensor(shape: [Int], dtype: StoredDType, raw: UnsafeRawPointer) -> Tensor? {
        guard dtype.isConvertible else { return nil }
        var t = Tensor.zeros(shape)
        let n = t.count
        if n > 0 {
            t.withUnsafeMutableBufferPointer { out in
                _ = decode(raw, dtype: dtype, count: n, into: out.baseAddress!)
            }
        }
        return t
    }
}
