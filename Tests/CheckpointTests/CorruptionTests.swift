import Checkpoint
import Foundation
import SightlineTestSupport
import Tensor
import TensorFiles
import Testing

/// One corrupted copy of `base`: a few flipped bytes (mostly in the first `hot` bytes, where the
/// headers are), a truncation, or, for text headers, a changed digit.
func corrupt(_ base: [UInt8], hot: Int, using g: inout SplitMix) -> (bytes: [UInt8], how: String) {
    var b = base
    switch Int.random(in: 0..<10, using: &g) {
    case 0..<4:
        let n = Int.random(in: 1...4, using: &g)
        for _ in 0..<n {
            let i = Int.random(in: 0..<min(hot, b.count), using: &g)
            b[i] ^= UInt8.random(in: 1...255, using: &g)
        }
        return (b, "flip \(n) header bytes")
    case 4..<6:
        let i = Int.random(in: 0..<b.count, using: &g)
        b[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &g))
        return (b, "flip a bit at \(i)")
    case 6..<8:
        let n = Int.random(in: 0..<b.count, using: &g)
        return (Array(b.prefix(n)), "truncate to \(n)")
    default:
        // Change an ASCII digit (an offset or a size in a JSON header) or, failing that, a byte.
        let digits = b.prefix(hot).indices.filter { b[$0] >= 0x30 && b[$0] <= 0x39 }
        if let i = digits.randomElement(using: &g) {
            b[i] = UInt8.random(in: 0x30...0x39, using: &g)
            return (b, "digit at \(i)")
        }
        let i = Int.random(in: 0..<b.count, using: &g)
        b[i] = UInt8.random(in: 0...255, using: &g)
        return (b, "byte at \(i)")
    }
}

/// Opens and reads `path` fully in this process; returns nil on success or the error text, which
/// must be a `TensorFileError` naming the file.
func readFully(_ path: String, _ open: (String) throws -> TensorSource) -> (
    ok: Bool, namedFile: Bool, text: String
) {
    do {
        let s = try open(path)
        for info in s.tensorInfos { _ = try s.readTensor(info.name) }
        return (true, true, "")
    } catch let e as TensorFileError {
        return (false, e.file == path && e.description.hasPrefix(path), e.description)
    } catch {
        return (false, false, "\(type(of: error)): \(error)")
    }
}

@Suite struct SafetensorsCorruptionTests {
    /// 1,200 corrupted headers and truncations: no crash, and every error is a `TensorFileError`
    /// that names the file.
    @Test func corruptedFilesNeverCrashAndErrorsNameTheFile() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        var bases: [[UInt8]] = []
        for (k, dtype) in [WeightDType.float32, .bfloat16].enumerated() {
            let p = dir.file("base\(k).safetensors")
            try SafetensorsFile.write(
                try sampleTensors(seed: 31), to: p, dtype: dtype, metadata: ["format": "pt"])
            bases.append([UInt8](try Data(contentsOf: URL(fileURLWithPath: p))))
        }
        var g = SplitMix(0x5AFE)
        var errors = 0, unnamed: [String] = []
        for i in 0..<1200 {
            let base = bases[i % bases.count]
            let headerEnd = 8 + Int(base.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            let (bytes, how) = corrupt(base, hot: headerEnd, using: &g)
            let path = dir.file("fuzz-\(i).safetensors")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let r = readFully(path) { try SafetensorsFile(path: $0) }
            if !r.ok { errors += 1 }
            if !r.namedFile { unnamed.append("\(how): \(r.text)") }
            try FileManager.default.removeItem(atPath: path)
        }
        #expect(unnamed.isEmpty, "\(unnamed.prefix(5))")
        #expect(errors > 600, "most corruptions must be detected (\(errors) of 1200)")
    }
}

@Suite struct PickleCorruptionTests {
    /// 1,200 corruptions of a PyTorch archive: of the pickle itself (re-zipped with a valid CRC, so
    /// that the unpickler sees them), of the zip structure, and truncations.
    @Test func corruptedFilesNeverCrashAndErrorsNameTheFile() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let (pickle, storages) = samplePickle()
        let archive = torchArchive(pickle, storages: storages)
        var g = SplitMix(0x91C)
        var errors = 0, unnamed: [String] = []
        for i in 0..<1200 {
            let bytes: [UInt8], how: String
            if i % 2 == 0 {
                let (p, h) = corrupt(pickle, hot: pickle.count, using: &g)
                (bytes, how) = (torchArchive(p, storages: storages), "pickle " + h)
            } else {
                (bytes, how) = corrupt(archive, hot: archive.count, using: &g)
            }
            let path = dir.file("fuzz-\(i).bin")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let r = readFully(path) { try TorchStateDict(path: $0) }
            if !r.ok { errors += 1 }
            if !r.namedFile { unnamed.append("\(how): \(r.text)") }
            try FileManager.default.removeItem(atPath: path)
        }
        #expect(unnamed.isEmpty, "\(unnamed.prefix(5))")
        #expect(errors > 600, "most corruptions must be detected (\(errors) of 1200)")
    }
}

@Suite struct CheckpointCorruptionTests {
    /// 1,000 corrupted HDF5 weights files and checkpoints, read by `CheckpointTestHelper _probe` in a child
    /// process: a crash (or hang) inside libhdf5 is counted and reported instead of ending the test
    /// run, the child is restarted after the file that crashed it, and every error must name its file.
    /// Set SIGHTLINE_KEEP_CORRUPT_DIR to a directory to keep the files that crashed or hung libhdf5.
    @Test func corruptedHDF5FilesAreReadInAChildProcess() throws {
        guard let exe = testHelperExecutable() else {
            Issue.record(
                "the CheckpointTestHelper executable is not next to the test bundle; build everything (swift build) first")
            return
        }
        let dir = TempDir()
        defer { dir.cleanup() }
        var bases: [[UInt8]] = []
        let small = try NamedTensors(
            sampleTensors(seed: 41).names.prefix(4).map { ($0, try sampleTensors(seed: 41)[$0]!) })
        for (k, dtype) in WeightDType.allCases.enumerated() {
            let p = dir.file("base\(k).h5")
            try WeightsFile.write(small, to: p, dtype: dtype, config: "{\"layers\": 1}")
            bases.append([UInt8](try Data(contentsOf: URL(fileURLWithPath: p))))
        }
        let ck = dir.file("base-ckpt.h5")
        var opt = OptimizerState(step: 3)
        opt.parameters["w"] = ["exp_avg": Tensor([1, 2])]
        try TrainingCheckpoint(
            model: ["w": Tensor([1, 2])], optimizer: opt, trainer: TrainerState(globalStep: 3)
        ).write(to: ck)
        bases.append([UInt8](try Data(contentsOf: URL(fileURLWithPath: ck))))

        var g = SplitMix(0x4DF5)
        var paths: [String] = [], hows: [String] = []
        for i in 0..<1000 {
            let base = bases[i % bases.count]
            let (bytes, how) = corrupt(base, hot: min(base.count, 4096), using: &g)
            let path = dir.file("fuzz-\(i).h5")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            paths.append(path)
            hows.append(how)
        }
        let list = dir.file("list.txt")
        try paths.joined(separator: "\n").write(toFile: list, atomically: false, encoding: .utf8)

        var results = [String?](repeating: nil, count: paths.count)
        var crashes: [Int] = [], hangs: [Int] = []
        var start = 0
        while start < paths.count {
            let r = try runWatched(exe, ["_probe", "--list", list, "--start", String(start)], stall: 3)
            var last = start - 1
            for line in r.stdout.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 2)
                guard parts.count >= 2, let i = Int(parts[1]), i < paths.count else { continue }
                results[i] = String(line)
                last = max(last, i)
            }
            if last == paths.count - 1 { break }
            // The child died (or hung) on the file after the last one it reported. A Swift runtime
            // trap (ours, not libhdf5's) would print "Fatal error" and fails the test.
            #expect(!r.stderr.contains("Fatal error"), "\(hows[last + 1]): \(r.stderr.prefix(2000))")
            if r.timedOut { hangs.append(last + 1) } else { crashes.append(last + 1) }
            if let keep = ProcessInfo.processInfo.environment["SIGHTLINE_KEEP_CORRUPT_DIR"] {
                try? FileManager.default.copyItem(
                    atPath: paths[last + 1],
                    toPath: keep + "/hdf5-\(r.timedOut ? "hang" : "crash")-\(last + 1).h5")
            }
            start = last + 2
        }
        var ok = 0, errors = 0, unnamed: [String] = []
        for (i, r) in results.enumerated() {
            guard let r else { continue }
            if r.hasPrefix("OK") {
                ok += 1
            } else {
                errors += 1
                if !r.contains(paths[i]) { unnamed.append("\(hows[i]): \(r)") }
            }
        }
        let summary =
            "HDF5 corruption: \(ok) read, \(errors) errors, \(crashes.count) libhdf5 crashes \(crashes.map { hows[$0] }), "
            + "\(hangs.count) hangs"
        print(summary)
        #expect(unnamed.isEmpty, "\(unnamed.prefix(5))")
        #expect(ok + errors + crashes.count + hangs.count == paths.count, "\(summary)")
        #expect(errors > 300, "\(summary)")
    }
}
