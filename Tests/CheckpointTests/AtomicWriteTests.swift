import Foundation
import SightlineTestSupport
import TensorFiles
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `DurableFile.write`, the one atomic file write every package uses (configs, reports, plots, images):
/// a temporary file next to the target, synced and renamed over it; nothing left anywhere else.
@Suite struct AtomicWriteTests {
    /// Names in `path` (hidden ones included), sorted.
    func names(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    /// Text, `Data`, `[UInt8]`, an empty file and a byte collection without contiguous storage: each
    /// lands whole, and the directory then holds exactly the targets (no temporary file left).
    @Test func writesLeaveOnlyTheTargets() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        try DurableFile.write("loss: 1.5\n", to: dir.file("a.yaml"))
        try DurableFile.write(Data([1, 2, 3, 255]), to: dir.file("b.bin"))
        try DurableFile.write([UInt8](repeating: 9, count: 70_000), to: dir.file("c.bin"))
        try DurableFile.write([UInt8](), to: dir.file("d.bin"))
        try DurableFile.write(repeatElement(UInt8(7), count: 5), to: dir.file("e.bin"))
        #expect(names(dir.path) == ["a.yaml", "b.bin", "c.bin", "d.bin", "e.bin"])
        #expect(fileBytes(dir.file("a.yaml")) == Array("loss: 1.5\n".utf8))
        #expect(fileBytes(dir.file("b.bin")) == [1, 2, 3, 255])
        #expect(fileBytes(dir.file("c.bin")) == [UInt8](repeating: 9, count: 70_000))
        #expect(fileBytes(dir.file("d.bin")).isEmpty && FileManager.default.fileExists(atPath: dir.file("d.bin")))
        #expect(fileBytes(dir.file("e.bin")) == [7, 7, 7, 7, 7])
    }

    /// Overwriting replaces the file by a rename, never in place: a reader that opened the old file
    /// keeps reading the old contents whole, a new reader sees only the new contents.
    @Test func overwriteReplacesTheFileAtomically() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.file("config.yaml")
        let old = [UInt8](repeating: 0x61, count: 10_000)
        try DurableFile.write(old, to: path)
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        var before = stat(), after = stat()
        try #require(fstat(fd, &before) == 0)
        try DurableFile.write("new\n", to: path)
        try #require(stat(path, &after) == 0)
        #expect(before.st_ino != after.st_ino, "the file was rewritten in place, not replaced")
        var held = [UInt8](repeating: 0, count: old.count + 1)
        let n = held.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        #expect(n == old.count && Array(held.prefix(max(n, 0))) == old)
        #expect(fileBytes(path) == Array("new\n".utf8))
        #expect(names(dir.path) == ["config.yaml"])
    }

    /// A path that cannot be written (its directory is missing, or a directory sits there): one error
    /// naming the path and the reason; nothing is created and an existing directory is untouched.
    @Test func unwritablePathThrowsAnErrorNamingIt() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let missing = dir.file("no-such-dir/plot.svg")
        let text = try #require(errorText { try DurableFile.write("<svg/>", to: missing) })
        #expect(text.contains(missing) && text.contains("No such file or directory"), "\(text)")
        #expect(names(dir.path).isEmpty)

        let folder = dir.file("report.json")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        let text2 = try #require(errorText { try DurableFile.write(Data("{}".utf8), to: folder) })
        #expect(text2.contains(folder) && text2.contains("cannot rename"), "\(text2)")
        #expect(names(dir.path) == ["report.json"] && names(folder).isEmpty, "\(names(dir.path))")
    }

    /// In a child process whose temporary directory (`TMPDIR`, which the child reports back, so the
    /// check looks where a leak would land) is a fresh folder, five atomic writes leave that folder
    /// empty and the target's directory holding only the target. Foundation's `atomically: true` is
    /// measured the same way (it leaves nothing in `TMPDIR` with this toolchain either; the
    /// `TemporaryDirectory.*` folders that pile up in /tmp come from SwiftPM and the compiler driver).
    @Test func aChildProcessLeavesNothingInItsTemporaryDirectory() throws {
        guard let exe = testHelperExecutable() else {
            Issue.record(
                "the CheckpointTestHelper executable is not next to the test bundle; build everything (swift build) first")
            return
        }
        let dir = TempDir()
        defer { dir.cleanup() }
        for folder in ["tmp", "tmp-foundation", "out", "out-foundation"] {
            try FileManager.default.createDirectory(atPath: dir.file(folder), withIntermediateDirectories: false)
        }
        for (tmp, out, flags) in [("tmp", "out", [String]()), ("tmp-foundation", "out-foundation", ["--foundation"])] {
            let target = dir.file(out + "/metrics.svg")
            let r = try runProcess(
                exe, ["_atomic-write", "--path", target, "--text", "<svg/>", "--times", "5"] + flags,
                environment: ["TMPDIR": dir.file(tmp)])
            #expect(r.status == 0, "\(flags): \(r.stderr)")
            let seen = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(seen.hasPrefix(dir.file(tmp)), "the child's temporary directory is \(seen)")
            #expect(names(dir.file(tmp)).isEmpty, "\(flags) left in TMPDIR: \(names(dir.file(tmp)))")
            #expect(names(dir.file(out)) == ["metrics.svg"], "\(flags): \(names(dir.file(out)))")
            #expect(fileBytes(target) == Array("<svg/>".utf8))
        }
    }
}
