import Foundation
import Tensor

// Reads the reference fixtures written by scripts/make_fixtures.py (Tests/Fixtures/<group>/<name>.json).
// The directory is found from this file's own path, so tests work from any working directory.

/// This file's path at compile time: Tests/TestSupport/Fixtures.swift.
private let loaderPath: String = #filePath

/// The fixtures directory for `group` (default `tensor`): Tests/Fixtures/<group>.
public func fixtureDirectory(_ group: String = "tensor") -> URL {
    URL(fileURLWithPath: loaderPath)
        .deletingLastPathComponent()  // TestSupport
        .deletingLastPathComponent()  // Tests
        .appendingPathComponent("Fixtures")
        .appendingPathComponent(group)
}

/// A problem reading a fixture: missing file, missing key, or a value of the wrong kind.
public struct FixtureError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "fixture: \(message)" }
}

/// A JSON value from a fixture's `params`.
public indirect enum FixtureValue: Decodable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([FixtureValue])
    case object([String: FixtureValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([FixtureValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: FixtureValue].self))
        }
    }

    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .object(let o):
            return "{" + o.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
                + "}"
        }
    }

    /// The value as a Double (ints convert), or nil.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// The value as an Int (integral doubles convert), or nil.
    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d): return d.rounded() == d ? Int(d) : nil
        default: return nil
        }
    }
}

private struct RawArray<Element: Decodable>: Decodable {
    var shape: [Int]
    var data: [Element]
}

private struct RawFixture: Decodable {
    var name: String
    var op: String
    var params: [String: FixtureValue]
    var ints: [String: RawArray<Int>]
    var tensors: [String: RawArray<Double>]
    var notes: [String: [String: Double]]?
}

/// One fixture case: an op's parameters, integer arrays, and tensors (inputs, outputs, `r`, and
/// gradients `grad_<input>` of `sum(out * r)`).
public struct Fixture {
    /// File name without `.json`.
    public var name: String
    /// The PyTorch op the case exercises.
    public var op: String
    /// The op's parameters as written by the script.
    public var params: [String: FixtureValue]
    /// Float tensors by name.
    public var tensors: [String: Tensor]
    /// Integer arrays by name (targets, masks, lengths).
    public var ints: [String: IndexTensor]
    /// How far PyTorch's own float32 result is from the float64 reference, per output tensor.
    public var torchFloat32Error: [String: Double]

    /// The tensor `key`.
    /// - Throws: `FixtureError` when absent.
    public func tensor(_ key: String) throws -> Tensor {
        guard let t = tensors[key] else {
            throw FixtureError("\(name) has no tensor \"\(key)\" (has \(tensors.keys.sorted()))")
        }
        return t
    }

    /// The integer array `key`.
    public func indexTensor(_ key: String) throws -> IndexTensor {
        guard let t = ints[key] else {
            throw FixtureError("\(name) has no integer array \"\(key)\" (has \(ints.keys.sorted()))")
        }
        return t
    }

    /// The parameter `key`.
    public func param(_ key: String) throws -> FixtureValue {
        guard let v = params[key] else {
            throw FixtureError("\(name) has no parameter \"\(key)\" (has \(params.keys.sorted()))")
        }
        return v
    }

    /// Whether parameter `key` is absent or null.
    public func isNull(_ key: String) -> Bool {
        if case .null = params[key] ?? .null { return true }
        return false
    }

    public func int(_ key: String) throws -> Int {
        let v = try param(key)
        guard let i = v.intValue else { throw FixtureError("\(name).\(key) = \(v) is not an integer") }
        return i
    }

    public func double(_ key: String) throws -> Double {
        let v = try param(key)
        guard let d = v.doubleValue else { throw FixtureError("\(name).\(key) = \(v) is not a number") }
        return d
    }

    /// A Double parameter that may be null.
    public func optionalDouble(_ key: String) throws -> Double? {
        isNull(key) ? nil : try double(key)
    }

    public func bool(_ key: String) throws -> Bool {
        let v = try param(key)
        guard case .bool(let b) = v else { throw FixtureError("\(name).\(key) = \(v) is not a bool") }
        return b
    }

    public func string(_ key: String) throws -> String {
        let v = try param(key)
        guard case .string(let s) = v else { throw FixtureError("\(name).\(key) = \(v) is not a string") }
        return s
    }

    public func intArray(_ key: String) throws -> [Int] {
        let v = try param(key)
        guard case .array(let a) = v else { throw FixtureError("\(name).\(key) = \(v) is not an array") }
        return try a.map { e in
            guard let i = e.intValue else { throw FixtureError("\(name).\(key) = \(v) holds a non-integer") }
            return i
        }
    }

    public func doubleArray(_ key: String) throws -> [Double] {
        let v = try param(key)
        guard case .array(let a) = v else { throw FixtureError("\(name).\(key) = \(v) is not an array") }
        return try a.map { e in
            guard let d = e.doubleValue else {
                throw FixtureError("\(name).\(key) = \(v) holds a non-number")
            }
            return d
        }
    }

    /// A two-element integer parameter (stride, padding, ...) as a pair.
    public func intPair(_ key: String) throws -> (Int, Int) {
        let a = try intArray(key)
        guard a.count == 2 else { throw FixtureError("\(name).\(key) = \(a) is not a pair") }
        return (a[0], a[1])
    }

    /// A two-element integer parameter that may be null.
    public func optionalIntPair(_ key: String) throws -> (Int, Int)? {
        isNull(key) ? nil : try intPair(key)
    }

    /// A two-element number parameter that may be null.
    public func optionalDoublePair(_ key: String) throws -> (Double, Double)? {
        if isNull(key) { return nil }
        let a = try doubleArray(key)
        guard a.count == 2 else { throw FixtureError("\(name).\(key) = \(a) is not a pair") }
        return (a[0], a[1])
    }
}

/// Reads the fixture case `name` (a file `<name>.json` in the `group` directory).
/// - Throws: `FixtureError` when the file is missing or malformed.
public func loadFixtureCase(_ name: String, group: String = "tensor") throws -> Fixture {
    let url = fixtureDirectory(group).appendingPathComponent(name + ".json")
    let data: Data
    do {
        data = try Data(contentsOf: url)
    } catch {
        throw FixtureError("cannot read \(url.path): \(error)")
    }
    let raw: RawFixture
    do {
        raw = try JSONDecoder().decode(RawFixture.self, from: data)
    } catch {
        throw FixtureError("cannot decode \(url.path): \(error)")
    }
    var tensors: [String: Tensor] = [:]
    for (k, v) in raw.tensors {
        tensors[k] = try Tensor(shape: v.shape, scalars: v.data.map { Float($0) })
    }
    var ints: [String: IndexTensor] = [:]
    for (k, v) in raw.ints {
        ints[k] = try IndexTensor(shape: v.shape, values: v.data)
    }
    return Fixture(
        name: raw.name, op: raw.op, params: raw.params, tensors: tensors, ints: ints,
        torchFloat32Error: raw.notes?["torch_float32_rel_err"] ?? [:])
}

/// The tensors of fixture case `name` (inputs, outputs, `r`, gradients), keyed by name.
public func loadFixture(_ name: String) throws -> [String: Tensor] {
    try loadFixtureCase(name).tensors
}

/// Names (without `.json`) of the fixture cases in `group` that start with `prefix`, sorted.
public func fixtureNames(prefix: String, group: String = "tensor") throws -> [String] {
    let files = try FileManager.default.contentsOfDirectory(atPath: fixtureDirectory(group).path)
    return files.filter { $0.hasSuffix(".json") && $0.hasPrefix(prefix) }
        .map { String($0.dropLast(5)) }
        .sorted()
}
