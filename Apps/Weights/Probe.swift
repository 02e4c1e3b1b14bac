import ArgumentParser
import Checkpoint
import Foundation
import TensorFiles

#if canImport(Glibc)
    import Glibc
#endif

/// Test helper (hidden): opens each file and reads every tensor, printing one line per file:
/// `OK <index>` or `ERR <index> <message>`. The corruption test runs HDF5 files through it in a child
/// process, so that a crash inside libhdf5 is counted instead of ending the test run.
struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_probe", abstract: "Read files fully, one result line each (tests).",
        shouldDisplay: false)

    @Option(help: "A file listing the paths to read, one per line.") var list: String?
    @Option(help: "One path to read (instead of --list).") var path: String?
    @Option(help: "Index of the first path to read.") var start = 0

    func run() throws {
        let paths =
            try list.map { try String(contentsOfFile: $0, encoding: .utf8).split(separator: "\n").map(String.init) }
            ?? (path.map { [$0] } ?? [])
        for i in start..<paths.count {
            do {
                let source = try openTensorFile(paths[i])
                for info in source.tensorInfos { _ = try source.readTensor(info.name) }
                if let h5 = source as? HDF5WeightsFile, h5.group == "model" {
                    _ = try TrainingCheckpoint.read(from: paths[i])
                }
                print("OK \(i)")
            } catch {
                print("ERR \(i) " + "\(error)".replacingOccurrences(of: "\n", with: " "))
            }
            fflush(stdout)
        }
    }
}

/// Whether `a` and `b` name the same existing file (same device and inode, so links count).
func sameFile(_ a: String, _ b: String) -> Bool {
    var sa = stat(), sb = stat()
    guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
}

/// Whether `path` is a directory.
func isDirectoryPath(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}

/// Opens a tensor file for the tool. An HDF5 file without a Sightline checksum (written elsewhere, so
/// never verified) is first read fully by `weights _probe` in a child process: libhdf5 can crash on
/// damaged files, and a crash there becomes an error naming the file instead of ending this process.
func openTensorFileGuarded(_ path: String) throws -> TensorSource {
    if try tensorFileKind(path) == .hdf5, try FileChecksum.verify(path) == .absent {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        if !FileManager.default.isExecutableFile(atPath: p.executableURL!.path) {
            p.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        }
        p.arguments = ["_probe", "--path", path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        if p.terminationReason == .uncaughtSignal {
            throw TensorFileError(
                file: path, "libhdf5 crashed reading this file (signal \(p.terminationStatus)); it is damaged or not supported")
        }
        if text.hasPrefix("ERR 0 ") {
            throw ValidationError(String(text.dropFirst(6)).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
    return try openTensorFile(path)
}
