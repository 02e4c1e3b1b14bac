import Tensor

/// An error reading or writing a tensor file: the file, the tensor (when one is concerned) and what
/// was wrong.
///
/// ```
/// model.safetensors: tensor 'encoder.weight': data_offsets [0, 12] hold 12 bytes, but F32 [2, 3] needs 24
/// ```
public struct TensorFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Path of the file (or directory) concerned.
    public var file: String
    /// Name of the tensor, dataset or entry concerned, when there is one.
    public var tensor: String?
    /// What was wrong.
    public var message: String

    public init(file: String, tensor: String? = nil, _ message: String) {
        self.file = file
        self.tensor = tensor
        self.message = message
    }

    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(message)" }
        return "\(file): \(message)"
    }
}

/// The element type a tensor has in a file. Every type is converted to Float32 when read.
public enum StoredDType: String, CaseIterable, Codable, Sendable {
    case float64, float32, float16, bfloat16
    case int64, int32, int16, int8, uint64, uint32, uint16, uint8, bool
    /// 8-bit floats: listed by `inspect`, not converted.
    case float8e4m3, float8e5m2

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float64, .int64, .uint64: return 8
        case .float32, .int32, .uint32: return 4
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .int8, .uint8, .bool, .float8e4m3, .float8e5m2: return 1
        }
    }

    /// The safetensors spelling (`F32`, `BF16`, ...).
    public var safetensorsName: String {
        switch self {
        case .float64: return "F64"
        case .float32: return "F32"
        case .float16: return "F16"
        case .bfloat16: return "BF16"
        case .int64: return "I64"
        case .int32: return "I32"
        case .int16: return "I16"
        case .int8: return "I8"
        case .uint64: return "U64"
        case .uint32: return "U32"
        case .uint16: return "U16"
        case .uint8: return "U8"
        case .bool: return "BOOL"
        case .float8e4m3: return "F8_E4M3"
        case .float8e5m2: return "F8_E5M2"
        }
    }

    /// The type for a safetensors dtype string, or nil when it is not one.
    public init?(safetensorsName: String) {
        guard let t = StoredDType.allCases.first(where: { $0.safetensorsName == safetensorsName }) else {
            return nil
        }
        self = t
    }

    /// Whether values of this type can be converted to Float32 on read.
    public var isConvertible: Bool { self != .float8e4m3 && self != .float8e5m2 }
}

/// The element types Sightline writes weights in. Tensors are Float32 in memory; float16 and bfloat16
/// round to nearest-even when written and widen exactly when read.
public enum WeightDType: String, CaseIterable, Codable, Sendable {
    case float32, float16, bfloat16

    /// The stored type.
    public var stored: StoredDType {
        switch self {
        case .float32: return .float32
        case .float16: return .float16
        case .bfloat16: return .bfloat16
        }
    }
}

/// Name, shape and stored type of one tensor in a file.
public struct TensorInfo: Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var shape: [Int]
    public var dtype: StoredDType

    public init(name: String, shape: [Int], dtype: StoredDType) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
    }

    /// Number of elements (product of the shape).
    public var elementCount: Int { shape.reduce(1, *) }

    public var description: String {
        "\(name) [" + shape.map(String.init).joined(separator: ", ") + "] \(dtype.rawValue)"
    }
}

/// A file (or set of files) holding named tensors: a safetensors file, a sharded safetensors
/// directory, a Sightline HDF5 weights file, a PyTorch state dict.
///
/// Opening one reads only its directory (names, shapes, types); tensors are read one at a time.
public protocol TensorSource: AnyObject {
    /// Path of the file or directory, used in errors.
    var path: String { get }
    /// Every tensor, in file order.
    var tensorInfos: [TensorInfo] { get }
    /// File-level metadata as strings (safetensors `__metadata__`, HDF5 root attributes).
    var metadata: [String: String] { get }
    /// The tensor `name`, converted to Float32.
    /// - Throws: `TensorFileError` naming the file and the tensor.
    func readTensor(_ name: String) throws -> Tensor
}

extension TensorSource {
    /// Names of every tensor, in file order.
    public var tensorNames: [String] { tensorInfos.map(\.name) }

    /// The entry for `name`, or nil.
    public func info(named name: String) -> TensorInfo? { tensorInfos.first { $0.name == name } }

    /// Total number of elements over every tensor.
    public var parameterCount: Int { tensorInfos.reduce(0) { $0 + $1.elementCount } }

    /// Every tensor, in file order, converted to Float32.
    public func readAll() throws -> NamedTensors {
        var out = NamedTensors()
        for info in tensorInfos { out[info.name] = try readTensor(info.name) }
        return out
    }
}

/// Tensors keyed by name, in insertion order: a state dict.
///
/// ```swift
/// var w: NamedTensors = ["fc.weight": .zeros([4, 3]), "fc.bias": .zeros([4])]
/// w["fc.scale"] = Tensor(1)
/// w.names   // ["fc.weight", "fc.bias", "fc.scale"]
/// ```
public struct NamedTensors: Sequence, ExpressibleByDictionaryLiteral {
    /// Names in insertion order.
    public private(set) var names: [String] = []
    private var values: [String: Tensor] = [:]

    public init() {}

    /// Tensors from (name, tensor) pairs; a repeated name keeps its first position and last value.
    public init<S: Sequence>(_ pairs: S) where S.Element == (String, Tensor) {
        for (n, t) in pairs { self[n] = t }
    }

    public init(dictionaryLiteral elements: (String, Tensor)...) {
        self.init(elements)
    }

    /// The tensor `name`; setting a new name appends it, setting nil removes it.
    public subscript(name: String) -> Tensor? {
        get { values[name] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: name) == nil { names.append(name) }
            } else if values.removeValue(forKey: name) != nil {
                names.removeAll { $0 == name }
            }
        }
    }

    /// Number of tensors.
    public var count: Int { names.count }
    public var isEmpty: Bool { names.isEmpty }

    /// Total number of elements.
    public var parameterCount: Int { values.values.reduce(0) { $0 + $1.count } }

    public func makeIterator() -> AnyIterator<(name: String, tensor: Tensor)> {
        var i = 0
        return AnyIterator {
            guard i < names.count else { return nil }
            defer { i += 1 }
            return (names[i], values[names[i]]!)
        }
    }
}

/// Product of `shape` with overflow and sign checks, or nil when it overflows or a size is negative.
@_spi(FileSupport) public func checkedElementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (m, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = m
    }
    return n
}

/// `[2, 3]`.
@_spi(FileSupport) public func fmtShape(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
