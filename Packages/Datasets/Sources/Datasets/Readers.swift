import Foundation

/// Throws unless `url` is a regular file, without opening it (opening a FIFO would block).
/// - Throws: `DatasetError` naming the file: missing, or a FIFO, device, socket or directory.
func requireRegularFile(_ url: URL, step: String) throws {
    var st = stat()
    guard stat(url.path, &st) == 0 else {
        throw DatasetError(step, "\(url.path): cannot open (\(String(cString: strerror(errno))))")
    }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        throw DatasetError(step, "\(url.path): not a regular file (a FIFO, device, socket or directory)")
    }
}

/// Reads a file line by line from any byte offset, in blocks (no whole-file load). Time is linear in
/// the bytes read, however long a line is: each byte is scanned for a newline once. A line longer than
/// `maxRecordBytes` is skipped (read through to its newline without being kept) and reported through
/// `lastLineLength`.
final class LineReader {
    let handle: FileHandle
    private var buffer: [UInt8] = []
    /// First unread byte of `buffer`.
    private var start = 0
    /// Bytes after `start` already known to hold no newline.
    private var scanned = 0
    private var bufferStart: UInt64 = 0
    private var eof = false
    let blockSize = 1 << 16
    /// Longest line kept, in bytes.
    let maxRecordBytes: Int
    /// Length of the line `next()` last returned when it was over `maxRecordBytes` (its bytes are
    /// then not returned), else nil.
    private(set) var lastLineTooLong: Int?

    init(url: URL, offset: UInt64, maxRecordBytes: Int = DataSource.defaultMaxRecordBytes) throws {
        try requireRegularFile(url, step: "source")
        handle = try FileHandle(forReadingFrom: url)
        try handle.seek(toOffset: offset)
        bufferStart = offset
        self.maxRecordBytes = maxRecordBytes
    }
    deinit { try? handle.close() }

    /// The next line (without its newline) and the offset of its first byte; nil at the end. A line
    /// over `maxRecordBytes` comes back empty with `lastLineTooLong` set to its length.
    func next() throws -> (line: Data, offset: UInt64)? {
        lastLineTooLong = nil
        var skipped = 0
        while true {
            let from = start + scanned
            let nl: Int? = buffer.withUnsafeBufferPointer { b in
                guard from < b.count, let base = b.baseAddress,
                    let hit = memchr(base + from, 0x0A, b.count - from)
                else { return nil }
                return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            }
            if let nl {
                let off = bufferStart
                let line = skipped > 0 ? Data() : Data(buffer[start..<nl])
                if skipped > 0 { lastLineTooLong = skipped + (nl - start) }
                bufferStart += UInt64(nl - start + 1)
                start = nl + 1
                scanned = 0
                return (line, off - UInt64(skipped))
            }
            scanned = buffer.count - start
            if scanned > maxRecordBytes {
                // Too long to keep: drop what is buffered and read on to the newline.
                skipped += scanned
                bufferStart += UInt64(scanned)
                buffer.removeAll(keepingCapacity: true)
                start = 0
                scanned = 0
            }
            if eof {
                guard start < buffer.count || skipped > 0 else { return nil }
                let off = bufferStart
                let line = skipped > 0 ? Data() : Data(buffer[start...])
                if skipped > 0 { lastLineTooLong = skipped + (buffer.count - start) }
                bufferStart += UInt64(buffer.count - start)
                buffer.removeAll()
                start = 0
                scanned = 0
                return (line, off - UInt64(skipped))
            }
            // Drop consumed bytes before growing (only what is left of one line is moved).
            if start > 0 {
                buffer.removeSubrange(0..<start)
                start = 0
            }
            let chunk = try handle.read(upToCount: blockSize) ?? Data()
            if chunk.isEmpty { eof = true } else { buffer.append(contentsOf: chunk) }
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
    /// Size of the archive file: no member may claim more.
    let fileSize: UInt64

    init(url: URL, offset: UInt64) throws {
        try requireRegularFile(url, step: "tar")
        handle = try FileHandle(forReadingFrom: url)
        fileSize = try handle.seekToEnd()
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
            let header = try handle.read(upToCount: 512) ?? Data()
            guard header.count == 512 else {
                // A tar archive ends with zero blocks; without them it was cut short.
                throw DatasetError(
                    "tar",
                    header.isEmpty
                        ? "\(fileName)@\(start): the archive ends without its end-of-archive blocks (truncated at a member boundary)"
                        : "\(fileName)@\(start): truncated header (\(header.count) of 512 bytes)")
            }
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
            guard UInt64(size) <= fileSize &- min(offset, fileSize) else {
                throw DatasetError(
                    "tar",
                    "\(fileName)@\(start): member of \(size) bytes runs past the end of the \(fileSize)-byte archive")
            }
            guard !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
                throw DatasetError(
                    "tar", "\(fileName)@\(start): member name '\(name)' is absolute or contains '..'; refused")
            }
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
