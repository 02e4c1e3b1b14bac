import Checkpoint
import Foundation
import Tensor
import TensorFiles
import Testing

/// A torch.save-style archive around `pickle` and storage entries.
func torchArchive(
    _ pickle: [UInt8], storages: [(String, [UInt8])], prefix: String = "archive/", deflated: Bool = false
) -> [UInt8] {
    var entries: [(String, [UInt8])] = [
        (prefix + "data.pkl", pickle), (prefix + "byteorder", Array("little".utf8)),
    ]
    entries += storages.map { (prefix + "data/" + $0.0, $0.1) }
    entries.append((prefix + "version", Array("3\n".utf8)))
    return zipArchive(entries, deflatedNames: deflated ? [prefix + "data.pkl"] : [])
}

/// The state dict used by several tests, pickled as Python's pickler does (OrderedDict, then its
/// `_metadata` attribute through BUILD), with views that share and stride over storages.
func samplePickle() -> (pickle: [UInt8], storages: [(String, [UInt8])]) {
    var w = PickleWriter()
    w.global("collections", "OrderedDict")
    w.emptyTuple()
    w.reduce()
    w.op(0x71); w.op(0)  // BINPUT 0
    w.mark()
    w.string("a.weight")
    w.tensor(storage: "0", numel: 12, shape: [3, 4])
    w.op(0x71); w.op(1)
    w.string("a.weight_t")
    w.tensor(storage: "0", numel: 12, shape: [4, 3], stride: [1, 4])
    w.string("a.slice")
    w.tensor(storage: "0", numel: 12, offset: 4, shape: [2])
    w.string("tied.weight")
    w.op(0x68); w.op(1)  // BINGET 1: the same tensor object again
    w.string("h")
    w.tensor(storage: "1", type: "HalfStorage", numel: 3, shape: [3])
    w.string("bf")
    w.tensor(storage: "2", type: "BFloat16Storage", numel: 2, shape: [2])
    w.string("vision_model.embeddings.position_ids")
    w.tensor(storage: "3", type: "LongStorage", numel: 4, shape: [1, 4])
    w.string("scalar")
    w.tensor(storage: "4", numel: 1, shape: [])
    w.op(0x75)  // SETITEMS
    w.op(0x7D)  // EMPTY_DICT: BUILD state {"_metadata": OrderedDict()}
    w.string("_metadata")
    w.global("collections", "OrderedDict")
    w.emptyTuple()
    w.reduce()
    w.op(0x73)  // SETITEM
    w.op(0x62)  // BUILD
    w.stop()
    let f32 = float32Bytes((0..<12).map { Float($0) * 0.5 })
    let half: [UInt16] = [0x3C00, 0xC000, 0x7BFF]  // 1, -2, 65504
    let bf: [UInt16] = [0x4049, 0xBF80]  // 3.140625, -1
    let longs: [Int64] = [0, 1, 2, 3]
    return (
        w.bytes,
        [
            ("0", f32), ("1", half.withUnsafeBytes(Array.init)), ("2", bf.withUnsafeBytes(Array.init)),
            ("3", longs.withUnsafeBytes(Array.init)), ("4", float32Bytes([-7.25])),
        ]
    )
}

@Suite struct PickleTests {
    func write(_ bytes: [UInt8], _ dir: TempDir, _ name: String = "model.bin") throws -> String {
        let path = dir.file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func readsTensorsViewsAndTypes() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let (pickle, storages) = samplePickle()
        let path = try write(torchArchive(pickle, storages: storages), dir)
        #expect(try tensorFileKind(path) == .pytorch)
        let sd = try TorchStateDict(path: path)
        #expect(
            sd.tensorNames == [
                "a.weight", "a.weight_t", "a.slice", "tied.weight", "h", "bf",
                "vision_model.embeddings.position_ids", "scalar",
            ])
        #expect(sd.info(named: "h")?.dtype == .float16)
        #expect(sd.info(named: "bf")?.dtype == .bfloat16)
        #expect(sd.info(named: "vision_model.embeddings.position_ids")?.dtype == .int64)
        let base = (0..<12).map { Float($0) * 0.5 }
        #expect(try sd.readTensor("a.weight").scalars == base)
        #expect(try sd.readTensor("a.weight").shape == [3, 4])
        // The transposed view: element [i, j] is storage[i + 4 j].
        let t = try sd.readTensor("a.weight_t")
        #expect(t.shape == [4, 3])
        #expect(t.scalars == (0..<4).flatMap { i in (0..<3).map { j in base[i + 4 * j] } })
        #expect(try sd.readTensor("a.slice").scalars == [2, 2.5])
        #expect(try sd.readTensor("tied.weight").scalars == base)
        #expect(try sd.readTensor("h").scalars == [1, -2, 65504])
        #expect(try sd.readTensor("bf").scalars == [3.140625, -1])
        #expect(try sd.readTensor("vision_model.embeddings.position_ids").scalars == [0, 1, 2, 3])
        let s = try sd.readTensor("scalar")
        #expect(s.shape == [] && s.scalars == [-7.25])
    }

    @Test func nestedDictsFlattenAndNonTensorsAreListed() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        var w = PickleWriter()
        w.op(0x7D)  // {"model": {"fc.weight": t}, "epoch": 3}
        w.mark()
        w.string("model")
        w.op(0x7D)
        w.string("fc.weight")
        w.tensor(storage: "0", numel: 2, shape: [2])
        w.op(0x73)
        w.string("epoch")
        w.int(3)
        w.op(0x75)
        w.stop()
        let path = try write(
            torchArchive(w.bytes, storages: [("0", float32Bytes([4, 5]))], prefix: "ckpt/"), dir, "c.pt")
        let sd = try TorchStateDict(path: path)
        #expect(sd.tensorNames == ["model.fc.weight"])
        #expect(sd.skippedKeys == ["epoch"])
        #expect(try sd.readTensor("model.fc.weight").scalars == [4, 5])
    }

    /// A pickle that names a function to call is refused at the GLOBAL, before anything else happens.
    @Test func picklesThatCallFunctionsAreRefused() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let marker = dir.file("pwned")
        func refused(_ pickle: [UInt8], _ expected: String, sourceLocation: SourceLocation = #_sourceLocation)
            throws
        {
            let path = try write(
                torchArchive(pickle, storages: []), dir, "evil-\(UUID().uuidString.prefix(6)).bin")
            let e = errorText { _ = try TorchStateDict(path: path) } ?? "no error"
            #expect(e.hasPrefix(path) && e.contains(expected), "\(e)", sourceLocation: sourceLocation)
        }
        // os.system("touch <marker>"), as protocol 2 writes it.
        var w = PickleWriter()
        w.global("os", "system")
        w.string("touch " + marker)
        w.op(0x85)  // TUPLE1
        w.reduce()
        w.stop()
        try refused(w.bytes, "refused global 'os.system'")
        // posix.system and builtins.eval through STACK_GLOBAL (protocol 4).
        for (m, n) in [("posix", "system"), ("builtins", "eval"), ("torch", "load"), ("subprocess", "Popen")]
        {
            var s = PickleWriter()
            s.bytes = [0x80, 0x04]
            s.string(m)
            s.string(n)
            s.op(0x93)
            s.string("1+1")
            s.op(0x85)
            s.reduce()
            s.stop()
            try refused(s.bytes, "refused global '\(m).\(n)'")
        }
        // Object-building opcodes.
        try refused([0x80, 0x02, 0x69] + Array("os\nsystem\n".utf8) + [0x2E], "INST")
        try refused([0x80, 0x02, 0x29, 0x29, 0x81, 0x2E], "NEWOBJ")
        try refused([0x80, 0x02, 0x82, 0x01, 0x2E], "EXT1")
        // Calling an allowed global that is not a function.
        var c = PickleWriter()
        c.global("torch", "FloatStorage")
        c.emptyTuple()
        c.reduce()
        c.stop()
        try refused(c.bytes, "calling torch.FloatStorage is not allowed")
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func malformedPicklesAndArchivesAreRefused() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        func error(_ bytes: [UInt8]) throws -> String {
            let path = try write(bytes, dir, "bad-\(UUID().uuidString.prefix(6)).bin")
            let e =
                errorText {
                    let sd = try TorchStateDict(path: path); _ = try sd.readAll()
                } ?? "no error"
            #expect(e.hasPrefix(path), "\(e)")
            return e
        }
        // A view reaching past its storage.
        var w = PickleWriter()
        w.op(0x7D)
        w.string("x")
        w.tensor(storage: "0", numel: 2, shape: [3])
        w.op(0x73)
        w.stop()
        #expect(
            try error(torchArchive(w.bytes, storages: [("0", float32Bytes([1, 2]))])).contains(
                "reaches element 2"))
        // A storage larger than its entry.
        var big = PickleWriter()
        big.op(0x7D)
        big.string("x")
        big.tensor(storage: "0", numel: 1000, shape: [1000])
        big.op(0x73)
        big.stop()
        #expect(
            try error(torchArchive(big.bytes, storages: [("0", float32Bytes([1, 2]))])).contains(
                "entry has 8 bytes"))
        // A self-containing list, and nesting beyond the limit.
        #expect(
            try error(torchArchive([0x80, 0x02, 0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2E], storages: []))
                .contains("contains itself"))
        let deep =
            [0x80, 0x02] + [UInt8](repeating: 0x5D, count: 200) + [UInt8](repeating: 0x61, count: 199) + [
                0x2E
            ]
        #expect(try error(torchArchive(deep, storages: [])).contains("nesting deeper than 64"))
        // Truncated pickle, compressed entry, bare legacy pickle, damaged storage.
        let (pickle, storages) = samplePickle()
        #expect(
            try error(torchArchive(Array(pickle.prefix(40)), storages: storages)).contains("data.pkl at byte")
        )
        #expect(
            try error(torchArchive(pickle, storages: storages, deflated: true)).contains(
                "is compressed (method 8)"))
        #expect(try error(pickle).contains("bare pickle"))
        // Damage one byte of storage "1" (float16 1, -2, 65504) inside the finished archive.
        var damaged = torchArchive(pickle, storages: storages)
        let needle: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B]
        let at = try #require(
            (0...(damaged.count - needle.count)).first { Array(damaged[$0..<($0 + needle.count)]) == needle })
        damaged[at + 1] ^= 0x40
        let path = try write(damaged, dir, "damaged.bin")
        let sd = try TorchStateDict(path: path)
        #expect(try sd.readTensor("a.weight").count == 12)  // other storages still read
        let e = errorText { _ = try sd.readTensor("h") } ?? ""
        #expect(e.contains("tensor 'h'") && e.contains("CRC-32"), "\(e)")
    }
}
