import Tensor

/// A safetensors file, memory-mapped and validated when opened.
///
/// Layout: an 8-byte little-endian header length `N`, `N` bytes of JSON
/// (`{"__metadata__": {...}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}`),
/// then the data; offsets count from the end of the header. Opening checks everything a reader relies
/// on: the header length against the file size, the JSON, each dtype, shape and offset pair, that each
/// byte range holds exactly `shape * dtype` bytes, and that the ranges tile the data without overlaps
/// or holes. Any violation throws `TensorFileError` naming the file and the tensor.
///
/// ```swift
/// let f = try SafetensorsFile(path: "model.safetensors")
/// let w = try f.readTensor("vision_model.embeddings.patch_embedding.weight")   // Float32
/// ```
public final class SafetensorsFile: TensorSource {
    /// Largest header accepted (the reference implementation's limit).
    public static let maxHeaderBytes = 100_000_000

    public let path: String
    public let tensorInfos: [TensorInfo]
    /// The `__metadata__` object.
    public let metadata: [String: String]
    private let file: MappedFile
    private let ranges: [String: Range<Int>]

    /// Opens and validates `path`.
    /// - Throws: `TensorFileError` naming the file (and tensor) for any malformed content.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let bytes = file.bytes
        func fail(_ m: String) -> TensorFileError { TensorFileError(file: path, m) }
        func fail(_ tensor: String, _ m: String) -> TensorFileError {
            TensorFileError(file: path, tensor: tensor, m)
        }
        guard bytes.count >= 8 else {
            throw fail("file is \(bytes.count) bytes, too short for the 8-byte header length")
        }
        let n64 = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard n64 <= UInt64(bytes.count - 8) else {
            throw fail("header length \(n64) runs past the end of the file (\(bytes.count) bytes)")
        }
        let n = Int(n64)
        guard n <= SafetensorsFile.maxHeaderBytes else {
            throw fail("header length \(n) exceeds the \(SafetensorsFile.maxHeaderBytes)-byte limit")
        }
        guard n >= 2 else { throw fail("header length \(n) is too short for a JSON object") }
        let header: JSONValue
        do {
            header = try JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + n)]))
        } catch let e as JSONParseError {
            throw fail("header is not valid JSON: \(e)")
        }
        guard let members = header.objectValue else { throw fail("header is not a JSON object") }
        let dataStart = 8 + n
        let dataLength = bytes.count - dataStart

        var infos: [TensorInfo] = []
        var spans: [(name: String, range: Range<Int>)] = []
        var meta: [String: String] = [:]
        var seen = Set<String>()
        for (name, value) in members {
            guard seen.insert(name).inserted else { throw fail(name, "appears twice in the header") }
            if name == "__metadata__" {
                guard let entries = value.objectValue else { throw fail("__metadata__ is not an object") }
                for (k, v) in entries {
                    guard let s = v.stringValue else {
                        throw fail("__metadata__ value for '\(k)' is not a string")
                    }
                    meta[k] = s
                }
                continue
            }
            guard value.objectValue != nil else { throw fail(name, "entry is not an object") }
            guard let dtypeName = value["dtype"]?.stringValue else {
                throw fail(name, "missing or non-string dtype")
            }
            guard let dtype = StoredDType(safetensorsName: dtypeName) else {
                throw fail(name, "unknown dtype \(dtypeName)")
            }
            guard let dims = value["shape"]?.arrayValue else {
                throw fail(name, "missing or non-array shape")
            }
            var shape: [Int] = []
            for d in dims {
                guard let v = d.intValue, v >= 0 else {
                    throw fail(name, "shape \(value["shape"]!.text) has a non-integer or negative size")
                }
                shape.append(v)
            }
            guard let offs = value["data_offsets"]?.arrayValue, offs.count == 2,
                let begin = offs[0].intValue, let end = offs[1].intValue
            else { throw fail(name, "data_offsets must be two integers") }
            guard begin >= 0, begin <= end else {
                throw fail(name, "data_offsets [\(begin), \(end)] are not ordered")
            }
            guard end <= dataLength else {
                throw fail(
                    name, "data_offsets [\(begin), \(end)] run past the end of the data (\(dataLength) bytes)"
                )
            }
            guard let count = checkedElementCount(shape),
                case let (need, o) = count.multipliedReportingOverflow(by: dtype.byteSize),
                !o
            else { throw fail(name, "shape \(fmtShape(shape)) is too large") }
            guard end - begin == need else {
                throw fail(
                    name,
                    "data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but \(dtypeName) \(fmtShape(shape)) needs \(need)"
                )
            }
            infos.append(TensorInfo(name: name, shape: shape, dtype: dtype))
            spans.append((name, begin..<end))
        }
        // The ranges must tile the data exactly: sorted by offset, each starts where the last ended.
        let order = spans.indices.sorted {
            (spans[$0].range.lowerBound, spans[$0].range.upperBound) < (
                spans[$1].range.lowerBound, spans[$1].range.upperBound
            )
        }
        var cursor = 0
        var previous: String?
        for i in order {
            let (name, r) = spans[i]
            if r.lowerBound < cursor {
                throw fail(
                    name,
                    "data_offsets [\(r.lowerBound), \(r.upperBound)] overlap tensor '\(previous ?? "?")'")
            }
            if r.lowerBound > cursor {
                throw fail(
                    name,
                    "bytes [\(cursor), \(r.lowerBound)) of the data before this tensor belong to no tensor")
            }
            cursor = r.upperBound
            previous = name
        }
        guard cursor == dataLength else {
            throw fail("the last \(dataLength - cursor) bytes of the data belong to no tensor")
        }
        tensorInfos = order.map { infos[$0] }
        ranges = Dictionary(
            uniqueKeysWithValues: spans.map {
                ($0.name, ($0.range.lowerBound + dataStart)..<($0.range.upperBound + dataStart))
            })
        metadata = meta
    }

    /// Calls `body` with the stored little-endian bytes of `name`.
    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let r = ranges[name] else { throw TensorFileError(file: path, tensor: name, "no such tensor") }
        return try body(UnsafeRawBufferPointer(rebasing: file.bytes[r]))
    }

    public func readTensor(_ name: String) throws -> Tensor {
        guard let info = info(named: name), let r = ranges[name] else {
            throw TensorFileError(file: path, tensor: name, "no such tensor")
        }
        guard info.dtype.isConvertible else {
            throw TensorFileError(
                file: path, tensor: name, "dtype \(info.dtype.safetensorsName) cannot be converted to float32"
            )
        }
        let base = file.bytes.baseAddress.map { UnsafeRawPointer($0) + r.lowerBound }
        if info.elementCount == 0 || base == nil { return Tensor.zeros(info.shape) }
        return ElementConversion.tensor(shape: info.shape, dtype: info.dtype, raw: base!)!
    }

    /// Writes `tensors` as a safetensors file at `path` (atomically: a temporary file renamed into
    /// place), stored as `dtype`, with `metadata` as `__metadata__`.
    /// - Throws: `TensorFileError` for an empty or reserved name, or when the file cannot be written.
    public static func write(
        _ tensors: NamedTensors, to path: String, dtype: WeightDType = .float32,
        metadata: [String: String] = [:]
    ) throws {
        var members: [(String, JSONValue)] = []
        if !metadata.isEmpty {
            members.append(
                (
                    "__metadata__",
                    .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
                ))
        }
        var offset = 0
        let elementSize = dtype.stored.byteSize
        for (name, t) in tensors {
            guard !name.isEmpty, name != "__metadata__" else {
                throw TensorFileError(file: path, tensor: name, "is not a valid tensor name")
            }
            let bytes = t.count * elementSize
            members.append(
                (
                    name,
                    .object([
                        ("dtype", .string(dtype.stored.safetensorsName)),
                        ("shape", .array(t.shape.map { .int($0) })),
                        ("data_offsets", .array([.int(offset), .int(offset + bytes)])),
                    ])
                ))
            offset += bytes
        }
        var header = Array(JSONValue.object(members).text.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        try DurableFile.write(to: path) { tmp in
            let w = try FileWriter(creating: tmp, reportAs: path)
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try w.write($0) }
            try header.withUnsafeBytes { try w.write($0) }
            for (_, t) in tensors {
                if dtype == .float32 {
                    try t.withUnsafeBufferPointer { try w.write(UnsafeRawBufferPointer($0)) }
                } else {
                    let encoded = t.withUnsafeBufferPointer { ElementConversion.encode($0, as: dtype) }
                    try encoded.withUnsafeBytes { try w.write($0) }
                }
            }
            try w.close()
        }
    }
}

/// A sharded safetensors checkpoint: `model.safetensors.index.json` (`{"metadata": {...},
/// "weight_map": {"name": "model-00001-of-00002.safetensors", ...}}`) and its shard files.
///
/// Opening validates the index and every shard, and checks that the index and the shards agree:
/// each listed tensor is in its shard, each shard tensor is listed, no tensor is in two shards.
public final class ShardedSafetensors: TensorSource {
    /// Path of the index file.
    public let path: String
    public let tensorInfos: [TensorInfo]
    /// The index's `metadata` (values as JSON text unless strings) and the first shard's `__metadata__`.
    public let metadata: [String: String]
    /// The shards, by file name.
    public let shards: [String: SafetensorsFile]
    private let shardOf: [String: String]

    /// Opens the index file at `indexPath` and its shards (in the same directory).
    public init(indexPath: String) throws {
        path = indexPath
        func fail(_ m: String) -> TensorFileError { TensorFileError(file: indexPath, m) }
        func fail(_ tensor: String, _ m: String) -> TensorFileError {
            TensorFileError(file: indexPath, tensor: tensor, m)
        }
        let file = try MappedFile(path: indexPath)
        guard file.bytes.count <= SafetensorsFile.maxHeaderBytes else {
            throw fail("index is larger than \(SafetensorsFile.maxHeaderBytes) bytes")
        }
        let index: JSONValue
        do { index = try JSONValue.parse(file.bytes) } catch let e as JSONParseError {
            throw fail("index is not valid JSON: \(e)")
        }
        guard let map = index["weight_map"]?.objectValue else { throw fail("index has no weight_map object") }
        let dir = DurableFile.split(indexPath).dir
        var shardOf: [String: String] = [:]
        var shardNames: [String] = []
        for (name, v) in map {
            guard let shard = v.stringValue else { throw fail(name, "weight_map value is not a string") }
            // A plain file name in the index's directory: nothing that could leave it (`..`, `/`,
            // an absolute path, a Windows separator, an embedded NUL).
            guard !shard.isEmpty, !shard.contains("/"), !shard.contains("\\"), !shard.utf8.contains(0),
                shard != ".", shard != ".."
            else {
                throw fail(name, "shard '\(shard.prefix(80))' is not a plain file name in the index's directory")
            }
            guard shardOf.updateValue(shard, forKey: name) == nil else {
                throw fail(name, "appears twice in weight_map")
            }
            if !shardNames.contains(shard) { shardNames.append(shard) }
        }
        var shards: [String: SafetensorsFile] = [:]
        var infos: [TensorInfo] = []
        for shard in shardNames.sorted() {
            let shardPath = (dir.isEmpty ? "" : dir + "/") + shard
            guard fileExists(shardPath) else { throw fail("shard \(shard) listed in weight_map is missing") }
            let f = try SafetensorsFile(path: shardPath)
            for info in f.tensorInfos {
                guard let listed = shardOf[info.name] else {
                    throw fail(info.name, "is in shard \(shard) but not in weight_map")
                }
                guard listed == shard else {
                    throw fail(info.name, "is in shard \(shard) but weight_map says \(listed)")
                }
                infos.append(info)
            }
            shards[shard] = f
        }
        let present = Set(infos.map(\.name))
        if let absent = map.first(where: { !present.contains($0.0) }) {
            throw fail(absent.0, "is listed in weight_map but missing from shard \(shardOf[absent.0]!)")
        }
        var meta = shardNames.sorted().first.flatMap { shards[$0]?.metadata } ?? [:]
        for (k, v) in index["metadata"]?.objectValue ?? [] { meta[k] = v.stringValue ?? v.text }
        self.shards = shards
        self.shardOf = shardOf
        tensorInfos = infos
        metadata = meta
    }

    public func readTensor(_ name: String) throws -> Tensor {
        guard let shard = shardOf[name], let f = shards[shard] else {
            throw TensorFileError(file: path, tensor: name, "no such tensor")
        }
        return try f.readTensor(name)
    }
}

/// Opens a safetensors file, or a directory holding either `model.safetensors.index.json` (sharded)
/// or `model.safetensors`, or an `*.index.json` file.
public func openSafetensors(_ path: String) throws -> TensorSource {
    if path.hasSuffix(".index.json") { return try ShardedSafetensors(indexPath: path) }
    if isDirectory(path) {
        let index = path + "/model.safetensors.index.json"
        if fileExists(index) { return try ShardedSafetensors(indexPath: index) }
        let single = path + "/model.safetensors"
        if fileExists(single) { return try SafetensorsFile(path: single) }
        throw TensorFileError(
            file: path, "directory has neither model.safetensors.index.json nor model.safetensors")
    }
    return try SafetensorsFile(path: path)
}
