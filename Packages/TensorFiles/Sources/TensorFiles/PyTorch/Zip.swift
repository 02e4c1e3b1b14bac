import Foundation

/// A zip archive read through its central directory, for PyTorch's `torch.save` files (which store
/// their entries uncompressed). Zip64 records are understood; compressed and encrypted entries are
/// refused. Every offset and size is checked against the file before use.
final class ZipArchive {
    struct Entry {
        var name: String
        var method: UInt16
        var flags: UInt16
        var crc: UInt32
        var compressedSize: Int
        var size: Int
        var localHeaderOffset: Int
    }

    let path: String
    let file: MappedFile
    /// Entries in central-directory order.
    private(set) var entries: [Entry] = []
    private var byName: [String: Int] = [:]
    private var verified = Set<String>()
    private let lock = NSLock()

    init(path: String, file: MappedFile) throws {
        self.path = path
        self.file = file
        let b = file.bytes
        func fail(_ m: String) -> TensorFileError { TensorFileError(file: path, "zip: \(m)") }
        func u16(_ o: Int) -> Int {
            Int(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
        }
        func u32(_ o: Int) -> Int {
            Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
        }
        func u64(_ o: Int) throws -> Int {
            let v = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self))
            guard v <= UInt64(Int.max / 2) else { throw fail("64-bit field \(v) is out of range") }
            return Int(v)
        }

        // End of central directory: 22 bytes plus a comment of at most 65535 bytes, at the end.
        guard b.count >= 22 else { throw fail("file is \(b.count) bytes, too short for a zip archive") }
        var eocd = -1
        var i = b.count - 22
        while i >= max(0, b.count - 22 - 65535) {
            if u32(i) == 0x0605_4B50 && i + 22 + u16(i + 20) <= b.count {
                eocd = i
                break
            }
            i -= 1
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record") }
        var count = u16(eocd + 10)
        var cdSize = u32(eocd + 12)
        var cdOffset = u32(eocd + 16)
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            let loc = eocd - 20
            guard loc >= 0, u32(loc) == 0x0706_4B50 else {
                throw fail("zip64 fields without a zip64 locator")
            }
            let rec = try u64(loc + 8)
            guard rec + 56 <= eocd, u32(rec) == 0x0606_4B50 else {
                throw fail("zip64 end record at \(rec) is invalid")
            }
            count = try u64(rec + 32)
            cdSize = try u64(rec + 40)
            cdOffset = try u64(rec + 48)
        }
        guard cdOffset + cdSize <= eocd else {
            throw fail(
                "central directory [\(cdOffset), \(cdOffset + cdSize)) runs past its end record at \(eocd)")
        }
        guard count <= cdSize / 46 else {
            throw fail("\(count) entries cannot fit in a \(cdSize)-byte central directory")
        }

        var p = cdOffset
        let end = cdOffset + cdSize
        for n in 0..<count {
            guard p + 46 <= end, u32(p) == 0x0201_4B50 else {
                throw fail("central directory entry \(n) is damaged")
            }
            let flags = UInt16(u16(p + 8))
            let method = UInt16(u16(p + 10))
            let crc = UInt32(u32(p + 16))
            var csize = u32(p + 20)
            var usize = u32(p + 24)
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32)
            var local = u32(p + 42)
            let next = p + 46 + nameLen + extraLen + commentLen
            guard next <= end else { throw fail("central directory entry \(n) runs past the directory") }
            let name = String(
                decoding: UnsafeRawBufferPointer(rebasing: b[(p + 46)..<(p + 46 + nameLen)]), as: UTF8.self)
            // Zip64 extra field: the 64-bit values of the fields that are 0xFFFFFFFF, in order.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = u16(e), len = u16(e + 2)
                guard e + 4 + len <= extraEnd else {
                    throw fail("entry '\(name)': extra field runs past its entry")
                }
                if id == 0x0001 {
                    var q = e + 4
                    for field in [0, 1, 2] {
                        let needed =
                            field == 0
                            ? usize == 0xFFFF_FFFF : field == 1 ? csize == 0xFFFF_FFFF : local == 0xFFFF_FFFF
                        guard needed else { continue }
                        guard q + 8 <= e + 4 + len else {
                            throw fail("entry '\(name)': zip64 field is truncated")
                        }
                        let v = try u64(q)
                        if field == 0 { usize = v } else if field == 1 { csize = v } else { local = v }
                        q += 8
                    }
                }
                e += 4 + len
            }
            guard byName[name] == nil else { throw fail("entry '\(name)' appears twice") }
            // Member names are paths inside the archive: none may be absolute or climb out of it.
            guard !name.hasPrefix("/"), !name.hasPrefix("\\"),
                !name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).contains("..")
            else { throw fail("entry '\(name)' is absolute or contains '..'; refused") }
            byName[name] = entries.count
            entries.append(
                Entry(
                    name: name, method: method, flags: flags, crc: crc, compressedSize: csize, size: usize,
                    localHeaderOffset: local))
            p = next
        }
    }

    /// Names of every entry.
    var names: [String] { entries.map(\.name) }

    func contains(_ name: String) -> Bool { byName[name] != nil }

    /// The directory entry `name`, or nil.
    func entry(_ name: String) -> Entry? { byName[name].map { entries[$0] } }

    /// The stored bytes of entry `name`, checked against its CRC-32 the first time.
    func data(_ name: String, tensor: String? = nil) throws -> UnsafeRawBufferPointer {
        guard let idx = byName[name] else {
            throw TensorFileError(file: path, tensor: tensor, "zip: no entry '\(name)'")
        }
        let e = entries[idx]
        let b = file.bytes
        func fail(_ m: String) -> TensorFileError {
            TensorFileError(file: path, tensor: tensor, "zip entry '\(name)': \(m)")
        }
        guard e.flags & 1 == 0 else { throw fail("is encrypted") }
        guard e.method == 0 else {
            throw fail(
                "is compressed (method \(e.method)); only stored entries are read (torch.save writes them stored)"
            )
        }
        guard e.compressedSize == e.size else {
            throw fail("stored entry sizes differ (\(e.compressedSize) vs \(e.size))")
        }
        let h = e.localHeaderOffset
        guard h >= 0, h <= b.count - 30,
            UInt32(littleEndian: b.loadUnaligned(fromByteOffset: h, as: UInt32.self)) == 0x0403_4B50
        else { throw fail("local header at \(h) is missing") }
        let nameLen = Int(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: h + 26, as: UInt16.self)))
        let extraLen = Int(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: h + 28, as: UInt16.self)))
        let start = h + 30 + nameLen + extraLen
        guard start <= b.count, e.size <= b.count - start else {
            throw fail("data [\(start), \(start + e.size)) runs past the end of the file (\(b.count) bytes)")
        }
        let data = UnsafeRawBufferPointer(rebasing: b[start..<(start + e.size)])
        lock.lock()
        let done = verified.contains(name)
        lock.unlock()
        if !done {
            let crc = CRC32.checksum(data)
            guard crc == e.crc else {
                throw fail(
                    "CRC-32 is \(String(crc, radix: 16)), the directory says \(String(e.crc, radix: 16)): the data is damaged"
                )
            }
            lock.lock()
            verified.insert(name)
            lock.unlock()
        }
        return data
    }
}

/// CRC-32 (IEEE 802.3, as zip uses), slicing-by-8.
enum CRC32 {
    /// Eight 256-entry tables, flattened: table k at [k * 256].
    static let table: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)]
            }
        }
        return t
    }()

    static func checksum(_ data: UnsafeRawBufferPointer) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        let n = data.count
        var i = 0
        table.withUnsafeBufferPointer { t in
            @inline(__always) func at(_ k: Int, _ x: UInt32) -> UInt32 { t[k &* 256 &+ Int(x & 0xFF)] }
            while i + 8 <= n {
                let lo = UInt32(littleEndian: data.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ c
                let hi = UInt32(littleEndian: data.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                c =
                    at(7, lo) ^ at(6, lo >> 8) ^ at(5, lo >> 16) ^ at(4, lo >> 24)
                    ^ at(3, hi) ^ at(2, hi >> 8) ^ at(1, hi >> 16) ^ at(0, hi >> 24)
                i += 8
            }
            while i < n {
                c = at(0, c ^ UInt32(data[i])) ^ (c >> 8)
                i += 1
            }
        }
        return c ^ 0xFFFF_FFFF
    }
}
