import Checkpoint
import Foundation
import Tensor
import TensorFiles
import Testing

/// A safetensors file from a header text and data bytes (the header length may be overridden).
func safetensorsBytes(_ header: String, _ data: [UInt8], length: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    return withUnsafeBytes(of: (length ?? UInt64(h.count)).littleEndian, Array.init) + h + data
}

@Suite struct SafetensorsTests {
    @Test func float32RoundTripIsBitExactAndKeepsOrderAndMetadata() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let tensors = try sampleTensors(seed: 11)
        let path = dir.file("w.safetensors")
        try SafetensorsFile.write(tensors, to: path, metadata: ["format": "pt", "note": "é ü \"quoted\"\n"])
        let f = try SafetensorsFile(path: path)
        #expect(f.metadata == ["format": "pt", "note": "é ü \"quoted\"\n"])
        #expect(f.tensorInfos.map(\.dtype) == Array(repeating: .float32, count: tensors.count))
        expectIdentical(try f.readAll(), tensors)
        // Header length is a multiple of 8, as the reference writer pads it.
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(raw.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } % 8 == 0)
    }

    @Test(arguments: [WeightDType.float16, .bfloat16])
    func halfRoundTripRoundsToNearestEvenAndIsStableOnRewrite(_ dtype: WeightDType) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let tensors = try sampleTensors(seed: 12)
        let a = dir.file("a.safetensors"), b = dir.file("b.safetensors")
        try SafetensorsFile.write(tensors, to: a, dtype: dtype)
        let back = try SafetensorsFile(path: a)
        #expect(back.tensorInfos.allSatisfy { $0.dtype == dtype.stored })
        for name in tensors.names {
            let want = tensors[name]!.scalars.map { roundTripped($0, dtype).bitPattern }
            #expect(bits(try back.readTensor(name)) == want, "\(name)")
        }
        // Values already representable survive another write unchanged, byte for byte.
        try SafetensorsFile.write(try back.readAll(), to: b, dtype: dtype)
        #expect(try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b)))
    }

    @Test func knownSixteenBitPatterns() {
        // Values worked out by hand from the IEEE layouts.
        #expect(ElementConversion.float16Bits(1) == 0x3C00)
        #expect(ElementConversion.float16Bits(65504) == 0x7BFF)
        #expect(ElementConversion.float16Bits(70000) == 0x7C00)  // overflows to +inf
        #expect(ElementConversion.float16Bits(1.0 / 3.0) == 0x3555)
        #expect(ElementConversion.bfloat16Bits(1) == 0x3F80)
        #expect(ElementConversion.bfloat16Bits(1.0 / 3.0) == 0x3EAB)  // 0x3EAAAAAB rounds up
        #expect(ElementConversion.bfloat16Bits(1 + 0x1p-8) == 0x3F80)  // tie, to even (down)
        #expect(ElementConversion.bfloat16Bits(1 + 0x1p-7 + 0x1p-8) == 0x3F82)  // tie, to even (up)
        #expect(ElementConversion.bfloat16Bits(-.infinity) == 0xFF80)
        #expect(ElementConversion.float(bfloat16Bits: 0x4049) == 3.140625)
        #expect(ElementConversion.float(float16Bits: 0x0001) == 0x1p-24)  // smallest subnormal
        // A NaN whose payload is only in the low bits stays a NaN.
        #expect(
            ElementConversion.float(
                bfloat16Bits: ElementConversion.bfloat16Bits(Float(bitPattern: 0x7F80_0001))
            ).isNaN)
    }

    @Test func readsEveryIntegerAndFloatType() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        var data: [UInt8] = []
        var members: [String] = []
        func add(_ name: String, _ dtype: String, _ bytes: [UInt8], _ n: Int) {
            members.append(
                "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(n)],\"data_offsets\":[\(data.count),\(data.count + bytes.count)]}"
            )
            data += bytes
        }
        add("f64", "F64", [2.5, -1e10].withUnsafeBytes(Array.init), 2)
        add("i64", "I64", [Int64(-3), 1 << 40].withUnsafeBytes(Array.init), 2)
        add("i32", "I32", [Int32(-7), 9].withUnsafeBytes(Array.init), 2)
        add("i16", "I16", [Int16(-2), 300].withUnsafeBytes(Array.init), 2)
        add("u8", "U8", [0, 255], 2)
        add("i8", "I8", [0xFF, 0x7F], 2)
        add("b", "BOOL", [0, 1], 2)
        add("u16", "U16", [UInt16(65535)].withUnsafeBytes(Array.init), 1)
        let path = dir.file("types.safetensors")
        try Data(safetensorsBytes("{" + members.joined(separator: ",") + "}", data)).write(
            to: URL(fileURLWithPath: path))
        let f = try SafetensorsFile(path: path)
        #expect(try f.readTensor("f64").scalars == [2.5, -1e10])
        #expect(try f.readTensor("i64").scalars == [-3, Float(1 << 40)])
        #expect(try f.readTensor("i32").scalars == [-7, 9])
        #expect(try f.readTensor("i16").scalars == [-2, 300])
        #expect(try f.readTensor("u8").scalars == [0, 255])
        #expect(try f.readTensor("i8").scalars == [-1, 127])
        #expect(try f.readTensor("b").scalars == [0, 1])
        #expect(try f.readTensor("u16").scalars == [65535])
        #expect(f.info(named: "i64")?.dtype == .int64)
    }

    /// Each malformed file is refused with an error that names the file and, where one is
    /// concerned, the tensor.
    @Test func malformedHeadersAreRefusedWithNamedErrors() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let eight = [UInt8](repeating: 0, count: 8)
        let ok = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
        let cases: [(String, [UInt8], tensor: String?, expected: String)] = [
            ("short", [1, 2, 3], nil, "too short"),
            ("beyond", safetensorsBytes("{" + ok + "}", eight, length: 1 << 20), nil, "runs past the end"),
            ("badjson", safetensorsBytes("{\"a\":{\"dtype\":\"F32\",", eight), nil, "not valid JSON"),
            ("notobject", safetensorsBytes("[1,2]   ", eight), nil, "not a JSON object"),
            (
                "dtype",
                safetensorsBytes("{\"a\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight),
                "a", "unknown dtype F31"
            ),
            (
                "size",
                safetensorsBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", eight),
                "a", "needs 12"
            ),
            (
                "range",
                safetensorsBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", eight),
                "a", "run past the end of the data"
            ),
            (
                "order",
                safetensorsBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", eight),
                "a", "not ordered"
            ),
            (
                "overlap",
                safetensorsBytes(
                    "{\(ok),\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                    eight + [0, 0, 0, 0]),
                "b", "overlap tensor 'a'"
            ),
            (
                "hole",
                safetensorsBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", eight),
                "a", "belong to no tensor"
            ),
            ("tail", safetensorsBytes("{" + ok + "}", eight + [1, 2, 3, 4]), nil, "belong to no tensor"),
            (
                "negative",
                safetensorsBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", eight),
                "a", "negative"
            ),
            ("duplicate", safetensorsBytes("{\(ok),\(ok)}", eight), "a", "appears twice"),
            ("meta", safetensorsBytes("{\"__metadata__\":{\"k\":1}," + ok + "}", eight), nil, "not a string"),
            (
                "offsets",
                safetensorsBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", eight),
                "a", "two integers"
            ),
            ("deep", safetensorsBytes(String(repeating: "[", count: 5000), eight), nil, "nesting deeper"),
        ]
        for (name, bytes, tensor, expected) in cases {
            let path = dir.file("\(name).safetensors")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                _ = try SafetensorsFile(path: path)
                Issue.record("\(name): expected an error")
            } catch let e as TensorFileError {
                #expect(e.file == path, "\(name)")
                #expect(e.tensor == tensor, "\(name): \(e)")
                #expect(e.description.contains(expected), "\(name): \(e)")
            }
        }
        // An 8-bit float is listed but not converted.
        let f8 = dir.file("f8.safetensors")
        try Data(
            safetensorsBytes("{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", [1, 2])
        )
        .write(to: URL(fileURLWithPath: f8))
        let f = try SafetensorsFile(path: f8)
        #expect(f.tensorInfos.first?.dtype == .float8e4m3)
        #expect(errorText { _ = try f.readTensor("q") }?.contains("cannot be converted") == true)
    }

    @Test func shardedDirectoryReadsAndChecksTheIndex() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let all = try sampleTensors(seed: 13)
        let first = NamedTensors(all.names.prefix(3).map { ($0, all[$0]!) })
        let second = NamedTensors(all.names.dropFirst(3).map { ($0, all[$0]!) })
        try SafetensorsFile.write(
            first, to: dir.file("model-00001-of-00002.safetensors"), metadata: ["format": "pt"])
        try SafetensorsFile.write(second, to: dir.file("model-00002-of-00002.safetensors"), dtype: .bfloat16)
        func index(_ map: [(String, String)]) throws {
            let body = map.map { "\"\($0.0)\": \"\($0.1)\"" }.joined(separator: ", ")
            try "{\"metadata\": {\"total_size\": 1234}, \"weight_map\": {\(body)}}"
                .write(toFile: dir.file("model.safetensors.index.json"), atomically: false, encoding: .utf8)
        }
        var map = first.names.map { ($0, "model-00001-of-00002.safetensors") }
        map += second.names.map { ($0, "model-00002-of-00002.safetensors") }
        try index(map)
        let source = try openSafetensors(dir.path)
        #expect(source is ShardedSafetensors)
        #expect(Set(source.tensorNames) == Set(all.names))
        #expect(source.metadata["total_size"] == "1234")
        for name in first.names { #expect(bits(try source.readTensor(name)) == bits(all[name]!)) }
        for name in second.names {
            #expect(
                bits(try source.readTensor(name))
                    == all[name]!.scalars.map { roundTripped($0, .bfloat16).bitPattern })
        }
        // A listed tensor that its shard lacks, a shard outside the directory, a wrong shard.
        try index(map + [("ghost.weight", "model-00001-of-00002.safetensors")])
        #expect(errorText { _ = try openSafetensors(dir.path) }?.contains("tensor 'ghost.weight'") == true)
        try index([(all.names[0], "../x.safetensors")])
        #expect(errorText { _ = try openSafetensors(dir.path) }?.contains("not a plain file name") == true)
        try index(map.map { ($0.0, "model-00001-of-00002.safetensors") })
        let e = errorText { _ = try openSafetensors(dir.path) } ?? ""
        #expect(e.contains("model.safetensors.index.json") && e.contains("missing from shard"), "\(e)")
    }

    /// A safetensors header of 384 (0x180) bytes starts the file with 80 01, which also starts a
    /// pickle: format detection must still say safetensors.
    @Test func headerLengthStartingWith0x80IsStillSafetensors() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.file("x.bin")
        let t = try Tensor(shape: [2], scalars: [1, 2])
        func write(_ pad: Int) throws -> [UInt8] {
            try SafetensorsFile.write(["t": t], to: path, metadata: ["pad": String(repeating: "x", count: pad)])
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)).prefix(2))
        }
        let first = try write(0)
        let length = Int(first[0]) | Int(first[1]) << 8
        #expect(length < 384)
        let head = try write(384 - length)
        #expect(head == [0x80, 0x01])
        #expect(try tensorFileKind(path) == .safetensors)
        #expect(try openTensorSource(path) is SafetensorsFile)
        #expect(try openTensorFile(path).readTensor("t").scalars == [1, 2])
    }
}
