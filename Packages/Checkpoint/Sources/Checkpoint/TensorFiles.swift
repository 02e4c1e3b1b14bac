import Foundation
@_spi(FileSupport) import TensorFiles

/// The tensor file formats Sightline reads.
public enum TensorFileKind: String, Sendable {
    case hdf5, safetensors, shardedSafetensors = "sharded-safetensors", pytorch
}

/// The format of `path`, from its first bytes (a directory or `*.index.json` is sharded safetensors).
/// - Throws: `TensorFileError` when the file cannot be read.
public func tensorFileKind(_ path: String) throws -> TensorFileKind {
    if path.hasSuffix(".index.json") { return .shardedSafetensors }
    if isDirectory(path) {
        return fileExists(path + "/model.safetensors.index.json") ? .shardedSafetensors : .safetensors
    }
    try requireRegularFile(path)
    guard let h = FileHandle(forReadingAtPath: path) else {
        throw TensorFileError(file: path, fileExists(path) ? "cannot open" : "no such file")
    }
    defer { try? h.close() }
    let head = [UInt8]((try? h.read(upToCount: 9)) ?? Data())
    if head.starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) { return .hdf5 }
    // A header length whose low byte is 0x80 would otherwise look like a pickle.
    if head.count == 9, head[8] == UInt8(ascii: "{") { return .safetensors }
    if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return .pytorch }
    if let first = head.first, first == 0x80, head.count > 1, head[1] <= 5 { return .pytorch }
    let ext = (path as NSString).pathExtension.lowercased()
    if ext == "h5" || ext == "hdf5" { return .hdf5 }
    if ext == "bin" || ext == "pt" || ext == "pth" { return .pytorch }
    return .safetensors
}

/// Opens any tensor file Sightline reads, by content: a Sightline HDF5 weights file or training
/// checkpoint (its `model/` group), a safetensors file or sharded directory, or a PyTorch `torch.save`
/// state dict.
/// - Throws: `TensorFileError` naming the file.
public func openTensorFile(_ path: String) throws -> TensorSource {
    switch try tensorFileKind(path) {
    case .hdf5: return try HDF5WeightsFile(path: path)
    case .safetensors, .shardedSafetensors: return try openSafetensors(path)
    case .pytorch: return try TorchStateDict(path: path)
    }
}
