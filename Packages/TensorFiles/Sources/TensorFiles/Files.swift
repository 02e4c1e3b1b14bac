#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A read-only memory mapping of a whole file, unmapped when released.
public final class MappedFile: @unchecked Sendable {
    /// The path it was opened from.
    public let path: String
    /// The file's bytes (empty for an empty file).
    public let bytes: UnsafeRawBufferPointer

    /// Maps `path` read-only.
    /// - Throws: `TensorFileError` when the file cannot be opened, is not a regular file, or cannot be mapped.
    public init(path: String) throws {
        self.path = path
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else { throw TensorFileError(file: path, "cannot open: \(errnoText())") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw TensorFileError(file: path, "cannot stat: \(errnoText())") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw TensorFileError(file: path, "not a regular file (\(fileTypeName(st.st_mode)))")
        }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw TensorFileError(file: path, "cannot map \(size) bytes: \(errnoText())")
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// Durable file operations: data reaches the disk (fsync) before a rename makes it visible, so a
/// reader finds either the old file or the complete new one, after a crash too.
public enum DurableFile {
    /// A fresh hidden temporary name next to `path` (same directory, so that rename is atomic).
    public static func temporaryPath(for path: String) -> String {
        let (dir, name) = split(path)
        let tag = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        return (dir.isEmpty ? "" : dir + "/") + ".\(name).tmp-\(getpid())-\(tag)"
    }

    /// Flushes the file at `path` to disk.
    public static func fsync(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw TensorFileError(file: path, "cannot open to sync: \(errnoText())") }
        defer { close(fd) }
        guard syncFD(fd) == 0 else { throw TensorFileError(file: path, "fsync failed: \(errnoText())") }
    }

    /// Flushes the directory holding `path` (so that a rename in it is durable).
    public static func fsyncDirectory(containing path: String) throws {
        let dir = split(path).dir
        try fsync(path: dir.isEmpty ? "." : dir)
    }

    /// Renames `from` to `to` atomically (replacing `to`), then syncs the directory.
    public static func rename(_ from: String, to: String) throws {
        #if canImport(Glibc)
            let rc = Glibc.rename(from, to)
        #else
            let rc = Darwin.rename(from, to)
        #endif
        guard rc == 0 else { throw TensorFileError(file: to, "cannot rename \(from) to it: \(errnoText())") }
        try fsyncDirectory(containing: to)
    }

    /// Writes a file through `body` (which receives a temporary path to create), then syncs it and
    /// renames it to `path`. On any error the temporary file is removed and `path` is untouched.
    /// Temporary files in the same directory left by processes that no longer run (killed mid-write)
    /// are removed first.
    public static func write(to path: String, _ body: (String) throws -> Void) throws {
        removeStaleTemporaries(inDirectoryOf: path)
        let tmp = temporaryPath(for: path)
        do {
            try body(tmp)
            try fsync(path: tmp)
            try rename(tmp, to: path)
        } catch {
            unlink(tmp)
            throw error
        }
    }

    /// Writes `bytes` (a `[UInt8]`, a Foundation `Data`, any byte collection) to `path`, atomically
    /// and durably: a temporary file next to `path` is written, synced and renamed over it, so a
    /// reader sees the old file or the whole new one; nothing is created outside the directory of
    /// `path`. The one atomic write of every package (rather than Foundation's `.atomic` /
    /// `atomically: true`), so every file is synced and every failure names it. The directory of
    /// `path` must exist.
    /// - Throws: `TensorFileError` naming `path` (a missing or unwritable directory, a full disk, a
    ///   directory at `path`); `path` is then untouched and no temporary file remains.
    public static func write<Bytes: Collection>(_ bytes: Bytes, to path: String) throws where Bytes.Element == UInt8 {
        try write(to: path) { tmp in
            let w = try FileWriter(creating: tmp, reportAs: path)
            let written: Void? = try bytes.withContiguousStorageIfAvailable { try w.write(UnsafeRawBufferPointer($0)) }
            if written == nil { try Array(bytes).withUnsafeBytes { try w.write($0) } }
            try w.close()
        }
    }

    /// Writes `text` UTF-8 encoded to `path`, atomically and durably (see `write(_:to:)` for bytes).
    /// - Throws: `TensorFileError` naming `path`.
    public static func write(_ text: String, to path: String) throws {
        try write(Array(text.utf8), to: path)
    }

    /// Appends `bytes` to `path` (created when missing) and syncs it: for logs such as a metrics
    /// JSONL file, where rewriting the whole file per record would be quadratic. Every write, the
    /// fsync and the close are checked; on any failure (a full disk, say) the file is cut back to its
    /// previous length, so it never ends in a partial record, and the error names the file.
    public static func append(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK, 0o644)
        guard fd >= 0 else { throw TensorFileError(file: path, "cannot open to append: \(errnoText())") }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            _ = closeFD(fd)
            throw TensorFileError(file: path, "not a regular file")
        }
        let previous = st.st_size
        var failure: String?
        var done = 0
        bytes.withUnsafeBytes { b in
            while done < b.count {
                let n = Glibc_write(fd, b.baseAddress! + done, b.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    failure = "write failed: \(errnoText())"
                    return
                }
                done += n
            }
        }
        if failure == nil && syncFD(fd) != 0 { failure = "fsync failed: \(errnoText())" }
        if let failure {
            _ = ftruncate(fd, previous)
            _ = closeFD(fd)
            throw TensorFileError(file: path, failure + "; the file is kept at its previous \(previous) bytes")
        }
        guard closeFD(fd) == 0 else { throw TensorFileError(file: path, "close failed: \(errnoText())") }
    }

    /// Removes the temporary files (`.<name>.tmp-<pid>-<tag>`) in the directory of `path` whose
    /// writing process no longer runs: what a killed save or convert leaves behind.
    /// - Returns: the names removed.
    @discardableResult
    public static func removeStaleTemporaries(inDirectoryOf path: String) -> [String] {
        let dir = split(path).dir
        return removeStaleTemporaries(inDirectory: dir.isEmpty ? "." : dir)
    }

    /// Removes the stale temporary files of `directory` (see `removeStaleTemporaries(inDirectoryOf:)`).
    @discardableResult
    public static func removeStaleTemporaries(inDirectory directory: String) -> [String] {
        guard let d = opendir(directory) else { return [] }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            names.append(name)
        }
        closedir(d)
        var removed: [String] = []
        for name in names where name.hasPrefix(".") {
            let parts = name.split(separator: "-", omittingEmptySubsequences: false)
            // .<name>.tmp-<pid>-<tag>: the part before the pid ends in ".tmp".
            guard parts.count >= 3, parts[parts.count - 3].hasSuffix(".tmp") else { continue }
            let rest = parts[parts.count - 2] + "-"
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0 else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                if unlink(directory + "/" + name) == 0 { removed.append(name) }
            }
        }
        return removed
    }

    /// Splits a path into its directory ("" for none) and last component.
    static func split(_ path: String) -> (dir: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }
}

/// Sequential writes to a new file; the descriptor is closed when released.
package final class FileWriter {
    private var fd: Int32
    /// Path named in errors.
    let reportPath: String

    /// Creates (or truncates) `path`; errors name `reportAs` (the final path of an atomic write).
    package init(creating path: String, reportAs: String? = nil) throws {
        reportPath = reportAs ?? path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            let reason = errnoText()
            if let reportAs, reportAs != path {
                throw TensorFileError(file: reportAs, "cannot write it (creating the temporary file \(path)): \(reason)")
            }
            throw TensorFileError(file: path, "cannot create: \(reason)")
        }
    }

    /// Appends `bytes`.
    package func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc_write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw TensorFileError(file: reportPath, "write failed: \(errnoText())") }
            done += n
        }
    }

    /// Closes the file, reporting a failed close (which can carry a deferred write error).
    package func close() throws {
        guard fd >= 0 else { return }
        let rc = closeFD(fd)
        fd = -1
        guard rc == 0 else { throw TensorFileError(file: reportPath, "close failed: \(errnoText())") }
    }

    deinit { if fd >= 0 { _ = closeFD(fd) } }
}

@inline(__always)
private func closeFD(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
        return Glibc.close(fd)
    #else
        return Darwin.close(fd)
    #endif
}

@inline(__always)
private func syncFD(_ fd: Int32) -> Int32 {
    #if canImport(Darwin)
        return fcntl(fd, F_FULLFSYNC) == 0 ? 0 : Darwin.fsync(fd)
    #else
        return Glibc.fsync(fd)
    #endif
}

@inline(__always)
private func Glibc_write(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
        return Glibc.write(fd, p, n)
    #else
        return Darwin.write(fd, p, n)
    #endif
}

/// Whether `path` names a directory.
@_spi(FileSupport) public func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}

/// What kind of file a `st_mode` describes, for messages.
@_spi(FileSupport) public func fileTypeName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFREG: return "regular file"
    case S_IFDIR: return "a directory"
    case S_IFIFO: return "a FIFO"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFSOCK: return "a socket"
    default: return "an unknown file type"
    }
}

/// Throws unless `path` is a regular file (following symbolic links); never opens it, so a FIFO
/// cannot block the caller.
/// - Throws: `TensorFileError` naming the file: missing, or a FIFO, device, socket or directory.
@_spi(FileSupport) public func requireRegularFile(_ path: String) throws {
    var st = stat()
    guard stat(path, &st) == 0 else {
        throw TensorFileError(file: path, errno == ENOENT ? "no such file" : "cannot stat: \(errnoText())")
    }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        throw TensorFileError(file: path, "not a regular file (\(fileTypeName(st.st_mode)))")
    }
}

/// Whether anything exists at `path`.
@_spi(FileSupport) public func fileExists(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0
}

/// The current `errno` as text.
@_spi(FileSupport) public func errnoText() -> String { String(cString: strerror(errno)) }
