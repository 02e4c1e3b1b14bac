import Foundation
import TensorFiles

/// Writes TensorBoard event files: TFRecord framing (length, masked CRC32C of the length, payload,
/// masked CRC32C of the payload) around hand-encoded `tensorflow.Event` protobuf messages carrying
/// scalar `Summary` values. The first record is the `brain.Event:2` version event TensorBoard expects.
///
/// File name: `events.out.tfevents.<seconds>.<host>` in `directory`.
public final class TensorBoardWriter {
    /// The event file.
    public let path: String
    private let handle: FileHandle

    /// Creates `directory` and a new event file in it.
    /// - Throws: when the directory or the file cannot be created.
    public init(directory: String, wallTime: Double = Date().timeIntervalSince1970) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName.isEmpty ? "localhost" : ProcessInfo.processInfo.hostName
        var name = "events.out.tfevents.\(Int(wallTime)).\(host)"
        var k = 1
        while FileManager.default.fileExists(atPath: directory + "/" + name) {
            name = "events.out.tfevents.\(Int(wallTime)).\(host).\(k)"
            k += 1
        }
        path = directory + "/" + name
        try DurableFile.write([UInt8](), to: path)
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw ConfigError(keyPath: "", source: path, "cannot open the event file")
        }
        handle = h
        var version = Protobuf()
        version.double(1, wallTime)
        version.string(3, "brain.Event:2")
        try write(record: version.bytes)
    }

    deinit { try? handle.close() }

    /// Appends one event with `scalars` (tag -> value) at `step`.
    public func add(scalars: [(tag: String, value: Double)], step: Int, wallTime: Double = Date().timeIntervalSince1970)
        throws
    {
        var summary = Protobuf()
        for (tag, value) in scalars {
            var v = Protobuf()
            v.string(1, tag)
            v.float(2, Float(value))
            summary.message(1, v)
        }
        var event = Protobuf()
        event.double(1, wallTime)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(5, summary)
        try write(record: event.bytes)
    }

    /// Flushes the file to disk.
    public func flush() throws { try handle.synchronize() }

    /// One TFRecord: `uint64 length`, `uint32 masked_crc32c(length)`, data, `uint32 masked_crc32c(data)`,
    /// little-endian.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        out += length
        out += withUnsafeBytes(of: CRC32C.masked(length).littleEndian, Array.init)
        out += data
        out += withUnsafeBytes(of: CRC32C.masked(data).littleEndian, Array.init)
        return out
    }

    private func write(record: [UInt8]) throws {
        try handle.write(contentsOf: Data(Self.frame(record)))
    }
}

/// A minimal protobuf encoder: the wire types an `Event` needs (varint, 64-bit, length-delimited, 32-bit).
struct Protobuf {
    var bytes: [UInt8] = []

    mutating func tag(_ field: Int, _ wire: UInt8) { rawVarint(UInt64(field) << 3 | UInt64(wire)) }

    mutating func rawVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ v: UInt64) {
        tag(field, 0)
        rawVarint(v)
    }

    mutating func double(_ field: Int, _ v: Double) {
        tag(field, 1)
        bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
    }

    mutating func float(_ field: Int, _ v: Float) {
        tag(field, 5)
        bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
    }

    mutating func data(_ field: Int, _ d: [UInt8]) {
        tag(field, 2)
        rawVarint(UInt64(d.count))
        bytes += d
    }

    mutating func string(_ field: Int, _ s: String) { data(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ m: Protobuf) { data(field, m.bytes) }
}
