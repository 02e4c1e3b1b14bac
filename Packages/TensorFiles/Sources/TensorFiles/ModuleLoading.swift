import Foundation
import Layers
import Tensor

extension Module {
    /// The tensors a weights file must provide for this module: every parameter and persistent buffer
    /// (what `stateDict()` holds), with its shape.
    public var expectedTensors: [ExpectedTensor] {
        stateDict().map { ExpectedTensor($0.0, shape: $0.1.shape) }
    }
}

extension WeightLoader {
    /// Loads `source` into `module`'s parameters and persistent buffers, matching names as
    /// `options` says. This is the one path every `fromPretrained` takes.
    /// - Returns: the report (in a non-strict load, what was missing or unexpected).
    /// - Throws: `LoadError` listing every problem in a strict load (nothing is changed then);
    ///   `TensorFileError` when a tensor cannot be read or reads with another shape than its entry
    ///   (nothing is changed then either).
    @discardableResult
    public static func load(_ source: TensorSource, into module: Module, options: LoadOptions = LoadOptions())
        throws -> LoadReport
    {
        var slots: [(String, TensorSlot)] = module.namedParameters().map { ($0.0, .parameter($0.1)) }
        slots += module.namedBuffers(persistentOnly: true).map { ($0.0, .buffer($0.1)) }
        return try load(source, into: slots, options: options)
    }

    /// Loads `source` into named slots (parameters or buffers): the expected tensors are the slots'
    /// names and current shapes. Every module loader ends here.
    /// - Throws: as `load(_:into:options:)` for a module; nothing is changed when it throws.
    @discardableResult
    static func load(_ source: TensorSource, into named: [(String, TensorSlot)], options: LoadOptions) throws
        -> LoadReport
    {
        let slots = Dictionary(named, uniquingKeysWith: { a, _ in a })
        let expected = named.map { ExpectedTensor($0.0, shape: $0.1.value.shape) }
        let (tensors, report) = try load(from: source, expected: expected, options: options)
        for (name, t) in tensors {
            guard let slot = slots[name], slot.value.shape == t.shape else {
                throw TensorFileError(
                    file: source.path, tensor: name,
                    "read as \(fmtShape(t.shape)), expected \(fmtShape(slots[name]?.value.shape ?? []))")
            }
        }
        for (name, t) in tensors { slots[name]?.set(t) }
        return report
    }
}

/// Named tensors held in memory as a `TensorSource`, so that tensors computed or converted in
/// memory load through `WeightLoader` like a file.
public final class InMemoryTensors: TensorSource {
    /// A label for reports and errors (no file is read).
    public let path: String
    public let tensorInfos: [TensorInfo]
    public let metadata: [String: String]
    private let tensors: NamedTensors

    /// - Parameters:
    ///   - tensors: the tensors, in the order they are reported.
    ///   - path: the label reports and errors name.
    public init(_ tensors: NamedTensors, path: String = "(in memory)", metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.path = path
        self.metadata = metadata
        tensorInfos = tensors.map { TensorInfo(name: $0.name, shape: $0.tensor.shape, dtype: .float32) }
    }

    public func readTensor(_ name: String) throws -> Tensor {
        guard let t = tensors[name] else { throw TensorFileError(file: path, tensor: name, "no such tensor") }
        return t
    }
}

/// Opens a weights file of any format this package reads, by content: a safetensors file, a
/// directory holding `model.safetensors` or a sharded `model.safetensors.index.json`, an
/// `*.index.json`, or a PyTorch `torch.save` state dict (`pytorch_model.bin`, `mm_projector.bin`,
/// `*.pt`). (Checkpoint's `openTensorFile` adds Sightline's HDF5 files.)
/// - Throws: `TensorFileError` naming the file.
public func openTensorSource(_ path: String) throws -> TensorSource {
    if path.hasSuffix(".index.json") || isDirectory(path) { return try openSafetensors(path) }
    guard let h = FileHandle(forReadingAtPath: path) else {
        throw TensorFileError(file: path, fileExists(path) ? "cannot open" : "no such file")
    }
    defer { try? h.close() }
    let head = [UInt8]((try? h.read(upToCount: 9)) ?? Data())
    // safetensors: an 8-byte little-endian header length, then the JSON header. (Checked first: the
    // length's low byte may be 0x80, which also starts a pickle.)
    if head.count == 9, head[8] == UInt8(ascii: "{") { return try SafetensorsFile(path: path) }
    if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return try TorchStateDict(path: path) }
    if let first = head.first, first == 0x80, head.count > 1, head[1] <= 5 { return try TorchStateDict(path: path) }
    let ext = (path as NSString).pathExtension.lowercased()
    if ext == "bin" || ext == "pt" || ext == "pth" { return try TorchStateDict(path: path) }
    return try SafetensorsFile(path: path)
}
