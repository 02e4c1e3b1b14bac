import Checkpoint
import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A small tmpfs mounted on a fresh directory (root only): a full disk on demand.
struct SmallDisk {
    let dir: TempDir

    init?(kilobytes: Int, _ tag: String = #function) {
        guard geteuid() == 0 else { return nil }
        dir = TempDir(tag)
        guard
            let r = try? runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", dir.path]),
            r.status == 0
        else {
            dir.cleanup()
            return nil
        }
    }

    func file(_ name: String) -> String { dir.file(name) }
    func cleanup() {
        _ = try? runProcess("/bin/umount", [dir.path])
        dir.cleanup()
    }

    /// Names in the directory (hidden temporaries included).
    func names() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted() }
}

/// Whether tmpfs can be mounted here (root in a container that allows it).
let canMountTmpfs: Bool = {
    guard let d = SmallDisk(kilobytes: 64, "probe") else { return false }
    d.cleanup()
    return true
}()

/// Tensors of `floats` float32 values in total, determined by `seed`.
func bulkTensors(floats: Int, seed: UInt64) throws -> NamedTensors {
    var out = NamedTensors()
    let per = floats / 4
    for k in 0..<4 {
        var g = SplitMix(seed &+ UInt64(k))
        out["layers.\(k).weight"] = try Tensor(
            shape: [per / 16, 16], scalars: (0..<per).map { _ in Float(g.next() % 10_000) / 100 })
    }
    return out
}

func fileBytes(_ path: String) -> [UInt8] { [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()) }

@Suite(.serialized, .enabled(if: canMountTmpfs, "needs root to mount a small tmpfs"))
struct DiskFullTests {
    /// A weights file that does not fit fails with an error naming it, leaves no temporary file, and
    /// the previous file stays byte for byte.
    @Test func weightsFileOnAFullDiskFailsAndKeepsThePreviousFile() throws {
        let disk = try #require(SmallDisk(kilobytes: 256))
        defer { disk.cleanup() }
        let path = disk.file("model.h5")
        let small = try bulkTensors(floats: 4096, seed: 1)
        try WeightsFile.write(small, to: path)
        let before = fileBytes(path)
        let text = errorText { try WeightsFile.write(try bulkTensors(floats: 200_000, seed: 2), to: path) }
        #expect(text?.contains(path) == true, "\(text ?? "no error")")
        #expect(fileBytes(path) == before)
        #expect(disk.names() == ["model.h5"])
        let back = try WeightsFile.open(path)
        for (name, t) in small { #expect(try back.readTensor(name).scalars == t.scalars) }
    }

    /// The same for safetensors.
    @Test func safetensorsOnAFullDiskFailsAndKeepsThePreviousFile() throws {
        let disk = try #require(SmallDisk(kilobytes: 256))
        defer { disk.cleanup() }
        let path = disk.file("model.safetensors")
        try SafetensorsFile.write(try bulkTensors(floats: 4096, seed: 1), to: path)
        let before = fileBytes(path)
        let text = errorText { try SafetensorsFile.write(try bulkTensors(floats: 200_000, seed: 2), to: path) }
        #expect(text?.contains(path) == true, "\(text ?? "no error")")
        #expect(fileBytes(path) == before)
        #expect(disk.names() == ["model.safetensors"])
    }

    /// A checkpoint save that runs out of space throws; `latest` and the previous checkpoint are
    /// untouched and load; no temporary file is left.
    @Test func checkpointSaveOnAFullDiskKeepsLatest() throws {
        let disk = try #require(SmallDisk(kilobytes: 320))
        defer { disk.cleanup() }
        let dir = try CheckpointDirectory(disk.dir.path, keep: 3)
        let first = TrainingCheckpoint(model: try bulkTensors(floats: 4096, seed: 1))
        try dir.save(first, step: 1)
        let pointer = fileBytes(disk.file("latest"))
        let text = errorText {
            try dir.save(TrainingCheckpoint(model: try bulkTensors(floats: 200_000, seed: 2)), step: 2)
        }
        #expect(text != nil)
        #expect(text?.contains("checkpoint-000000002.h5") == true, "\(text ?? "")")
        #expect(fileBytes(disk.file("latest")) == pointer)
        #expect(disk.names() == ["checkpoint-000000001.h5", "latest"])
        let back = try #require(try dir.loadLatest())
        #expect(back.model["layers.0.weight"]?.scalars == first.model["layers.0.weight"]?.scalars)
    }

    /// The `latest` pointer itself on a full disk: the write fails and the old pointer stays.
    @Test func pointerWriteOnAFullDiskKeepsTheOldPointer() throws {
        let disk = try #require(SmallDisk(kilobytes: 64))
        defer { disk.cleanup() }
        let path = disk.file("latest")
        try DurableFile.write(Array("checkpoint-000000001.h5\n".utf8), to: path)
        // Fill the disk, then try to replace the pointer.
        let filler = disk.file("filler")
        _ = errorText { try DurableFile.write([UInt8](repeating: 7, count: 200_000), to: filler) }
        let fd = open(filler, O_WRONLY | O_CREAT, 0o644)
        var block = [UInt8](repeating: 1, count: 4096)
        while block.withUnsafeMutableBytes({ write(fd, $0.baseAddress, 4096) }) > 0 {}
        close(fd)
        let text = errorText { try DurableFile.write(Array("checkpoint-000000002.h5\n".utf8), to: path) }
        #expect(text?.contains(path) == true, "\(text ?? "no error")")
        #expect(String(decoding: fileBytes(path), as: UTF8.self) == "checkpoint-000000001.h5\n")
        #expect(disk.names() == ["filler", "latest"])
    }
}

@Suite struct ChecksumTests {
    /// Every HDF5 file written carries a checksum block that verifies; one changed byte anywhere after
    /// it is refused before libhdf5 parses the file, with a message naming the file.
    @Test func aFlippedByteIsRefusedBeforeParsing() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.file("weights.h5")
        try WeightsFile.write(try sampleTensors(seed: 5), to: path)
        guard case .verified = try FileChecksum.verify(path, required: true) else {
            Issue.record("no checksum recorded")
            return
        }
        var bytes = fileBytes(path)
        var g = SplitMix(77)
        for _ in 0..<20 {
            let i = Int.random(in: FileChecksum.blockSize..<bytes.count, using: &g)
            let saved = bytes[i]
            bytes[i] ^= 0x10
            let bad = dir.file("flipped.h5")
            try Data(bytes).write(to: URL(fileURLWithPath: bad))
            let text = errorText { _ = try WeightsFile.open(bad) }
            #expect(text?.hasPrefix(bad) == true && text?.contains("checksum mismatch") == true, "\(text ?? "opened")")
            bytes[i] = saved
        }
        // A damaged checksum block itself is refused too (the file is never handed to libhdf5).
        bytes[3] ^= 0x01
        let bad = dir.file("block.h5")
        try Data(bytes).write(to: URL(fileURLWithPath: bad))
        let text = errorText { _ = try WeightsFile.open(bad) }
        #expect(text?.contains("not a valid Sightline checksum block") == true, "\(text ?? "opened")")
        // A truncated file.
        try Data(fileBytes(path).dropLast(100)).write(to: URL(fileURLWithPath: bad))
        #expect(errorText { _ = try WeightsFile.open(bad) }?.contains("checksum mismatch") == true)
    }

    /// Checkpoints must carry a checksum: a checkpoint file without one is refused by default.
    @Test func checkpointsWithoutAChecksumAreRefused() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.file("c.h5")
        try TrainingCheckpoint(model: try sampleTensors(seed: 3)).write(to: path)
        _ = try TrainingCheckpoint.read(from: path)
        // Strip the block: HDF5 still opens the file (a 512-byte user block of zeros), Sightline
        // refuses it as unverifiable.
        var bytes = fileBytes(path)
        for i in 0..<FileChecksum.blockSize { bytes[i] = 0 }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let text = errorText { _ = try TrainingCheckpoint.read(from: path) }
        #expect(text?.hasPrefix(path) == true, "\(text ?? "read")")
    }

    /// `latestVerified()` skips a damaged newest checkpoint, says so, and returns the newest one that
    /// verifies; with every checkpoint damaged it throws naming the directory.
    @Test func latestVerifiedFallsBackToTheNewestGoodCheckpoint() throws {
        let tmp = TempDir()
        defer { tmp.cleanup() }
        let dir = try CheckpointDirectory(tmp.path, keep: 5)
        for step in 1...3 {
            try dir.save(TrainingCheckpoint(model: try bulkTensors(floats: 256, seed: UInt64(step))), step: step)
        }
        #expect(try dir.latestVerified()?.step == 3)
        func damage(_ step: Int) throws {
            let p = tmp.file(CheckpointDirectory.fileName(step: step))
            var b = fileBytes(p)
            b[b.count - 40] ^= 0xFF
            try Data(b).write(to: URL(fileURLWithPath: p))
        }
        try damage(3)
        let found = try #require(try dir.latestVerified())
        #expect(found.step == 2)
        #expect(found.refused.count == 1 && found.refused[0].path.hasSuffix("checkpoint-000000003.h5"))
        #expect(found.summary.contains("checksum mismatch") && found.summary.contains("checkpoint-000000002.h5"))
        #expect(found.checkpoint.model["layers.0.weight"]?.scalars
            == (try bulkTensors(floats: 256, seed: 2))["layers.0.weight"]?.scalars)
        try damage(2)
        try damage(1)
        let text = errorText { _ = try dir.latestVerified() }
        #expect(text?.contains("no checkpoint verifies") == true && text?.hasPrefix(tmp.path) == true)
        // An empty directory has nothing to resume.
        let empty = TempDir()
        defer { empty.cleanup() }
        #expect(try CheckpointDirectory(empty.path).latestVerified() == nil)
    }

    /// The digest matches the FIPS 180-4 test vectors (as Python's hashlib gives them).
    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hash([]).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hash(long).hex == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Fed in uneven pieces, the same digest.
        var h = SHA256()
        let million = [UInt8](repeating: 0x61, count: 1_000_000)
        var i = 0
        var g = SplitMix(9)
        while i < million.count {
            let n = min(Int.random(in: 1...200, using: &g), million.count - i)
            h.update(Array(million[i..<(i + n)]))
            i += n
        }
        #expect(h.finalize().hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

@Suite struct HostileInputTests {
    /// Opening a FIFO under any tensor-file name returns an error at once instead of blocking.
    @Test func fifosAreRefusedNotOpened() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        for name in ["w.safetensors", "w.h5", "w.bin"] {
            let p = dir.file(name)
            #expect(mkfifo(p, 0o600) == 0)
            let text = errorText { _ = try openTensorFile(p) }
            #expect(text?.hasPrefix(p) == true && text?.contains("not a regular file") == true, "\(text ?? "opened")")
        }
        let p = dir.file("x.safetensors")
        #expect(mkfifo(p, 0o600) == 0)
        #expect(errorText { _ = try SafetensorsFile(path: p) }?.contains("not a regular file") == true)
        #expect(errorText { _ = try FileChecksum.verify(p) }?.contains("not a regular file") == true)
    }

    /// Zip members with `..` or an absolute name are refused with the archive named.
    @Test func zipMemberNamesCannotEscape() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        var w = PickleWriter()
        w.op(0x7D)
        w.stop()
        for bad in ["archive/../../etc/passwd", "/etc/passwd", "archive/..\\x"] {
            let p = dir.file("bad.bin")
            let bytes = zipArchive([("archive/data.pkl", w.bytes), (bad, [1, 2, 3, 4])])
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            let text = errorText { _ = try TorchStateDict(path: p) }
            #expect(text?.hasPrefix(p) == true && text?.contains("'..'") == true, "\(bad): \(text ?? "opened")")
        }
    }

    /// A zero-stride view claiming far more elements than its storage is refused before any
    /// allocation (it once made `convert` try to allocate 40 GB).
    @Test func zeroStridesCannotInflateAStorage() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        var w = PickleWriter()
        w.op(0x7D)
        w.mark()
        w.string("w")
        w.tensor(storage: "0", numel: 4, shape: [100_000, 100_000], stride: [0, 0])
        w.op(0x75)
        w.stop()
        let p = dir.file("zero.bin")
        try Data(zipArchive([("archive/data.pkl", w.bytes), ("archive/data/0", float32Bytes([1, 2, 3, 4]))]))
            .write(to: URL(fileURLWithPath: p))
        let text = errorText { _ = try TorchStateDict(path: p) }
        #expect(text?.hasPrefix(p) == true && text?.contains("zero strides") == true, "\(text ?? "opened")")
    }

    /// Temporary files of a killed writer (their process is gone) are removed by the next write in
    /// that directory; a live process's are kept.
    @Test func staleTemporariesAreRemovedOnTheNextWrite() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let stale = ".model.h5.tmp-\(dead.processIdentifier)-abc123"
        let live = ".other.h5.tmp-\(getpid())-def456"
        for n in [stale, live] { try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir.file(n))) }
        try WeightsFile.write(try sampleTensors(seed: 1), to: dir.file("model.h5"))
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(names == [live, "model.h5"])
    }
}

@Suite(Python.requires("numpy", "h5py"))
struct ForeignHDF5Tests {
    static let script = #"""
        import sys, numpy as np, h5py
        d = sys.argv[1]
        secret = d + "/secret.bin"
        np.arange(16, dtype="<f4").tofile(secret)
        with h5py.File(d + "/external.h5", "w") as f:
            f.create_dataset("w", shape=(16,), dtype="<f4", external=[(secret, 0, 64)])
        with h5py.File(d + "/source.h5", "w") as f:
            f["w"] = np.ones(4, dtype="<f4")
        layout = h5py.VirtualLayout(shape=(4,), dtype="<f4")
        layout[:] = h5py.VirtualSource(d + "/source.h5", "w", shape=(4,))
        with h5py.File(d + "/virtual.h5", "w") as f:
            f.create_virtual_dataset("w", layout)
        with h5py.File(d + "/link.h5", "w") as f:
            f["local"] = np.zeros(2, dtype="<f4")
            f["w"] = h5py.ExternalLink(d + "/source.h5", "w")
        # h5py reads a Sightline weights file (checksum in the user block) directly, and the
        # checksum verifies with hashlib.
        import hashlib
        p = d + "/sightline.h5"
        b = open(p, "rb").read()
        assert hashlib.sha256(b[512:]).hexdigest() == b[:512].split()[3].decode()
        with h5py.File(p, "r") as f:
            print(sorted(f.keys()))
        """#

    /// External raw storage, virtual datasets and external links in an HDF5 file from elsewhere
    /// are refused (an external dataset could read any local file into a tensor), and h5py reads a
    /// checksummed Sightline file as it is.
    @Test func externalStorageVirtualDatasetsAndExternalLinksAreRefused() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        try WeightsFile.write(["a": try Tensor(shape: [2], scalars: [1, 2])], to: dir.file("sightline.h5"))
        let out = try runPython(Self.script, [dir.path], in: dir)
        #expect(out.contains("['a']"))
        for name in ["external.h5", "virtual.h5"] {
            let p = dir.file(name)
            let text = errorText {
                let f = try WeightsFile.open(p)
                for i in f.tensorInfos { _ = try f.readTensor(i.name) }
            }
            #expect(text?.hasPrefix(p) == true && text?.contains("refused") == true, "\(name): \(text ?? "read")")
        }
        // The external link is not followed: only the local dataset is listed.
        let f = try WeightsFile.open(dir.file("link.h5"))
        #expect(f.tensorInfos.map(\.name) == ["local"])
    }
}

@Suite(.serialized, .enabled(if: canMountTmpfs, "needs root to mount a small tmpfs"))
struct AppendOnAFullDiskTests {
    /// A metrics-style append that does not fit fails naming the file and leaves the file at its
    /// previous contents (no partial record).
    @Test func appendOnAFullDiskKeepsThePreviousRecords() throws {
        let disk = try #require(SmallDisk(kilobytes: 64))
        defer { disk.cleanup() }
        let path = disk.file("metrics.jsonl")
        try DurableFile.append(Array("{\"step\": 1}\n".utf8), to: path)
        try DurableFile.append(Array("{\"step\": 2}\n".utf8), to: path)
        let before = fileBytes(path)
        let text = errorText { try DurableFile.append([UInt8](repeating: 0x41, count: 200_000), to: path) }
        #expect(text?.hasPrefix(path) == true, "\(text ?? "no error")")
        #expect(fileBytes(path) == before)
        #expect(String(decoding: before, as: UTF8.self) == "{\"step\": 1}\n{\"step\": 2}\n")
    }
}
