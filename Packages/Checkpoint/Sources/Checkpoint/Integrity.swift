import Foundation
@_spi(FileSupport) import TensorFiles

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The checksum every HDF5 file Sightline writes carries in its first 512 bytes, an HDF5 *user
/// block* that libhdf5 and h5py skip, so the file stays plain HDF5:
///
/// ```
/// SIGHTLINE-CHECKSUM 1\n
/// sha256 <64 hex digits of bytes 512..<end>\n
/// bytes <end - 512>\n
/// (zero padding to 512 bytes)
/// ```
///
/// It is written after libhdf5 has closed the file and checked before libhdf5 opens one, so a
/// damaged checkpoint is refused with a message naming it and never parsed (libhdf5 can crash on
/// some damaged files). In Python:
/// ```python
/// b = open(path, "rb").read(); assert hashlib.sha256(b[512:]).hexdigest() == b[:512].split()[3].decode()
/// weights = {k: v[()] for k, v in h5py.File(path, "r").items()}
/// ```
public enum FileChecksum {
    /// Size of the user block holding the checksum.
    public static let blockSize = 512
    /// First line of the block.
    static let magic = "SIGHTLINE-CHECKSUM 1\n"
    static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// What `verify` found.
    public enum Status: Equatable, Sendable {
        /// The recorded checksum matches the contents.
        case verified(sha256: String)
        /// The file has no checksum block (a file written elsewhere, or by an older Sightline).
        case absent
    }

    /// Hashes bytes `blockSize..<end` of the closed HDF5 file `path` and writes the checksum block
    /// into its first `blockSize` bytes (which libhdf5 left empty as the user block). Checks every
    /// write, the fsync and the close. Errors name `reportAs`.
    static func seal(_ path: String, reportAs: String) throws {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { throw TensorFileError(file: reportAs, "cannot reopen to record its checksum: \(errnoText())") }
        var closed = false
        defer { if !closed { close(fd) } }
        let (digest, length) = try hash(fd: fd, from: blockSize, path: reportAs)
        var block = Array((magic + "sha256 \(digest.hex)\nbytes \(length)\n").utf8)
        block += [UInt8](repeating: 0, count: blockSize - block.count)
        let n = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, blockSize, 0) }
        guard n == blockSize else {
            throw TensorFileError(file: reportAs, "cannot write the checksum block: \(n < 0 ? errnoText() : "short write")")
        }
        guard fsync(fd) == 0 else { throw TensorFileError(file: reportAs, "fsync failed: \(errnoText())") }
        closed = true
        guard close(fd) == 0 else { throw TensorFileError(file: reportAs, "close failed: \(errnoText())") }
    }

    /// Checks the checksum block of `path` against its contents, without parsing it as HDF5.
    /// - Parameter required: refuse a file without a checksum block (training checkpoints).
    /// - Returns: `.verified` or, when not `required`, `.absent` for a file without a block.
    /// - Throws: `TensorFileError` naming the file for a mismatch (the file is damaged), a damaged
    ///   block, a missing block when `required`, or a file that is not a regular file.
    @discardableResult
    public static func verify(_ path: String, required: Bool = false) throws -> Status {
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else {
            throw TensorFileError(file: path, errno == ENOENT ? "no such file" : "cannot open: \(errnoText())")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TensorFileError(file: path, "cannot stat: \(errnoText())") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw TensorFileError(file: path, "not a regular file")
        }
        var head = [UInt8](repeating: 0, count: blockSize + 8)
        let got = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard got >= 0 else { throw TensorFileError(file: path, "cannot read: \(errnoText())") }
        head = Array(head.prefix(got))
        let signatureAfterBlock = head.count >= blockSize + 8 && Array(head[blockSize...]) == hdf5Signature
        guard head.starts(with: Array(magic.utf8)) else {
            if signatureAfterBlock {
                throw TensorFileError(
                    file: path,
                    "its 512-byte user block is not a valid Sightline checksum block: the file is damaged; it was not opened"
                )
            }
            if required {
                throw TensorFileError(file: path, "has no Sightline checksum (required for training checkpoints)")
            }
            return .absent
        }
        let text = String(decoding: head.prefix(blockSize).prefix { $0 != 0 }, as: UTF8.self)
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard words.count == 6, words[2] == "sha256", words[3].count == 64, words[4] == "bytes",
            let recordedLength = Int(words[5])
        else {
            throw TensorFileError(file: path, "its checksum block is damaged; the file was not opened")
        }
        let recorded = String(words[3])
        let actualLength = Int(st.st_size) - blockSize
        guard recordedLength == actualLength else {
            throw TensorFileError(
                file: path,
                "checksum mismatch: it was written with \(recordedLength) bytes after the checksum block and has \(actualLength) (truncated or damaged); it was not opened"
            )
        }
        let (digest, _) = try hash(fd: fd, from: blockSize, path: path)
        guard digest.hex == recorded else {
            throw TensorFileError(
                file: path,
                "checksum mismatch: recorded sha256 \(recorded), contents hash to \(digest.hex) (the file is damaged); it was not opened"
            )
        }
        return .verified(sha256: recorded)
    }

    /// SHA-256 of the bytes of `fd` from `offset` to the end, and their count.
    private static func hash(fd: Int32, from offset: Int, path: String) throws -> (SHA256.Digest, Int) {
        var h = SHA256()
        let chunk = 1 << 22
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var at = offset
        while true {
            let n = pread(fd, buffer.baseAddress, chunk, off_t(at))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw TensorFileError(file: path, "cannot read to checksum: \(errnoText())") }
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            at += n
        }
        return (h.finalize(), at - offset)
    }
}
