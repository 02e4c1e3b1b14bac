import Foundation
import TensorFiles

#if canImport(Glibc)
    import Glibc
#endif

/// Opening tensor files from elsewhere without trusting libhdf5 with the calling process.
///
/// libhdf5 1.10 can crash on a damaged file. Files Sightline writes carry a checksum verified before
/// libhdf5 sees them; an HDF5 file without one (written elsewhere) is first read fully in a child
/// process (`readFully`, run by the tool's hidden `_probe --path FILE` command), so that a crash there
/// becomes an error naming the file instead of ending the caller.
public enum TensorFileProbe {
    /// Opens `path` and reads every tensor (and, for a training checkpoint, its trainer state).
    /// - Throws: the reader's error naming the file.
    public static func readFully(_ path: String) throws {
        let source = try openTensorFile(path)
        for info in source.tensorInfos { _ = try source.readTensor(info.name) }
        if let h5 = source as? HDF5WeightsFile, h5.group == "model" {
            _ = try TrainingCheckpoint.read(from: path)
        }
    }

    /// Opens `path`; an HDF5 file without a Sightline checksum is first read by `executable arguments
    /// path` in a child process, which must print `OK 0` or `ERR 0 <message>`.
    /// - Throws: `TensorFileError` naming the file when the child crashed or reported an error.
    public static func open(_ path: String, probe executable: String, arguments: [String] = ["_probe", "--path"])
        throws -> TensorSource
    {
        if try tensorFileKind(path) == .hdf5, try FileChecksum.verify(path) == .absent {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments + [path]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            if p.terminationReason == .uncaughtSignal {
                throw TensorFileError(
                    file: path,
                    "libhdf5 crashed reading this file (signal \(p.terminationStatus)); it is damaged or not supported")
            }
            if text.hasPrefix("ERR 0 ") {
                throw TensorFileError(
                    file: path, String(text.dropFirst(6)).trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        return try openTensorFile(path)
    }

    /// The running executable's path (for re-running it as the probe).
    public static var currentExecutable: String {
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        if FileManager.default.isExecutableFile(atPath: argv0), argv0.contains("/") { return argv0 }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
    }

    /// Whether `a` and `b` name the same existing file (same device and inode, so links count).
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }
}
