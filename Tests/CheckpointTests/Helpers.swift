import Checkpoint
import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh temporary directory, removed by `cleanup()`.
struct TempDir {
    let path: String

    init(_ tag: String = #function) {
        let safe = tag.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "sightline-ckpt-\(safe)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// Random values including the awkward ones: signed zeros, infinities, subnormals, values that
/// overflow float16, values that tie when rounded to 16 bits.
func awkwardValues(_ n: Int, seed: UInt64) -> [Float] {
    var g = SplitMix(seed)
    let specials: [Float] = [
        0, -0.0, 1, -1, .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNormalMagnitude, 65504, 70000,
        1 + 0x1p-8, 1 + 0x1p-11, 3.0e-8, .greatestFiniteMagnitude,
    ]
    return (0..<n).map { i in
        if i < specials.count { return specials[i] }
        let scale = Float(sign: .plus, exponent: Int.random(in: -20...12, using: &g), significand: 1)
        return Float.random(in: -1...1, using: &g) * scale
    }
}

/// Named tensors of assorted shapes (scalar, empty, 1-D to 4-D) with awkward values.
func sampleTensors(seed: UInt64 = 1) throws -> NamedTensors {
    let shapes: [(String, [Int])] = [
        ("vision_model.embeddings.patch_embedding.weight", [4, 3, 2, 2]),
        ("vision_model.encoder.layers.0.self_attn.q_proj.weight", [8, 8]),
        ("vision_model.encoder.layers.0.self_attn.q_proj.bias", [8]),
        ("logit_scale", []),
        ("empty", [0, 3]),
        ("z.last", [3, 1, 2]),
    ]
    var out = NamedTensors()
    for (k, (name, shape)) in shapes.enumerated() {
        let n = shape.reduce(1, *)
        out[name] = try Tensor(shape: shape, scalars: awkwardValues(n, seed: seed &+ UInt64(k)))
    }
    return out
}

/// `value` rounded through `dtype` as the writer does (independent formulas for the 16-bit types).
func roundTripped(_ value: Float, _ dtype: WeightDType) -> Float {
    switch dtype {
    case .float32: return value
    case .float16: return Float(Float16(value))
    case .bfloat16:
        if value.isNaN { return value }
        // Round to nearest even on the upper 16 bits.
        let b = value.bitPattern
        let lower = b & 0xFFFF
        var upper = b >> 16
        if lower > 0x8000 || (lower == 0x8000 && upper & 1 == 1) { upper += 1 }
        return Float(bitPattern: upper << 16)
    }
}

/// Bit patterns, so that -0 and NaN compare exactly.
func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

/// Expects `a` and `b` to hold the same names (in order), shapes and bit-identical values.
func expectIdentical(
    _ a: NamedTensors, _ b: NamedTensors, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(a.names == b.names, comment, sourceLocation: sourceLocation)
    for name in a.names {
        guard let x = a[name], let y = b[name] else { continue }
        #expect(x.shape == y.shape, "\(name)", sourceLocation: sourceLocation)
        #expect(bits(x) == bits(y), "\(name) differs", sourceLocation: sourceLocation)
    }
}

/// The error's text, whatever its type.
func errorText(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return "\(error)"
    }
}

// MARK: - Child processes

// `ProcessResult` and `runProcess` come from SightlineTestSupport.

/// Runs `executable`, killing it when it prints nothing for `stall` seconds (a hang) or runs past
/// `timeout`. Returns what it printed up to then.
func runWatched(_ executable: String, _ arguments: [String], stall: Double, timeout: Double = 300) throws
    -> ProcessResult
{
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    final class State: @unchecked Sendable {
        let lock = NSLock()
        var out = Data(), err = Data()
        var lastProgress = Date()
    }
    let state = State()
    let group = DispatchGroup()
    for isOut in [true, false] {
        group.enter()
        let handle = (isOut ? out : err).fileHandleForReading
        DispatchQueue.global().async {
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                state.lock.lock()
                if isOut {
                    state.out.append(chunk)
                    state.lastProgress = Date()
                } else {
                    state.err.append(chunk)
                }
                state.lock.unlock()
            }
            group.leave()
        }
    }
    try p.run()
    let started = Date()
    var timedOut = false
    while p.isRunning {
        state.lock.lock()
        let quiet = Date().timeIntervalSince(state.lastProgress)
        state.lock.unlock()
        if quiet > stall || Date().timeIntervalSince(started) > timeout {
            kill(p.processIdentifier, SIGKILL)
            timedOut = true
            break
        }
        usleep(5000)
    }
    p.waitUntilExit()
    group.wait()
    return ProcessResult(
        status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal, timedOut: timedOut,
        stdout: String(decoding: state.out, as: UTF8.self), stderr: String(decoding: state.err, as: UTF8.self)
    )
}

/// The `weights` executable built next to this test bundle (or `SIGHTLINE_WEIGHTS_BIN`).
func weightsExecutable() -> String? { builtExecutable("weights", override: "SIGHTLINE_WEIGHTS_BIN") }

/// The test-only `CheckpointTestHelper` executable (`_crash-helper`, `_probe`) built next to this test
/// bundle (or `SIGHTLINE_TEST_HELPER_BIN`).
func testHelperExecutable() -> String? {
    builtExecutable("CheckpointTestHelper", override: "SIGHTLINE_TEST_HELPER_BIN")
}

/// Runs a Python script with arguments through the tests' one interpreter rule (`Python`); fails the
/// test (rather than skipping) when it fails, since scripts/setup.sh installs what it imports.
func runPython(_ script: String, _ arguments: [String], in dir: TempDir) throws -> String {
    let file = dir.file("script-\(UUID().uuidString.prefix(6)).py")
    try script.write(toFile: file, atomically: false, encoding: .utf8)
    let r = try Python.run([file] + arguments, timeout: 120)
    guard r.status == 0 else {
        throw TestFailure(
            "\(Python.interpreter) failed (status \(r.status)); scripts/setup.sh installs h5py, numpy and safetensors:\n\(r.stderr)"
        )
    }
    return r.stdout
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

// MARK: - Building PyTorch files by hand

/// Emits pickle protocol 2 opcodes the way Python's pickler does for a torch state dict.
struct PickleWriter {
    var bytes: [UInt8] = [0x80, 0x02]

    mutating func op(_ b: UInt8) { bytes.append(b) }
    mutating func global(_ module: String, _ name: String) {
        op(0x63)
        bytes += Array(module.utf8) + [0x0A] + Array(name.utf8) + [0x0A]
    }
    mutating func string(_ s: String) {
        let u = Array(s.utf8)
        op(0x58)
        bytes += withUnsafeBytes(of: UInt32(u.count).littleEndian, Array.init) + u
    }
    mutating func int(_ v: Int) {
        if (0..<256).contains(v) {
            bytes += [0x4B, UInt8(v)]
        } else if (0..<65536).contains(v) {
            bytes += [0x4D] + withUnsafeBytes(of: UInt16(v).littleEndian, Array.init)
        } else if let i = Int32(exactly: v) {
            bytes += [0x4A] + withUnsafeBytes(of: i.littleEndian, Array.init)
        } else {
            bytes += [0x8A, 8] + withUnsafeBytes(of: Int64(v).littleEndian, Array.init)
        }
    }
    mutating func mark() { op(0x28) }
    mutating func tuple() { op(0x74) }
    mutating func intTuple(_ v: [Int]) {
        mark()
        v.forEach { int($0) }
        tuple()
    }
    mutating func emptyTuple() { op(0x29) }
    mutating func reduce() { op(0x52) }
    mutating func stop() { op(0x2E) }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    mutating func tensor(
        storage key: String, type: String = "FloatStorage", numel: Int, offset: Int = 0, shape: [Int],
        stride: [Int]? = nil
    ) {
        var st = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in Swift.stride(from: shape.count - 1, through: 0, by: -1) {
            st[i] = s
            s *= shape[i]
        }
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        mark()
        string("storage")
        global("torch", type)
        string(key)
        string("cpu")
        int(numel)
        tuple()
        op(0x51)  // BINPERSID
        int(offset)
        intTuple(shape)
        intTuple(stride ?? st)
        op(0x89)  // False
        global("collections", "OrderedDict")
        emptyTuple()
        reduce()
        tuple()
        reduce()
    }
}

/// A zip archive with stored (uncompressed) entries, written the way torch.save lays them out
/// (data aligned to 64 bytes with padding in the extra field).
func zipArchive(_ entries: [(String, [UInt8])], deflatedNames: Set<String> = []) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt16(v).littleEndian, Array.init) }
    func le32(_ v: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian, Array.init)
    }
    var out: [UInt8] = []
    var central: [UInt8] = []
    for (name, data) in entries {
        let crc = Int(crc32Reference(data))
        let n = Array(name.utf8)
        let method = deflatedNames.contains(name) ? 8 : 0
        let offset = out.count
        let pad = (64 - (offset + 30 + n.count + 4) % 64) % 64
        let extra: [UInt8] = [0x46, 0x42] + le16(pad) + [UInt8](repeating: 0x5A, count: pad)
        out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(method) + le16(0) + le16(0x21)
        out +=
            le32(crc) + le32(data.count) + le32(data.count) + le16(n.count) + le16(extra.count) + n + extra
            + data
        central += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(method) + le16(0) + le16(0x21)
        central +=
            le32(crc) + le32(data.count) + le32(data.count) + le16(n.count) + le16(0) + le16(0) + le16(0)
            + le16(0)
        central += le32(0) + le32(offset) + n
    }
    let cdOffset = out.count
    out += central
    out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(entries.count) + le16(entries.count)
    out += le32(central.count) + le32(cdOffset) + le16(0)
    return out
}

/// Bitwise CRC-32 (a second, independent implementation to check the reader's table-driven one).
func crc32Reference(_ data: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in data {
        c ^= UInt32(b)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
    }
    return ~c
}

/// Little-endian bytes of float32 values.
func float32Bytes(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes(Array.init) }
