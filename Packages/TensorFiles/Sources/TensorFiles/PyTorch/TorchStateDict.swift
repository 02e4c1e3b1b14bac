import Foundation
import Tensor

/// A PyTorch state dict saved with `torch.save` (`pytorch_model.bin`, `*.pt`): a zip archive holding
/// `<archive>/data.pkl` (the pickled dict) and `<archive>/data/<key>` (one entry per storage, stored
/// uncompressed). The pickle is read by a restricted unpickler that refuses anything but tensor
/// data (see docs/checkpoint-format.md); nothing in the file is ever executed.
///
/// Nested dicts are flattened with dots (`{"model": {"fc.weight": ...}}` gives `model.fc.weight`);
/// values that are not tensors (an epoch counter, say) are listed in `skippedKeys`. Storages are
/// checked against their CRC-32 before use. The legacy pre-1.6 format (a bare pickle stream) is not
/// read.
public final class TorchStateDict: TensorSource {
    public let path: String
    public let tensorInfos: [TensorInfo]
    public let metadata: [String: String]
    /// Keys whose values are not tensors (and so are not listed).
    public let skippedKeys: [String]
    private let archive: ZipArchive
    private let prefix: String
    private let refs: [String: Unpickler.TensorRef]

    /// Opens and parses `path`.
    /// - Throws: `TensorFileError` naming the file (and tensor) for a damaged archive, a refused
    ///   pickle or storages that do not match.
    public init(path: String) throws {
        self.path = path
        let file = try MappedFile(path: path)
        let b = file.bytes
        guard b.count >= 4, b.loadUnaligned(as: UInt32.self) == UInt32(0x0403_4B50).littleEndian else {
            if b.count >= 2 && b[0] == 0x80 && b[1] <= 5 {
                throw TensorFileError(
                    file: path,
                    "is a bare pickle (torch.save before PyTorch 1.6, or _use_new_zipfile_serialization=False); re-save it with a current PyTorch"
                )
            }
            throw TensorFileError(file: path, "not a PyTorch zip archive (no zip signature)")
        }
        archive = try ZipArchive(path: path, file: file)
        guard let pkl = archive.names.first(where: { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }) else {
            throw TensorFileError(file: path, "archive has no data.pkl")
        }
        prefix = String(pkl.dropLast("data.pkl".count))
        if archive.contains(prefix + "byteorder") {
            let order = String(decoding: try archive.data(prefix + "byteorder"), as: UTF8.self)
            guard order.trimmingCharacters(in: .whitespacesAndNewlines) == "little" else {
                throw TensorFileError(
                    file: path, "byte order '\(order.prefix(16))' is not supported (only little-endian)")
            }
        }
        let archive = self.archive, prefix = self.prefix
        var unpickler = Unpickler(data: try archive.data(pkl), file: path, entry: pkl) { key in
            archive.entry(prefix + "data/" + key)?.size
        }
        let root = try unpickler.load()

        var infos: [TensorInfo] = []
        var refs: [String: Unpickler.TensorRef] = [:]
        var skipped: [String] = []
        var visited = 0
        let budget = max(1 << 16, b.count)
        func walk(_ v: Unpickler.Value, _ name: String) throws {
            visited += 1
            guard visited <= budget else {
                throw TensorFileError(file: path, "data.pkl expands to more than \(budget) values")
            }
            switch v {
            case .tensor(let t):
                guard refs[name] == nil else {
                    throw TensorFileError(file: path, tensor: name, "appears twice")
                }
                refs[name] = t
                infos.append(TensorInfo(name: name, shape: t.shape, dtype: t.storage.dtype))
            case .dict(let d):
                for (k, child) in d.items {
                    let key: String
                    switch k {
                    case .string(let s): key = s
                    case .int(let i): key = String(i)
                    default: key = k.kind
                    }
                    try walk(child, name.isEmpty ? key : name + "." + key)
                }
            default:
                skipped.append(name.isEmpty ? "(root \(v.kind))" : name)
            }
        }
        guard case .dict = root else {
            throw TensorFileError(file: path, "data.pkl holds a \(root.kind), not a dict of tensors")
        }
        try walk(root, "")
        tensorInfos = infos
        self.refs = refs
        skippedKeys = skipped
        metadata = ["format": "pytorch-zip", "archive": String(prefix.dropLast())]
    }

    public func readTensor(_ name: String) throws -> Tensor {
        guard let t = refs[name] else { throw TensorFileError(file: path, tensor: name, "no such tensor") }
        let s = t.storage
        guard s.dtype.isConvertible else {
            throw TensorFileError(
                file: path, tensor: name, "dtype \(s.dtype.rawValue) cannot be converted to float32")
        }
        let raw = try archive.data(prefix + "data/" + s.key, tensor: name)
        var out = Tensor.zeros(t.shape)
        let n = out.count
        guard n > 0, let base = raw.baseAddress else { return out }
        let size = s.dtype.byteSize
        // Contiguous row-major: one conversion; otherwise gather element by element.
        var contiguous = true
        var expect = 1
        for (d, st) in zip(t.shape, t.strides).reversed() where d != 1 {
            if st != expect { contiguous = false }
            expect *= d
        }
        out.withUnsafeMutableBufferPointer { o in
            if contiguous {
                ElementConversion.decode(
                    base + t.offset * size, dtype: s.dtype, count: n, into: o.baseAddress!)
                return
            }
            let rank = t.shape.count
            var index = [Int](repeating: 0, count: rank)
            var src = t.offset
            for k in 0..<n {
                ElementConversion.decode(
                    base + src * size, dtype: s.dtype, count: 1, into: o.baseAddress! + k)
                var dim = rank - 1
                while dim >= 0 {
                    index[dim] += 1
                    src += t.strides[dim]
                    if index[dim] < t.shape[dim] { break }
                    src -= t.strides[dim] * t.shape[dim]
                    index[dim] = 0
                    dim -= 1
                }
            }
        }
        return out
    }
}
