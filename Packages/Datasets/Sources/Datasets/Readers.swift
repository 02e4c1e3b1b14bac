import Foundation

/// Reads a file line by line from any byte offset, in blocks (no whole-file load).
final class LineReader {
    let handle: FileHandle
    var buffer = Data()
    var bufferStart: UInt64 = 0
    var eof = false
    let blockSize = 1 << 16

    init(url: URL, offset: UInt64) throws {
        handle = try FileHandle(forReadingFrom: url)
        try handle.seek(toOffset: offset)
        bufferStart = offset
    }
    deinit { try? handle.close() }

    /// The next line (without its newline) and the offset of its first byte; nil at the end.
    func next() throws -> (line: Data, offset: UInt64)? {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = buffer[buffer.startIndex..<nl]
                let off = bufferStart
                bufferStart += UInt64(nl - buffer.startIndex + 1)
                buffer = Data(buffer[(nl + 1)...])
                return (Data(line), off)
            }
            if eof {
                guard !buffer.isEmpty else { return nil }
                let line = buffer
                let off = bufferStart
                bufferStart += UInt64(line.count)
                buffer = Data()
                return (line, off)
            }
            let chunk = try handle.read(upToCount: blockSize) ?? Data()
            if chunk.isEmpty { eof = true } else { buffer.append(chunk) }
        }
    }

    /// Offset of the next unread byte.
    var offset: UInt64 { bufferStart }
}

/// One member of a tar archive (ustar or old-style headers; regular files only).
struct TarMember {
    var name: String
    var data: Data
    /// Offset of the member's header.
    var offset: UInt64
}

/// A minimal streaming tar reader: 512-byte headers, octal sizes, ustar name prefixes; directories,
/// links and pax/GNU extension headers are skipped.
final class TarReader {
    let handle: FileHandle
    let fileName: String
    private(set) var offset: UInt64

    init(url: URL, offset: UInt64) throws {
        handle = try FileHandle(forReadingFrom: url)
        try handle.seek(toOffset: offset)
        self.offset = offset
        fileName = url.lastPathComponent
    }
    deinit { try? handle.close() }

    /// The next regular member; nil at the end of the archive.
    /// - Throws: `DatasetError` naming the archive and offset for a corrupt header or a truncated member.
    func next() throws -> TarMember? {
        while true {
            let start = offset
            guard let header = try handle.read(upToCount: 512), header.count == 512 else { return nil }
            offset += 512
            let h = [UInt8](header)
            if h.allSatisfy({ $0 == 0 }) { return nil }
            func field(_ a: Int, _ n: Int) -> String {
                let bytes = h[a..<(a + n)].prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            let stored = Int(field(148, 8).trimmingCharacters(in: .whitespaces), radix: 8)
            var sum = 0
            for (i, b) in h.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            guard let s = stored, s == sum else {
                throw DatasetError("tar", "\(fileName)@\(start): bad header checksum")
            }
            guard let size = Int(field(124, 12).trimmingCharacters(in: .whitespaces), radix: 8), size >= 0
            else {
                throw DatasetError("tar", "\(fileName)@\(start): bad size field")
            }
            let type = h[156]
            let prefix = field(345, 155)
            let base = field(0, 100)
            let name = prefix.isEmpty || field(257, 5) != "ustar" ? base : prefix + "/" + base
            let padded = UInt64((size + 511) / 512 * 512)
            if type == 0 || type == UInt8(ascii: "0") || type == UInt8(ascii: "7") {
                let data = try handle.read(upToCount: size) ?? Data()
                guard data.count == size else {
                    throw DatasetError(
                        "tar", "\(fileName):\(name): member truncated (\(data.count) of \(size) bytes)")
                }
                offset += padded
                try handle.seek(toOffset: offset)
                return TarMember(name: name, data: data, offset: start)
            }
            offset += padded
            try handle.seek(toOffset: offset)
        }
    }

    /// Moves to a member header offset.
    func seek(_ to: UInt64) throws {
        try handle.seek(toOffset: to)
        offset = to
    }
}

/// Writes a minimal ustar archive (used by the synthetic-world writer and the tests).
public struct TarWriter {
    public private(set) var data = Data()
    public init() {}

    public mutating func add(_ name: String, _ contents: Data) {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ at: Int, _ n: Int) {
            for (i, b) in s.utf8.prefix(n).enumerated() { h[at + i] = b }
        }
        put(name, 0, 100)
        put("0000644", 100, 8)
        put("0000000", 108, 8)
        put("0000000", 116, 8)
        put(String(format: "%011o", contents.count), 124, 12)
        put("00000000000", 136, 12)
        h[156] = UInt8(ascii: "0")
        put("ustar", 257, 6)
        put("00", 263, 2)
        for i in 148..<156 { h[i] = 32 }
        let sum = h.reduce(0) { $0 + Int($1) }
        put(String(format: "%06o", sum), 148, 6)
        h[154] = 0
        h[155] = 32
        data.append(contentsOf: h)
        data.append(contents)
        data.append(Data(count: (512 - contents.count % 512) % 512))
    }

    /// The archive with its two zero end blocks.
    public var archive: Data { data + Data(count: 1024) }
}
